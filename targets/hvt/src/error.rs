//! Why a guest could not be booted or served.
use crate::boot::BootError;
use crate::elf::ElfError;
use std::path::PathBuf;

/// Why the guest could not be booted.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The image cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The image.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The image is not a bootable ELF.
    #[error("{}: {source}", path.display())]
    Elf {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        source: ElfError,
    },
    /// The image has no nym manifest.
    #[error("{}: not a nym image (no manifest note); build images with `nym build --target kvm`", .0.display())]
    NoManifest(PathBuf),
    /// The image needs a device it was not given.
    #[error("the image uses {0}, but the monitor was given none")]
    MissingDevice(&'static str),
    /// Guest memory and its layout.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The block file.
    #[error("block file {}: {source}", path.display())]
    Block {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The host's entropy source cannot be read: no guest boots without one.
    #[error("cannot read the entropy source {}: {source} (the monitor boots no guest without entropy)", path.display())]
    Entropy {
        /// The source, `/dev/urandom`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The allowlist could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The guest's network could not be set up.
    #[error("setting up the guest's network: {0}")]
    Net(std::io::Error),
    /// The gdb connection failed.
    #[error("gdb stub: {what}: {source}")]
    Gdb {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// KVM refused something.
    #[error("KVM: {what}: {source}\n  hint: is /dev/kvm present and accessible to you?")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: kvm_ioctls::Error,
    },
}

pub(crate) fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> MonitorError {
    move |source| MonitorError::Kvm { what, source }
}
