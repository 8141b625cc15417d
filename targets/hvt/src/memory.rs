//! Guest memory: one anonymous mapping, and the only way to reach it.
//!
//! Every access goes through [`GuestMemory::range`], which turns a
//! guest-supplied address and length into a [`GuestRange`] only if it lies
//! wholly inside guest memory (no overflow, no wrap). Handlers take ranges,
//! never raw addresses, so a hostile guest cannot name host memory.
//!
//! ## Copies, never references
//!
//! Guest memory is memory the guest can change: a vCPU running on another
//! thread, or KVM itself (it updates the kvmclock page as it enters the
//! guest), may write it at any moment. A Rust reference into it (`&[u8]`,
//! `&mut [u8]`) would promise the compiler that nobody else writes those
//! bytes while the reference lives; that holds today only because the one
//! vCPU is stopped, on the thread holding the slice, while a hypercall is
//! served, and nothing would catch the day it stopped holding (a second
//! vCPU, a handler moved to another thread). So no reference into guest
//! memory is ever made. Every access copies between guest memory and a
//! buffer the monitor owns, as rust-vmm's vm-memory does: the argument
//! structs through volatile loads and stores ([`GuestMemory::read`],
//! [`GuestMemory::write`]), byte ranges through `ptr::copy_nonoverlapping`
//! ([`GuestMemory::read_into`], [`GuestMemory::write_from`],
//! [`GuestMemory::to_vec`]). What a handler holds is its own copy, which the
//! guest cannot change under it: a struct is read once, by value, so a
//! guest rewriting it mid-call changes nothing (no double fetch).
//!
//! The other way out, `unsafe` slice constructors whose callers each
//! promise the vCPU is stopped, saves the copies but puts an `unsafe` block
//! and an argument about threads in every handler. The copies are small
//! beside an exit's cost (a frame, at most 4 KiB of entropy, block requests
//! in 64 KiB pieces), so the hypercall path stays safe code and the
//! `unsafe` stays here.
#![allow(unsafe_code)] // owns guest memory: the one place it is mapped and read
use std::ptr::NonNull;

/// A guest-physical range already checked against guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    start: usize,
    len: usize,
}

impl GuestRange {
    /// The guest-physical start.
    pub fn start(&self) -> u64 {
        self.start as u64
    }
    /// The length.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its first `n` bytes (all of it if shorter) and the rest.
    pub fn split_at(self, n: usize) -> (GuestRange, GuestRange) {
        let n = n.min(self.len);
        (
            GuestRange {
                start: self.start,
                len: n,
            },
            GuestRange {
                start: self.start + n,
                len: self.len - n,
            },
        )
    }

    /// It in pieces of `size` bytes (the last may be shorter), in order.
    pub fn chunks(self, size: usize) -> impl Iterator<Item = GuestRange> {
        let size = size.max(1);
        (0..self.len).step_by(size).map(move |at| GuestRange {
            start: self.start + at,
            len: size.min(self.len - at),
        })
    }
}

/// Why a guest address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAddress {
    /// The range leaves guest memory.
    #[error(
        "{len} bytes at guest address {addr:#x} reach past the end of guest memory ({size:#x})"
    )]
    OutOfBounds {
        /// The address.
        addr: u64,
        /// The length.
        len: u64,
        /// Guest memory's size.
        size: u64,
    },
    /// The address is not aligned as the structure requires.
    #[error("guest address {addr:#x} is not {align}-byte aligned")]
    Misaligned {
        /// The address.
        addr: u64,
        /// The alignment required.
        align: u64,
    },
}

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The size is unusable.
    #[error("guest memory of {0} bytes: it must be a multiple of 2 MiB between 4 MiB and 3 GiB")]
    BadSize(u64),
    /// mmap failed.
    #[error("cannot map {size} bytes of guest memory: {source}")]
    Map {
        /// The size.
        size: u64,
        /// Why.
        source: std::io::Error,
    },
}

/// The smallest guest.
pub const MIN_SIZE: u64 = 4 << 20;
/// The largest guest: hypercall arguments are 32-bit guest addresses.
pub const MAX_SIZE: u64 = 3 << 30;

/// A plain-data structure that may be read from and written to guest memory
/// byte for byte.
///
/// # Safety
/// Implementors are `repr(C)`, have no padding, need at most 8-byte
/// alignment, and every bit pattern is a valid value.
pub unsafe trait Plain: Copy + Default {}

macro_rules! plain {
    ($($t:ident),*) => {
        $(
            // SAFETY: every struct of `abi_structs!` is repr(C) and made only
            // of u64s (nym-hvt-abi's tests check the sizes): no padding, and
            // any bits are a valid value.
            unsafe impl Plain for nym_hvt_abi::$t {}
        )*
    };
}
nym_hvt_abi::abi_structs!(plain);
// SAFETY: a u64 is plain.
unsafe impl Plain for u64 {}

/// A huge page (and a 2 MiB page table entry's reach): 2 MiB.
pub const HUGE: u64 = 2 << 20;

/// The guest's physical memory, mapped in the monitor.
pub struct GuestMemory {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is owned by this value; access is through &self/&mut self.
unsafe impl Send for GuestMemory {}

impl GuestMemory {
    /// Maps `size` bytes of zeroed memory.
    pub fn new(size: u64) -> Result<GuestMemory, MemoryError> {
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) || !size.is_multiple_of(2 << 20) {
            return Err(MemoryError::BadSize(size));
        }
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemoryError::Map {
                size,
                source: std::io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(ptr.cast()).ok_or(MemoryError::Map {
            size,
            source: std::io::Error::other("null mapping"),
        })?;
        Ok(GuestMemory {
            base,
            size: size as usize,
        })
    }

    /// Advises transparent huge pages for `r` (whole 2 MiB pages inside
    /// it): a guest touching that memory then takes one fault per 2 MiB
    /// instead of one per 4 KiB (each costly under nested virtualisation),
    /// but each first touch zeroes 2 MiB. Advice only: failure changes
    /// nothing.
    pub fn huge_pages(&self, r: GuestRange) {
        let start = (r.start as u64).next_multiple_of(HUGE);
        let end = (r.start + r.len) as u64 / HUGE * HUGE;
        if end > start {
            // SAFETY: advice on whole pages inside the mapping (`r` is a
            // range of it); it does not change their contents.
            unsafe {
                libc::madvise(
                    self.base
                        .as_ptr()
                        .add(start as usize)
                        .cast::<libc::c_void>(),
                    (end - start) as usize,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// The host address of guest-physical 0, for KVM's memory slot.
    pub fn host_base(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Checks `len` bytes at guest address `addr`.
    pub fn range(&self, addr: u64, len: u64) -> Result<GuestRange, BadAddress> {
        let bad = BadAddress::OutOfBounds {
            addr,
            len,
            size: self.size as u64,
        };
        let end = addr.checked_add(len).ok_or(bad)?;
        if end > self.size as u64 {
            return Err(bad);
        }
        Ok(GuestRange {
            start: addr as usize,
            len: len as usize,
        })
    }

    /// The host address of a checked range's first byte.
    fn ptr(&self, r: GuestRange) -> *mut u8 {
        debug_assert!(r.start + r.len <= self.size);
        // In bounds: `r` was checked against this memory's size by `range`,
        // and ranges are only made by `range` (of a memory at least as big:
        // there is one per guest).
        self.base.as_ptr().wrapping_add(r.start.min(self.size))
    }

    /// How many bytes of `r` may be touched: all of them, unless `r` came
    /// from a smaller memory.
    fn fit(&self, r: GuestRange, n: usize) -> usize {
        n.min(r.len).min(self.size - r.start.min(self.size))
    }

    /// Copies the first bytes of `r` into `buf`, as many as both hold; how
    /// many.
    pub fn read_into(&self, r: GuestRange, buf: &mut [u8]) -> usize {
        let n = self.fit(r, buf.len());
        // SAFETY: `n` bytes from `ptr(r)` lie inside the mapping (`fit`),
        // which lives as long as `self`; `buf` is the monitor's own memory,
        // so the two cannot overlap. Raw pointers, so no reference into
        // guest memory is made.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(r), buf.as_mut_ptr(), n) };
        n
    }

    /// Copies `buf` into the first bytes of `r`, as many as both hold; how
    /// many.
    pub fn write_from(&mut self, r: GuestRange, buf: &[u8]) -> usize {
        let n = self.fit(r, buf.len());
        // SAFETY: as in `read_into`, the other way.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr(r), n) };
        n
    }

    /// A copy of the bytes of `r`.
    pub fn to_vec(&self, r: GuestRange) -> Vec<u8> {
        let mut v = vec![0; r.len()];
        let n = self.read_into(r, &mut v);
        v.truncate(n);
        v
    }

    /// Reads a `T` at `addr`, which must be 8-byte aligned and inside
    /// memory: one volatile load of the whole struct, by value.
    pub fn read<T: Plain>(&self, addr: u64) -> Result<T, BadAddress> {
        const { assert!(std::mem::align_of::<T>() <= 8) };
        let r = self.aligned(addr, std::mem::size_of::<T>())?;
        // SAFETY: the `size_of::<T>()` bytes at `ptr(r)` are inside the
        // mapping (`aligned` checked them), aligned for `T` (the mapping is
        // page-aligned, `addr` 8-aligned, and every `Plain` struct is made of
        // u64s), and any bytes are a valid `T` (`T: Plain`).
        Ok(unsafe { std::ptr::read_volatile(self.ptr(r).cast::<T>()) })
    }

    /// Writes a `T` at `addr`, which must be 8-byte aligned and inside
    /// memory, with one volatile store.
    pub fn write<T: Plain>(&mut self, addr: u64, v: &T) -> Result<(), BadAddress> {
        const { assert!(std::mem::align_of::<T>() <= 8) };
        let r = self.aligned(addr, std::mem::size_of::<T>())?;
        // SAFETY: as in `read`.
        unsafe { std::ptr::write_volatile(self.ptr(r).cast::<T>(), *v) };
        Ok(())
    }

    fn aligned(&self, addr: u64, len: usize) -> Result<GuestRange, BadAddress> {
        if !addr.is_multiple_of(8) {
            return Err(BadAddress::Misaligned { addr, align: 8 });
        }
        self.range(addr, len as u64)
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_for_bounds_overflow_and_alignment() {
        let mut m = GuestMemory::new(MIN_SIZE).unwrap();
        assert!(m.range(0, MIN_SIZE).is_ok());
        assert!(m.range(1, MIN_SIZE).is_err());
        assert!(m.range(u64::MAX, 2).is_err(), "overflow");
        assert!(m.range(MIN_SIZE, 0).is_ok(), "empty range at the end");
        assert!(m.range(MIN_SIZE + 1, 0).is_err());
        assert_eq!(
            m.read::<u64>(4),
            Err(BadAddress::Misaligned { addr: 4, align: 8 })
        );
        m.write(8, &0xdead_beef_u64).unwrap();
        assert_eq!(m.read::<u64>(8), Ok(0xdead_beef));
        assert!(m.write(MIN_SIZE - 4, &1u64).is_err());
        assert!(matches!(
            GuestMemory::new(3 << 20),
            Err(MemoryError::BadSize(_))
        ));
    }

    #[test]
    fn guest_bytes_are_reached_by_copies_only() {
        let mut m = GuestMemory::new(MIN_SIZE).unwrap();
        let r = m.range(0x1000, 10).unwrap();
        assert_eq!(
            m.write_from(r, b"0123456789abc"),
            10,
            "no further than the range"
        );
        assert_eq!(m.to_vec(r), b"0123456789");
        let mut short = [0; 4];
        assert_eq!(m.read_into(r, &mut short), 4, "no further than the buffer");
        assert_eq!(&short, b"0123");
        let (head, tail) = r.split_at(3);
        assert_eq!((head.len(), tail.start(), tail.len()), (3, 0x1003, 7));
        assert_eq!(r.split_at(99), (r, m.range(0x100a, 0).unwrap()));
        m.write_from(tail, b"-------");
        assert_eq!(m.to_vec(r), b"012-------");
        let pieces: Vec<(u64, usize)> = r.chunks(4).map(|c| (c.start(), c.len())).collect();
        assert_eq!(pieces, [(0x1000, 4), (0x1004, 4), (0x1008, 2)]);
        assert_eq!(m.range(0x1000, 0).unwrap().chunks(4).count(), 0);
        // A struct is copied out whole: changing memory afterwards changes
        // nothing the handler holds.
        m.write(0x2000, &nym_hvt_abi::Puts { data: 1, len: 2 })
            .unwrap();
        let p: nym_hvt_abi::Puts = m.read(0x2000).unwrap();
        m.write(0x2000, &nym_hvt_abi::Puts { data: 3, len: 4 })
            .unwrap();
        assert_eq!((p.data, p.len), (1, 2));
        // The last bytes of memory, and nothing past them.
        let end = m.range(MIN_SIZE - 8, 8).unwrap();
        m.write_from(end, &[9; 8]);
        assert_eq!(m.read::<u64>(MIN_SIZE - 8), Ok(u64::from_ne_bytes([9; 8])));
    }
}
