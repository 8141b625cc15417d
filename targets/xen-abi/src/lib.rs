//! # nym-xen-abi: the Xen interfaces a nym guest speaks, checked
//!
//! A nym image started by `xl create` is a PVH domU. Everything it does
//! beyond computing goes through Xen or through daemons and backend
//! drivers in dom0, over a handful of interfaces that this crate writes
//! down once:
//!
//! - [`hypercall`]: hypercall numbers and the argument structs of the
//!   calls the guest makes (memory map, event channels, grant tables,
//!   HVM parameters, scheduling);
//! - [`shared_info`]: where the event channel bitmaps and the clocks sit
//!   in the shared info page;
//! - [`grant`]: grant table v1 entries, and the allocator of references
//!   (a full table is an error, never a reuse);
//! - [`ring`]: the standard shared ring (`DEFINE_RING_TYPES` in Xen's
//!   `io/ring.h`) seen from the frontend;
//! - [`console`]: the PV console's two byte rings (xenconsoled reads them);
//! - [`xenstore`]: the store's byte rings and its wire protocol
//!   (`io/xs_wire.h`), and [`xenbus`] its device handshake states;
//! - [`netif`] and [`blkif`]: netfront's and blkfront's ring entries.
//!
//! It is *not* a driver: it sets nothing up and never blocks. The guest
//! runtime (`targets/baremetal`, module `xen`) makes the hypercalls and
//! waits for events; this crate tells it what the bytes mean.
//!
//! ## Trust
//!
//! Every page shared with dom0 can change under the guest at any time, and
//! what dom0 writes is input: a ring's producer index, a message length, a
//! response's id. This crate reads shared pages through [`Mem`], one
//! access of one width at a time, and turns what it reads into checked
//! values: an index that would make the guest read past what was produced
//! or overwrite what was not consumed, a message longer than the protocol
//! allows, a string without its terminator, a response naming a request
//! that was never made — each is a typed error naming what was wrong, and
//! the device that meets one gives up rather than read or write out of
//! place. The guest implements [`Mem`] with volatile accesses to the real
//! page; the tests implement it with an array they fill with hostile
//! values.
//!
//! `no_std` with `alloc` (xenstore messages are assembled in a `Vec`); no
//! dependencies.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

/// An enum of the C headers' numbered constants (`enum xenbus_state`), each
/// number and name written once: the enum, `from_number` (what arrives from
/// dom0 is checked against the list), `decimal` (what a key holds) and
/// `name` (for messages) all come from the one list.
macro_rules! numbered {
    ($(#[$meta:meta])* pub enum $enum:ident: $repr:ty {
        $($(#[doc = $doc:literal])* $variant:ident = $n:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr($repr)]
        pub enum $enum {
            $($(#[doc = $doc])* $variant = $n,)*
        }

        impl $enum {
            /// The one numbered `n`; `None` if there is none.
            pub fn from_number(n: $repr) -> Option<$enum> {
                match n {
                    $($n => Some($enum::$variant),)*
                    _ => None,
                }
            }

            /// Its number in decimal (`"2"`), as xenstore keys hold it.
            pub fn decimal(self) -> &'static str {
                match self {
                    $($enum::$variant => stringify!($n),)*
                }
            }

            /// Its name in messages (`InitWait`).
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

pub mod blkif;
mod byte_ring;
pub mod console;
pub mod grant;
pub mod hypercall;
pub mod mem;
pub mod netif;
pub mod ring;
pub mod shared_info;
pub mod xenbus;
pub mod xenstore;

pub use mem::{Mem, Word};

/// The size of a page, of a grant, and of every shared ring.
pub const PAGE: usize = 4096;

/// A domain id (`domid_t`).
pub type DomId = u16;

/// The domain making a call, in calls that name one.
pub const DOMID_SELF: DomId = 0x7ff0;
