//! Xen, when the PVH entry finds it (CPUID leaves from 0x40000000 with the
//! signature `XenVMMXenVMM`): the guest is a PVH domU that `xl create`
//! started, and everything beyond computing goes through Xen or through
//! dom0, over the interfaces `nym_xen_abi` writes down.
//!
//! The board's primitives: the hypercall page ([`hypercall`]); time from
//! the shared info page's PV clock (kvmclock's format); the PV console
//! ring xenconsoled reads ([`console`]); waiting with a deadline by
//! `SCHEDOP_poll` on every event channel the guest uses ([`evtchn`]);
//! and `SCHEDOP_shutdown` with the reason the exit status maps to
//! (poweroff for 0, crash otherwise). Xen cannot pass a status on, so the
//! guest prints it first (`sys::STATUS_MARKER`), and `nym run --target
//! xen` reads it.
//!
//! Its devices: the xenstore client ([`store`]), grant tables
//! ([`grant`]), the xenbus handshake ([`xenbus`]), and the frontends
//! [`netfront`] and [`blkfront`]. A device that finds dom0's side broken
//! while the guest runs ends the guest ([`device_failed`]).
//!
//! A guest started as Xen's dom0 (no console ring) still runs: it writes
//! through the `console_io` hypercall, and sizes its heap from its page
//! count.
pub mod blkfront;
mod console;
mod evtchn;
mod grant;
mod hypercall;
pub mod netfront;
mod page;
mod store;
pub mod xenbus;

use super::kvmclock::{self, cpuid, wrmsr};
use core::sync::atomic::{AtomicU32, Ordering};
use nym_xen_abi::hypercall as hc;

/// The CPUID base of Xen's leaves, once found.
static BASE: AtomicU32 = AtomicU32::new(0);

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut SHARED_INFO: Page = Page([0; 4096]);

/// Finds Xen's CPUID leaves; true under Xen.
pub fn detect() -> bool {
    for base in (0x4000_0000u32..0x4001_0000).step_by(0x100) {
        let r = cpuid(base);
        // Compared register by register: this runs before the heap exists.
        if kvmclock::signature(&r) == *b"XenVMMXenVMM" && r.eax >= base + 2 {
            BASE.store(base, Ordering::Relaxed);
            return true;
        }
    }
    false
}

/// Installs the hypercall page, maps the shared info page and finds the
/// console and the store. False if Xen refuses the first two (the caller
/// then cannot run).
pub fn init() -> bool {
    let base = BASE.load(Ordering::Relaxed);
    let r = cpuid(base + 2);
    if r.eax == 0 {
        return false;
    }
    wrmsr(r.ebx, hypercall::page_address());
    let shared = core::ptr::addr_of!(SHARED_INFO) as u64;
    if hypercall::add_to_physmap(hc::XENMAPSPACE_SHARED_INFO, 0, shared >> 12) != 0 {
        return false;
    }
    evtchn::set_shared_info(shared);
    kvmclock::use_xen(
        shared + nym_xen_abi::shared_info::VCPU0_TIME as u64,
        shared + nym_xen_abi::shared_info::WALLCLOCK as u64,
    );
    let param = |p| hypercall::hvm_param(p).filter(|v| *v != 0);
    let port = |p| param(p).and_then(hc::checked_port);
    // Frames above 4 GiB are beyond the page tables the PVH entry builds.
    let frame = |p| param(p).filter(|pfn| *pfn < (1 << 20));
    if let (Some(pfn), Some(port)) = (
        frame(hc::HVM_PARAM_CONSOLE_PFN),
        port(hc::HVM_PARAM_CONSOLE_EVTCHN),
    ) {
        console::init(pfn, port);
    }
    if let (Some(pfn), Some(port)) = (
        frame(hc::HVM_PARAM_STORE_PFN),
        port(hc::HVM_PARAM_STORE_EVTCHN),
    ) {
        store::init(pfn, port);
    }
    true
}

/// The end of this domain's RAM, from its page count: Xen builds a PVH
/// dom0 with RAM from 1 MiB up (and no memory map in the start info), so
/// `pages × 4 KiB` is a safe upper bound for the heap.
pub fn ram_end() -> Option<u64> {
    u64::try_from(hypercall::current_reservation())
        .ok()
        .filter(|p| *p > 0)
        .map(|p| p * 4096)
}

/// Writes to the console: the PV console ring, or in a dom0 (which has
/// none) Xen's own console.
pub fn puts(bytes: &[u8]) {
    if console::present() {
        console::write(bytes)
    } else {
        hypercall::console_io(bytes)
    }
}

/// Blocks until monotonic time `deadline` or an event on one of the
/// guest's event channels, whichever comes first.
pub fn wait(deadline: u64) {
    while kvmclock::monotime() < deadline {
        if evtchn::wait_any(kvmclock::system_time_at(deadline)) {
            return;
        }
    }
}

/// Ends the guest because dom0's side of a device broke its protocol: the
/// device and why on the console, then the status the monitor gives a
/// guest that broke the hypercall ABI.
pub fn device_failed(e: &xenbus::DeviceError) -> ! {
    super::sys::puts(alloc::format!("nym: {e}; stopping the guest\n").as_bytes());
    super::sys::exit(nym_hvt_abi::EXIT_VIOLATION)
}

/// Shuts the domain down (the status line is already on the console,
/// which is flushed first).
pub fn exit(status: i32) -> ! {
    console::flush();
    loop {
        hypercall::shutdown(hc::ShutdownReason::for_status(status));
    }
}
