//! The heap: everything between the end of the image and the stack.
#![allow(unsafe_code)] // the heap's memory range
use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands `[start, end)` to the allocator. Called once, at boot.
pub fn init(start: u64, end: u64) {
    let size = end.saturating_sub(start) as usize;
    // SAFETY: the monitor reserved this range for the heap (BootInfo); it is
    // mapped, unused by anything else, and `init` runs once before any
    // allocation.
    unsafe { HEAP.lock().init(start as *mut u8, size) };
}
