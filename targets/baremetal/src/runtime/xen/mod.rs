//! Xen, when the PVH entry finds it (CPUID leaves from 0x40000000 with the
//! signature `XenVMMXenVMM`): the hypercall page, console output through
//! `console_io`, time from the shared info page's PV clock (the same format
//! kvmclock uses), blocking until a deadline with `SCHEDOP_poll`, and
//! `SCHEDOP_shutdown`. Xen cannot pass an exit status on, so the guest
//! prints it in a last console line (`sys::STATUS_MARKER`), which `nym run
//! --target xen` reads.
#![allow(unsafe_code)] // hypercalls through Xen's hypercall page
use super::kvmclock::{self, cpuid, wrmsr};
use core::sync::atomic::{AtomicU32, Ordering};

/// The CPUID base of Xen's leaves, once found.
static BASE: AtomicU32 = AtomicU32::new(0);

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut HYPERCALL_PAGE: Page = Page([0; 4096]);
static mut SHARED_INFO: Page = Page([0; 4096]);

const HYPERVISOR_SET_TIMER_OP: usize = 15;
const HYPERVISOR_MEMORY_OP: usize = 12;
const HYPERVISOR_CONSOLE_IO: usize = 18;
const HYPERVISOR_SCHED_OP: usize = 29;

const CONSOLEIO_WRITE: u64 = 0;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const DOMID_SELF: u16 = 0x7ff0;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SCHEDOP_POLL: u64 = 3;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_CRASH: u32 = 3;

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

/// Makes hypercall `nr` through the hypercall page.
fn hypercall(nr: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    let entry = core::ptr::addr_of!(HYPERCALL_PAGE) as usize + nr * 32;
    // SAFETY: Xen filled the hypercall page (see `init`) with one 32-byte
    // stub per hypercall; each preserves every register but rax (rcx and
    // r11 are declared clobbered for good measure). Arguments point into
    // memory of this guest.
    unsafe {
        core::arch::asm!(
            "call {entry}",
            entry = in(reg) entry,
            inlateout("rax") 0i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Installs the hypercall page and maps the shared info page. False if
/// either fails (the caller then cannot run).
pub fn init() -> bool {
    let base = BASE.load(Ordering::Relaxed);
    let r = cpuid(base + 2);
    if r.eax == 0 {
        return false;
    }
    // Identity mapping: a static's address is its physical address.
    wrmsr(r.ebx, core::ptr::addr_of!(HYPERCALL_PAGE) as u64);

    #[repr(C)]
    struct AddToPhysmap {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    }
    let mut xatp = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: core::ptr::addr_of!(SHARED_INFO) as u64 >> 12,
    };
    if hypercall(
        HYPERVISOR_MEMORY_OP,
        XENMEM_ADD_TO_PHYSMAP,
        &mut xatp as *mut _ as u64,
        0,
    ) != 0
    {
        return false;
    }
    // vcpu_info[0].time sits 32 bytes into the shared info page.
    let shared = core::ptr::addr_of!(SHARED_INFO) as u64;
    kvmclock::use_xen(shared + 32, shared + 3072);
    true
}

/// The end of this domain's RAM, from its page count: Xen builds a PVH
/// dom0 with RAM from 1 MiB up (and no memory map in the start info), so
/// `pages × 4 KiB` is a safe upper bound for the heap.
pub fn ram_end() -> Option<u64> {
    const XENMEM_CURRENT_RESERVATION: u64 = 3;
    let mut domid: u16 = DOMID_SELF;
    let pages = hypercall(
        HYPERVISOR_MEMORY_OP,
        XENMEM_CURRENT_RESERVATION,
        &mut domid as *mut u16 as u64,
        0,
    );
    u64::try_from(pages)
        .ok()
        .filter(|p| *p > 0)
        .map(|p| p * 4096)
}

/// Writes to Xen's console.
pub fn puts(bytes: &[u8]) {
    hypercall(
        HYPERVISOR_CONSOLE_IO,
        CONSOLEIO_WRITE,
        bytes.len() as u64,
        bytes.as_ptr() as u64,
    );
}

/// Blocks until monotonic time `deadline`: a poll on no event channel with
/// Xen's timeout, repeated if it returns early.
pub fn wait(deadline: u64) {
    #[repr(C)]
    struct SchedPoll {
        ports: u64,
        nr_ports: u32,
        pad: u32,
        timeout: u64,
    }
    while kvmclock::monotime() < deadline {
        let mut poll = SchedPoll {
            ports: 0,
            nr_ports: 0,
            pad: 0,
            timeout: kvmclock::system_time_at(deadline),
        };
        let rc = hypercall(
            HYPERVISOR_SCHED_OP,
            SCHEDOP_POLL,
            &mut poll as *mut _ as u64,
            0,
        );
        if rc != 0 {
            // No poll here: fall back to the one-shot timer and block.
            hypercall(
                HYPERVISOR_SET_TIMER_OP,
                kvmclock::system_time_at(deadline),
                0,
                0,
            );
        }
    }
}

/// Shuts the domain down (the status line is already on the console).
pub fn exit(status: i32) -> ! {
    #[repr(C)]
    struct Shutdown {
        reason: u32,
    }
    let mut s = Shutdown {
        reason: if status == 0 {
            SHUTDOWN_POWEROFF
        } else {
            SHUTDOWN_CRASH
        },
    };
    loop {
        hypercall(
            HYPERVISOR_SCHED_OP,
            SCHEDOP_SHUTDOWN,
            &mut s as *mut _ as u64,
            0,
        );
    }
}
