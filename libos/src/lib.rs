//! # libos: nym's device model
//!
//! An application in nym is ordinary Rust written against the *device traits*
//! in this crate: [`Console`], [`MonoClock`], [`WallClock`], [`Time`],
//! [`Random`], [`KvRo`]/[`Kv`], [`Block`], [`Flow`], [`Netif`] and [`Stack`].
//! A job — the application's entry point — is a `pub async fn` whose
//! arguments are `impl Trait` of those kinds (and plain values fed from the
//! graph's `key()`s):
//!
//! ```
//! use libos::{Console, Time};
//! use core::time::Duration;
//!
//! pub async fn start(console: impl Console, time: impl Time, count: u32) {
//!     for i in 1..=count {
//!         let _ = console.log(&format!("hello #{i}")).await;
//!         time.sleep(Duration::from_millis(10)).await;
//!     }
//! }
//! ```
//!
//! ## Layers
//!
//! - **Traits** (one module per kind): async, object safe, `Send + Sync`.
//!   Every method that waits returns a [`BoxFuture`], so the same trait is used
//!   statically (generics, monomorphised into a unikernel image) and
//!   dynamically (`Arc<dyn Console>`, lent by the in-process runner). Each kind
//!   has its own error enum; nothing is stringly typed.
//! - **Portable implementations**, usable on every target: [`kv::Mem`],
//!   [`kv::Baked`], [`kv::Block`] (a crash-safe store on any [`Block`]
//!   device), [`block::Mem`], [`random::Seeded`], and the *middleware* devices that wrap
//!   another device of the same kind: [`clock::Scaled`], [`time::Scaled`] (run
//!   fast, for tests of expiry logic) and [`kv::Full`] (a chaos device whose
//!   writes all fail with "no space").
//! - **[`abi`]**: the contract between the in-process runner and an
//!   application built as a dynamic library, with the fingerprint that makes
//!   a mismatched library refusable.
//!
//! ## What this crate is not
//!
//! libos knows nothing of tokio, KVM or the graph language. Host devices live
//! in `targets/unix`, guest devices in `targets/baremetal`; which
//! implementation backs which device is the graph's business (`graph/`). The
//! crate is `no_std` + `alloc` and CI builds it for `x86_64-unknown-none`.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod block;
pub mod call;
pub mod clock;
pub mod conformance;
pub mod console;
pub mod error;
pub mod flow;
pub mod job;
pub mod keys;
pub mod kv;
mod kv_block;
mod kv_history;
pub mod make;
pub mod net;
pub mod netif;
pub mod platform;
pub mod random;
pub mod snapshot;
pub mod stack;
pub mod task;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod value;

pub use block::{Block, BlockError, BlockInfo};
pub use clock::{MonoClock, WallClock};
pub use console::{Console, ConsoleError};
pub use error::IoError;
pub use flow::{Flow, FlowError};
pub use job::Outcome;
pub use kv::{Kv, KvError, KvRo};
pub use net::{Listener, NetError, Netif, Stack, UdpSocket};
pub use random::{Random, RandomError};
pub use time::Time;
pub use value::{Ipv4Cidr, Value, ValueType};

use alloc::boxed::Box;
use core::{future::Future, pin::Pin};

/// A boxed, sendable future: what every waiting device method returns, so the
/// traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Implements a device trait for `Arc<T>` by delegation, so one device
/// instance can be shared by several consumers of the graph.
macro_rules! delegate_arc {
    ($trait:ident { $(fn $name:ident $(<$lt:lifetime>)? (&$($l:lifetime)? self $(, $arg:ident : $ty:ty)*) -> $ret:ty;)* }) => {
        impl<T: $trait + ?Sized> $trait for alloc::sync::Arc<T> {
            $(fn $name $(<$lt>)? (&$($l)? self $(, $arg: $ty)*) -> $ret {
                (**self).$name($($arg),*)
            })*
        }
    };
}
pub(crate) use delegate_arc;
