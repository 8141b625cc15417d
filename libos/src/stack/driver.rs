//! The driver: the future that moves frames between the netif and smoltcp,
//! and sleeps until a frame, a timer or a job's poke.
use super::{micros, Direct, Driven, DriverParts, Frames, Shared, QUEUE, STREAK};
use crate::{BoxFuture, NetError, Netif};
use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use smoltcp::time::Instant;

impl Driven for Direct {
    fn driver(&self) -> BoxFuture<'static, ()> {
        let parts = self.parts.lock().take();
        let shared = self.shared.clone();
        Box::pin(async move {
            if let Some(parts) = parts {
                drive(shared, parts).await
            }
        })
    }
}

type Received = Pin<Box<dyn Future<Output = (Vec<u8>, Result<usize, NetError>)> + Send>>;

pub(super) async fn drive(shared: Arc<Shared>, parts: DriverParts) {
    let DriverParts { netif, clock, time } = parts;
    let mtu = netif.mtu();
    let mut recv: Option<Received> = None;
    let mut failures: u32 = 0;
    let mut streak: u32 = 0;
    while !shared.stopped.load(Ordering::Acquire) {
        let (delay, backlogged) = shared.poll(micros(&clock));
        // Send what smoltcp queued, outside the lock.
        loop {
            let frame = shared.state.lock().tx.pop_front();
            let Some(frame) = frame else { break };
            // A frame the link refuses is a frame lost on the wire: TCP resends.
            let _ = netif.send(&frame).await;
        }
        if backlogged {
            // More to do at once, but let the jobs run first: frames that
            // keep coming must not starve them (nothing here ever waits
            // when the netif is always ready).
            crate::task::yield_now().await;
            continue;
        }
        let pending = recv.get_or_insert_with(|| {
            let netif = netif.clone();
            Box::pin(async move {
                let mut buf = vec![0; mtu];
                let got = netif.recv(&mut buf).await;
                (buf, got)
            })
        });
        let mut sleep = delay.map(|d| time.sleep(d));
        // Whether this wait returned at once: a frame, a poke or a timer
        // was already there. Rounds that never wait give the jobs no turn,
        // and a peer that sends as fast as the stack answers (a client
        // retrying a refused SYN at once) would starve them: the guest's
        // executor has no budget that forces a yield. So after [`STREAK`]
        // such rounds the driver yields (not after each: a yield per frame
        // cost a third of the requests/s over a tap).
        let mut waited = false;
        let woke = poll_fn(|cx| {
            if let Poll::Ready(got) = pending.as_mut().poll(cx) {
                return Poll::Ready(Some(got));
            }
            if shared.poke.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            match sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(None),
                _ => {
                    waited = true;
                    Poll::Pending
                }
            }
        })
        .await;
        drop(sleep);
        streak = if waited { 0 } else { streak + 1 };
        if streak >= STREAK {
            streak = 0;
            crate::task::yield_now().await;
        }
        let Some((mut frame, got)) = woke else {
            continue;
        };
        recv = None;
        match got {
            Ok(len) if len <= frame.len() => {
                failures = 0;
                frame.truncate(len);
                {
                    let mut st = shared.state.lock();
                    if st.rx.len() < QUEUE {
                        st.rx.push_back(frame);
                    }
                }
                // After this frame, in order: the ones that arrived with it,
                // on a link where each receive is dear (a hypercall).
                if netif.reliable() {
                    take_waiting(&shared, &*netif, mtu).await;
                }
            }
            // A frame too large for the MTU, or a netif lying about lengths:
            // drop it and go on.
            Ok(_) | Err(NetError::FrameTooLarge { .. }) => {}
            Err(_) => {
                // A failing link: back off rather than spin, and keep trying.
                failures = failures.saturating_add(1);
                time.sleep(Duration::from_millis(10 * u64::from(failures.min(100))))
                    .await;
            }
        }
    }
}

/// Takes every frame already waiting on `netif` (one whose `recv` is ready
/// at once), so smoltcp runs once for a burst rather than once per frame.
async fn take_waiting(shared: &Shared, netif: &dyn Netif, mtu: usize) {
    while shared.state.lock().rx.len() < QUEUE {
        let mut frame = vec![0; mtu];
        let ready = {
            let mut recv = netif.recv(&mut frame);
            poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx))).await
        };
        match ready {
            Poll::Ready(Ok(len)) if len <= frame.len() => {
                frame.truncate(len);
                shared.state.lock().rx.push_back(frame);
            }
            Poll::Ready(Ok(_)) | Poll::Ready(Err(NetError::FrameTooLarge { .. })) => {}
            Poll::Ready(Err(_)) | Poll::Pending => return,
        }
    }
}

impl Shared {
    /// Runs smoltcp once at `now` (µs): ingress, egress, timers. Returns how
    /// long it may sleep, and whether the transmit queue filled up (then it
    /// must run again as soon as the queue is sent).
    fn poll(&self, now: i64) -> (Option<Duration>, bool) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.now = now;
        let at = Instant::from_micros(now);
        let learned = st.learn_neighbours();
        let mut history = self.history.lock();
        if let Some(r) = history.as_mut() {
            r.neighbours(learned);
        }
        let mut dev = Frames {
            rx: &mut st.rx,
            tx: &mut st.tx,
            mtu: st.mtu,
            reliable: st.reliable,
        };
        // smoltcp sends at most one segment per socket per poll. On a link
        // where each wake-up is dear (a unikernel's, [`Netif::reliable`]),
        // poll until nothing more goes out, so a window's worth of data
        // leaves at once. (Elsewhere one poll per wake-up: polling until
        // idle over a lossy link made recovery slower, 5 % loss runs of
        // 96 KiB up to 31 s instead of 12 s, measured with smoltcp 0.13.)
        let rounds = if st.reliable { QUEUE } else { 1 };
        for _ in 0..rounds {
            let before = dev.tx.len();
            st.iface.poll(at, &mut dev, &mut st.sockets);
            if dev.tx.len() == before || dev.tx.len() >= QUEUE {
                break;
            }
        }
        if let Some(h) = st.dhcp {
            st.lease_event(h);
        }
        if let Some(r) = history.as_mut() {
            r.sockets(st);
        }
        drop(history);
        let backlogged = st.tx.len() >= QUEUE || !st.rx.is_empty();
        st.reap_orphans(now);
        let delay = st
            .iface
            .poll_delay(at, &st.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        let delay = match (delay, st.orphans.is_empty()) {
            // Wake up in time to reap what lingers.
            (None, false) => Some(Duration::from_secs(1)),
            (d, _) => d,
        };
        (delay, backlogged)
    }
}

/// Wakes the driver when a job changed a socket.
#[derive(Default)]
pub(super) struct Poke {
    flag: AtomicBool,
    waker: spin::Mutex<Option<Waker>>,
}

impl Poke {
    pub(super) fn poke(&self) {
        self.flag.store(true, Ordering::Release);
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
    }

    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        if self.flag.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testkit::{cidr, direct, Clock, A};
    use alloc::task::Wake;
    use core::sync::atomic::AtomicUsize;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_poke_before_a_poll_is_seen_once() {
        let poke = Poke::default();
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        poke.poke();
        assert!(poke.poll(&mut cx).is_ready());
        assert!(poke.poll(&mut cx).is_pending(), "the poke was used up");
    }

    #[test]
    fn a_pending_poll_is_woken_by_a_later_poke() {
        let poke = Poke::default();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(poke.poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        poke.poke();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poke.poll(&mut cx).is_ready());
    }

    #[test]
    fn the_driver_ends_when_the_direct_is_dropped() {
        let (end, _peer) = crate::netif::pair();
        let stack = direct(end, &Clock::default(), cidr(A));
        let mut driver = stack.driver();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(driver.as_mut().poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "idle: nothing to do");
        drop(stack);
        assert!(count.0.load(Ordering::SeqCst) > 0, "the drop wakes it");
        assert!(driver.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_second_driver_ends_at_once() {
        let (end, _peer) = crate::netif::pair();
        let stack = direct(end, &Clock::default(), cidr(A));
        let mut first = stack.driver();
        let mut second = stack.driver();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert!(first.as_mut().poll(&mut cx).is_pending());
    }
}
