//! The PV console (`hvc0` in a Linux guest): the guest writes its output
//! to a ring dom0's xenconsoled reads, and notifies it through the
//! console's event channel. Both come from HVM parameters the toolstack
//! set before the domain started.
//!
//! Writing never allocates (a panic may come from a failed allocation)
//! and never waits forever: when the ring is full the guest waits for
//! xenconsoled at most [`STALL`]; a console that stays full is given up,
//! and what follows is dropped rather than hang the guest.
use super::evtchn;
use super::page::Shared;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use nym_xen_abi::console;

/// How long a write waits for xenconsoled to make room.
const STALL: u64 = 2_000_000_000;

static PAGE: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);
/// Set when xenconsoled stopped reading, or broke the ring's indices.
static BROKEN: AtomicBool = AtomicBool::new(false);

/// Uses the console ring at guest frame `pfn` with event channel `port`.
pub fn init(pfn: u64, port: u32) {
    PAGE.store(pfn << 12, Ordering::Release);
    PORT.store(port, Ordering::Release);
    evtchn::register(port);
}

/// Whether the ring is there (a domU's; dom0 has none).
pub fn present() -> bool {
    PAGE.load(Ordering::Acquire) != 0
}

fn ring() -> Option<(Shared, u32)> {
    let page = PAGE.load(Ordering::Acquire);
    (page != 0 && !BROKEN.load(Ordering::Relaxed))
        .then(|| (Shared::at(page), PORT.load(Ordering::Acquire)))
}

/// Writes `bytes` to the console.
pub fn write(mut bytes: &[u8]) {
    let Some((page, port)) = ring() else { return };
    let _ = console::discard_input(&page);
    let mut deadline = None;
    while !bytes.is_empty() {
        let n = match console::write(&page, bytes) {
            Ok(n) => n,
            Err(_) => {
                BROKEN.store(true, Ordering::Relaxed);
                return;
            }
        };
        evtchn::notify(port);
        bytes = &bytes[n..];
        if bytes.is_empty() {
            break;
        }
        if n > 0 {
            deadline = None;
        }
        let now = super::super::kvmclock::monotime();
        let until = *deadline.get_or_insert(now + STALL);
        if now >= until {
            BROKEN.store(true, Ordering::Relaxed);
            return;
        }
        evtchn::wait_one(port, super::super::kvmclock::system_time_at(until));
    }
}

/// Waits until xenconsoled has read everything written, at most `STALL`:
/// what the guest printed last is on the console before it shuts down.
pub fn flush() {
    let Some((page, port)) = ring() else { return };
    let until = super::super::kvmclock::monotime() + STALL;
    while let Ok(n) = console::unread(&page) {
        if n == 0 || super::super::kvmclock::monotime() >= until {
            return;
        }
        evtchn::notify(port);
        evtchn::wait_one(port, super::super::kvmclock::system_time_at(until));
    }
}
