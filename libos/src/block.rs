//! Block devices: fixed-size sectors read and written by number.
use crate::BoxFuture;

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
