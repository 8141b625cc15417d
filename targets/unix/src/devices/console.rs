//! The console on the host: the process's standard output.
use super::{io_error, InitError};
use libos::{BoxFuture, Console, ConsoleError};
use std::io::{self, Write};

/// A console writing to standard output (`console::stdout()`).
pub struct Stdout {
    _private: (),
}

impl Stdout {
    /// The process's standard output.
    pub fn new() -> Result<Self, InitError> {
        Ok(Self { _private: () })
    }
}

impl Console for Stdout {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        // Holding the stdout lock over the whole write and its flush is what
        // keeps concurrent writes (and `println!`s) from interleaving inside it.
        Box::pin(async move { write_whole(&mut io::stdout().lock(), text) })
    }
}

/// Writes all of `text` to `out` and flushes it.
fn write_whole(out: &mut impl Write, text: &str) -> Result<(), ConsoleError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => ConsoleError::Closed,
            _ => ConsoleError::Io(io_error(&e)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn writes_and_logs_reach_stdout_without_error() {
        let console = Stdout::new().unwrap();
        console.write("console test: a write, ").await.unwrap();
        console.log("then a line").await.unwrap();
        console.write("").await.unwrap();
    }

    /// A sink whose reader has gone away after `room` bytes.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.got.len());
            if n == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_is_whole_and_a_broken_pipe_is_closed() {
        let mut pipe = Pipe {
            got: Vec::new(),
            room: 8,
        };
        assert_eq!(write_whole(&mut pipe, "hello"), Ok(()));
        assert_eq!(pipe.got, b"hello");
        assert_eq!(write_whole(&mut pipe, "world"), Err(ConsoleError::Closed));
        assert_eq!(
            pipe.got, b"hellowor",
            "everything that fit was written before the error"
        );
    }

    #[test]
    fn other_failures_keep_their_errno() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(5))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(
            write_whole(&mut Full, "x"),
            Err(ConsoleError::Io(libos::IoError::Os(5)))
        );
    }
}
