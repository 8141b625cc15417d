//! # nym-hvt: nym's KVM monitor
//!
//! Boots a unikernel image built for `x86_64-unknown-none` directly in long
//! mode on `/dev/kvm` (no firmware, no QEMU) and serves the hypercalls of
//! [`nym_hvt_abi`]: console, clocks, wait-with-timeout, block, entropy,
//! exit, and fault reports with a symbolised backtrace.
//!
//! Layers: [`elf`] validates an image into a typed [`elf::Image`];
//! [`memory`] owns guest memory, turns guest addresses into checked
//! ranges and copies through them (no reference into guest memory is
//! made); [`boot`] lays out memory and page tables and enters long mode;
//! [`hypercall`] decodes each call into a validated request before
//! any handler sees it; [`monitor`] boots; `vcpu` runs the loop, `devices`
//! serves the calls and `crash` writes crash reports; `debug` is gdb's
//! debuggee; `kick` reaches the vCPU thread from others ([`Stopper`]);
//! [`seccomp`] is one system-call allowlist per thread; [`net`] is the
//! guest's network (netd).
//!
//! Invariant: every guest-supplied address and length is checked against
//! guest memory before use; a violation ends the guest, never the monitor.
pub mod boot;
mod crash;
mod debug;
mod devices;
pub mod elf;
mod error;
pub mod hypercall;
mod kick;
pub mod memory;
pub mod monitor;
pub mod net;
pub mod seccomp;
pub mod stats;
pub mod trace;
mod vcpu;

pub use error::MonitorError;
pub use kick::Stopper;
pub use monitor::{run, BlockFile, Config};
pub use net::{Forward, NetConfig};
pub use nym_hvt_abi as abi;
pub use stats::{Stats, StatsSink};
pub use vcpu::Outcome;
