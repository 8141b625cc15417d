//! The PV console (`struct xencons_interface`): two byte rings in one
//! page, `in` (1024 bytes, dom0 to guest) and `out` (2048 bytes, guest to
//! dom0), each with a consumer and a producer index. xenconsoled in dom0
//! copies `out` to the console `xl console` shows.
use crate::ring::RingError;
use crate::Mem;

const IN_SIZE: u32 = 1024;
const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const IN_CONS: usize = 3072;
const IN_PROD: usize = 3076;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// Bytes written to `out` and not yet read by xenconsoled, checked: a
/// consumer index past the producer, or more than the ring's size behind
/// it, is an error.
pub fn unread(page: &impl Mem) -> Result<u32, RingError> {
    let cons = page.read::<u32>(OUT_CONS);
    let prod = page.read::<u32>(OUT_PROD);
    page.fence();
    let n = prod.wrapping_sub(cons);
    if n > OUT_SIZE {
        return Err(RingError::ConsumerAhead { prod, cons });
    }
    Ok(n)
}

/// Writes as much of `bytes` to `out` as fits; how much that was.
pub fn write(page: &impl Mem, bytes: &[u8]) -> Result<usize, RingError> {
    let used = unread(page)?;
    let prod = page.read::<u32>(OUT_PROD);
    let n = (OUT_SIZE - used).min(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    for (i, b) in bytes[..n as usize].iter().enumerate() {
        let at = prod.wrapping_add(i as u32) & (OUT_SIZE - 1);
        page.write::<u8>(OUT + at as usize, *b);
    }
    page.fence();
    page.write::<u32>(OUT_PROD, prod.wrapping_add(n));
    page.fence();
    Ok(n as usize)
}

/// Drops whatever dom0 typed (the guest reads no console input), so that
/// the `in` ring never fills. An `in` producer more than the ring's size
/// ahead is an error.
pub fn discard_input(page: &impl Mem) -> Result<(), RingError> {
    let cons = page.read::<u32>(IN_CONS);
    let prod = page.read::<u32>(IN_PROD);
    page.fence();
    let most = IN_SIZE;
    if prod.wrapping_sub(cons) > most {
        return Err(RingError::ProducerAhead { prod, cons, most });
    }
    page.write::<u32>(IN_CONS, prod);
    page.fence();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    fn out(page: &TestPage, from: u32, n: u32) -> alloc::vec::Vec<u8> {
        (0..n)
            .map(|i| page.read::<u8>(OUT + (from.wrapping_add(i) & (OUT_SIZE - 1)) as usize))
            .collect()
    }

    #[test]
    fn writes_wrap_and_stop_when_full() {
        let page = TestPage::new();
        page.write::<u32>(OUT_CONS, 2040);
        page.write::<u32>(OUT_PROD, 2040);
        assert_eq!(write(&page, b"hello, world\n"), Ok(13));
        assert_eq!(out(&page, 2040, 13), b"hello, world\n");
        assert_eq!(unread(&page), Ok(13));
        let big = [b'x'; 4000];
        assert_eq!(write(&page, &big), Ok(2048 - 13));
        assert_eq!(write(&page, b"more"), Ok(0), "full until xenconsoled reads");
        page.write::<u32>(OUT_CONS, 2040 + 100);
        assert_eq!(write(&page, b"more"), Ok(4));
    }

    #[test]
    fn hostile_indices_are_refused_and_nothing_is_written() {
        let page = TestPage::new();
        // The consumer past the producer.
        page.write::<u32>(OUT_CONS, 10);
        page.write::<u32>(OUT_PROD, 5);
        assert!(matches!(
            write(&page, b"x"),
            Err(RingError::ConsumerAhead { prod: 5, cons: 10 })
        ));
        // The producer moved by dom0 more than the ring's size on.
        page.write::<u32>(OUT_CONS, 0);
        page.write::<u32>(OUT_PROD, 4096);
        assert!(write(&page, b"x").is_err());
        assert_eq!(page.read::<u32>(OUT_PROD), 4096, "left alone");
        page.write::<u32>(IN_CONS, 0);
        page.write::<u32>(IN_PROD, 5000);
        assert!(discard_input(&page).is_err());
        page.write::<u32>(IN_PROD, 7);
        assert_eq!(discard_input(&page), Ok(()));
        assert_eq!(page.read::<u32>(IN_CONS), 7);
    }
}
