#![allow(unsafe_code)] // drives the allocator through raw pointers
use super::*;
use std::collections::BTreeMap;

impl Allocator {
    /// Bytes of the large list not handed out (small classes' free blocks
    /// and the current chunk's rest count as used).
    fn large_free(&self) -> usize {
        // SAFETY: the tests use each allocator from one thread, and hold
        // no other reference to its books while asking.
        unsafe { self.state() }.large.free()
    }
}

/// An allocator over `size` bytes of the host's heap (freed on drop).
struct Arena {
    a: Allocator,
    mem: *mut u8,
    layout: Layout,
}

impl Arena {
    fn new(size: usize) -> Arena {
        let layout = Layout::from_size_align(size, 4096).unwrap();
        // SAFETY: a non-zero layout.
        let mem = unsafe { std::alloc::alloc(layout) };
        assert!(!mem.is_null());
        let a = Allocator::empty();
        // SAFETY: the arena's memory is ours until drop, and unused.
        unsafe { a.init(mem, size) };
        Arena { a, mem, layout }
    }

    fn contains(&self, p: *mut u8, size: usize) -> bool {
        let (lo, hi) = (self.mem as usize, self.mem as usize + self.layout.size());
        p as usize >= lo && p as usize + size <= hi
    }

    fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: a valid layout (callers pass powers of two).
        unsafe { self.a.alloc(Layout::from_size_align(size, align).unwrap()) }
    }

    fn free(&self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: `p` was allocated with this layout and is not used after.
        unsafe {
            self.a
                .dealloc(p, Layout::from_size_align(size, align).unwrap())
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.mem, self.layout) }
    }
}

#[test]
fn a_request_takes_the_smallest_class_that_holds_its_size_and_alignment() {
    let l = |size, align| class(&Layout::from_size_align(size, align).unwrap());
    assert_eq!(l(1, 1), Some(0));
    assert_eq!(l(16, 8), Some(0));
    assert_eq!(l(17, 1), Some(1));
    assert_eq!(l(8, 64), Some(2));
    assert_eq!(l(2048, 8), Some(CLASSES - 1));
    assert_eq!(l(2049, 8), None);
    assert_eq!(l(8, 4096), None);
    assert_eq!(class_size(CLASSES - 1), SMALL_MAX);
    // Every small size takes the smallest class that holds it.
    for size in 1..=SMALL_MAX {
        let c = l(size, 1).unwrap();
        assert!(class_size(c) >= size, "{size} bytes in class {c}");
        assert!(
            c == 0 || class_size(c - 1) < size,
            "{size} bytes in class {c}"
        );
    }
}

#[test]
fn a_freed_small_block_is_the_next_one_of_its_class() {
    let h = Arena::new(1 << 20);
    let a = h.alloc(24, 8);
    let b = h.alloc(24, 8);
    assert_ne!(a, b);
    h.free(a, 24, 8);
    // Another size of the same class (32 bytes) gets it back.
    assert_eq!(h.alloc(30, 2), a);
    // A different class does not.
    let c = h.alloc(100, 8);
    assert!(c != a && c != b);
    // Every freed block comes back, last freed first.
    h.free(a, 30, 2);
    h.free(b, 24, 8);
    assert_eq!((h.alloc(17, 1), h.alloc(32, 16)), (b, a));
}

#[test]
fn a_large_block_comes_from_the_first_fit_list_and_goes_back_to_it() {
    let h = Arena::new(1 << 20);
    let before = h.a.large_free();
    let p = h.alloc(10_000, 4096);
    assert!(!p.is_null() && (p as usize).is_multiple_of(4096) && h.contains(p, 10_000));
    assert!(h.a.large_free() <= before - 10_000);
    h.free(p, 10_000, 4096);
    assert_eq!(h.a.large_free(), before);
}

#[test]
fn each_class_cuts_its_blocks_from_its_own_chunks_of_the_large_list() {
    let size = 1 << 20;
    let h = Arena::new(size);
    // Every class got its first chunk at init, in one cut before the
    // large list's range.
    let start = h.a.large_free();
    assert!(size - start >= CLASSES * CHUNK && size - start < CLASSES * CHUNK + 4096);
    let first = h.alloc(8, 8);
    assert_eq!(h.a.large_free(), start);
    // A class uses its chunk up exactly, then takes another.
    for _ in 0..CHUNK / SMALL_MAX {
        assert!(!h.alloc(SMALL_MAX, 8).is_null());
    }
    assert_eq!(h.a.large_free(), start);
    assert!(!h.alloc(SMALL_MAX, 8).is_null());
    assert_eq!(start - h.a.large_free(), CHUNK);
    // The first class's chunk still serves it.
    let second = h.alloc(16, 16);
    assert_eq!(second as usize, first as usize + 16);
}

#[test]
fn a_heap_too_small_for_every_class_gives_each_its_chunk_when_first_used() {
    let h = Arena::new(4 * CHUNK);
    let before = h.a.large_free();
    assert!(!h.alloc(8, 8).is_null());
    assert_eq!(before - h.a.large_free(), CHUNK);
}

/// A small block and a 2 KiB buffer, over and over (a request's header
/// and its body): no memory is lost between classes, so a heap with room
/// for the blocks themselves and a chunk per class serves them all.
#[test]
fn interleaved_classes_waste_nothing_between_their_blocks() {
    let pairs = 200;
    let h = Arena::new(pairs * SMALL_MAX + (CLASSES + 2) * CHUNK);
    for i in 0..pairs {
        assert!(!h.alloc(16, 8).is_null(), "the small block of pair {i}");
        assert!(!h.alloc(SMALL_MAX, 8).is_null(), "the buffer of pair {i}");
    }
}

#[test]
fn growing_within_a_class_keeps_the_block_and_across_classes_keeps_the_bytes() {
    let h = Arena::new(1 << 20);
    let p = h.alloc(20, 1);
    // SAFETY: `p` holds 20 bytes; each realloc's result is used as its
    // new size allows, and the old pointer is not used after a move.
    unsafe {
        ptr::copy_nonoverlapping(b"nineteen bytes long".as_ptr(), p, 19);
        let same = h.a.realloc(p, Layout::from_size_align(20, 1).unwrap(), 32);
        assert_eq!(same, p);
        let moved =
            h.a.realloc(same, Layout::from_size_align(32, 1).unwrap(), 5000);
        assert_ne!(moved, p);
        assert_eq!(
            std::slice::from_raw_parts(moved, 19),
            b"nineteen bytes long"
        );
        let back =
            h.a.realloc(moved, Layout::from_size_align(5000, 1).unwrap(), 19);
        assert_eq!(std::slice::from_raw_parts(back, 19), b"nineteen bytes long");
    }
}

#[test]
fn an_exhausted_heap_returns_null_and_serves_again_once_blocks_are_freed() {
    // Room for one chunk and a little: the second chunk cannot be had, so
    // small blocks then come from the large list one by one until it is empty.
    let h = Arena::new(CHUNK + 8192);
    let mut live = Vec::new();
    loop {
        let p = h.alloc(1024, 8);
        if p.is_null() {
            break;
        }
        assert!(h.contains(p, 1024));
        live.push(p);
        assert!(live.len() < 1000, "a 72 KiB heap handed out over 1000 KiB");
    }
    assert!(live.len() > CHUNK / 1024, "{} blocks", live.len());
    assert!(h.alloc(50_000, 8).is_null());
    let p = live.pop().unwrap();
    h.free(p, 1024, 8);
    assert_eq!(h.alloc(1000, 8), p);
}

#[test]
fn an_empty_allocator_refuses_everything() {
    let a = Allocator::empty();
    // SAFETY: valid layouts; nothing is returned to free.
    unsafe {
        assert!(a.alloc(Layout::from_size_align(8, 8).unwrap()).is_null());
        assert!(a.alloc(Layout::from_size_align(8192, 8).unwrap()).is_null());
    }
}

/// Whether `[p, p + size)` overlaps no live block.
fn apart(live: &BTreeMap<usize, (usize, usize, u8)>, p: usize, size: usize) {
    if let Some((&q, &(n, ..))) = live.range(..=p).next_back() {
        assert!(
            q + n <= p,
            "{p:#x} lies in the live block {q:#x} ({n} bytes)"
        );
    }
    if let Some((&q, _)) = live.range(p..).next() {
        assert!(
            p + size <= q,
            "{p:#x} ({size} bytes) runs into the live block {q:#x}"
        );
    }
}

/// Random allocations, frees and reallocs of every size and alignment:
/// each live block is filled with its own byte and checked when freed, so
/// an overlap or a lost byte shows; blocks are in the arena and aligned.
#[test]
fn random_traffic_never_overlaps_and_never_loses_a_byte() {
    let h = Arena::new(4 << 20);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // address -> (size, align, fill byte)
    let mut live: BTreeMap<usize, (usize, usize, u8)> = BTreeMap::new();
    let check = |p: usize, size: usize, fill: u8| {
        // SAFETY: a live block of `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
        assert!(
            bytes.iter().all(|&b| b == fill),
            "block {p:#x} ({size} bytes) was overwritten"
        );
    };
    for step in 0..20_000u32 {
        let fill = (step % 251) as u8 + 1;
        match rand(10) {
            0..=4 => {
                let size = match rand(4) {
                    0 => 1 + rand(16),
                    1 => 1 + rand(256),
                    2 => 1 + rand(4096),
                    _ => 1 + rand(20_000),
                } as usize;
                let align = 1usize << rand(13);
                let p = h.alloc(size, align);
                if p.is_null() {
                    continue;
                }
                assert!(h.contains(p, size) && (p as usize).is_multiple_of(align));
                apart(&live, p as usize, size);
                // SAFETY: a fresh block of `size` bytes.
                unsafe { ptr::write_bytes(p, fill, size) };
                assert!(live.insert(p as usize, (size, align, fill)).is_none());
            }
            5..=7 if !live.is_empty() => {
                let k = *live.keys().nth(rand(live.len() as u64) as usize).unwrap();
                let (size, align, f) = live.remove(&k).unwrap();
                check(k, size, f);
                h.free(k as *mut u8, size, align);
            }
            8..=9 if !live.is_empty() => {
                let k = *live.keys().nth(rand(live.len() as u64) as usize).unwrap();
                let (size, align, f) = live.remove(&k).unwrap();
                check(k, size, f);
                let new_size = 1 + rand(6000) as usize;
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a live block with this layout; not used after a move.
                let q = unsafe { h.a.realloc(k as *mut u8, layout, new_size) };
                if q.is_null() {
                    live.insert(k, (size, align, f));
                    continue;
                }
                check(q as usize, size.min(new_size), f);
                apart(&live, q as usize, new_size);
                // SAFETY: the block now holds `new_size` bytes.
                unsafe { ptr::write_bytes(q, fill, new_size) };
                assert!(live.insert(q as usize, (new_size, align, fill)).is_none());
            }
            _ => {}
        }
    }
    for (&p, &(size, align, f)) in &live {
        check(p, size, f);
        h.free(p as *mut u8, size, align);
    }
}
