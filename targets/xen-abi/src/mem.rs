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
    /// The byte at `off`.
    fn read_u8(&self, off: usize) -> u8;
    /// Writes the byte at `off`.
    fn write_u8(&self, off: usize, v: u8);
    /// The little-endian `u16` at `off`.
    fn read_u16(&self, off: usize) -> u16;
    /// Writes the `u16` at `off`.
    fn write_u16(&self, off: usize, v: u16);
    /// The `u32` at `off`.
    fn read_u32(&self, off: usize) -> u32;
    /// Writes the `u32` at `off`.
    fn write_u32(&self, off: usize, v: u32);
    /// The `u64` at `off`.
    fn read_u64(&self, off: usize) -> u64;
    /// Writes the `u64` at `off`.
    fn write_u64(&self, off: usize, v: u64);
    /// Orders every access before it against every access after it, for
    /// the other domain too (a full barrier).
    fn fence(&self);
}

/// A page in ordinary memory, for tests: what a hostile backend would
/// write, written by the test.
#[cfg(test)]
pub(crate) struct TestPage(pub(crate) [core::cell::Cell<u8>; crate::PAGE]);

#[cfg(test)]
impl TestPage {
    pub(crate) fn new() -> TestPage {
        TestPage(core::array::from_fn(|_| core::cell::Cell::new(0)))
    }

    fn get<const N: usize>(&self, off: usize) -> [u8; N] {
        core::array::from_fn(|i| self.0[off + i].get())
    }

    fn set(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            self.0[off + i].set(*b);
        }
    }
}

#[cfg(test)]
impl Mem for TestPage {
    fn size(&self) -> usize {
        crate::PAGE
    }
    fn read_u8(&self, off: usize) -> u8 {
        self.0[off].get()
    }
    fn write_u8(&self, off: usize, v: u8) {
        self.0[off].set(v)
    }
    fn read_u16(&self, off: usize) -> u16 {
        assert_eq!(off % 2, 0, "misaligned u16 at {off}");
        u16::from_le_bytes(self.get(off))
    }
    fn write_u16(&self, off: usize, v: u16) {
        assert_eq!(off % 2, 0, "misaligned u16 at {off}");
        self.set(off, &v.to_le_bytes())
    }
    fn read_u32(&self, off: usize) -> u32 {
        assert_eq!(off % 4, 0, "misaligned u32 at {off}");
        u32::from_le_bytes(self.get(off))
    }
    fn write_u32(&self, off: usize, v: u32) {
        assert_eq!(off % 4, 0, "misaligned u32 at {off}");
        self.set(off, &v.to_le_bytes())
    }
    fn read_u64(&self, off: usize) -> u64 {
        assert_eq!(off % 8, 0, "misaligned u64 at {off}");
        u64::from_le_bytes(self.get(off))
    }
    fn write_u64(&self, off: usize, v: u64) {
        assert_eq!(off % 8, 0, "misaligned u64 at {off}");
        self.set(off, &v.to_le_bytes())
    }
    fn fence(&self) {}
}
