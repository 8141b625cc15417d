//! A block device on the host: a file of 512-byte sectors.
use super::{io_error, InitError};
use libos::{block::check_request, Block, BlockError, BlockInfo, BoxFuture};
use std::{fs, io, os::unix::fs::FileExt, path::Path};

/// Bytes per sector.
const SECTOR_SIZE: u32 = 512;

/// A block device backed by a host file (`block::file(path, size)`).
///
/// Reads and writes go to an offset (`pread`/`pwrite`), so concurrent
/// requests need no lock; a flush syncs the file's data to disk.
pub struct File {
    file: fs::File,
    info: BlockInfo,
}

impl File {
    /// Opens the file at `path` read-write. A missing (or empty) file is
    /// created with `size_bytes` of zeros; an existing one keeps its size.
    /// Both sizes must be a positive multiple of 512.
    pub fn open(path: impl AsRef<Path>, size_bytes: u64) -> Result<Self, InitError> {
        let path = path.as_ref();
        let invalid = |why: String| InitError::Invalid {
            what: format!("block::file {}: {why}", path.display()),
        };
        if size_bytes == 0 || !size_bytes.is_multiple_of(u64::from(SECTOR_SIZE)) {
            return Err(invalid(format!(
                "a size of {size_bytes} bytes is not a positive multiple of {SECTOR_SIZE}"
            )));
        }
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true);
        // `create_new` first, so a file someone else made is never resized.
        let file = match options.clone().create_new(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options
                .open(path)
                .map_err(|e| InitError::io("block::file: cannot open", path, e))?,
            other => other.map_err(|e| InitError::io("block::file: cannot create", path, e))?,
        };
        let meta = file
            .metadata()
            .map_err(|e| InitError::io("block::file: cannot inspect", path, e))?;
        if !meta.is_file() {
            return Err(invalid("is not a regular file".into()));
        }
        let mut len = meta.len();
        if len == 0 {
            // Just created, or created by a run that died before sizing it.
            file.set_len(size_bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| InitError::io("block::file: cannot size", path, e))?;
            len = size_bytes;
        }
        if !len.is_multiple_of(u64::from(SECTOR_SIZE)) {
            return Err(invalid(format!(
                "the file is {len} bytes, not a whole number of {SECTOR_SIZE}-byte sectors"
            )));
        }
        let info = BlockInfo {
            sector_size: SECTOR_SIZE,
            sectors: len / u64::from(SECTOR_SIZE),
            writable: true,
        };
        Ok(Self { file, info })
    }

    /// The byte offset of a request of `len` bytes at `sector`, once
    /// `check_request` has kept it inside the file (so it cannot overflow).
    fn offset(&self, sector: u64, len: usize) -> Result<u64, BlockError> {
        check_request(&self.info, sector, len)?;
        Ok(sector * u64::from(SECTOR_SIZE))
    }
}

impl Block for File {
    fn info(&self) -> BlockInfo {
        self.info
    }

    fn read<'a>(&'a self, sector: u64, buf: &'a mut [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            let at = self.offset(sector, buf.len())?;
            self.file.read_exact_at(buf, at).map_err(block_error)
        })
    }

    fn write<'a>(&'a self, sector: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), BlockError>> {
        Box::pin(async move {
            let at = self.offset(sector, data.len())?;
            self.file.write_all_at(data, at).map_err(block_error)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BlockError>> {
        Box::pin(async move { self.file.sync_data().map_err(block_error) })
    }
}

fn block_error(e: io::Error) -> BlockError {
    BlockError::Io(io_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block contract every backend keeps (libos::conformance), on a
    /// host file: and the file neither grows nor shrinks.
    #[tokio::test(flavor = "current_thread")]
    async fn keeps_the_block_contract_and_the_file_its_size() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk.img");
        let sectors = libos::conformance::BLOCK_MIN_SECTORS;
        let disk = File::open(&path, sectors * 512).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), sectors * 512);
        assert_eq!(libos::conformance::block(&disk).await, Ok(8));
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            sectors * 512,
            "refused writes did not grow the file"
        );
        libos::conformance::mark(&disk, 3).await.unwrap();
        drop(disk);
        let disk = File::open(&path, 1024).unwrap();
        assert_eq!(libos::conformance::marked(&disk, 3).await, Ok(true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn data_persists_and_an_existing_file_keeps_its_size() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk.img");
        {
            let disk = File::open(&path, 4 * 512).unwrap();
            disk.write(3, &[7u8; 512]).await.unwrap();
            disk.flush().await.unwrap();
        }
        let disk = File::open(&path, 64 * 512).unwrap();
        assert_eq!(
            disk.info().sectors,
            4,
            "the size argument only applies to a new file"
        );
        let mut buf = [0u8; 512];
        disk.read(3, &mut buf).await.unwrap();
        assert_eq!(buf, [7u8; 512]);
    }

    #[test]
    fn an_empty_file_left_by_a_crash_is_sized() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk.img");
        fs::write(&path, b"").unwrap();
        assert_eq!(File::open(&path, 1024).unwrap().info().sectors, 2);
    }

    #[test]
    fn bad_sizes_are_invalid_and_name_the_device_and_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk.img");
        for size in [0, 1, 511, 1000] {
            let err = File::open(&path, size)
                .err()
                .expect("a bad size is refused");
            assert!(matches!(err, InitError::Invalid { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("block::file") && text.contains("disk.img"),
                "{text}"
            );
        }
        assert!(!path.exists(), "nothing is created for a bad size");

        fs::write(&path, [0u8; 1000]).unwrap();
        let err = File::open(&path, 1024)
            .err()
            .expect("a ragged file is refused");
        assert!(matches!(err, InitError::Invalid { .. }), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().len(), 1000, "and left alone");

        let err = File::open(tmp.path(), 1024)
            .err()
            .expect("a directory is not a disk");
        assert!(matches!(err, InitError::Io { .. }), "{err}");
    }
}
