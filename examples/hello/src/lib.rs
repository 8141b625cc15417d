//! hello: the smallest nym unikernel. It greets `count` times with a pause
//! between greetings, then checks the monotonic clock saw the pauses.
//!
//! It is written only against libos's device traits and is `no_std`, so the
//! same code runs in-process on Unix and links into a unikernel image.
#![no_std]
extern crate alloc;

use alloc::format;
use core::time::Duration;
use libos::{Console, ConsoleError, MonoClock, Time};

/// The pause between two greetings.
const PAUSE: Duration = Duration::from_millis(100);

/// The job: prints `hello from nym #i` for i in 1..=count.
pub async fn start(
    console: impl Console,
    clock: impl MonoClock,
    time: impl Time,
    count: u32,
) -> Result<(), ConsoleError> {
    let started = clock.elapsed_ns();
    for i in 1..=count {
        console.log(&format!("hello from nym #{i}")).await?;
        if i < count {
            time.sleep(PAUSE).await;
        }
    }
    let waited = Duration::from_nanos(clock.elapsed_ns().saturating_sub(started));
    let expected = PAUSE * count.saturating_sub(1);
    let verdict = if waited >= expected { "ok" } else { "too fast" };
    console
        .log(&format!("{count} greetings; the clock agrees: {verdict}"))
        .await
}
