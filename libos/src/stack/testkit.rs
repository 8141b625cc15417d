//! Test support for the stack's parts: a virtual clock, a bounded runner and
//! two stacks wired to each other.
use super::{Config, Direct, Driven};
use crate::netif::{pair, PairEnd};
use crate::task::Group;
use crate::{BoxFuture, Ipv4Cidr, MonoClock, Netif, Time};
use alloc::{boxed::Box, sync::Arc};
use core::future::Future;
use core::net::Ipv4Addr;
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

/// The most rounds [`run`] polls before it gives up: no test may hang.
const ROUNDS: usize = 200_000;

/// Turns a sleep lets the other tasks take before it moves the clock: enough
/// for a peer to answer a frame (its driver takes it, a job answers, its
/// driver sends), or time would jump past the answer (smoltcp's DHCP client
/// takes a new transaction id with each retry and ignores an answer to the
/// last one).
const TURNS: usize = 8;

/// The two stacks' addresses: `A` listens, `B` connects.
pub(crate) const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A monotonic clock that moves only when a [`Sleeper`] sleeps on it.
#[derive(Clone, Default)]
pub(crate) struct Clock(Arc<AtomicU64>);

impl Clock {
    /// The virtual time since the clock was made.
    pub(crate) fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

impl MonoClock for Clock {
    fn elapsed_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A [`Time`] over a [`Clock`]: a sleep gives the other tasks [`TURNS`]
/// turns, then moves the clock to its deadline and returns. Simulated
/// seconds take no wall time.
pub(crate) struct Sleeper(pub Clock);

impl Time for Sleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        let clock = self.0.clone();
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let deadline = clock.elapsed_ns().saturating_add(nanos);
        Box::pin(async move {
            for _ in 0..TURNS {
                crate::task::yield_now().await;
            }
            clock.0.fetch_max(deadline, Ordering::SeqCst);
        })
    }
}

/// A stack on `netif` at `config`, on `clock`.
pub(crate) fn direct(netif: PairEnd, clock: &Clock, config: Config) -> Direct {
    let mut seed = [0; 8];
    seed[..6].copy_from_slice(&netif.mac());
    let random = crate::random::Seeded::new(u64::from_le_bytes(seed));
    Direct::new(netif, clock.clone(), Sleeper(clock.clone()), random, config)
        .expect("a valid configuration")
}

/// `addr`/24.
pub(crate) fn cidr(addr: Ipv4Addr) -> Config {
    Config::new(Ipv4Cidr { addr, prefix: 24 })
}

/// A group running `stack`'s driver.
pub(crate) fn driving(stack: &Direct) -> Group<'static> {
    let mut g = Group::new();
    g.push(stack.driver());
    g
}

/// Two stacks over a [`pair`], at [`A`] and [`B`], on one clock; each with
/// its driver in a group of its own, so a test can stop one.
pub(crate) struct Two {
    pub a: Direct,
    pub b: Direct,
    pub clock: Clock,
    pub a_driver: Group<'static>,
    pub b_driver: Group<'static>,
}

pub(crate) fn two() -> Two {
    let clock = Clock::default();
    let (x, y) = pair();
    let a = direct(x, &clock, cidr(A));
    let b = direct(y, &clock, cidr(B));
    Two {
        a_driver: driving(&a),
        b_driver: driving(&b),
        a,
        b,
        clock,
    }
}

/// Polls `fut` to completion, polling the tasks of `beside` between its
/// polls (a waker that does nothing: every round polls everything). Panics
/// after [`ROUNDS`] rounds.
pub(crate) fn run<F: Future>(beside: &mut [&mut Group<'_>], fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..ROUNDS {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        for g in beside.iter_mut() {
            let _ = pin!(g.join()).poll(&mut cx);
        }
    }
    panic!("not done after {ROUNDS} rounds");
}

/// Completes once `cond` holds (checked at every poll).
pub(crate) async fn until(mut cond: impl FnMut() -> bool) {
    core::future::poll_fn(|_| {
        if cond() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}
