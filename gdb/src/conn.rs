//! gdb's connection over TCP, read and written a packet at a time.
//!
//! gdbstub hands its connection one byte at a time, and its own `TcpStream`
//! connection makes a system call for each (two to read one: blocking mode
//! on, then the read): a `stepi` with its register and stack reads cost
//! hundreds. Here bytes are read as they arrive, as many as there are, and
//! written out when gdbstub flushes a reply, or before the stub waits on
//! the connection (so an acknowledgement never sits in the buffer while
//! the guest runs).
use gdbstub::conn::{Connection, ConnectionExt};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A TCP connection to gdb with a buffer each way.
pub struct TcpConnection {
    stream: TcpStream,
    inbox: Vec<u8>,
    /// How much of `inbox` is read.
    taken: usize,
    outbox: Vec<u8>,
    /// Whether the socket is in non-blocking mode now.
    nonblocking: bool,
}

impl TcpConnection {
    /// Wraps a connection gdb made.
    pub fn new(stream: TcpStream) -> TcpConnection {
        TcpConnection {
            stream,
            inbox: Vec::with_capacity(4096),
            taken: 0,
            outbox: Vec::with_capacity(4096),
            nonblocking: false,
        }
    }

    fn blocking(&mut self, block: bool) -> io::Result<()> {
        if self.nonblocking == block {
            self.stream.set_nonblocking(!block)?;
            self.nonblocking = !block;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        if !self.outbox.is_empty() {
            self.blocking(true)?;
            Write::write_all(&mut self.stream, &self.outbox)?;
            self.outbox.clear();
        }
        Ok(())
    }

    /// Reads what has arrived (waiting for something if `block`): `false`
    /// when nothing had.
    fn fill(&mut self, block: bool) -> io::Result<bool> {
        self.send()?;
        self.blocking(block)?;
        let mut buf = [0u8; 4096];
        match Read::read(&mut self.stream, &mut buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.inbox.clear();
                self.inbox.extend_from_slice(&buf[..n]);
                self.taken = 0;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Connection for TcpConnection {
    type Error = io::Error;

    fn write(&mut self, byte: u8) -> io::Result<()> {
        self.outbox.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.outbox.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }

    fn on_session_start(&mut self) -> io::Result<()> {
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for TcpConnection {
    fn read(&mut self) -> io::Result<u8> {
        while self.taken == self.inbox.len() {
            self.fill(true)?;
        }
        self.taken += 1;
        Ok(self.inbox[self.taken - 1])
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.taken == self.inbox.len() && !self.fill(false)? {
            return Ok(None);
        }
        Ok(Some(self.inbox[self.taken]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn bytes_come_in_order_and_replies_leave_whole_when_flushed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut gdb = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut conn = TcpConnection::new(listener.accept().unwrap().0);
        assert_eq!(ConnectionExt::peek(&mut conn).unwrap(), None, "nothing yet");
        Write::write_all(&mut gdb, b"$g#67").unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(ConnectionExt::read(&mut conn).unwrap());
        }
        assert_eq!(got, b"$g#67");
        assert_eq!(ConnectionExt::peek(&mut conn).unwrap(), None);
        Connection::write(&mut conn, b'+').unwrap();
        Connection::write_all(&mut conn, b"$OK#9a").unwrap();
        gdb.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            Read::read(&mut gdb, &mut buf).is_err(),
            "nothing leaves before a flush"
        );
        Connection::flush(&mut conn).unwrap();
        let n = Read::read(&mut gdb, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"+$OK#9a");
        // A pending acknowledgement leaves before the stub waits.
        Connection::write(&mut conn, b'+').unwrap();
        assert_eq!(ConnectionExt::peek(&mut conn).unwrap(), None);
        let n = Read::read(&mut gdb, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"+");
        drop(gdb);
        assert!(
            ConnectionExt::read(&mut conn).is_err(),
            "gdb gone is an error, not a hang"
        );
    }
}
