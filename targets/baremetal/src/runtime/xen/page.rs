//! A page shared with another domain, reached one volatile access at a
//! time ([`nym_xen_abi::Mem`]): the other domain may write it whenever it
//! likes, so nothing here keeps a reference into it.
#![allow(unsafe_code)] // volatile accesses to shared pages
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};
use nym_xen_abi::{Mem, Word, PAGE};

/// One page at a (identity-mapped) physical address.
#[derive(Clone, Copy)]
pub struct Shared {
    base: u64,
}

impl Shared {
    /// The page at `base`, which must be page-aligned, mapped for the
    /// guest's life, and used by nothing but this view (and the other
    /// domain).
    pub fn at(base: u64) -> Shared {
        debug_assert!(base.is_multiple_of(PAGE as u64));
        Shared { base }
    }

    /// A new page from the heap, zeroed and kept for the guest's life.
    pub fn new() -> Shared {
        Shared::at(super::super::heap::zeroed(PAGE, PAGE))
    }

    /// Its physical address.
    pub fn address(&self) -> u64 {
        self.base
    }

    /// Its guest frame number.
    pub fn frame(&self) -> u32 {
        (self.base >> 12) as u32
    }

    /// The address of `off`, if an access of `width` bytes there stays in
    /// the page and is aligned.
    fn at_offset(&self, off: usize, width: usize) -> Option<u64> {
        (off.checked_add(width)? <= PAGE && off.is_multiple_of(width))
            .then(|| self.base + off as u64)
    }

    /// Copies `src` into the page at `off` (clamped to the page).
    pub fn copy_in(&self, off: usize, src: &[u8]) {
        let n = src.len().min(PAGE.saturating_sub(off));
        // SAFETY: `n` bytes from `off` are inside the page; the caller owns
        // this part of it (a buffer not lent to the other domain now).
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), (self.base + off as u64) as *mut u8, n)
        }
    }

    /// Copies from the page at `off` into `dst` (clamped to the page).
    pub fn copy_out(&self, off: usize, dst: &mut [u8]) {
        let n = dst.len().min(PAGE.saturating_sub(off));
        // SAFETY: as in `copy_in`; the other domain has finished with this
        // part of the page (its response said so).
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.base + off as u64) as *const u8,
                dst.as_mut_ptr(),
                n,
            )
        }
    }
}

impl Mem for Shared {
    fn size(&self) -> usize {
        PAGE
    }

    fn read<W: Word>(&self, off: usize) -> W {
        match self.at_offset(off, W::SIZE) {
            // SAFETY: inside the page (checked), aligned, and the page is
            // mapped for the guest's life (see `at`).
            Some(a) => unsafe { read_volatile(a as *const W) },
            None => W::default(),
        }
    }

    fn write<W: Word>(&self, off: usize, v: W) {
        if let Some(a) = self.at_offset(off, W::SIZE) {
            // SAFETY: as in `read`.
            unsafe { write_volatile(a as *mut W, v) }
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst)
    }
}
