//! # nym-unix: nym's Unix target
//!
//! The host side of nym: the device implementations a graph can bind on a
//! Unix host ([`devices`]), and — as the target grows — the in-process runner
//! and the runtime that standalone builds link.
//!
//! It sits above `libos`, whose device traits it implements with `std` and
//! tokio, and below the `nym` front ends, which choose from the graph which
//! device backs which argument. It holds no language logic of its own.
pub mod devices;
