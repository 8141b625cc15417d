//! The standard shared ring (Xen's `io/ring.h`), from the frontend's side:
//! one page, a 64-byte header (`req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event`, padding), then a power-of-two number of entries, each a
//! union of one request and one response. The frontend produces requests
//! and consumes responses; the backend does the opposite, in the same
//! slots.
//!
//! The backend's `rsp_prod` is input. Responses the frontend may consume
//! are those between its own consumer index and `rsp_prod`, and there can
//! never be more of them than requests it has produced and not yet seen
//! answered: a producer index further ahead than that (a ring "with a
//! producer past the consumer by more than its size", or just by more than
//! was asked) is [`RingError::ProducerAhead`], and the ring is not read.
use crate::Mem;

/// Where the entries start.
pub const HEADER: usize = 64;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// The number of entries of `entry` bytes a one-page ring holds
/// (`__RING_SIZE`: the largest power of two that fits).
pub const fn entries(entry: usize) -> u32 {
    let fit = ((crate::PAGE - HEADER) / entry) as u32;
    if fit == 0 {
        0
    } else {
        1 << (31 - fit.leading_zeros())
    }
}

/// What the other end did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Its producer index claims more entries than can be there.
    ProducerAhead {
        /// The producer index read.
        prod: u32,
        /// Our consumer index.
        cons: u32,
        /// How many entries could be there at most.
        most: u32,
    },
    /// Its consumer index claims to have read what was never written.
    ConsumerAhead {
        /// Our producer index.
        prod: u32,
        /// The consumer index read.
        cons: u32,
    },
    /// A response names a request that is not outstanding.
    UnknownId {
        /// The id it named.
        id: u64,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RingError::ProducerAhead { prod, cons, most } => write!(
                f,
                "the ring's producer index {prod} is more than {most} past its consumer {cons}"
            ),
            RingError::ConsumerAhead { prod, cons } => write!(
                f,
                "the ring's consumer index {cons} is past its producer {prod}"
            ),
            RingError::UnknownId { id } => {
                write!(f, "a response names request {id}, which is not outstanding")
            }
        }
    }
}

/// The frontend's private state of one shared ring (`FRONT_RING`).
pub struct FrontRing {
    /// Requests produced, published or not.
    req_prod_pvt: u32,
    /// Responses consumed.
    rsp_cons: u32,
    size: u32,
    entry: usize,
}

impl FrontRing {
    /// Initialises the shared ring in `page` (`SHARED_RING_INIT`) for
    /// entries of `entry` bytes, and the frontend's state of it.
    pub fn init(page: &impl Mem, entry: usize) -> FrontRing {
        page.write::<u32>(REQ_PROD, 0);
        page.write::<u32>(RSP_PROD, 0);
        page.write::<u32>(REQ_EVENT, 1);
        page.write::<u32>(RSP_EVENT, 1);
        page.fence();
        FrontRing {
            req_prod_pvt: 0,
            rsp_cons: 0,
            size: entries(entry),
            entry,
        }
    }

    /// The number of entries.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can be made before a response frees a slot.
    pub fn free(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// The offset of the next request's slot, reserving it; `None` when
    /// every slot holds a request not yet answered.
    pub fn next_request(&mut self) -> Option<usize> {
        if self.free() == 0 {
            return None;
        }
        let off = self.slot(self.req_prod_pvt);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Some(off)
    }

    fn slot(&self, index: u32) -> usize {
        HEADER + (index & (self.size - 1)) as usize * self.entry
    }

    /// Publishes the requests written so far
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`); whether the backend asked
    /// to be notified of them.
    pub fn push(&mut self, page: &impl Mem) -> bool {
        let old = page.read::<u32>(REQ_PROD);
        let new = self.req_prod_pvt;
        page.fence();
        page.write::<u32>(REQ_PROD, new);
        page.fence();
        let event = page.read::<u32>(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// The offset of the next response, consuming it; `None` if there is
    /// none yet. Asks to be notified of the next one when there is none
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`).
    pub fn next_response(&mut self, page: &impl Mem) -> Result<Option<usize>, RingError> {
        if self.unconsumed(page)? == 0 {
            page.write::<u32>(RSP_EVENT, self.rsp_cons.wrapping_add(1));
            page.fence();
            if self.unconsumed(page)? == 0 {
                return Ok(None);
            }
        }
        let off = self.slot(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(off))
    }

    /// Responses produced and not consumed, checked against the requests
    /// outstanding.
    fn unconsumed(&self, page: &impl Mem) -> Result<u32, RingError> {
        let prod = page.read::<u32>(RSP_PROD);
        page.fence();
        let most = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        let n = prod.wrapping_sub(self.rsp_cons);
        if n > most {
            return Err(RingError::ProducerAhead {
                prod,
                cons: self.rsp_cons,
                most,
            });
        }
        Ok(n)
    }
}

/// Tracks which request ids are outstanding, so that a response naming
/// any other id is refused ([`RingError::UnknownId`]) rather than trusted.
pub struct Outstanding {
    bits: u64,
    size: u32,
}

impl Outstanding {
    /// Ids `0..size` (at most 64), none outstanding.
    pub fn new(size: u32) -> Outstanding {
        Outstanding {
            bits: 0,
            size: size.min(64),
        }
    }

    /// A free id, now outstanding.
    pub fn take(&mut self) -> Option<u16> {
        let free = !self.bits & self.mask();
        if free == 0 {
            return None;
        }
        let id = free.trailing_zeros();
        self.bits |= 1 << id;
        Some(id as u16)
    }

    /// Whether `id` is outstanding.
    pub fn contains(&self, id: u64) -> bool {
        id < u64::from(self.size) && self.bits & (1 << id) != 0
    }

    /// Marks the response to `id` received.
    pub fn finish(&mut self, id: u64) -> Result<u16, RingError> {
        if !self.contains(id) {
            return Err(RingError::UnknownId { id });
        }
        self.bits &= !(1 << id);
        Ok(id as u16)
    }

    /// How many are outstanding.
    pub fn count(&self) -> u32 {
        self.bits.count_ones()
    }

    fn mask(&self) -> u64 {
        if self.size >= 64 {
            u64::MAX
        } else {
            (1 << self.size) - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    #[test]
    fn sizes_match_ring_h() {
        assert_eq!(entries(12), 256, "netif tx");
        assert_eq!(entries(8), 256, "netif rx");
        assert_eq!(entries(112), 32, "blkif");
        assert_eq!(entries(5000), 0);
    }

    #[test]
    fn requests_responses_and_notifications() {
        let page = TestPage::new();
        let mut ring = FrontRing::init(&page, 112);
        assert_eq!(ring.next_request(), Some(64));
        assert_eq!(ring.next_request(), Some(64 + 112));
        // The backend waits for the first request: req_event = 1.
        assert!(ring.push(&page));
        assert_eq!(page.read::<u32>(REQ_PROD), 2);
        // It answers one.
        page.write::<u32>(RSP_PROD, 1);
        assert_eq!(ring.next_response(&page), Ok(Some(64)));
        assert_eq!(ring.next_response(&page), Ok(None));
        assert_eq!(page.read::<u32>(RSP_EVENT), 2, "asks for the next one");
        // A backend that has not asked (req_event behind) is not notified.
        assert_eq!(ring.next_request(), Some(64 + 2 * 112));
        assert!(!ring.push(&page));
    }

    #[test]
    fn a_full_ring_takes_no_request() {
        let page = TestPage::new();
        let mut ring = FrontRing::init(&page, 112);
        for _ in 0..32 {
            assert!(ring.next_request().is_some());
        }
        assert_eq!(ring.next_request(), None);
        ring.push(&page);
        page.write::<u32>(RSP_PROD, 1);
        assert!(ring.next_response(&page).unwrap().is_some());
        assert!(ring.next_request().is_some(), "a slot came back");
    }

    #[test]
    fn a_producer_past_what_was_asked_is_refused() {
        let page = TestPage::new();
        let mut ring = FrontRing::init(&page, 8);
        ring.next_request();
        ring.push(&page);
        // One request out, and the backend claims two answers; then a
        // producer more than the ring's size ahead; then one behind.
        for prod in [2, 257, u32::MAX] {
            page.write::<u32>(RSP_PROD, prod);
            assert!(
                matches!(
                    ring.next_response(&page),
                    Err(RingError::ProducerAhead { most: 1, .. })
                ),
                "rsp_prod {prod}"
            );
        }
        page.write::<u32>(RSP_PROD, 1);
        assert_eq!(ring.next_response(&page), Ok(Some(64)));
    }

    #[test]
    fn indices_wrap() {
        let page = TestPage::new();
        let mut ring = FrontRing::init(&page, 112);
        ring.req_prod_pvt = u32::MAX;
        ring.rsp_cons = u32::MAX;
        page.write::<u32>(REQ_PROD, u32::MAX);
        page.write::<u32>(RSP_PROD, u32::MAX);
        assert_eq!(ring.next_request(), Some(64 + 31 * 112));
        assert_eq!(ring.next_request(), Some(64));
        ring.push(&page);
        page.write::<u32>(RSP_PROD, 1);
        assert_eq!(ring.next_response(&page), Ok(Some(64 + 31 * 112)));
        assert_eq!(ring.next_response(&page), Ok(Some(64)));
        assert_eq!(ring.next_response(&page), Ok(None));
    }

    #[test]
    fn only_outstanding_ids_are_answered() {
        let mut ids = Outstanding::new(3);
        assert_eq!(ids.take(), Some(0));
        assert_eq!(ids.take(), Some(1));
        assert_eq!(ids.finish(5), Err(RingError::UnknownId { id: 5 }));
        assert_eq!(ids.finish(2), Err(RingError::UnknownId { id: 2 }));
        assert_eq!(
            ids.finish(u64::MAX),
            Err(RingError::UnknownId { id: u64::MAX })
        );
        assert_eq!(ids.finish(1), Ok(1));
        assert_eq!(ids.finish(1), Err(RingError::UnknownId { id: 1 }), "twice");
        assert_eq!(ids.take(), Some(1));
        assert_eq!(ids.take(), Some(2));
        assert_eq!(ids.take(), None);
        assert_eq!(ids.count(), 3);
        let mut all = Outstanding::new(64);
        for _ in 0..64 {
            assert!(all.take().is_some());
        }
        assert_eq!(all.take(), None);
    }
}
