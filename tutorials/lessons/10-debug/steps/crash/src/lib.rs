//! sealed: measures the longest of the first `count` words, then seals a
//! checksum of them that it never prints.
#![no_std]
extern crate alloc;

use alloc::{format, vec::Vec};
use libos::{Console, ConsoleError};

/// The words.
pub const WORDS: &[&str] = &["device", "graph", "functor", "unikernel", "monitor"];

/// The job.
pub async fn start(console: impl Console, count: u32) -> Result<(), ConsoleError> {
    let lengths: Vec<usize> = WORDS.iter().map(|w| w.len()).collect();
    // Ask for more words than there are and get the ones there are.
    let longest = lengths.iter().take(count as usize).max().copied().unwrap_or(0);
    console
        .log(&format!("the longest of {count} words has {longest} letters"))
        .await?;
    seal(checksum(WORDS));
    console.log("sealed").await
}

/// FNV-1a over every word's bytes.
#[inline(never)]
pub fn checksum(words: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for w in words {
        for b in w.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Keeps `sum` to itself: it is never printed.
#[inline(never)]
pub fn seal(sum: u32) {
    core::hint::black_box(sum);
}
