//! What a platform offers the devices of a graph: the one contract between
//! the code that builds devices ([`crate::make`], called by generated
//! programs and by the in-process runner alike) and each platform (the
//! Unix host, the in-process runner, the guest runtime).
//!
//! Every platform implements every method, so a platform that lacks one is
//! a compile error in that platform's crate, not a failure when some image
//! is built. A device a platform cannot give has the type [`Unsupported`]
//! there and its method says why; the graph's checker refuses such a graph
//! for that target before anything is built.
use crate::{Block, BoxFuture, Console, Kv, MonoClock, Netif, Random, Stack, Time, WallClock};
use alloc::{string::String, sync::Arc, vec::Vec};

/// Why a device could not be made: its message. Only the message, so that
/// an image links no error type's `Debug` and no `dyn Error` (kilobytes in
/// a small image); any error that displays converts into one.
pub struct MakeError(String);

impl MakeError {
    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for MakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: core::fmt::Display> From<E> for MakeError {
    fn from(e: E) -> MakeError {
        MakeError(alloc::string::ToString::to_string(&e))
    }
}

/// The devices a platform provides itself (the rest are portable and built
/// by [`crate::make`] from these).
pub trait Platform {
    /// `console::default()`.
    type Console: Console + 'static;
    /// `clock::mono()`.
    type MonoClock: MonoClock + 'static;
    /// `clock::wall()`.
    type WallClock: WallClock + 'static;
    /// `time::default()`.
    type Time: Time + 'static;
    /// `random::default()`.
    type Random: Random + 'static;
    /// `block::file(path, size)`: a host file, or the disk the host made
    /// of it.
    type BlockFile: Block + 'static;
    /// `kv::dir(path)`.
    type KvDir: Kv + 'static;
    /// `netif::default()`: the platform's own network interface.
    type Netif: Netif + 'static;
    /// `netif::tap(name)`.
    type Tap: Netif + 'static;
    /// `stack::socket()`: the host's TCP/IP stack.
    type SocketStack: Stack + 'static;

    /// `console::default()`.
    fn console(&self) -> Result<Self::Console, MakeError>;
    /// `clock::mono()`.
    fn mono_clock(&self) -> Result<Self::MonoClock, MakeError>;
    /// `clock::wall()`.
    fn wall_clock(&self) -> Result<Self::WallClock, MakeError>;
    /// `time::default()`.
    fn time(&self) -> Result<Self::Time, MakeError>;
    /// `random::default()`.
    fn random(&self) -> Result<Self::Random, MakeError>;
    /// `block::file(path, size)`: `size` bytes for a file that does not
    /// exist yet.
    fn block_file(&self, path: &str, size: u64) -> Result<Self::BlockFile, MakeError>;
    /// `kv::dir(path)`.
    fn kv_dir(&self, path: &str) -> Result<Self::KvDir, MakeError>;
    /// `netif::default()`.
    fn netif_default(&self) -> Result<Self::Netif, MakeError>;
    /// `netif::tap(name)`.
    fn tap(&self, name: &str) -> Result<Self::Tap, MakeError>;
    /// `stack::socket()`.
    fn socket_stack(&self) -> Result<Self::SocketStack, MakeError>;
    /// The files under `dir` as (key with `/` separators, contents), read
    /// now: `kv::baked` in-process. A compiled program bakes them in when
    /// it is built and never asks.
    fn bake(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, MakeError>;
    /// Runs a device's background task (a stack's driver) beside the jobs
    /// for as long as the program runs.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// A platform whose devices are trait objects: what the in-process runner
/// implements, and what each catalog entry's in-process constructor takes.
pub type DynPlatform = dyn Platform<
        Console = Arc<dyn Console>,
        MonoClock = Arc<dyn MonoClock>,
        WallClock = Arc<dyn WallClock>,
        Time = Arc<dyn Time>,
        Random = Arc<dyn Random>,
        BlockFile = Arc<dyn Block>,
        KvDir = Arc<dyn Kv>,
        Netif = Arc<dyn Netif>,
        Tap = Arc<dyn Netif>,
        SocketStack = Arc<dyn Stack>,
    > + Send
    + Sync;

/// A device a platform does not have. No value of it exists, so a platform
/// naming it for a device can never hand one out; it implements every
/// device trait only to fill the type.
#[derive(Debug, Clone, Copy)]
pub enum Unsupported {}

impl Unsupported {
    /// The error a platform returns for a device it does not have.
    pub fn error(device: &str, platform: &str) -> MakeError {
        MakeError(alloc::format!("{device} is not available on {platform}"))
    }

    /// The error of a platform whose `kv::baked` files were baked in when
    /// its program was built, asked to read a directory at run time.
    pub fn bake(dir: &str, platform: &str) -> MakeError {
        Self::error(
            &alloc::format!("reading kv::baked(\"{dir}\") at run time"),
            platform,
        )
    }
}

mod unsupported {
    use super::Unsupported;
    use crate::net::{Listener, UdpSocket};
    use crate::{
        Block, BlockError, BlockInfo, BoxFuture, Console, ConsoleError, Flow, Kv, KvError, KvRo,
        MonoClock, NetError, Netif, Random, RandomError, Stack, Time, WallClock,
    };
    use alloc::{boxed::Box, string::String, vec::Vec};
    use core::net::SocketAddrV4;
    use core::time::Duration;

    impl Console for Unsupported {
        fn write<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
            match *self {}
        }
    }
    impl MonoClock for Unsupported {
        fn elapsed_ns(&self) -> u64 {
            match *self {}
        }
    }
    impl WallClock for Unsupported {
        fn now_unix_ns(&self) -> u64 {
            match *self {}
        }
    }
    impl Time for Unsupported {
        fn sleep(&self, _: Duration) -> BoxFuture<'_, ()> {
            match *self {}
        }
    }
    impl Random for Unsupported {
        fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
            match *self {}
        }
    }
    impl KvRo for Unsupported {
        fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
            match *self {}
        }
        fn list<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
            match *self {}
        }
    }
    impl Kv for Unsupported {
        fn set<'a>(&'a self, _: &'a str, _: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
            match *self {}
        }
        fn remove<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
            match *self {}
        }
    }
    impl Block for Unsupported {
        fn info(&self) -> BlockInfo {
            match *self {}
        }
        fn read<'a>(&'a self, _: u64, _: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            match *self {}
        }
        fn write<'a>(&'a self, _: u64, _: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
            match *self {}
        }
        fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
            match *self {}
        }
    }
    impl Netif for Unsupported {
        fn mac(&self) -> [u8; 6] {
            match *self {}
        }
        fn mtu(&self) -> usize {
            match *self {}
        }
        fn send<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
            match *self {}
        }
        fn recv<'a>(&'a self, _: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
            match *self {}
        }
    }
    impl Stack for Unsupported {
        fn listen(&self, _: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>> {
            match *self {}
        }
        fn connect(&self, _: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
            match *self {}
        }
        fn udp(&self, _: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
            match *self {}
        }
    }
}
