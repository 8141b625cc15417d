//! hello: the smallest nym unikernel. It greets `count` times, `pause`
//! apart, then checks the monotonic clock saw the pauses.
//!
//! It is written only against libos's device traits and is `no_std`, so the
//! same code runs in-process on Unix and links into a unikernel image.
#![no_std]
extern crate alloc;

use alloc::{format, string::String};
use core::time::Duration;
use libos::{Console, ConsoleError, MonoClock, Time};

/// The job: prints `hello from nym #i` for i in 1..=count, `pause` apart.
pub async fn start(
    console: impl Console,
    clock: impl MonoClock,
    time: impl Time,
    count: u32,
    pause: Duration,
    name: String,
) -> Result<(), ConsoleError> {
    let started = clock.elapsed_ns();
    for i in 1..=count {
        console.log(&format!("hello from {name} #{i}")).await?;
        if i < count {
            time.sleep(pause).await;
        }
    }
    let waited = Duration::from_nanos(clock.elapsed_ns().saturating_sub(started));
    let expected = pause * count.saturating_sub(1);
    let verdict = if waited >= expected { "ok" } else { "too fast" };
    console
        .log(&format!("{count} greetings; the clock agrees: {verdict}"))
        .await
}
