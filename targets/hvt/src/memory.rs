//! Guest memory: one anonymous mapping, and the only way to reach it.
//!
//! Every access goes through [`GuestMemory::range`], which turns a
//! guest-supplied address and length into a [`GuestRange`] only if it lies
//! wholly inside guest memory (no overflow, no wrap). Handlers take ranges,
//! never raw addresses, so a hostile guest cannot name host memory.
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
/// Implementors are `repr(C)`, have no padding, and every bit pattern is a
/// valid value.
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
        // Transparent huge pages: a guest touching its memory then takes one
        // fault per 2 MiB instead of one per 4 KiB (each is costly under
        // nested virtualisation). Advice only: failure changes nothing.
        // SAFETY: advising on the mapping just made.
        unsafe { libc::madvise(ptr, size as usize, libc::MADV_HUGEPAGE) };
        let base = NonNull::new(ptr.cast()).ok_or(MemoryError::Map {
            size,
            source: std::io::Error::other("null mapping"),
        })?;
        Ok(GuestMemory {
            base,
            size: size as usize,
        })
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

    /// The bytes of a checked range.
    pub fn bytes(&self, r: GuestRange) -> &[u8] {
        // SAFETY: `r` was checked against this memory's size by `range`, and
        // ranges are only made by `range` on memories of at least that size.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(r.start),
                r.len.min(self.size - r.start.min(self.size)),
            )
        }
    }

    /// The bytes of a checked range, writable.
    pub fn bytes_mut(&mut self, r: GuestRange) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.base.as_ptr().add(r.start),
                r.len.min(self.size - r.start.min(self.size)),
            )
        }
    }

    /// Reads a `T` at `addr`, which must be 8-byte aligned and inside memory.
    pub fn read<T: Plain>(&self, addr: u64) -> Result<T, BadAddress> {
        let r = self.aligned(addr, std::mem::size_of::<T>())?;
        let mut v = T::default();
        // SAFETY: `T: Plain`, so any bytes make a valid `T`; sizes match.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut v as *mut T).cast::<u8>(),
                std::mem::size_of::<T>(),
            )
        };
        dst.copy_from_slice(self.bytes(r));
        Ok(v)
    }

    /// Writes a `T` at `addr`, which must be 8-byte aligned and inside memory.
    pub fn write<T: Plain>(&mut self, addr: u64, v: &T) -> Result<(), BadAddress> {
        let r = self.aligned(addr, std::mem::size_of::<T>())?;
        // SAFETY: `T: Plain` has no padding, so all its bytes are initialised.
        let src = unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        };
        self.bytes_mut(r).copy_from_slice(src);
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
}
