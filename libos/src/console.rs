//! The console: where a job's text output goes.
use crate::BoxFuture;
use alloc::{boxed::Box, string::String};

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
        Box::pin(async move {
            // Copied, not `format!`ted: formatting machinery costs a few
            // hundred instructions a line, and a unikernel's are dear.
            let mut text = String::with_capacity(line.len() + 1);
            text.push_str(line);
            text.push('\n');
            self.write(&text).await
        })
    }
}

crate::delegate_arc!(Console {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>>;
    fn log<'a>(&'a self, line: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>>;
});
