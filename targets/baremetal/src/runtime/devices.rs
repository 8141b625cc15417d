//! Devices over the platform primitives: the monitor's hypercalls, or
//! PVH's serial port, kvmclock and timer. Block is the monitor's only.
use super::executor::Sleep;
use super::hvt::call;
use super::{pvh, sys, virtio};
use alloc::boxed::Box;
use core::time::Duration;
use libos::{
    Block, BlockError, BlockInfo, BoxFuture, Console, ConsoleError, IoError, MonoClock, NetError,
    Netif, Random, RandomError, Time, WallClock,
};
use nym_hvt_abi::{self as abi, nr};

/// Why a device could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The monitor serves no such device.
    #[error("the monitor serves no {0}")]
    NoDevice(&'static str),
}

/// The monitor's console.
pub struct HvtConsole;

impl Console for HvtConsole {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        sys::puts(text.as_bytes());
        Box::pin(async { Ok(()) })
    }
}

/// The monitor's clocks.
pub struct HvtClock;

impl MonoClock for HvtClock {
    fn elapsed_ns(&self) -> u64 {
        sys::monotime()
    }
}

impl WallClock for HvtClock {
    fn now_unix_ns(&self) -> u64 {
        sys::walltime()
    }
}

/// Sleeping through the executor's timers.
pub struct HvtTime;

impl Time for HvtTime {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(Sleep::new(duration))
    }
}

/// The host's entropy, through the monitor.
pub struct HvtRandom;

/// RustCrypto's entropy (for TLS): the same source as `random::default()`.
#[cfg(feature = "tls")]
fn entropy(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    HvtRandom
        .fill(buf)
        .map_err(|_| getrandom::Error::UNSUPPORTED)
}
#[cfg(feature = "tls")]
getrandom::register_custom_getrandom!(entropy);

impl Random for HvtRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        if sys::is_pvh() {
            for chunk in buf.chunks_mut(8) {
                let v = pvh::rdrand().ok_or(RandomError::Unavailable(IoError::Other(
                    "the CPU has no RDRAND",
                )))?;
                chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
            }
            return Ok(());
        }
        for chunk in buf.chunks_mut(abi::RANDOM_MAX as usize) {
            let mut r = abi::Random {
                data: chunk.as_mut_ptr() as u64,
                len: chunk.len() as u64,
            };
            call(nr::RANDOM, &mut r);
        }
        Ok(())
    }
}

/// The block device the monitor serves from a host file.
pub struct HvtBlock {
    info: BlockInfo,
}

impl HvtBlock {
    /// Asks the monitor for its block device.
    pub fn open() -> Result<HvtBlock, InitError> {
        if sys::is_pvh() {
            return Err(InitError::NoDevice("block device under PVH (QEMU) yet"));
        }
        let mut i = abi::BlockInfo::default();
        call(nr::BLOCK_INFO, &mut i);
        if i.ret != abi::Ret::Ok as u64 {
            return Err(InitError::NoDevice("block device"));
        }
        Ok(HvtBlock {
            info: BlockInfo {
                sector_size: i.sector_size as u32,
                sectors: i.sectors,
                writable: i.writable != 0,
            },
        })
    }

    fn io(&self, read: bool, sector: u64, ptr: u64, len: usize) -> Result<(), BlockError> {
        libos::block::check_request(&self.info, sector, len)?;
        let mut io = abi::BlockIo {
            ret: 0,
            sector,
            data: ptr,
            len: len as u64,
        };
        call(
            if read {
                nr::BLOCK_READ
            } else {
                nr::BLOCK_WRITE
            },
            &mut io,
        );
        match abi::Ret::from_u64(io.ret) {
            Some(abi::Ret::Ok) => Ok(()),
            Some(abi::Ret::OutOfRange) => Err(BlockError::OutOfRange {
                start: sector,
                end: sector,
                sectors: self.info.sectors,
            }),
            Some(abi::Ret::Unaligned) => Err(BlockError::Unaligned {
                len,
                sector_size: self.info.sector_size,
            }),
            _ => Err(BlockError::Io(IoError::Other(
                "the monitor's block I/O failed",
            ))),
        }
    }
}

impl Block for HvtBlock {
    fn info(&self) -> BlockInfo {
        self.info
    }
    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        let r = self.io(true, sector, buf.as_mut_ptr() as u64, buf.len());
        Box::pin(async move { r })
    }
    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        let r = self.io(false, sector, data.as_ptr() as u64, data.len());
        Box::pin(async move { r })
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        // The monitor syncs each write before returning.
        Box::pin(async { Ok(()) })
    }
}

/// The monitor's virtual Ethernet link (`netif::default()` on kvm).
pub struct HvtNet {
    mac: [u8; 6],
    mtu: usize,
    /// Memory to the monitor: checksums skipped both ways.
    reliable: bool,
    /// Under QEMU: the virtio-net device, instead of the monitor's link.
    virtio: Option<&'static spin::Mutex<virtio::Net>>,
}

impl HvtNet {
    /// Asks the monitor for the guest's network interface; under QEMU,
    /// sets up its virtio-net device.
    pub fn open() -> Result<HvtNet, InitError> {
        if sys::is_xen() {
            return Err(InitError::NoDevice("network on Xen yet"));
        }
        if sys::is_pvh() {
            let net = virtio::Net::probe().map_err(|e| {
                InitError::NoDevice(match e {
                    virtio::ProbeError::Absent => {
                        "virtio-net device (run with -p HOST:GUEST to add one)"
                    }
                    virtio::ProbeError::Legacy => {
                        "modern virtio-net device (QEMU needs -global virtio-mmio.force-legacy=false)"
                    }
                    virtio::ProbeError::Features => {
                        "virtio-net device with a MAC address and virtio 1.0"
                    }
                })
            })?;
            return Ok(HvtNet {
                mac: net.mac(),
                mtu: virtio::MTU,
                reliable: false,
                virtio: Some(Box::leak(Box::new(spin::Mutex::new(net)))),
            });
        }
        let mut i = abi::NetInfo::default();
        call(nr::NET_INFO, &mut i);
        if i.ret != abi::Ret::Ok as u64 {
            return Err(InitError::NoDevice("network (run with -p HOST:GUEST)"));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&i.mac.to_le_bytes()[..6]);
        Ok(HvtNet {
            mac,
            mtu: i.mtu as usize,
            reliable: i.flags & abi::NET_CHECKSUMS == 0,
            virtio: None,
        })
    }
}

impl Netif for HvtNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn reliable(&self) -> bool {
        // Memory to the monitor, which skips checksums too; a tap behind
        // the monitor and QEMU's user network check them.
        self.reliable
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        if let Some(net) = self.virtio {
            return virtio::send(net, frame);
        }
        let mut io = abi::NetIo {
            ret: 0,
            data: frame.as_ptr() as u64,
            len: frame.len() as u64,
        };
        call(nr::NET_WRITE, &mut io);
        let sent = match abi::Ret::from_u64(io.ret) {
            Some(abi::Ret::Ok) => Ok(()),
            Some(abi::Ret::OutOfRange) => Err(NetError::FrameTooLarge {
                len: frame.len(),
                mtu: self.mtu,
            }),
            _ => Err(NetError::Down),
        };
        Box::pin(async move { sent })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        if let Some(net) = self.virtio {
            return virtio::recv(net, buf);
        }
        Box::pin(core::future::poll_fn(move |cx| {
            let mut io = abi::NetIo {
                ret: 0,
                data: buf.as_mut_ptr() as u64,
                len: buf.len() as u64,
            };
            call(nr::NET_READ, &mut io);
            match abi::Ret::from_u64(io.ret) {
                Some(abi::Ret::Ok) if io.len > 0 => core::task::Poll::Ready(Ok(io.len as usize)),
                Some(abi::Ret::Ok) => {
                    // Nothing yet: the executor wakes us after its next WAIT,
                    // which the monitor ends early when a frame arrives.
                    super::executor::wake_after_wait(cx.waker());
                    core::task::Poll::Pending
                }
                Some(abi::Ret::OutOfRange) => {
                    core::task::Poll::Ready(Err(NetError::FrameTooLarge {
                        len: buf.len() + 1,
                        mtu: buf.len(),
                    }))
                }
                _ => core::task::Poll::Ready(Err(NetError::Down)),
            }
        }))
    }
}
