//! The console: where a job's text output goes.
use crate::BoxFuture;
use alloc::{boxed::Box, format};

/// Why a console write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    /// The console's sink is gone (a closed pipe, a stopped monitor).
    #[error("console closed")]
    Closed,
    /// The backend failed.
    #[error("console I/O: {0}")]
    Io(#[from] crate::IoError),
}

/// A text console (MirageOS: `Mirage_console`).
pub trait Console: Send + Sync {
    /// Writes `text` as one unit: concurrent writes never interleave inside it.
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>>;

    /// Writes `line` followed by a newline.
    fn log<'a>(&'a self, line: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        Box::pin(async move { self.write(&format!("{line}\n")).await })
    }
}

crate::delegate_arc!(Console {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>>;
    fn log<'a>(&'a self, line: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>>;
});
