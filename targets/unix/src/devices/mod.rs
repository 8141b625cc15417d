//! Host devices: libos's device traits implemented over a Unix host.
//!
//! Each file holds one device and is named for it:
//!
//! - [`console::Stdout`] — the process's standard output ([`libos::Console`]);
//! - [`clock::Mono`] and [`clock::Wall`] — the host's monotonic and real-time
//!   clocks ([`libos::MonoClock`], [`libos::WallClock`]);
//! - [`time::Tokio`] — sleeping on tokio's timer ([`libos::Time`]);
//! - [`random::Host`] — bytes from `/dev/urandom` ([`libos::Random`]);
//! - [`kv_dir::Dir`] — a store with one file per key in a directory, whose
//!   writes survive a crash whole or not at all ([`libos::Kv`]);
//! - [`block_file::File`] — a block device backed by a file of 512-byte
//!   sectors ([`libos::Block`]);
//! - [`socket::Socket`] — the host's TCP/IP stack through tokio
//!   ([`libos::Stack`]);
//! - [`tap::Tap`] — a Linux tap device carrying Ethernet frames
//!   ([`libos::Netif`]), for `stack::direct` on a real network.
//!
//! Every constructor returns [`InitError`], naming the device and the path
//! it could not use; once made, a device reports failures through its kind's
//! own error enum from libos. Devices that touch files do their (small,
//! bounded) blocking I/O inside their futures rather than on a thread pool:
//! a value or a sector is read or written in one system call or a few, and
//! keeping it inline keeps the devices independent of tokio.
//!
//! The devices are `Send + Sync` and need no lock of their own: standard
//! output has the process-wide stdout lock, and files are read and written by
//! offset (`pread`/`pwrite`) or replaced by `rename`, which the kernel
//! serialises.
use libos::IoError;
use std::{io, path::PathBuf};

pub mod block_file;
pub mod clock;
pub mod console;
pub mod kv_dir;
pub mod random;
pub mod socket;
pub mod tap;
pub mod time;

/// Why a host device could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A file or directory the device needs could not be used.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// The device and what it was doing, `kv::dir: cannot create the directory`.
        what: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// The host's reason.
        source: io::Error,
    },
    /// The device's parameters or its backing file are not usable.
    #[error("{what}")]
    Invalid {
        /// What is wrong, naming the device and the path.
        what: String,
    },
}

impl InitError {
    /// An [`InitError::Io`] for `what` on `path`.
    pub(crate) fn io(what: &str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            path: path.into(),
            source,
        }
    }
}

/// The portable form of a host I/O failure: a full disk is
/// [`IoError::NoSpace`]; anything else keeps its `errno`.
pub(crate) fn io_error(e: &io::Error) -> IoError {
    if matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) {
        return IoError::NoSpace;
    }
    match e.raw_os_error() {
        Some(code) => IoError::Os(code),
        None if e.kind() == io::ErrorKind::UnexpectedEof => IoError::Other("the file ended early"),
        None => IoError::Other("host I/O failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disks_are_no_space_and_other_errors_keep_their_errno() {
        assert_eq!(
            io_error(&io::Error::from_raw_os_error(28)),
            IoError::NoSpace
        );
        assert_eq!(io_error(&io::Error::from_raw_os_error(13)), IoError::Os(13));
        assert_eq!(
            io_error(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            IoError::Other("the file ended early")
        );
    }

    #[test]
    fn init_errors_name_the_device_the_path_and_the_cause() {
        let e = InitError::io(
            "kv::dir: cannot create the directory",
            "/nope",
            io::Error::from_raw_os_error(13),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("kv::dir: cannot create the directory /nope: "),
            "{text}"
        );
        assert!(text.contains("os error 13"), "{text}");
    }
}
