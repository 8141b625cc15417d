//! The guest's allocator: small blocks from free lists, one per power-of-two
//! size class, large ones from a first-fit list.
//!
//! A guest's allocations are mostly small and short-lived (a formatted
//! line, a boxed future, a key's value), and under nested KVM every guest
//! instruction is dear (BENCHMARKS.md: about a microsecond), so the common
//! case must be a handful of instructions. A block of up to [`SMALL_MAX`]
//! bytes takes the head of its class's free list, or is cut from its
//! class's own chunk ([`CHUNK`] bytes, itself taken from the large list,
//! a whole number of blocks of every class, so nothing is left between or
//! after them); a freed small block goes back on its class's list and is
//! never merged or returned, so memory held by small blocks is bounded by
//! the most each class ever held at once, rounded up to whole chunks.
//! Everything larger (network buffers, page-sized shared pages) goes
//! through `linked_list_allocator`'s first-fit list, which merges free
//! neighbours. Before this, every allocation took the first-fit path:
//! about 110 instructions a call, half of the hello image's instructions.
//!
//! Built for the guest and, for its unit tests, on the host.
#![allow(unsafe_code)] // the allocator hands out raw memory
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

/// The smallest class: room for a free-list link, and the alignment every
/// block has at least.
const SMALL_MIN: usize = 16;
/// The largest block served from a size class.
pub const SMALL_MAX: usize = 2048;
/// log2(SMALL_MAX / SMALL_MIN) + 1.
const CLASSES: usize = 8;
/// What a class takes from the large list when its chunk is used up:
/// eight blocks of the largest class, a thousand of the smallest.
pub const CHUNK: usize = 16 << 10;

/// The allocator's books.
struct State {
    /// Each class's free blocks: the first word of a free block is the
    /// next one's address (0 ends the list).
    free: [usize; CLASSES],
    /// Each class's current chunk's unused part, `[next, end)`.
    next: [usize; CLASSES],
    end: [usize; CLASSES],
    large: linked_list_allocator::Heap,
}

/// The allocator (`#[global_allocator]` in the runtime). Empty until
/// [`Allocator::init`] hands it memory.
///
/// It takes no lock: a guest runs one vCPU, and allocates only from its
/// one thread of execution (no interrupt or exception handler allocates:
/// the timer's acknowledges and returns, a fault is reported and ends the
/// guest). A spin lock cost a locked compare-and-swap and its branches on
/// every allocation and free, and could only ever deadlock on one CPU.
pub struct Allocator(UnsafeCell<State>);

// SAFETY: see the type's docs: in the guest, one thread uses it, never
// re-entered. The host builds it only for unit tests, which use each
// allocator from one thread and do not need it `Sync`.
#[cfg(target_os = "none")]
unsafe impl Sync for Allocator {}

/// The class of a request: its size and alignment rounded up to a power of
/// two no smaller than [`SMALL_MIN`]; `None` if that is above [`SMALL_MAX`].
/// A table lookup: a few instructions, on every allocation and free.
#[inline(always)]
fn class(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align());
    if size > SMALL_MAX {
        return None;
    }
    Some(usize::from(CLASS_OF[size.saturating_sub(1) / SMALL_MIN]))
}

/// The class of the sizes `16 i + 1 ..= 16 (i + 1)`: ceil(log2(i + 1)).
const CLASS_OF: [u8; SMALL_MAX / SMALL_MIN] = {
    let mut table = [0u8; SMALL_MAX / SMALL_MIN];
    let mut i = 0;
    while i < table.len() {
        while class_size(table[i] as usize) < (i + 1) * SMALL_MIN {
            table[i] += 1;
        }
        i += 1;
    }
    table
};

/// The bytes of a block of class `c` (also its alignment).
const fn class_size(c: usize) -> usize {
    SMALL_MIN << c
}

impl Allocator {
    /// An allocator with no memory: every request fails until `init`.
    pub const fn empty() -> Allocator {
        Allocator(UnsafeCell::new(State {
            free: [0; CLASSES],
            next: [0; CLASSES],
            end: [0; CLASSES],
            large: linked_list_allocator::Heap::empty(),
        }))
    }

    /// The books, mutably.
    ///
    /// # Safety
    ///
    /// No other reference from `state` is alive: each method below takes it
    /// once, at its start, and calls none that takes it again.
    #[allow(clippy::mut_from_ref)] // the point, under the promise above
    #[inline(always)]
    unsafe fn state(&self) -> &mut State {
        // SAFETY: the caller's promise; one thread (the type's docs).
        unsafe { &mut *self.0.get() }
    }

    /// Hands `[start, start + size)` to the allocator, and gives every
    /// class its first chunk (when the heap has room for all of them and
    /// as much again), cut from the range's start before the rest goes to
    /// the large list, so that a class's first block costs no search of
    /// the large list, and `init` none either.
    ///
    /// # Safety
    ///
    /// The range must be writable memory used by nothing else for as long
    /// as the allocator is, and `init` must be called once, before any
    /// allocation.
    pub unsafe fn init(&self, start: *mut u8, size: usize) {
        // SAFETY: called once, before any allocation: nothing else holds
        // the books.
        let s = unsafe { self.state() };
        // Chunks are aligned to the largest class (see `GlobalAlloc`).
        let skip = (start as usize).next_multiple_of(SMALL_MAX) - start as usize;
        let (start, size) = match size.checked_sub(skip) {
            Some(rest) if rest >= 2 * CLASSES * CHUNK => {
                let first = start as usize + skip;
                for c in 0..CLASSES {
                    s.next[c] = first + c * CHUNK;
                    s.end[c] = s.next[c] + CHUNK;
                }
                // SAFETY: still inside the caller's range.
                let rest_start = unsafe { start.add(skip + CLASSES * CHUNK) };
                (rest_start, rest - CLASSES * CHUNK)
            }
            _ => (start, size),
        };
        // SAFETY: the caller's promise, passed on for what the classes did
        // not take.
        unsafe { s.large.init(start, size) };
    }
}

impl State {
    /// The large list's paths, kept out of line so that the small ones,
    /// the common case, stay short.
    #[cold]
    #[inline(never)]
    fn large_alloc(&mut self, layout: Layout) -> *mut u8 {
        self.large
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), |p| p.as_ptr())
    }

    /// # Safety
    ///
    /// `p` came from the large list with `layout`, and is not used after.
    #[cold]
    #[inline(never)]
    unsafe fn large_dealloc(&mut self, p: *mut u8, layout: Layout) {
        // SAFETY: the caller's promise.
        unsafe { self.large.deallocate(NonNull::new_unchecked(p), layout) }
    }

    #[inline(always)]
    fn small(&mut self, c: usize) -> *mut u8 {
        let head = self.free[c];
        if head != 0 {
            // SAFETY: `head` is a free block of this class, which holds the
            // next one's address in its first word (written by `dealloc`);
            // nothing else uses it.
            self.free[c] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let at = self.next[c];
        if at == self.end[c] {
            return self.refill(c);
        }
        self.next[c] = at + class_size(c);
        at as *mut u8
    }

    /// A block of class `c` from a new chunk, which becomes the class's
    /// current one (the old one is used up exactly).
    #[cold]
    #[inline(never)]
    fn refill(&mut self, c: usize) -> *mut u8 {
        let size = class_size(c);
        let chunk = Layout::from_size_align(CHUNK, SMALL_MAX).expect("constant layout");
        let Ok(p) = self.large.allocate_first_fit(chunk) else {
            // Nearly full: the block alone, if it still fits.
            let block = Layout::from_size_align(size, size).expect("a power of two");
            return self.large_alloc(block);
        };
        let at = p.as_ptr() as usize;
        self.end[c] = at + CHUNK;
        self.next[c] = at + size;
        at as *mut u8
    }
}

// SAFETY: blocks never overlap: a small block is either on one free list
// or handed out, and is cut from its class's chunk only once (`next` only
// grows within a chunk, and a chunk is the large list's, handed out once to
// one class); large blocks are the large list's, which keeps its own books.
// A block of class `c` is `class_size(c)` bytes at a multiple of that size
// (chunks are aligned to the largest class, and are a whole number of
// blocks of every class), which covers the layout's size and alignment.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: taken once here; nothing below takes it again.
        let s = unsafe { self.state() };
        match class(&layout) {
            Some(c) => s.small(c),
            None => s.large_alloc(layout),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: taken once here; nothing below takes it again.
        let s = unsafe { self.state() };
        match class(&layout) {
            Some(c) => {
                // SAFETY: `p` is a block of this class (the caller allocated
                // it with this layout) and is no longer used: it becomes a
                // free-list link.
                unsafe { *(p as *mut usize) = s.free[c] };
                s.free[c] = p as usize;
            }
            // SAFETY: `p` came from the large list with this layout.
            None => unsafe { s.large_dealloc(p, layout) },
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's promise: `new_size` rounded to the alignment
        // does not overflow, so the layout is valid.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(&layout), class(&new)) {
            // A string or vector growing within its block's class stays.
            (Some(a), Some(b)) if a == b => p,
            _ => {
                // SAFETY: as `GlobalAlloc::realloc`'s default: a fresh block,
                // the common bytes copied, the old block freed.
                unsafe {
                    let q = self.alloc(new);
                    if !q.is_null() {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                    q
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
