//! The platform primitives, chosen at boot by the entry the image was
//! started through: nym's monitor (hypercalls) or PVH (QEMU).
use super::{hvt, kvmclock, pvh, xen};
use core::sync::atomic::{AtomicBool, Ordering};

static PVH: AtomicBool = AtomicBool::new(false);
static XEN: AtomicBool = AtomicBool::new(false);

/// Marks this boot as running under Xen (after the PVH entry found it).
pub fn set_xen() {
    XEN.store(true, Ordering::Relaxed);
    KVMCLOCK.store(true, Ordering::Relaxed);
}

/// Whether Xen runs this guest.
pub fn is_xen() -> bool {
    XEN.load(Ordering::Relaxed)
}
static KVMCLOCK: AtomicBool = AtomicBool::new(false);

/// Keeps time with kvmclock (PVH, where no monitor serves the time);
/// false if KVM offers none. Under nym's monitor time comes by hypercall:
/// measured, that is cheaper under nested virtualisation than kvmclock,
/// whose updates make every VM entry dearer.
pub fn init_kvmclock() -> bool {
    let ok = kvmclock::init();
    KVMCLOCK.store(ok, Ordering::Relaxed);
    ok
}

/// The status a crashed guest exits with (the monitor's, for both platforms).
pub const EXIT_CRASH: i32 = nym_hvt_abi::EXIT_CRASH;

/// Marks this boot as PVH. Called first thing by the PVH entry.
pub fn set_pvh() {
    PVH.store(true, Ordering::Relaxed);
}

/// Whether this boot came through the PVH entry.
pub fn is_pvh() -> bool {
    PVH.load(Ordering::Relaxed)
}

/// Writes to the console.
pub fn puts(bytes: &[u8]) {
    if is_xen() {
        xen::puts(bytes)
    } else if is_pvh() {
        pvh::puts(bytes)
    } else {
        hvt::puts(bytes)
    }
}

/// Nanoseconds since boot.
pub fn monotime() -> u64 {
    if KVMCLOCK.load(Ordering::Relaxed) {
        kvmclock::monotime()
    } else {
        hvt::monotime()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn walltime() -> u64 {
    if KVMCLOCK.load(Ordering::Relaxed) {
        kvmclock::walltime()
    } else {
        hvt::walltime()
    }
}

/// Sleeps until monotonic time `deadline`.
pub fn wait(deadline: u64) {
    if is_xen() {
        xen::wait(deadline)
    } else if is_pvh() {
        pvh::wait(deadline)
    } else {
        hvt::wait(deadline.saturating_sub(monotime()))
    }
}

/// Ends the guest.
pub fn exit(status: i32) -> ! {
    if is_xen() {
        xen::exit(status)
    } else if is_pvh() {
        pvh::exit(status)
    } else {
        hvt::exit(status)
    }
}
