//! The fixture application crate shared by the graph crate's tests and the
//! fuzz target: jobs of every shape the checker must accept or refuse.
#![allow(unreachable_pub)] // shared by several test binaries, each using some
use nym_graph::RustCrate;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

const APP: &str = r#"
use libos::{Console, Ipv4Cidr, Kv, KvRo, Time};
use core::time::Duration;

pub async fn start(console: impl Console, time: impl Time, count: u32) {}
pub async fn store(console: impl Console, kv: impl Kv) -> Result<(), libos::KvError> { Ok(()) }
pub async fn serve(files: impl KvRo, ip: Ipv4Cidr, every: Duration, verbose: bool) {}
pub fn not_async(console: impl Console) {}
async fn private(console: impl Console) {}
pub async fn weird(bytes: Vec<u8>) {}
pub mod sub;
"#;

const SUB: &str = "pub async fn run<C>(c: C) where C: libos::Console {}";

/// The crate `hello`, with `src/lib.rs` and `src/sub.rs` in memory.
pub fn app() -> &'static RustCrate {
    static APP_CRATE: OnceLock<RustCrate> = OnceLock::new();
    APP_CRATE.get_or_init(|| {
        let files = HashMap::from([
            (PathBuf::from("src/lib.rs"), APP.to_owned()),
            (PathBuf::from("src/sub.rs"), SUB.to_owned()),
        ]);
        RustCrate::in_memory("hello", files)
    })
}
