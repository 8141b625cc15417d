//! The byte rings of the PV console and of xenstore: both pages hold two
//! power-of-two byte buffers and then four free-running `u32` indices
//! (the first ring's consumer and producer, then the second's), which is
//! [`TwoRings`]. Each end produces into one ring and consumes from the
//! other; the other end's index is input and is checked before any byte
//! moves.
use crate::ring::RingError;
use crate::Mem;
use core::mem::offset_of;

/// The layout both pages share (`struct xencons_interface`, `struct
/// xenstore_domain_interface`), for its offsets: never made, the page is
/// read through [`Mem`].
#[repr(C)]
pub(crate) struct TwoRings<const FIRST: usize, const SECOND: usize> {
    first: [u8; FIRST],
    second: [u8; SECOND],
    first_cons: u32,
    first_prod: u32,
    second_cons: u32,
    second_prod: u32,
}

impl<const FIRST: usize, const SECOND: usize> TwoRings<FIRST, SECOND> {
    /// The first ring (the console's `in`, xenstore's requests).
    pub(crate) const FIRST: ByteRing = ByteRing {
        data: offset_of!(Self, first),
        size: FIRST as u32,
        cons: offset_of!(Self, first_cons),
        prod: offset_of!(Self, first_prod),
    };
    /// The second ring (the console's `out`, xenstore's responses).
    pub(crate) const SECOND: ByteRing = ByteRing {
        data: offset_of!(Self, second),
        size: SECOND as u32,
        cons: offset_of!(Self, second_cons),
        prod: offset_of!(Self, second_prod),
    };
}

/// One byte ring: where its bytes and its two indices sit in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRing {
    /// The offset of its first byte.
    pub(crate) data: usize,
    /// Its size in bytes, a power of two.
    pub(crate) size: u32,
    /// The offset of its consumer index.
    pub(crate) cons: usize,
    /// The offset of its producer index.
    pub(crate) prod: usize,
}

impl ByteRing {
    /// In a ring this end produces into: the bytes written and not yet
    /// consumed. A consumer index past the producer, or more than the
    /// ring's size behind it, is an error.
    pub(crate) fn unread(self, page: &impl Mem) -> Result<u32, RingError> {
        self.produced(page).map(|(_, used)| used)
    }

    /// Writes as much of `bytes` as fits; how much that was. On an error
    /// nothing is written.
    pub(crate) fn write(self, page: &impl Mem, bytes: &[u8]) -> Result<usize, RingError> {
        let (prod, used) = self.produced(page)?;
        let n = (self.size - used).min(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        for (i, b) in bytes[..n as usize].iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (self.size - 1);
            page.write::<u8>(self.data + at as usize, *b);
        }
        page.fence();
        page.write::<u32>(self.prod, prod.wrapping_add(n));
        page.fence();
        Ok(n as usize)
    }

    /// In a ring the other end produces into: hands every byte produced
    /// to `take`, in order, and consumes them; how many. A producer more
    /// than the ring's size ahead is an error, and nothing is consumed.
    pub(crate) fn consume(
        self,
        page: &impl Mem,
        mut take: impl FnMut(u8),
    ) -> Result<u32, RingError> {
        let (cons, prod) = self.pending(page)?;
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            let at = cons.wrapping_add(i) & (self.size - 1);
            take(page.read::<u8>(self.data + at as usize));
        }
        self.release(page, prod);
        Ok(n)
    }

    /// Like [`consume`](Self::consume), but drops what was produced
    /// without reading it.
    pub(crate) fn discard(self, page: &impl Mem) -> Result<(), RingError> {
        let (_, prod) = self.pending(page)?;
        self.release(page, prod);
        Ok(())
    }

    /// This end's producer index and the bytes not yet consumed, the
    /// indices each read once and checked.
    fn produced(self, page: &impl Mem) -> Result<(u32, u32), RingError> {
        let cons = page.read::<u32>(self.cons);
        let prod = page.read::<u32>(self.prod);
        page.fence();
        let used = prod.wrapping_sub(cons);
        if used > self.size {
            return Err(RingError::ConsumerAhead { prod, cons });
        }
        Ok((prod, used))
    }

    /// The other end's consumer and producer indices, each read once and
    /// checked.
    fn pending(self, page: &impl Mem) -> Result<(u32, u32), RingError> {
        let cons = page.read::<u32>(self.cons);
        let prod = page.read::<u32>(self.prod);
        page.fence();
        if prod.wrapping_sub(cons) > self.size {
            return Err(RingError::ProducerAhead {
                prod,
                cons,
                most: self.size,
            });
        }
        Ok((cons, prod))
    }

    /// Consumes everything up to `prod`, after the reads before it.
    fn release(self, page: &impl Mem, prod: u32) {
        page.fence();
        page.write::<u32>(self.cons, prod);
        page.fence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layouts_are_xens() {
        // xen/include/public/io/console.h: in[1024], out[2048], indices.
        assert_eq!(
            TwoRings::<1024, 2048>::SECOND,
            ByteRing {
                data: 1024,
                size: 2048,
                cons: 3080,
                prod: 3084
            }
        );
        assert_eq!(TwoRings::<1024, 2048>::FIRST.cons, 3072);
        // xen/include/public/io/xs_wire.h: req[1024], rsp[1024], indices.
        assert_eq!(
            TwoRings::<1024, 1024>::SECOND,
            ByteRing {
                data: 1024,
                size: 1024,
                cons: 2056,
                prod: 2060
            }
        );
        assert_eq!(TwoRings::<1024, 1024>::FIRST.prod, 2052);
    }
}
