//! The PV console (`struct xencons_interface`): two byte rings in one
//! page, `in` (1024 bytes, dom0 to guest) and `out` (2048 bytes, guest to
//! dom0), each with a consumer and a producer index. xenconsoled in dom0
//! copies `out` to the console `xl console` shows.
use crate::byte_ring::{ByteRing, TwoRings};
use crate::ring::RingError;
use crate::Mem;

/// The page: `in` (1024 bytes) then `out` (2048).
type Page = TwoRings<1024, 2048>;
const IN: ByteRing = Page::FIRST;
const OUT: ByteRing = Page::SECOND;

/// Bytes written to `out` and not yet read by xenconsoled, checked: a
/// consumer index past the producer, or more than the ring's size behind
/// it, is an error.
pub fn unread(page: &impl Mem) -> Result<u32, RingError> {
    OUT.unread(page)
}

/// Writes as much of `bytes` to `out` as fits; how much that was.
pub fn write(page: &impl Mem, bytes: &[u8]) -> Result<usize, RingError> {
    OUT.write(page, bytes)
}

/// Drops whatever dom0 typed (the guest reads no console input), so that
/// the `in` ring never fills. An `in` producer more than the ring's size
/// ahead is an error.
pub fn discard_input(page: &impl Mem) -> Result<(), RingError> {
    IN.discard(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    fn out(page: &TestPage, from: u32, n: u32) -> alloc::vec::Vec<u8> {
        (0..n)
            .map(|i| page.read::<u8>(OUT.data + (from.wrapping_add(i) & (OUT.size - 1)) as usize))
            .collect()
    }

    #[test]
    fn writes_wrap_and_stop_when_full() {
        let page = TestPage::new();
        page.write::<u32>(OUT.cons, 2040);
        page.write::<u32>(OUT.prod, 2040);
        assert_eq!(write(&page, b"hello, world\n"), Ok(13));
        assert_eq!(out(&page, 2040, 13), b"hello, world\n");
        assert_eq!(unread(&page), Ok(13));
        let big = [b'x'; 4000];
        assert_eq!(write(&page, &big), Ok(2048 - 13));
        assert_eq!(write(&page, b"more"), Ok(0), "full until xenconsoled reads");
        page.write::<u32>(OUT.cons, 2040 + 100);
        assert_eq!(write(&page, b"more"), Ok(4));
    }

    #[test]
    fn hostile_indices_are_refused_and_nothing_is_written() {
        let page = TestPage::new();
        // The consumer past the producer.
        page.write::<u32>(OUT.cons, 10);
        page.write::<u32>(OUT.prod, 5);
        assert!(matches!(
            write(&page, b"x"),
            Err(RingError::ConsumerAhead { prod: 5, cons: 10 })
        ));
        // The producer moved by dom0 more than the ring's size on.
        page.write::<u32>(OUT.cons, 0);
        page.write::<u32>(OUT.prod, 4096);
        assert!(write(&page, b"x").is_err());
        assert_eq!(page.read::<u32>(OUT.prod), 4096, "left alone");
        page.write::<u32>(IN.cons, 0);
        page.write::<u32>(IN.prod, 5000);
        assert!(discard_input(&page).is_err());
        page.write::<u32>(IN.prod, 7);
        assert_eq!(discard_input(&page), Ok(()));
        assert_eq!(page.read::<u32>(IN.cons), 7);
    }
}
