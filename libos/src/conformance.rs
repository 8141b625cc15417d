//! The contract every implementation of a device kind keeps, as code that
//! checks it: the tests run it on every backend (`block::mem`,
//! `block::file` in-process, nym's monitor's block device, virtio-blk over
//! virtio-mmio and over virtio-pci), and whoever writes a device can run it
//! on theirs. A check answers with the number of things it verified, or
//! with what was wrong.
use crate::{Block, BlockError};
use alloc::{format, string::String, vec, vec::Vec};

/// The least a device must hold for [`block`] (it writes everywhere but
/// the first two sectors, which [`mark`] uses).
pub const BLOCK_MIN_SECTORS: u64 = 300;

/// A byte of the test pattern: different for every sector and offset.
fn pattern(seed: u64, sector: u64, offset: usize) -> u8 {
    let x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(sector.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .wrapping_add(offset as u64);
    (x ^ (x >> 29)) as u8 | 1
}

fn sectors_of(seed: u64, first: u64, count: u64, size: usize) -> Vec<u8> {
    let mut data = vec![0; count as usize * size];
    for (i, chunk) in data.chunks_mut(size).enumerate() {
        for (o, b) in chunk.iter_mut().enumerate() {
            *b = pattern(seed, first + i as u64, o);
        }
    }
    data
}

fn fail(what: &str) -> String {
    String::from(what)
}

/// Sectors `first..first + count` as messages name them.
fn span(first: u64, count: usize) -> String {
    match count {
        1 => format!("{first}"),
        n => format!("{first}..{}", first + n as u64),
    }
}

/// Writes `data` at `sector`; an error names the request.
async fn put(dev: &dyn Block, sector: u64, data: &[u8], size: usize) -> Result<(), String> {
    let what = span(sector, data.len() / size);
    dev.write(sector, data)
        .await
        .map_err(|e| format!("write {what}: {e}"))
}

/// Reads `count` sectors at `sector`; an error names the request.
async fn get(dev: &dyn Block, sector: u64, count: usize, size: usize) -> Result<Vec<u8>, String> {
    let mut back = vec![0u8; count * size];
    dev.read(sector, &mut back)
        .await
        .map_err(|e| format!("read {}: {e}", span(sector, count)))?;
    Ok(back)
}

/// Checks `dev`'s block contract: its geometry; reads give back what was
/// written, one sector or many, across the device's request size (more
/// than 64 KiB at once), at the last sector; writes touch only their
/// sectors; out-of-range and unaligned requests are refused with the
/// right error and change nothing; flush succeeds. The device must be
/// writable and hold at least [`BLOCK_MIN_SECTORS`]; sectors 0 and 1 are
/// left alone.
pub async fn block(dev: &dyn Block) -> Result<usize, String> {
    let mut checks = 0;
    let info = dev.info();
    let size = info.sector_size as usize;
    if size != 512 {
        return Err(format!("sector size {size}, not 512"));
    }
    if !info.writable {
        return Err(fail("the device is read-only"));
    }
    if info.sectors < BLOCK_MIN_SECTORS {
        return Err(format!(
            "{} sectors; the check needs {BLOCK_MIN_SECTORS}",
            info.sectors
        ));
    }
    checks += 1;
    let last = info.sectors - 1;

    // One sector, then three at once next to it.
    let one = sectors_of(1, 2, 1, size);
    put(dev, 2, &one, size).await?;
    let three = sectors_of(1, 3, 3, size);
    put(dev, 3, &three, size).await?;
    let back = get(dev, 2, 4, size).await?;
    if back[..size] != one[..] || back[size..] != three[..] {
        return Err(fail("sectors 2..6 read back other bytes than written"));
    }
    checks += 1;

    // A run longer than one request of any backend (virtio-blk: 64 KiB).
    let run = 260u64;
    let big = sectors_of(2, 10, run, size);
    put(dev, 10, &big, size).await?;
    let back = get(dev, 10, run as usize, size).await?;
    if back != big {
        let at = back.iter().zip(&big).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!(
            "a {}-byte run read back differently at byte {at}",
            big.len()
        ));
    }
    checks += 1;

    // The neighbours of a write are untouched.
    let patch = sectors_of(3, 100, 1, size);
    put(dev, 100, &patch, size).await?;
    let around = get(dev, 99, 3, size).await?;
    if around[..size] != big[(99 - 10) * size..(100 - 10) * size]
        || around[size..2 * size] != patch[..]
        || around[2 * size..] != big[(101 - 10) * size..(102 - 10) * size]
    {
        return Err(fail("a one-sector write changed its neighbours"));
    }
    checks += 1;

    // The last sector, read and written.
    let end = sectors_of(4, last, 1, size);
    put(dev, last, &end, size).await?;
    if get(dev, last, 1, size).await? != end {
        return Err(fail("the last sector read back other bytes"));
    }
    checks += 1;

    // Out of range: past the end, and spanning it; nothing written.
    let mut buf = vec![0u8; 2 * size];
    match dev.read(info.sectors, &mut buf[..size]).await {
        Err(BlockError::OutOfRange { .. }) => {}
        other => return Err(format!("a read past the end gave {other:?}")),
    }
    match dev.write(last, &buf).await {
        Err(BlockError::OutOfRange { .. }) => {}
        other => return Err(format!("a write across the end gave {other:?}")),
    }
    match dev.read(u64::MAX, &mut buf[..size]).await {
        Err(BlockError::OutOfRange { .. }) => {}
        other => return Err(format!("a read at sector u64::MAX gave {other:?}")),
    }
    if get(dev, last, 1, size).await? != end {
        return Err(fail("a refused write changed the last sector"));
    }
    checks += 1;

    // Unaligned lengths.
    match dev.read(2, &mut buf[..100]).await {
        Err(BlockError::Unaligned { len: 100, .. }) => {}
        other => return Err(format!("a 100-byte read gave {other:?}")),
    }
    match dev.write(2, &buf[..size + 1]).await {
        Err(BlockError::Unaligned { .. }) => {}
        other => return Err(format!("a {}-byte write gave {other:?}", size + 1)),
    }
    checks += 1;

    dev.flush().await.map_err(|e| format!("flush: {e}"))?;
    checks += 1;
    Ok(checks)
}

/// Writes a mark of `seed` in sectors 0 and 1, flushed: what
/// [`marked`] finds after the device is opened again.
pub async fn mark(dev: &dyn Block, seed: u64) -> Result<(), String> {
    let data = sectors_of(seed, 0, 2, dev.info().sector_size as usize);
    dev.write(0, &data)
        .await
        .map_err(|e| format!("write the mark: {e}"))?;
    dev.flush()
        .await
        .map_err(|e| format!("flush the mark: {e}"))
}

/// Whether sectors 0 and 1 hold the mark of `seed`.
pub async fn marked(dev: &dyn Block, seed: u64) -> Result<bool, String> {
    let size = dev.info().sector_size as usize;
    let mut back = vec![0u8; 2 * size];
    dev.read(0, &mut back)
        .await
        .map_err(|e| format!("read the mark: {e}"))?;
    Ok(back == sectors_of(seed, 0, 2, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::block_on;

    #[test]
    fn block_mem_keeps_the_block_contract() {
        let disk = crate::block::Mem::new(BLOCK_MIN_SECTORS, 512);
        block_on(async {
            assert_eq!(block(&disk).await, Ok(8));
            assert_eq!(marked(&disk, 7).await, Ok(false));
            mark(&disk, 7).await.unwrap();
            assert_eq!(marked(&disk, 7).await, Ok(true));
            assert_eq!(marked(&disk, 8).await, Ok(false));
        });
    }

    /// A device that lies: the check must catch it.
    struct Liar(crate::block::Mem);

    impl Block for Liar {
        fn info(&self) -> crate::BlockInfo {
            self.0.info()
        }
        fn read<'a>(
            &'a self,
            sector: u64,
            buf: &'a mut [u8],
        ) -> crate::BoxFuture<'a, Result<(), BlockError>> {
            self.0.read(sector, buf)
        }
        fn write<'a>(
            &'a self,
            sector: u64,
            data: &'a [u8],
        ) -> crate::BoxFuture<'a, Result<(), BlockError>> {
            // Drops writes past 64 KiB, as a driver that forgot to split.
            let len = data.len().min(64 << 10);
            self.0.write(sector, &data[..len])
        }
        fn flush(&self) -> crate::BoxFuture<'_, Result<(), BlockError>> {
            self.0.flush()
        }
    }

    #[test]
    fn a_device_that_drops_long_writes_fails_the_check() {
        let disk = Liar(crate::block::Mem::new(BLOCK_MIN_SECTORS, 512));
        let err = block_on(block(&disk)).unwrap_err();
        assert!(err.contains("run read back differently"), "{err}");
    }

    #[test]
    fn too_small_a_device_is_said_so() {
        let disk = crate::block::Mem::new(8, 512);
        let err = block_on(block(&disk)).unwrap_err();
        assert!(err.contains("8 sectors"), "{err}");
    }
}
