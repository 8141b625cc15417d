//! Event channels without interrupts: every port the guest uses is masked
//! (no upcall is ever delivered, so there is no interrupt handler), and
//! the guest blocks in `SCHEDOP_poll` on all of them at once with the
//! executor's next deadline as the timeout. Xen wakes a poller for a
//! pending port whether or not it is masked. After each wait the guest
//! clears the pending bits and the devices look at their rings.
#![allow(unsafe_code)] // atomic bit operations on the shared info page
use super::hypercall;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use nym_xen_abi::shared_info::{self, EVTCHN_MASK, EVTCHN_PENDING};

/// The most ports this guest binds (console, xenstore, one per device).
const MAX: usize = 16;

static PORTS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The shared info page's address (0 until `xen::init` maps it).
static SHARED: AtomicU64 = AtomicU64::new(0);

/// Records where the shared info page is.
pub fn set_shared_info(address: u64) {
    SHARED.store(address, Ordering::Release);
}

/// The bitmap word holding `port`'s bit, and the bit.
fn word(base: usize, port: u32) -> Option<(&'static AtomicU64, u64)> {
    let shared = SHARED.load(Ordering::Acquire);
    if shared == 0 {
        return None;
    }
    let (off, bit) = shared_info::bit(base, port);
    // SAFETY: the shared info page is mapped for the guest's life and the
    // offset is inside its bitmaps (`bit` keeps it there); Xen updates
    // these words with locked instructions, as the atomics here do.
    Some((
        unsafe { &*((shared + off as u64) as *const AtomicU64) },
        1 << bit,
    ))
}

/// Masks `port` and adds it to the ports every wait polls.
pub fn register(port: u32) -> bool {
    if let Some((mask, bit)) = word(EVTCHN_MASK, port) {
        mask.fetch_or(bit, Ordering::SeqCst);
    }
    let n = COUNT.load(Ordering::Acquire);
    if PORTS[..n].iter().any(|p| p.load(Ordering::Relaxed) == port) {
        return true;
    }
    if n == MAX {
        return false;
    }
    PORTS[n].store(port, Ordering::Relaxed);
    COUNT.store(n + 1, Ordering::Release);
    true
}

/// Clears `port`'s pending bit; whether it was set.
pub fn take(port: u32) -> bool {
    word(EVTCHN_PENDING, port)
        .is_some_and(|(w, bit)| w.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
}

/// Blocks until one of the registered ports is pending or system time
/// `timeout` (absolute, ns), then clears their pending bits; whether any
/// was pending. Xen's refusal (an error) counts as a wake-up.
pub fn wait_any(timeout: u64) -> bool {
    let n = COUNT.load(Ordering::Acquire);
    let mut ports = [0u32; MAX];
    for (dst, src) in ports.iter_mut().zip(&PORTS[..n]) {
        *dst = src.load(Ordering::Relaxed);
    }
    let rc = hypercall::poll(&ports[..n], timeout);
    let mut any = false;
    for p in &ports[..n] {
        any |= take(*p);
    }
    any || rc != 0
}

/// Blocks until `port` is pending or system time `timeout`; whether it
/// was (its bit is cleared).
pub fn wait_one(port: u32, timeout: u64) -> bool {
    if take(port) {
        return true;
    }
    hypercall::poll(&[port], timeout);
    take(port)
}

/// Notifies the other end of `port`.
pub fn notify(port: u32) {
    hypercall::send(port)
}

/// A new port for domain `remote`, registered for waits.
pub fn bind_new(remote: u16) -> Result<u32, &'static str> {
    let port = hypercall::alloc_unbound(remote).map_err(|_| "Xen refused a new event channel")?;
    if !register(port) {
        return Err("too many event channels");
    }
    Ok(port)
}
