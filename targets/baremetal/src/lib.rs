//! # nym-baremetal: the guest runtime
//!
//! What a unikernel image links besides the application and libos: the
//! entry points (nym's KVM monitor enters in long mode with a boot-info
//! pointer in `rdi`), the heap, exception handlers that report crashes,
//! the panic handler, a single-threaded executor that sleeps in the
//! platform's wait primitive until the next deadline (no busy loop), and
//! the devices over the monitor's hypercalls ([`nym_hvt_abi`]).
//!
//! [`platform`] offers generated code the same functions as every other
//! platform (`console()`, `time()`, …, `main`).
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

#[cfg(target_os = "none")]
mod runtime;
#[cfg(target_os = "none")]
pub use runtime::*;
