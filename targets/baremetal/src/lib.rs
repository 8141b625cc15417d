//! # nym-baremetal: the guest runtime
//!
//! What a unikernel image links besides the application and libos: the
//! entries (nym's KVM monitor enters in long mode with a boot-info pointer
//! in `rdi`; QEMU and Xen through PVH), the heap, exception handlers that
//! report crashes, the panic handler, a single-threaded executor that
//! sleeps in the board's wait primitive until the next deadline (no busy
//! loop), and each board's devices: the monitor's over hypercalls
//! ([`nym_hvt_abi`]), virtio-blk and virtio-net over virtio-mmio (QEMU's
//! microvm) and virtio-pci (q35, libvirt).
//!
//! The board is decided once, at entry; `sys` is the one place that picks
//! its primitives, and [`platform`]'s `Guest` is the guest's
//! `libos::platform::Platform`, on which generated code builds its devices.
//! Modules are layered: the boards' own (`hvt`, `qemu`, `xen`, `kvmclock`,
//! `fault`) call nothing above them; `sys` calls them; everything else
//! calls `sys`.
//!
//! Invariant: never links `std`. The crate is empty unless built for
//! `target_os = "none"` (`x86_64-unknown-none`), so host builds of the
//! workspace are unaffected; CI lints it for that target.
#![cfg_attr(target_os = "none", no_std)]
#![warn(missing_docs)]
// The runtime's modules are private and meet through `pub` items that
// `pub use runtime::*` exposes only in part.
#![allow(unreachable_pub)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(any(target_os = "none", test))]
mod allocator;
#[cfg(target_os = "none")]
mod runtime;
#[cfg(target_os = "none")]
pub use runtime::*;
