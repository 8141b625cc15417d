//! Hypercall numbers, sub-operations and argument structs (Xen 4.17,
//! x86_64). A hypercall is a call into the hypercall page Xen fills, at
//! `32 × number`, with the arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`
//! and the result in `rax` (0 or a negative errno).
use crate::DomId;

/// `HYPERVISOR_set_timer_op`: a one-shot timer at an absolute system time.
pub const SET_TIMER_OP: usize = 15;
/// `HYPERVISOR_memory_op`.
pub const MEMORY_OP: usize = 12;
/// `HYPERVISOR_console_io` (Xen's own console; dom0 only in release builds).
pub const CONSOLE_IO: usize = 18;
/// `HYPERVISOR_grant_table_op`.
pub const GRANT_TABLE_OP: usize = 20;
/// `HYPERVISOR_sched_op`.
pub const SCHED_OP: usize = 29;
/// `HYPERVISOR_event_channel_op`.
pub const EVENT_CHANNEL_OP: usize = 32;
/// `HYPERVISOR_hvm_op`.
pub const HVM_OP: usize = 34;

/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: u64 = 0;

/// `XENMEM_current_reservation`: the domain's page count.
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `XENMEM_add_to_physmap`: map a Xen page at a guest frame.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// The shared info page, for [`AddToPhysmap`].
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// A grant table frame (`idx` = frame number), for [`AddToPhysmap`].
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `struct xen_add_to_physmap`.
#[repr(C)]
pub struct AddToPhysmap {
    /// [`crate::DOMID_SELF`].
    pub domid: DomId,
    /// Unused (batches only).
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Which page of the space.
    pub idx: u64,
    /// The guest frame to map it at.
    pub gpfn: u64,
}

/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SCHEDOP_poll`: block until one of some event channels is pending, or
/// an absolute system time.
pub const SCHEDOP_POLL: u64 = 3;

/// `struct sched_poll`.
#[repr(C)]
pub struct SchedPoll {
    /// Guest address of the `u32` ports.
    pub ports: u64,
    /// How many (at most [`POLL_MAX_PORTS`]).
    pub nr_ports: u32,
    /// Padding.
    pub pad: u32,
    /// Absolute system time in ns; 0 for none.
    pub timeout: u64,
}

/// The most ports one `SCHEDOP_poll` takes.
pub const POLL_MAX_PORTS: usize = 128;

numbered! {
    /// Why a domain shuts down (`SHUTDOWN_*`), what `xl` acts on (`on_poweroff`,
    /// `on_crash`).
    pub enum ShutdownReason: u32 {
        /// A clean end.
        Poweroff = 0,
        /// Restart me.
        Reboot = 1,
        /// Suspended (not used by nym).
        Suspend = 2,
        /// Something failed.
        Crash = 3,
    }
}

impl ShutdownReason {
    /// The reason for a program's exit status: a clean poweroff for 0, a
    /// crash for anything else, so that `xl`'s `on_crash` applies.
    pub fn for_status(status: i32) -> ShutdownReason {
        if status == 0 {
            ShutdownReason::Poweroff
        } else {
            ShutdownReason::Crash
        }
    }
}

/// `EVTCHNOP_send`: notify the other end.
pub const EVTCHNOP_SEND: u64 = 4;
/// `EVTCHNOP_alloc_unbound`: a port another domain may bind.
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// [`crate::DOMID_SELF`].
    pub dom: DomId,
    /// The domain that may bind it (the backend's).
    pub remote_dom: DomId,
    /// Out: the new port.
    pub port: u32,
}

/// `struct evtchn_send`.
#[repr(C)]
pub struct EvtchnSend {
    /// The local port.
    pub port: u32,
}

/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;
/// The xenstore ring's frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// The xenstore ring's event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// The PV console ring's frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// The PV console ring's event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// `struct xen_hvm_param`.
#[repr(C)]
pub struct HvmParam {
    /// [`crate::DOMID_SELF`].
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// Out: the value.
    pub value: u64,
}

/// An event channel port as dom0 hands it over (an HVM parameter, a
/// xenstore value): it must fit the 2-level ABI's 4096 ports.
pub fn checked_port(value: u64) -> Option<u32> {
    u32::try_from(value).ok().filter(|p| *p != 0 && *p < 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_xen_headers() {
        assert_eq!(core::mem::size_of::<AddToPhysmap>(), 24);
        assert_eq!(core::mem::size_of::<SchedPoll>(), 24);
        assert_eq!(core::mem::size_of::<EvtchnAllocUnbound>(), 8);
        assert_eq!(core::mem::size_of::<HvmParam>(), 16);
    }

    #[test]
    fn ports_from_dom0_are_checked() {
        assert_eq!(checked_port(3), Some(3));
        assert_eq!(checked_port(0), None, "port 0 is never bound");
        assert_eq!(checked_port(4096), None);
        assert_eq!(checked_port(u64::MAX), None);
    }

    #[test]
    fn only_status_zero_is_a_poweroff() {
        assert_eq!(ShutdownReason::for_status(0), ShutdownReason::Poweroff);
        assert_eq!(ShutdownReason::for_status(1), ShutdownReason::Crash);
        assert_eq!(ShutdownReason::for_status(-1), ShutdownReason::Crash);
    }
}
