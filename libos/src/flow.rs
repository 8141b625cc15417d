//! Flows: ordered, reliable byte streams (a TCP connection, a TLS session).
use crate::BoxFuture;
use alloc::boxed::Box;

/// Why a flow operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The peer reset the connection.
    #[error("connection reset by peer")]
    Reset,
    /// The flow was closed for writing.
    #[error("the flow is closed")]
    Closed,
    /// The peer broke the protocol running over the flow (a TLS alert).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The backend failed.
    #[error("flow I/O: {0}")]
    Io(#[from] crate::IoError),
}

/// A byte stream (MirageOS: `Mirage_flow`).
pub trait Flow: Send {
    /// Reads into `buf`; `Ok(0)` means the peer finished sending.
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>>;
    /// Writes some of `data`, returning how much.
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>>;
    /// Finishes sending; reads may continue until the peer closes too.
    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>>;

    /// Writes all of `data`.
    fn write_all<'a>(&'a mut self, mut data: &'a [u8]) -> BoxFuture<'a, Result<(), FlowError>> {
        Box::pin(async move {
            while !data.is_empty() {
                match self.write(data).await? {
                    0 => return Err(FlowError::Closed),
                    n => data = &data[n..],
                }
            }
            Ok(())
        })
    }
}

impl<T: Flow + ?Sized> Flow for Box<T> {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        (**self).read(buf)
    }
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        (**self).write(data)
    }
    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        (**self).close()
    }
}
