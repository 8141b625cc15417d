//! The I/O failure shared by the kinds whose backends touch storage.

/// A failure reported by a device's backend (a host file, a hypercall).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// The backend has no such object.
    #[error("not found")]
    NotFound,
    /// The backend refused the operation.
    #[error("permission denied")]
    PermissionDenied,
    /// The backend is full.
    #[error("no space left")]
    NoSpace,
    /// An operating-system error number from the host.
    #[error("host error {0}")]
    Os(i32),
    /// A failure with no more precise description.
    #[error("{0}")]
    Other(&'static str),
}
