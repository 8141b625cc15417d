//! Time: waiting until a deadline.
use crate::BoxFuture;
use core::time::Duration;

/// Sleeping (MirageOS: `Mirage_time`). On a unikernel the executor blocks in
/// the platform's wait primitive until the earliest deadline: no busy loop.
pub trait Time: Send + Sync {
    /// Completes once `duration` has passed.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;
}

crate::delegate_arc!(Time { fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>; });

/// A [`Time`] whose sleeps are `factor` times shorter than asked: the partner
/// of [`crate::clock::Scaled`] for tests that wait.
pub struct Scaled<T> {
    inner: T,
    factor: u32,
}

impl<T: Time> Scaled<T> {
    /// Wraps `inner`; a `factor` of 0 is treated as 1.
    pub fn new(inner: T, factor: u32) -> Self {
        Self {
            inner,
            factor: factor.max(1),
        }
    }
}

impl<T: Time> Time for Scaled<T> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.inner.sleep(duration / self.factor)
    }
}
