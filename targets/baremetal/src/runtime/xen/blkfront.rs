//! blkfront: `block::file` on Xen, the disk the toolstack gave the domain
//! (`disk = [...]` in the xl config), served by blkback in dom0.
//!
//! Set-up follows xenbus: wait for the backend to be `InitWait`, grant a
//! ring, write its reference, an event channel and the ABI
//! (`x86_64-abi`), become `Initialised`, wait for the backend to be
//! `Connected`, then read the disk's size, sector size, read-only flag and
//! whether it has a cache to flush. Like virtio-blk here, one request is
//! in flight at a time, through [`blkif::MAX_SEGMENTS`] pages granted
//! once and owned by the driver: a request whose future is dropped still
//! completes into them, and the next one waits until it has.
//!
//! A backend that breaks the ring — a response producer past the one
//! request, a response naming another id — ends the guest with a message
//! naming the device (see `xen::device_failed`).
use super::page::Shared;
use super::xenbus::{DeviceError, Frontend};
use super::{evtchn, grant};
use crate::runtime::one_request::{self, Chunked, Io, OneSlot, Op, Slot};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use libos::{BlockError, BlockInfo, IoError};
use nym_xen_abi::blkif::{self, Request, MAX_SEGMENTS, SECTOR};
use nym_xen_abi::ring::FrontRing;
use nym_xen_abi::xenbus::State;
use nym_xen_abi::PAGE;

/// The most data one request carries; larger reads and writes are split.
pub const CHUNK: usize = MAX_SEGMENTS * PAGE;

struct Blk {
    front: Frontend,
    handle: u16,
    port: u32,
    page: Shared,
    ring: FrontRing,
    data: Vec<(Shared, u32)>,
    slot: Slot<i16>,
    next_ticket: u64,
    /// 512-byte sectors per sector of the disk.
    scale: u64,
}

impl OneSlot for Blk {
    type Status = i16;

    fn slot(&mut self) -> &mut Slot<i16> {
        &mut self.slot
    }

    /// Collects the backend's answer, if it has given one.
    fn reap(&mut self) {
        loop {
            let off = match self.ring.next_response(&self.page) {
                Ok(Some(off)) => off,
                Ok(None) => return,
                Err(e) => super::device_failed(&self.front.error(format!("ring: {e}"))),
            };
            let (id, status) = blkif::response(&self.page, off);
            if !self.slot.answered(Some(id), status) {
                super::device_failed(&self.front.error(format!(
                    "ring: a response names request {id}, which is not outstanding"
                )));
            }
        }
    }
}

impl Blk {
    /// Hands the backend a request of `operation` at 512-byte `sector`,
    /// its data already in the data pages (`len` bytes, 0 for a flush).
    fn submit(&mut self, operation: u8, sector: u64, len: usize) -> u64 {
        let grefs: Vec<u32> = self.data.iter().map(|(_, r)| *r).collect();
        let (segments, nr_segments) =
            blkif::segments(len, &grefs).unwrap_or(([(0, 0, 0); MAX_SEGMENTS], 0));
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let Some(off) = self.ring.next_request() else {
            // Unreachable with one request in flight; fail it.
            return ticket;
        };
        Request {
            operation,
            handle: self.handle,
            id: ticket,
            sector,
            segments,
            nr_segments,
        }
        .write(&self.page, off);
        if self.ring.push(&self.page) {
            evtchn::notify(self.port);
        }
        self.slot = Slot::Busy {
            ticket,
            abandoned: false,
            done: None,
        };
        ticket
    }

    fn copy_in(&self, src: &[u8]) {
        for (chunk, (page, _)) in src.chunks(PAGE).zip(&self.data) {
            page.copy_in(0, chunk);
        }
    }

    fn copy_out(&self, dst: &mut [u8]) {
        for (chunk, (page, _)) in dst.chunks_mut(PAGE).zip(&self.data) {
            page.copy_out(0, chunk);
        }
    }
}

/// The vbd as a [`Block`].
pub struct Blkfront {
    dev: &'static spin::Mutex<Blk>,
    info: BlockInfo,
    flush: bool,
}

impl Blkfront {
    /// Connects to the domain's first vbd.
    pub fn open() -> Result<Blkfront, DeviceError> {
        let front = Frontend::find("vbd", "blkfront", "add `disk = [...]` to the xl config")?;
        let handle = front
            .dir
            .rsplit('/')
            .next()
            .and_then(nym_xen_abi::xenbus::number)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| front.malformed("its device number", &front.dir))?;
        front.await_backend(State::InitWait)?;
        let dom = front.backend_id;
        let grant_error =
            |e: grant::Error| front.error(format!("granting a page: {}", e.message()));
        let page = Shared::new();
        let ring_ref = grant::permit(dom, page.address(), false).map_err(grant_error)?;
        let ring = FrontRing::init(&page, blkif::ENTRY);
        let data = (0..MAX_SEGMENTS)
            .map(|_| {
                let p = Shared::new();
                grant::permit(dom, p.address(), false)
                    .map(|r| (p, r))
                    .map_err(grant_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let port = evtchn::bind_new(dom).map_err(|e| front.error(e.into()))?;
        front.write("ring-ref", &format!("{ring_ref}"))?;
        front.write("event-channel", &format!("{port}"))?;
        front.write("protocol", "x86_64-abi")?;
        front.switch(State::Initialised)?;
        front.await_backend(State::Connected)?;
        let number = |key: &str| -> Result<u64, DeviceError> {
            front
                .backend_number(key)?
                .ok_or_else(|| front.error(format!("the key {}/{key} is missing", front.backend)))
        };
        let sectors = number("sectors")?;
        let sector_size = front
            .backend_number("sector-size")?
            .unwrap_or(SECTOR as u64);
        if sector_size < SECTOR as u64
            || !sector_size.is_power_of_two()
            || sector_size > PAGE as u64
        {
            return Err(front.malformed(
                &format!("{}/sector-size", front.backend),
                &format!("{sector_size}"),
            ));
        }
        let info = front.backend_number("info")?.unwrap_or(0);
        let flush = front.backend_number("feature-flush-cache")? == Some(1);
        front.switch(State::Connected)?;
        let blk = Blk {
            front,
            handle,
            port,
            page,
            ring,
            data,
            slot: Slot::Idle,
            next_ticket: 0,
            scale: sector_size / SECTOR as u64,
        };
        Ok(Blkfront {
            dev: Box::leak(Box::new(spin::Mutex::new(blk))),
            info: BlockInfo {
                sector_size: sector_size as u32,
                // The backend counts 512-byte sectors whatever its own size.
                sectors: sectors / (sector_size / SECTOR as u64),
                writable: info & blkif::VDISK_READONLY == 0,
            },
            flush,
        })
    }
}

impl Chunked for Blkfront {
    const CHUNK: usize = CHUNK;

    fn geometry(&self) -> BlockInfo {
        self.info
    }

    fn caches_writes(&self) -> bool {
        self.flush
    }

    /// `sector` is the disk's; the backend counts 512-byte sectors.
    async fn request(&self, sector: u64, io: Io<'_>) -> Result<(), BlockError> {
        let (op, len, read, write) = io.split();
        let operation = match op {
            Op::Read => blkif::OP_READ,
            Op::Write => blkif::OP_WRITE,
            Op::Flush => blkif::OP_FLUSH_DISKCACHE,
        };
        let status = one_request::run(
            self.dev,
            |d| {
                if let Some(src) = write {
                    d.copy_in(src);
                }
                d.submit(operation, sector * d.scale, len)
            },
            |d, status| {
                if let (blkif::RSP_OKAY, Some(dst)) = (status, read) {
                    d.copy_out(dst);
                }
            },
        )
        .await;
        match status {
            blkif::RSP_OKAY => Ok(()),
            blkif::RSP_EOPNOTSUPP => Err(BlockError::Io(IoError::Other(
                "the Xen block backend does not support the request",
            ))),
            _ => Err(BlockError::Io(IoError::Other(
                "the Xen block backend failed the request",
            ))),
        }
    }
}
