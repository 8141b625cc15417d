//! # nym-unix: nym's Unix target
//!
//! The host side of nym: the device implementations a graph can bind on a
//! Unix host ([`devices`]), the runtime that standalone builds link
//! ([`platform`], [`jobs`], [`keys`]), and, with the `runner` feature, the
//! in-process runner that instantiates a checked graph live (`runner`).
//!
//! It sits above `libos`, whose device traits it implements with `std` and
//! tokio, and below the `nym` front ends, which choose from the graph which
//! device backs which argument. It holds no language logic of its own.
pub mod devices;
pub mod jobs;
/// Keys are parsed by libos, the same on every target.
pub use libos::keys;
pub mod platform;
#[cfg(feature = "runner")]
pub mod runner;
pub mod trace;
pub mod traced;
