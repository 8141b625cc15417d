//! Block devices: fixed-size sectors read and written by number.
//!
//! Besides the trait, this module has one portable device, [`Mem`]: sectors
//! kept in memory.
use crate::BoxFuture;
use alloc::{boxed::Box, collections::BTreeMap};

/// The geometry of a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes per sector (a power of two, usually 512).
    pub sector_size: u32,
    /// Number of sectors.
    pub sectors: u64,
    /// Whether writes are allowed.
    pub writable: bool,
}

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The request reaches past the last sector.
    #[error("sectors {start}..{end} are past the end of the device ({sectors} sectors)")]
    OutOfRange {
        /// First sector asked for.
        start: u64,
        /// One past the last sector asked for.
        end: u64,
        /// Sectors on the device.
        sectors: u64,
    },
    /// The buffer is not a whole number of sectors.
    #[error("a buffer of {len} bytes is not a whole number of {sector_size}-byte sectors")]
    Unaligned {
        /// The buffer's length.
        len: usize,
        /// The device's sector size.
        sector_size: u32,
    },
    /// The device is read-only.
    #[error("the device is read-only")]
    ReadOnly,
    /// The backend failed.
    #[error("block I/O: {0}")]
    Io(#[from] crate::IoError),
}

/// A block device (MirageOS: `Mirage_block`).
pub trait Block: Send + Sync {
    /// The device's geometry.
    fn info(&self) -> BlockInfo;
    /// Reads `buf.len() / sector_size` sectors starting at `sector`.
    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>>;
    /// Writes `data` to the sectors starting at `sector`.
    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>>;
    /// Makes every completed write durable.
    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>>;
}

crate::delegate_arc!(Block {
    fn info(&self) -> BlockInfo;
    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>>;
    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>>;
    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>>;
});

/// Checks a request of `len` bytes at `sector` against `info`, so every
/// backend rejects the same requests the same way.
pub fn check_request(info: &BlockInfo, sector: u64, len: usize) -> Result<(), BlockError> {
    let size = info.sector_size as usize;
    if size == 0 || !len.is_multiple_of(size) {
        return Err(BlockError::Unaligned {
            len,
            sector_size: info.sector_size,
        });
    }
    let count = (len / size) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= info.sectors => Ok(()),
        end => Err(BlockError::OutOfRange {
            start: sector,
            end: end.unwrap_or(u64::MAX),
            sectors: info.sectors,
        }),
    }
}

/// An in-memory block device (`block::mem(size)`): fast, and gone when the
/// program ends. Sectors never written read as zeros, and only sectors holding
/// something other than zeros take memory, so a large device costs only what
/// is written to it.
pub struct Mem {
    info: BlockInfo,
    /// Non-zero sectors by number, each `sector_size` bytes long.
    sectors: spin::Mutex<BTreeMap<u64, Box<[u8]>>>,
}

impl Mem {
    /// A writable device of `sectors` sectors of `sector_size` bytes (a power
    /// of two, usually 512), all zeros.
    pub fn new(sectors: u64, sector_size: u32) -> Self {
        Self {
            info: BlockInfo {
                sector_size,
                sectors,
                writable: true,
            },
            sectors: spin::Mutex::new(BTreeMap::new()),
        }
    }
}

impl Block for Mem {
    fn info(&self) -> BlockInfo {
        self.info
    }

    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            check_request(&self.info, sector, buf.len())?;
            let stored = self.sectors.lock();
            let chunks = buf.chunks_exact_mut(self.info.sector_size as usize);
            for (n, chunk) in (sector..).zip(chunks) {
                match stored.get(&n) {
                    Some(data) => chunk.copy_from_slice(data),
                    None => chunk.fill(0),
                }
            }
            Ok(())
        })
    }

    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            check_request(&self.info, sector, data.len())?;
            let mut stored = self.sectors.lock();
            let chunks = data.chunks_exact(self.info.sector_size as usize);
            for (n, chunk) in (sector..).zip(chunks) {
                if chunk.iter().all(|&b| b == 0) {
                    stored.remove(&n);
                } else {
                    stored.insert(n, chunk.into());
                }
            }
            Ok(())
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::block_on;
    use alloc::vec;

    #[test]
    fn mem_reads_back_writes_and_zeros_elsewhere() {
        let disk = Mem::new(8, 512);
        assert_eq!(
            disk.info(),
            BlockInfo {
                sector_size: 512,
                sectors: 8,
                writable: true
            }
        );
        block_on(async {
            let data: alloc::vec::Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8 + 1).collect();
            disk.write(2, &data).await.unwrap();
            disk.write(7, &[0xab; 512]).await.unwrap();
            disk.flush().await.unwrap();

            let mut all = vec![0xffu8; 4096];
            disk.read(0, &mut all).await.unwrap();
            assert_eq!(&all[1024..2048], &data[..]);
            assert_eq!(&all[3584..], &[0xab; 512][..]);
            assert!(all[..1024].iter().chain(&all[2048..3584]).all(|&b| b == 0));

            disk.write(7, &[0; 512]).await.unwrap();
            let mut one = [0xffu8; 512];
            disk.read(7, &mut one).await.unwrap();
            assert_eq!(
                one, [0; 512],
                "a sector overwritten with zeros reads as zeros"
            );
            assert_eq!(disk.sectors.lock().len(), 2, "and takes no memory");
        });
    }
}
