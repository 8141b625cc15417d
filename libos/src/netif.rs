//! Portable network interfaces: in-memory links ([`pair`], `netif::pair`)
//! and a chaos wrapper that loses frames ([`Lossy`], `netif::lossy`).
use crate::{BoxFuture, NetError, Netif, Random};
use alloc::{
    boxed::Box, collections::BTreeMap, collections::VecDeque, string::String, sync::Arc, vec::Vec,
};
use core::future::poll_fn;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Poll, Waker};

/// The MTU of an in-memory link: a standard Ethernet frame.
pub const PAIR_MTU: usize = 1514;
/// Frames a link end holds unread before it drops new ones, as a busy
/// switch port would.
const PAIR_QUEUE: usize = 256;

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
}

struct Link {
    ends: [spin::Mutex<Inbox>; 2],
}

/// One end of an in-memory Ethernet link made by [`pair`].
pub struct PairEnd {
    link: Arc<Link>,
    side: usize,
    mac: [u8; 6],
}

/// Two network interfaces wired to each other: a frame sent on one is
/// received on the other. Two stacks over a pair talk inside one process.
pub fn pair() -> (PairEnd, PairEnd) {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let link = Arc::new(Link {
        ends: [Default::default(), Default::default()],
    });
    let end = |side: usize| {
        let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        PairEnd {
            link: link.clone(),
            side,
            // Locally administered, unicast.
            mac: [0x02, 0x6e, n[0], n[1], n[2], n[3]],
        }
    };
    (end(0), end(1))
}

/// The link ends waiting for their partner, by name.
static NAMED: spin::Mutex<BTreeMap<String, PairEnd>> = spin::Mutex::new(BTreeMap::new());

/// `netif::pair(name)`: the first call with a name makes a link and returns
/// one end; the second call with that name returns the other end.
pub fn pair_named(name: &str) -> PairEnd {
    let mut named = NAMED.lock();
    if let Some(end) = named.remove(name) {
        return end;
    }
    let (a, b) = pair();
    named.insert(name.into(), b);
    a
}

impl Netif for PairEnd {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        PAIR_MTU
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        let sent = if frame.len() > PAIR_MTU {
            Err(NetError::FrameTooLarge {
                len: frame.len(),
                mtu: PAIR_MTU,
            })
        } else {
            let mut inbox = self.link.ends[1 - self.side].lock();
            if inbox.frames.len() < PAIR_QUEUE {
                inbox.frames.push_back(frame.to_vec());
            }
            if let Some(w) = inbox.waker.take() {
                w.wake();
            }
            Ok(())
        };
        Box::pin(async move { sent })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(poll_fn(move |cx| {
            let mut inbox = self.link.ends[self.side].lock();
            match inbox.frames.pop_front() {
                Some(frame) if frame.len() > buf.len() => {
                    Poll::Ready(Err(NetError::FrameTooLarge {
                        len: frame.len(),
                        mtu: buf.len(),
                    }))
                }
                Some(frame) => {
                    buf[..frame.len()].copy_from_slice(&frame);
                    Poll::Ready(Ok(frame.len()))
                }
                None => {
                    inbox.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }))
    }
}

/// `netif::lossy(netif, percent, seed)`: loses `percent` % of the frames
/// sent and received through `netif`, chosen by a seeded generator so a
/// failing run can be replayed.
pub struct Lossy<N> {
    inner: N,
    percent: u32,
    rng: crate::random::Seeded,
}

impl<N: Netif> Lossy<N> {
    /// Wraps `inner`; `percent` is capped at 100.
    pub fn new(inner: N, percent: u32, seed: u64) -> Self {
        Lossy {
            inner,
            percent: percent.min(100),
            rng: crate::random::Seeded::new(seed),
        }
    }

    fn lose(&self) -> bool {
        let mut roll = [0u8; 4];
        // Seeded never fails.
        let _ = self.rng.fill(&mut roll);
        u32::from_le_bytes(roll) % 100 < self.percent
    }
}

impl<N: Netif> Netif for Lossy<N> {
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn reliable(&self) -> bool {
        self.inner.reliable()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        if self.lose() {
            return Box::pin(async { Ok(()) });
        }
        self.inner.send(frame)
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(async move {
            loop {
                let n = self.inner.recv(buf).await?;
                if !self.lose() {
                    return Ok(n);
                }
            }
        })
    }
}
