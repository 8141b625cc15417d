//! Sleeping on the host: tokio's timer.
use super::InitError;
use libos::{BoxFuture, Time};
use std::time::Duration;

/// Sleeps on the tokio runtime that polls the future (`time::tokio()`).
pub struct Tokio {
    _private: (),
}

impl Tokio {
    /// A sleeper on the current tokio runtime.
    pub fn new() -> Result<Self, InitError> {
        Ok(Self { _private: () })
    }
}

impl Time for Tokio {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        // The timer is registered when the future is first polled, not here,
        // so a sleep may be made outside the runtime and awaited inside it.
        // Polling it outside a tokio runtime with timers enabled panics.
        Box::pin(async move { tokio::time::sleep(duration).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn sleeping_20ms_takes_at_least_20ms() {
        let time = Tokio::new().unwrap();
        let start = Instant::now();
        time.sleep(Duration::from_millis(20)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_sleep_made_outside_the_runtime_can_be_awaited_inside_it() {
        let time = Tokio::new().unwrap();
        let sleep = time.sleep(Duration::from_millis(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(sleep);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_huge_sleep_does_not_overflow() {
        let time = Tokio::new().unwrap();
        let woke = tokio::time::timeout(Duration::from_millis(5), time.sleep(Duration::MAX)).await;
        assert!(woke.is_err(), "a sleep of Duration::MAX never ends");
    }
}
