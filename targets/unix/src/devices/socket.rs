//! `stack::socket()`: the host's own TCP/IP stack, through tokio.
//!
//! A listener that is dropped is *parked*, not closed: the next `listen` on
//! its port takes it back. A job restarted by a hot reload therefore finds
//! its port still bound, and clients see no refused connection in between.
use super::io_error;
use libos::net::Accepted;
use libos::{BoxFuture, Flow, FlowError, Listener, NetError, Stack};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The host's sockets (`stack::socket()`).
#[derive(Default)]
pub struct Socket {
    parked: Arc<Mutex<HashMap<u16, TcpListener>>>,
}

impl Socket {
    /// The host stack, listening on every address.
    pub fn new() -> Result<Socket, super::InitError> {
        Ok(Socket::default())
    }
}

fn net_error(e: &io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::AddrInUse => NetError::AddrInUse,
        io::ErrorKind::ConnectionRefused => NetError::Refused,
        _ => NetError::Io(io_error(e)),
    }
}

fn flow_error(e: &io::Error) -> FlowError {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => FlowError::Reset,
        io::ErrorKind::BrokenPipe => FlowError::Closed,
        _ => FlowError::Io(io_error(e)),
    }
}

impl Stack for Socket {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>> {
        Box::pin(async move {
            let parked = self
                .parked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&port);
            let listener = match parked {
                Some(l) => l,
                None => TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                    .await
                    .map_err(|e| net_error(&e))?,
            };
            Ok(Box::new(SocketListener {
                listener: Some(listener),
                port,
                parked: self.parked.clone(),
            }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await.map_err(|e| net_error(&e))?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(SocketFlow(stream)) as Box<dyn Flow>)
        })
    }
}

struct SocketListener {
    listener: Option<TcpListener>,
    port: u16,
    parked: Arc<Mutex<HashMap<u16, TcpListener>>>,
}

impl Listener for SocketListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Accepted, NetError>> {
        Box::pin(async move {
            let listener = self.listener.as_ref().ok_or(NetError::Down)?;
            loop {
                match listener.accept().await {
                    Ok((stream, SocketAddr::V4(peer))) => {
                        let _ = stream.set_nodelay(true);
                        return Ok((Box::new(SocketFlow(stream)) as Box<dyn Flow>, peer));
                    }
                    // Listening on 0.0.0.0 takes only IPv4 peers.
                    Ok((_, SocketAddr::V6(_))) => continue,
                    // A connection that died before it was accepted is the
                    // client's problem, not the listener's.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(net_error(&e)),
                }
            }
        })
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            self.parked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.port, l);
        }
    }
}

struct SocketFlow(TcpStream);

impl Flow for SocketFlow {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move { self.0.read(buf).await.map_err(|e| flow_error(&e)) })
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move { self.0.write(data).await.map_err(|e| flow_error(&e)) })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        Box::pin(async move { self.0.shutdown().await.map_err(|e| flow_error(&e)) })
    }
}
