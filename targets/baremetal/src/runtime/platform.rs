//! The guest as a [`Platform`]: what generated code builds its devices on,
//! and [`main`]. The board was decided at entry; each constructor here
//! picks that board's device type once (the monitor's hypercall devices,
//! virtio over mmio or pci, Xen's PV frontends), and the devices
//! themselves never ask which board they are on.
use super::entry;
use super::executor::{self, Sleep};
use super::hvt::devices::{HvtBlock, HvtNet};
use super::one_request::Disk;
use super::sys::{self, Board};
use super::virtio::{self, blk::VirtioBlk, net::VirtioNet};
use super::xen::{blkfront::Blkfront, netfront::Netfront};
use alloc::{boxed::Box, format, string::String, vec::Vec};
use core::time::Duration;
use libos::abi::JobFuture;
use libos::keys::Keys;
use libos::platform::{MakeError, Platform, Unsupported};
use libos::{
    Block, BlockError, BlockInfo, BoxFuture, Console, ConsoleError, MonoClock, NetError, Netif,
    Random, RandomError, Time, Value, WallClock,
};

/// The jobs built by generated code, each with its name.
pub type Jobs = Vec<(&'static str, JobFuture)>;

/// The guest's platform.
pub struct Guest;

/// The board's console.
pub struct GuestConsole;

impl Console for GuestConsole {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        sys::puts(text.as_bytes());
        Box::pin(Written)
    }

    /// One console write, as `write`'s, with the newline added on the
    /// stack: the trait's default boxes a future and allocates the line
    /// again, a hundred instructions or so a line, each dear under nested
    /// KVM.
    fn log<'a>(&'a self, line: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        sys::puts_line(line.as_bytes());
        Box::pin(Written)
    }
}

/// A console write that is already done: a unit type, so that boxing it
/// allocates nothing (an `async` block's state takes a byte, and a heap
/// block with it).
struct Written;

impl core::future::Future for Written {
    type Output = Result<(), ConsoleError>;
    fn poll(
        self: core::pin::Pin<&mut Self>,
        _: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Self::Output> {
        core::task::Poll::Ready(Ok(()))
    }
}

/// The board's clocks.
pub struct GuestClock;

impl MonoClock for GuestClock {
    fn elapsed_ns(&self) -> u64 {
        sys::monotime()
    }
}

impl WallClock for GuestClock {
    fn now_unix_ns(&self) -> u64 {
        sys::walltime()
    }
}

/// Sleeping through the executor's timers.
pub struct GuestTime;

impl Time for GuestTime {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(Sleep::new(duration))
    }
}

/// The board's entropy.
pub struct GuestRandom;

impl Random for GuestRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        sys::random(buf)
    }
}

/// RustCrypto's entropy (for TLS): the same source as `random::default()`.
#[cfg(feature = "tls")]
fn entropy(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    sys::random(buf).map_err(|_| getrandom::Error::UNSUPPORTED)
}
#[cfg(feature = "tls")]
getrandom::register_custom_getrandom!(entropy);

/// `block::file`: the monitor's block device, or a virtio-blk disk.
pub enum GuestBlock {
    /// nym's monitor serves the file.
    Hvt(HvtBlock),
    /// QEMU or libvirt attached the file as a virtio-blk disk.
    Virtio(Disk<VirtioBlk>),
    /// `xl` attached it as the domain's vbd (blkfront).
    Xen(Disk<Blkfront>),
}

impl Block for GuestBlock {
    fn info(&self) -> BlockInfo {
        match self {
            GuestBlock::Hvt(b) => b.info(),
            GuestBlock::Virtio(b) => b.info(),
            GuestBlock::Xen(b) => b.info(),
        }
    }
    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        match self {
            GuestBlock::Hvt(b) => b.read(sector, buf),
            GuestBlock::Virtio(b) => b.read(sector, buf),
            GuestBlock::Xen(b) => b.read(sector, buf),
        }
    }
    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        match self {
            GuestBlock::Hvt(b) => b.write(sector, data),
            GuestBlock::Virtio(b) => b.write(sector, data),
            GuestBlock::Xen(b) => b.write(sector, data),
        }
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        match self {
            GuestBlock::Hvt(b) => b.flush(),
            GuestBlock::Virtio(b) => b.flush(),
            GuestBlock::Xen(b) => b.flush(),
        }
    }
}

/// `netif::default()`: the monitor's link, or a virtio-net device.
pub enum GuestNet {
    /// The virtual Ethernet link to nym's monitor.
    Hvt(HvtNet),
    /// A virtio-net device on QEMU's user network.
    Virtio(VirtioNet),
    /// The domain's vif (netfront), bridged by dom0.
    Xen(Netfront),
}

impl Netif for GuestNet {
    fn mac(&self) -> [u8; 6] {
        match self {
            GuestNet::Hvt(n) => n.mac(),
            GuestNet::Virtio(n) => n.mac(),
            GuestNet::Xen(n) => n.mac(),
        }
    }
    fn mtu(&self) -> usize {
        match self {
            GuestNet::Hvt(n) => n.mtu(),
            GuestNet::Virtio(n) => n.mtu(),
            GuestNet::Xen(n) => n.mtu(),
        }
    }
    fn reliable(&self) -> bool {
        match self {
            GuestNet::Hvt(n) => n.reliable(),
            GuestNet::Virtio(n) => n.reliable(),
            GuestNet::Xen(n) => n.reliable(),
        }
    }
    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        match self {
            GuestNet::Hvt(n) => n.send(frame),
            GuestNet::Virtio(n) => n.send(frame),
            GuestNet::Xen(n) => n.send(frame),
        }
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        match self {
            GuestNet::Hvt(n) => n.recv(buf),
            GuestNet::Virtio(n) => n.recv(buf),
            GuestNet::Xen(n) => n.recv(buf),
        }
    }
}

/// The virtio bus of a QEMU board.
/// The device of the board the guest runs on: the monitor's (`hvt`), the
/// domain's PV device (`xen`), or the one `virtio` finds on the virtio bus
/// (`what` names it in errors, `hint` says how to add one).
fn board_device<T>(
    what: &str,
    hint: &str,
    hvt: impl FnOnce() -> Result<T, MakeError>,
    xen: impl FnOnce() -> Result<T, MakeError>,
    virtio: impl FnOnce(virtio::Find) -> Result<T, virtio::ProbeError>,
) -> Result<T, MakeError> {
    let bus: virtio::Find = match sys::board() {
        Board::Hvt => return hvt(),
        Board::Xen => return xen(),
        Board::Microvm => virtio::on_mmio,
        Board::Q35 => virtio::on_pci,
    };
    virtio(bus).map_err(|e| match e {
        virtio::ProbeError::Absent => MakeError::from(format!("no {what} ({hint})")),
        other => MakeError::from(format!("{what}: {}", other.message())),
    })
}

impl Platform for Guest {
    type Console = GuestConsole;
    type MonoClock = GuestClock;
    type WallClock = GuestClock;
    type Time = GuestTime;
    type Random = GuestRandom;
    type BlockFile = GuestBlock;
    type KvDir = Unsupported;
    type Netif = GuestNet;
    type Tap = Unsupported;
    type SocketStack = Unsupported;

    fn console(&self) -> Result<GuestConsole, MakeError> {
        Ok(GuestConsole)
    }
    fn mono_clock(&self) -> Result<GuestClock, MakeError> {
        Ok(GuestClock)
    }
    fn wall_clock(&self) -> Result<GuestClock, MakeError> {
        Ok(GuestClock)
    }
    fn time(&self) -> Result<GuestTime, MakeError> {
        Ok(GuestTime)
    }
    fn random(&self) -> Result<GuestRandom, MakeError> {
        Ok(GuestRandom)
    }
    /// The host already opened the file (the monitor) or attached it
    /// (QEMU, libvirt): the path and size are the host's business.
    fn block_file(&self, _path: &str, _size: u64) -> Result<GuestBlock, MakeError> {
        board_device(
            "virtio-blk disk",
            "the host attaches block::file's file as the disk",
            || Ok(GuestBlock::Hvt(HvtBlock::open()?)),
            || Ok(GuestBlock::Xen(Disk(Blkfront::open()?))),
            |bus| Ok(GuestBlock::Virtio(Disk(VirtioBlk::open(bus)?))),
        )
    }
    fn kv_dir(&self, _: &str) -> Result<Unsupported, MakeError> {
        Err(Unsupported::error("kv::dir", "a unikernel (use kv::block)"))
    }
    fn netif_default(&self) -> Result<GuestNet, MakeError> {
        board_device(
            "virtio-net device",
            "run with -p HOST:GUEST to add one",
            || Ok(GuestNet::Hvt(HvtNet::open()?)),
            || Ok(GuestNet::Xen(Netfront::open()?)),
            |bus| Ok(GuestNet::Virtio(VirtioNet::open(bus)?)),
        )
    }
    fn tap(&self, _: &str) -> Result<Unsupported, MakeError> {
        Err(Unsupported::error(
            "netif::tap",
            "a unikernel (use netif::default)",
        ))
    }
    fn socket_stack(&self) -> Result<Unsupported, MakeError> {
        Err(Unsupported::error(
            "stack::socket",
            "a unikernel (use stack::direct)",
        ))
    }
    fn bake(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, MakeError> {
        Err(Unsupported::bake(
            dir,
            "a unikernel (its files are baked in)",
        ))
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        executor::spawn(task);
    }
}

fn say(text: &str) {
    sys::puts(text.as_bytes());
}

/// The guest's main: reads the keys from the command line, builds the
/// devices and jobs with `build`, runs them, and returns the exit status.
pub fn main(
    name: &str,
    keys: Vec<(&str, Value)>,
    build: impl FnOnce(&Keys, &Guest) -> Result<Jobs, MakeError>,
) -> i32 {
    // The command line is ASCII (the monitor, QEMU and Xen pass bytes);
    // Unicode whitespace would link core's whitespace table for nothing.
    let args: Vec<&str> = entry::cmdline().split_ascii_whitespace().collect();
    let keys = match Keys::parse(keys, &args) {
        Ok(k) => k,
        Err(e) => {
            say(&format!("{name}: {e}\n"));
            return 2;
        }
    };
    let built = build(&keys, &Guest);
    // Neither is read again, and the guest exits when its jobs end:
    // freeing them would cost a few hundred instructions (each dear under
    // nested KVM) to give back a few hundred bytes once.
    core::mem::forget(keys);
    core::mem::forget(args);
    let jobs = match built {
        Ok(j) => j,
        Err(e) => {
            say(&format!(
                "{name}: cannot build the devices: {}\n",
                e.message()
            ));
            return 1;
        }
    };
    match executor::run(jobs) {
        executor::Ended::Finished => 0,
        executor::Ended::Failed { job, error } => {
            say(&format!("{name}: job {job} failed: {error}\n"));
            1
        }
        executor::Ended::Stuck => {
            say(&format!(
                "{name}: every job is waiting and nothing can wake them\n"
            ));
            1
        }
    }
}
