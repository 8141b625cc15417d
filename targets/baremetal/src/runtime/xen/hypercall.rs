//! Hypercalls through the page Xen fills with one 32-byte stub per call,
//! and the calls this runtime makes, each with its argument struct from
//! `nym_xen_abi::hypercall`.
#![allow(unsafe_code)] // calls into the hypercall page
use nym_xen_abi::hypercall as hc;
use nym_xen_abi::DOMID_SELF;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut HYPERCALL_PAGE: Page = Page([0; 4096]);

/// Where Xen should write the hypercall page (identity mapping: a
/// static's address is its physical address).
pub fn page_address() -> u64 {
    core::ptr::addr_of!(HYPERCALL_PAGE) as u64
}

/// Makes hypercall `nr` with three arguments; Xen's result (0 or a
/// negative errno, or a count).
pub fn call(nr: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    let entry = core::ptr::addr_of!(HYPERCALL_PAGE) as usize + nr * 32;
    // SAFETY: Xen filled the hypercall page (see `xen::init`) with one
    // 32-byte stub per hypercall; each preserves every register but rax
    // (rcx and r11 are declared clobbered for good measure). Pointer
    // arguments point into this guest's memory, at structs of the layout
    // the call takes.
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

fn with<T>(nr: usize, op: u64, arg: &mut T) -> i64 {
    call(nr, op, arg as *mut T as u64, 0)
}

/// Maps Xen's page `idx` of `space` at guest frame `gpfn`.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut a = hc::AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    with(hc::MEMORY_OP, hc::XENMEM_ADD_TO_PHYSMAP, &mut a)
}

/// The domain's page count (its memory, for a dom0 without a memory map).
pub fn current_reservation() -> i64 {
    let mut domid = DOMID_SELF;
    with(hc::MEMORY_OP, hc::XENMEM_CURRENT_RESERVATION, &mut domid)
}

/// HVM parameter `index`, if Xen has it.
pub fn hvm_param(index: u32) -> Option<u64> {
    let mut p = hc::HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    (with(hc::HVM_OP, hc::HVMOP_GET_PARAM, &mut p) == 0).then_some(p.value)
}

/// A new event channel port that domain `remote` may bind.
pub fn alloc_unbound(remote: u16) -> Result<u32, i64> {
    let mut a = hc::EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    match with(hc::EVENT_CHANNEL_OP, hc::EVTCHNOP_ALLOC_UNBOUND, &mut a) {
        0 => Ok(a.port),
        e => Err(e),
    }
}

/// Notifies the other end of `port`.
pub fn send(port: u32) {
    let mut s = hc::EvtchnSend { port };
    with(hc::EVENT_CHANNEL_OP, hc::EVTCHNOP_SEND, &mut s);
}

/// Blocks until one of `ports` is pending or system time `timeout`
/// (absolute ns; 0 for none); Xen's result.
pub fn poll(ports: &[u32], timeout: u64) -> i64 {
    let mut p = hc::SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        pad: 0,
        timeout,
    };
    with(hc::SCHED_OP, hc::SCHEDOP_POLL, &mut p)
}

/// Shuts the domain down for `reason`; returns only if Xen refuses.
pub fn shutdown(reason: hc::ShutdownReason) {
    let mut r = reason as u32;
    with(hc::SCHED_OP, hc::SCHEDOP_SHUTDOWN, &mut r);
}

/// Writes to Xen's own console (a dom0's; refused to a domU).
pub fn console_io(bytes: &[u8]) {
    call(
        hc::CONSOLE_IO,
        hc::CONSOLEIO_WRITE,
        bytes.len() as u64,
        bytes.as_ptr() as u64,
    );
}
