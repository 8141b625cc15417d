//! Shared memory as the guest reaches it: one load or store at a time.
//!
//! Another domain may write a shared page at any moment, so nothing here
//! reads a structure as a whole or keeps a reference into the page: each
//! field is read once, into a local, and checked there.

/// A page (or part of one) shared with another domain.
///
/// Offsets given to the accessors are computed by this crate from
/// constants and masked indices, so they are always inside
/// [`Mem::size`] and aligned to the access width; an implementation may
/// still check them (the guest's does, and ignores a stray access rather
/// than touch memory outside the page).
pub trait Mem {
    /// The size in bytes.
    fn size(&self) -> usize;
    /// The little-endian word at `off`.
    fn read<W: Word>(&self, off: usize) -> W;
    /// Writes the word `v` at `off`.
    fn write<W: Word>(&self, off: usize, v: W);
    /// Orders every access before it against every access after it, for
    /// the other domain too (a full barrier).
    fn fence(&self);
}

/// What one access moves: `u8`, `u16`, `u32` or `u64`, little-endian.
pub trait Word: Copy + Default + sealed::Sealed {
    /// Its size in bytes.
    const SIZE: usize;
    /// The word the first [`Word::SIZE`] bytes of `bytes` hold.
    fn from_le(bytes: &[u8]) -> Self;
    /// Writes it into the first [`Word::SIZE`] bytes of `out`.
    fn to_le(self, out: &mut [u8]);
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! words {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Word for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> $t {
                let mut b = [0; core::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..Self::SIZE]);
                <$t>::from_le_bytes(b)
            }
            fn to_le(self, out: &mut [u8]) {
                out[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
words!(u8, u16, u32, u64);

/// A page in ordinary memory, for tests: what a hostile backend would
/// write, written by the test.
#[cfg(test)]
pub(crate) struct TestPage(pub(crate) [core::cell::Cell<u8>; crate::PAGE]);

#[cfg(test)]
impl TestPage {
    pub(crate) fn new() -> TestPage {
        TestPage(core::array::from_fn(|_| core::cell::Cell::new(0)))
    }
}

#[cfg(test)]
impl Mem for TestPage {
    fn size(&self) -> usize {
        crate::PAGE
    }
    fn read<W: Word>(&self, off: usize) -> W {
        assert_eq!(
            off % W::SIZE,
            0,
            "misaligned {}-byte read at {off}",
            W::SIZE
        );
        let mut bytes = [0u8; 8];
        for (b, cell) in bytes.iter_mut().zip(&self.0[off..off + W::SIZE]) {
            *b = cell.get();
        }
        W::from_le(&bytes)
    }
    fn write<W: Word>(&self, off: usize, v: W) {
        assert_eq!(
            off % W::SIZE,
            0,
            "misaligned {}-byte write at {off}",
            W::SIZE
        );
        let mut bytes = [0u8; 8];
        v.to_le(&mut bytes);
        for (cell, b) in self.0[off..off + W::SIZE].iter().zip(bytes) {
            cell.set(b);
        }
    }
    fn fence(&self) {}
}
