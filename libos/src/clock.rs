//! Clocks: a monotonic clock for measuring, a wall clock for telling the date.

/// A monotonic clock (MirageOS: `Mirage_clock.MCLOCK`): nanoseconds since an
/// arbitrary origin (boot), never going backwards.
pub trait MonoClock: Send + Sync {
    /// Nanoseconds elapsed since this clock's origin.
    fn elapsed_ns(&self) -> u64;
}

/// A wall clock (MirageOS: `Mirage_clock.PCLOCK`): the time of day.
pub trait WallClock: Send + Sync {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    fn now_unix_ns(&self) -> u64;
}

crate::delegate_arc!(MonoClock { fn elapsed_ns(&self) -> u64; });
crate::delegate_arc!(WallClock { fn now_unix_ns(&self) -> u64; });

/// A monotonic clock that runs `factor` times faster than the clock it wraps,
/// from the moment it was made: a middleware device for testing expiry logic
/// without waiting (`clock::scaled(clock::mono(), factor = 60)`).
pub struct Scaled<C> {
    inner: C,
    factor: u64,
    origin: u64,
}

impl<C: MonoClock> Scaled<C> {
    /// Wraps `inner`; a `factor` of 0 is treated as 1.
    pub fn new(inner: C, factor: u64) -> Self {
        let origin = inner.elapsed_ns();
        Self {
            inner,
            factor: factor.max(1),
            origin,
        }
    }
}

impl<C: MonoClock> MonoClock for Scaled<C> {
    fn elapsed_ns(&self) -> u64 {
        let real = self.inner.elapsed_ns().saturating_sub(self.origin);
        self.origin.saturating_add(real.saturating_mul(self.factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    struct Manual(AtomicU64);
    impl MonoClock for &Manual {
        fn elapsed_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn scaled_clock_runs_factor_times_faster_from_its_origin() {
        let base = Manual(AtomicU64::new(1_000));
        let fast = Scaled::new(&base, 60);
        assert_eq!(fast.elapsed_ns(), 1_000);
        base.0.store(1_010, Ordering::SeqCst);
        assert_eq!(fast.elapsed_ns(), 1_000 + 600);
    }
}
