//! The heap: everything between the end of the image and the stack, served
//! by [`crate::allocator`].
#![allow(unsafe_code)] // the heap's memory range
use crate::allocator::Allocator;
use alloc::alloc::{alloc_zeroed, Layout};

#[global_allocator]
static HEAP: Allocator = Allocator::empty();

/// Hands `[start, end)` to the allocator. Called once, at boot.
pub fn init(start: u64, end: u64) {
    let size = end.saturating_sub(start) as usize;
    // SAFETY: the monitor reserved this range for the heap (BootInfo); it is
    // mapped, unused by anything else, and `init` runs once before any
    // allocation.
    unsafe { HEAP.init(start as *mut u8, size) };
}

/// `size` zeroed bytes aligned to `align`, kept for the guest's life: a
/// device (or another domain it shares them with) may own them at any
/// time.
pub fn zeroed(size: usize, align: usize) -> u64 {
    let layout = Layout::from_size_align(size, align).expect("constant layout");
    // SAFETY: the layout is not zero-sized. The memory is never freed.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        alloc::alloc::handle_alloc_error(layout);
    }
    p as u64
}
