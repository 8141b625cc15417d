//! Jobs: the application's entry points.
//!
//! A job is a `pub async fn` taking devices (`impl Console`, …) and values.
//! It may return `()` or `Result<(), E>` for any displayable `E`; the runner
//! turns either into an [`Outcome`] and a failing job ends the program with a
//! non-zero status.
use alloc::{format, string::String};
use core::fmt::Display;

/// What a job's return value means to the runner.
pub trait Outcome {
    /// `Err` carries the message to show the user.
    fn into_outcome(self) -> Result<(), String>;
}

impl Outcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> Outcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e}"))
    }
}

/// Polls `fut` to completion with a waker that does nothing: enough for
/// tests of devices whose futures never wait.
#[cfg(test)]
pub(crate) fn block_on<F: core::future::Future>(fut: F) -> F::Output {
    use core::task::{Context, Poll, Waker};
    let mut fut = core::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
