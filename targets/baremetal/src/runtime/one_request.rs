//! One request in flight at a time, through buffers the driver owns: the
//! request slot of virtio-blk and of Xen's blkfront. A request whose
//! future is dropped still completes into the driver's buffers: its slot
//! is freed when the device answers, and the next request waits until
//! then.
use super::executor::wake_after_wait;
use alloc::boxed::Box;
use core::future::Future;
use core::task::Poll;
use libos::{Block, BlockError, BlockInfo, BoxFuture};

/// Where the one request slot is; `S` is the device's status.
#[derive(Clone, Copy)]
pub enum Slot<S> {
    /// No request is with the device.
    Idle,
    /// A request is with the device.
    Busy {
        /// Which one.
        ticket: u64,
        /// Its future was dropped: free the slot when the device is done.
        abandoned: bool,
        /// The device's status, once it answered.
        done: Option<S>,
    },
}

impl<S: Copy> Slot<S> {
    /// Records the device's answer `status` to request `id` (any request
    /// for `None`: a device that answers in order); a dropped request's
    /// slot is freed. False if request `id` is not the one with the device.
    pub fn answered(&mut self, id: Option<u64>, status: S) -> bool {
        match *self {
            Slot::Busy {
                ticket, abandoned, ..
            } if id.is_none_or(|i| i == ticket) => {
                *self = if abandoned {
                    Slot::Idle
                } else {
                    Slot::Busy {
                        ticket,
                        abandoned,
                        done: Some(status),
                    }
                };
                true
            }
            Slot::Idle => id.is_none(),
            Slot::Busy { .. } => false,
        }
    }
}

/// A device with one request slot.
pub trait OneSlot: Send + 'static {
    /// The device's status for a request.
    type Status: Copy + Send;
    /// Its slot.
    fn slot(&mut self) -> &mut Slot<Self::Status>;
    /// Collects the device's answers into the slot ([`Slot::answered`]).
    fn reap(&mut self);
}

/// Runs one request on `dev`: waits for the slot, then `submit` places
/// the request's data and hands it to the device, returning its ticket;
/// once the device answered, `finish` sees its status while the buffers
/// still hold what the device wrote. The slot is freed after (or, if this
/// future is dropped first, when the device answers).
pub async fn run<D: OneSlot>(
    dev: &spin::Mutex<D>,
    submit: impl FnOnce(&mut D) -> u64,
    finish: impl FnOnce(&D, D::Status),
) -> D::Status {
    let mut pending = Pending { dev, ticket: None };
    let mut submit = Some(submit);
    let status = core::future::poll_fn(|cx| {
        let mut d = dev.lock();
        d.reap();
        match (pending.ticket, *d.slot()) {
            (None, Slot::Idle) => {
                if let Some(submit) = submit.take() {
                    pending.ticket = Some(submit(&mut d));
                }
            }
            (
                Some(mine),
                Slot::Busy {
                    ticket,
                    done: Some(status),
                    ..
                },
            ) if ticket == mine => return Poll::Ready(status),
            _ => {}
        }
        wake_after_wait(cx.waker());
        Poll::Pending
    })
    .await;
    finish(&dev.lock(), status);
    // Frees the slot (the request is done).
    drop(pending);
    status
}

/// Frees the slot of a request whose future is dropped before its answer
/// was taken.
struct Pending<'a, D: OneSlot> {
    dev: &'a spin::Mutex<D>,
    ticket: Option<u64>,
}

impl<D: OneSlot> Drop for Pending<'_, D> {
    fn drop(&mut self) {
        let Some(mine) = self.ticket else { return };
        let mut d = self.dev.lock();
        let slot = d.slot();
        if let Slot::Busy { ticket, done, .. } = *slot {
            if ticket == mine {
                *slot = if done.is_some() {
                    Slot::Idle
                } else {
                    Slot::Busy {
                        ticket,
                        abandoned: true,
                        done,
                    }
                };
            }
        }
    }
}

/// One request of a [`Chunked`] disk.
pub enum Io<'a> {
    /// Read into the buffer.
    Read(&'a mut [u8]),
    /// Write these bytes.
    Write(&'a [u8]),
    /// Flush the write cache.
    Flush,
}

/// What a request does, for the driver's operation code.
#[derive(Clone, Copy)]
pub enum Op {
    /// [`Io::Read`].
    Read,
    /// [`Io::Write`].
    Write,
    /// [`Io::Flush`].
    Flush,
}

impl<'a> Io<'a> {
    /// The operation, the bytes it moves, where a read's bytes go and
    /// where a write's come from.
    pub fn split(self) -> (Op, usize, Option<&'a mut [u8]>, Option<&'a [u8]>) {
        match self {
            Io::Read(buf) => (Op::Read, buf.len(), Some(buf), None),
            Io::Write(data) => (Op::Write, data.len(), None, Some(data)),
            Io::Flush => (Op::Flush, 0, None, None),
        }
    }
}

/// A disk whose driver moves at most [`Chunked::CHUNK`] bytes a request
/// through its one slot (virtio-blk, blkfront). [`Disk`] serves
/// [`Block`] over it: the checks every backend makes, the split of large
/// reads and writes into requests, and flushes only of a disk with a
/// write cache.
pub trait Chunked: Send + Sync + 'static {
    /// The most data one request carries.
    const CHUNK: usize;
    /// The disk's geometry.
    fn geometry(&self) -> BlockInfo;
    /// Whether it has a write cache to flush.
    fn caches_writes(&self) -> bool;
    /// One request from `sector` on, of at most `CHUNK` bytes.
    fn request<'a>(
        &'a self,
        sector: u64,
        io: Io<'a>,
    ) -> impl Future<Output = Result<(), BlockError>> + Send + 'a;
}

/// [`Block`] over a [`Chunked`] disk.
pub struct Disk<C>(pub C);

impl<C: Chunked> Disk<C> {
    /// The sector at which chunk `i` of a request from `sector` starts.
    fn chunk_start(&self, sector: u64, i: usize) -> u64 {
        sector + (i * (C::CHUNK / self.0.geometry().sector_size as usize)) as u64
    }
}

impl<C: Chunked> Block for Disk<C> {
    fn info(&self) -> BlockInfo {
        self.0.geometry()
    }

    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            libos::block::check_request(&self.info(), sector, buf.len())?;
            for (i, chunk) in buf.chunks_mut(C::CHUNK).enumerate() {
                let at = self.chunk_start(sector, i);
                self.0.request(at, Io::Read(chunk)).await?;
            }
            Ok(())
        })
    }

    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            libos::block::check_request(&self.info(), sector, data.len())?;
            if !self.info().writable {
                return Err(BlockError::ReadOnly);
            }
            for (i, chunk) in data.chunks(C::CHUNK).enumerate() {
                let at = self.chunk_start(sector, i);
                self.0.request(at, Io::Write(chunk)).await?;
            }
            Ok(())
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        Box::pin(async move {
            if !self.0.caches_writes() {
                // No write cache to flush: writes are durable.
                return Ok(());
            }
            self.0.request(0, Io::Flush).await
        })
    }
}
