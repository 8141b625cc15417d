//! The devices nym's monitor serves over hypercalls: the block device (a
//! host file) and the virtual Ethernet link to the monitor's netd.
use super::call;
use alloc::boxed::Box;
use libos::{Block, BlockError, BlockInfo, BoxFuture, IoError, NetError, Netif};
use nym_hvt_abi::{self as abi, nr};

/// The monitor's description of a device, asked for with hypercall `nr`;
/// `missing` if it serves none.
fn describe<T: Default>(
    nr: u16,
    ret: fn(&T) -> u64,
    missing: &'static str,
) -> Result<T, &'static str> {
    let mut info = T::default();
    call(nr, &mut info);
    if ret(&info) == abi::Ret::Ok as u64 {
        Ok(info)
    } else {
        Err(missing)
    }
}

/// The block device the monitor serves from a host file.
pub struct HvtBlock {
    info: BlockInfo,
}

impl HvtBlock {
    /// Asks the monitor for its block device.
    pub fn open() -> Result<HvtBlock, &'static str> {
        let missing = "the monitor serves no block device";
        let i = describe(nr::BLOCK_INFO, |i: &abi::BlockInfo| i.ret, missing)?;
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
}

impl HvtNet {
    /// Asks the monitor for the guest's network interface.
    pub fn open() -> Result<HvtNet, &'static str> {
        let missing = "the monitor serves no network (run with -p HOST:GUEST)";
        let i = describe(nr::NET_INFO, |i: &abi::NetInfo| i.ret, missing)?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&i.mac.to_le_bytes()[..6]);
        Ok(HvtNet {
            mac,
            mtu: i.mtu as usize,
            reliable: i.flags & abi::NET_CHECKSUMS == 0,
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
                    crate::runtime::executor::wake_after_wait(cx.waker());
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
