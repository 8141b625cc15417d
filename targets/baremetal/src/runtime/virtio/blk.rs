//! virtio-blk over either transport: `block::file` under QEMU and libvirt,
//! the host file being the guest's disk. One request in flight at a time,
//! through buffers the driver owns (a header, up to [`CHUNK`] bytes of
//! data, a status byte): a request whose future is dropped still completes
//! into them, and the next one waits until it has.
use super::{zeroed, DeviceType, ProbeError, Queue, Transport, DESC_NEXT, DESC_WRITE};
use crate::runtime::one_request::{self, Chunked, Io, OneSlot, Op, Slot};
use alloc::boxed::Box;
use libos::{BlockError, BlockInfo, IoError};

const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
/// The most data one request carries; larger reads and writes are split.
pub const CHUNK: usize = 64 * 1024;
const SECTOR: usize = 512;

struct Blk {
    transport: Transport,
    queue: Queue,
    header: u64,
    data: u64,
    status: u64,
    slot: Slot<u8>,
    next_ticket: u64,
    flush: bool,
}

impl OneSlot for Blk {
    type Status = u8;

    fn slot(&mut self) -> &mut Slot<u8> {
        &mut self.slot
    }

    /// Collects the device's answer, if it has given one.
    fn reap(&mut self) {
        self.transport.acknowledge();
        while self.queue.next_used().is_some() {
            // SAFETY: the status byte is the driver's; the device wrote it
            // before returning the chain.
            let status = unsafe { core::ptr::read_volatile(self.status as *const u8) };
            self.slot.answered(None, status);
        }
    }
}

impl Blk {
    /// Hands the device a request of `kind` at `sector`, its data already
    /// in the data buffer (`len` bytes, 0 for a flush).
    fn submit(&mut self, kind: u32, sector: u64, len: usize) -> u64 {
        // SAFETY: the header and status buffers are the driver's while the
        // slot is idle, which the caller checked.
        unsafe {
            core::ptr::write_volatile(self.header as *mut u32, kind);
            core::ptr::write_volatile((self.header + 4) as *mut u32, 0);
            core::ptr::write_volatile((self.header + 8) as *mut u64, sector);
            core::ptr::write_volatile(self.status as *mut u8, 0xff);
        }
        let data_flags = if kind == T_IN { DESC_WRITE } else { 0 };
        self.queue
            .set_desc(0, self.header, 16, DESC_NEXT, if len > 0 { 1 } else { 2 });
        if len > 0 {
            self.queue
                .set_desc(1, self.data, len, data_flags | DESC_NEXT, 2);
        }
        self.queue.set_desc(2, self.status, 1, DESC_WRITE, 0);
        self.queue.offer(0);
        self.transport.notify(0);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.slot = Slot::Busy {
            ticket,
            abandoned: false,
            done: None,
        };
        ticket
    }
}

/// A virtio-blk device as a [`Block`].
pub struct VirtioBlk {
    dev: &'static spin::Mutex<Blk>,
    info: BlockInfo,
}

impl VirtioBlk {
    /// Sets up the virtio-blk device found on `find`'s bus.
    pub fn open(find: super::Find) -> Result<VirtioBlk, ProbeError> {
        let transport = find(DeviceType::Blk)?;
        let agreed = transport.negotiate(0, F_RO | F_FLUSH)?;
        let queue = Queue::new();
        transport.start(&[&queue])?;
        let sectors = transport.config_u64(0);
        let blk = Blk {
            transport,
            queue,
            header: zeroed(16, 16),
            data: zeroed(CHUNK, 4096),
            status: zeroed(1, 1),
            slot: Slot::Idle,
            next_ticket: 0,
            flush: agreed & F_FLUSH != 0,
        };
        Ok(VirtioBlk {
            dev: Box::leak(Box::new(spin::Mutex::new(blk))),
            info: BlockInfo {
                sector_size: SECTOR as u32,
                sectors,
                writable: agreed & F_RO == 0,
            },
        })
    }
}

impl Chunked for VirtioBlk {
    const CHUNK: usize = CHUNK;

    fn geometry(&self) -> BlockInfo {
        self.info
    }

    fn caches_writes(&self) -> bool {
        self.dev.lock().flush
    }

    async fn request(&self, sector: u64, io: Io<'_>) -> Result<(), BlockError> {
        let (op, len, read, write) = io.split();
        let kind = match op {
            Op::Read => T_IN,
            Op::Write => T_OUT,
            Op::Flush => T_FLUSH,
        };
        let status = one_request::run(
            self.dev,
            |d| {
                if let Some(src) = write {
                    // SAFETY: the slot is idle, so the data buffer is the
                    // driver's; `len` is at most CHUNK.
                    unsafe { core::slice::from_raw_parts_mut(d.data as *mut u8, len) }
                        .copy_from_slice(src);
                }
                d.submit(kind, sector, len)
            },
            |d, status| {
                if let (S_OK, Some(dst)) = (status, read) {
                    // SAFETY: our request is done and its slot not yet
                    // freed: the data buffer holds what the device wrote.
                    dst.copy_from_slice(unsafe {
                        core::slice::from_raw_parts(d.data as *const u8, len)
                    });
                }
            },
        )
        .await;
        match status {
            S_OK => Ok(()),
            _ => Err(BlockError::Io(IoError::Other(
                "the virtio-blk device failed the request",
            ))),
        }
    }
}
