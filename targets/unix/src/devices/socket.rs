//! `stack::socket()`: the host's own TCP/IP stack, through tokio.
//!
//! A listener that is dropped is *parked*, not closed: the next `listen` on
//! its port takes it back. A job restarted by a hot reload therefore finds
//! its port still bound, and clients see no refused connection in between.
//! Before a reload the runner [pauses](Socket::pause) the stack (listeners
//! stop taking connections, which queue in the kernel) and waits for the
//! connections in flight to finish; one dropped while still open is closed
//! with a FIN after its unread input is drained, never with a reset.
use super::io_error;
use libos::net::Accepted;
use libos::{BoxFuture, Flow, FlowError, Listener, NetError, Stack, UdpSocket};
use std::collections::HashMap;
use std::io::{
    self,
    ErrorKind::{ConnectionAborted, ConnectionReset},
};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket as TokioUdp};

/// The host's sockets (`stack::socket()`). Clones share the stack.
#[derive(Clone)]
pub struct Socket(Arc<Shared>);

struct Shared {
    parked: Mutex<HashMap<u16, TcpListener>>,
    /// The ports jobs listen on now.
    listening: Mutex<std::collections::BTreeSet<u16>>,
    paused: tokio::sync::watch::Sender<bool>,
    live: Arc<AtomicUsize>,
}

impl Socket {
    /// The host stack, listening on every address.
    pub fn new() -> Result<Socket, super::InitError> {
        Ok(Socket(Arc::new(Shared {
            parked: Mutex::default(),
            listening: Mutex::default(),
            paused: tokio::sync::watch::Sender::new(false),
            live: Arc::default(),
        })))
    }

    /// Stops (`true`) or resumes (`false`) handing out new connections.
    pub fn pause(&self, paused: bool) {
        self.0.paused.send_replace(paused);
    }

    /// How many connections are open.
    pub fn open_flows(&self) -> usize {
        self.0.live.load(Ordering::Acquire)
    }

    fn flow(&self, stream: TcpStream) -> Box<dyn Flow> {
        let _ = stream.set_nodelay(true);
        self.0.live.fetch_add(1, Ordering::AcqRel);
        Box::new(SocketFlow {
            stream: Some(stream),
            live: self.0.live.clone(),
        })
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
                .0
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
            self.0
                .listening
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(port);
            Ok(Box::new(SocketListener {
                listener: Some(listener),
                port,
                stack: self.clone(),
            }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await.map_err(|e| net_error(&e))?;
            Ok(self.flow(stream))
        })
    }

    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        Box::pin(async move {
            let socket = TokioUdp::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                .await
                .map_err(|e| net_error(&e))?;
            let port = socket.local_addr().map_err(|e| net_error(&e))?.port();
            Ok(Box::new(SocketUdp { socket, port }) as Box<dyn UdpSocket>)
        })
    }

    fn describe(&self) -> Vec<String> {
        let ports = |m: &Mutex<std::collections::BTreeSet<u16>>| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect::<Vec<_>>()
        };
        let mut parked: Vec<u16> = self
            .0
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        parked.sort_unstable();
        vec![
            format!("listening on {:?} (host sockets)", ports(&self.0.listening)),
            format!("{} connection(s) open", self.open_flows()),
            format!("parked for the next listen: {parked:?}"),
        ]
    }
}

struct SocketListener {
    listener: Option<TcpListener>,
    port: u16,
    stack: Socket,
}

impl Listener for SocketListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Accepted, NetError>> {
        Box::pin(async move {
            let listener = self.listener.as_ref().ok_or(NetError::Down)?;
            let mut paused = self.stack.0.paused.subscribe();
            loop {
                // While paused, connections wait in the kernel's backlog.
                if paused.wait_for(|p| !*p).await.is_err() {
                    return Err(NetError::Down);
                }
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = paused.changed() => continue,
                };
                match accepted {
                    Ok((stream, SocketAddr::V4(peer))) => {
                        return Ok((self.stack.flow(stream), peer));
                    }
                    // Listening on 0.0.0.0 takes only IPv4 peers.
                    Ok((_, SocketAddr::V6(_))) => continue,
                    // A connection that died before it was accepted is the
                    // client's problem, not the listener's.
                    Err(e) if matches!(e.kind(), ConnectionAborted | ConnectionReset) => continue,
                    Err(e) => return Err(net_error(&e)),
                }
            }
        })
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        self.stack
            .0
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.port);
        if let Some(l) = self.listener.take() {
            self.stack
                .0
                .parked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.port, l);
        }
    }
}

struct SocketFlow {
    /// `None` only while being dropped.
    stream: Option<TcpStream>,
    live: Arc<AtomicUsize>,
}

impl SocketFlow {
    fn stream(&mut self) -> Result<&mut TcpStream, FlowError> {
        self.stream.as_mut().ok_or(FlowError::Closed)
    }
}

impl Flow for SocketFlow {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move { self.stream()?.read(buf).await.map_err(|e| flow_error(&e)) })
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move { self.stream()?.write(data).await.map_err(|e| flow_error(&e)) })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        Box::pin(async move { self.stream()?.shutdown().await.map_err(|e| flow_error(&e)) })
    }
}

/// How long a dropped connection may take to drain before it is closed.
const LINGER: Duration = Duration::from_secs(2);

impl Drop for SocketFlow {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        // Closing a socket with unread input makes the kernel send a reset;
        // send our FIN and drain instead, off the job's back.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 4096];
                let _ = tokio::time::timeout(LINGER, async {
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            });
        }
    }
}

/// A UDP socket of the host.
struct SocketUdp {
    socket: TokioUdp,
    port: u16,
}

impl UdpSocket for SocketUdp {
    fn send_to<'a>(
        &'a mut self,
        data: &'a [u8],
        to: SocketAddrV4,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            match self.socket.send_to(data, to).await {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    Err(NetError::FrameTooLarge {
                        len: data.len(),
                        mtu: 65_507,
                    })
                }
                Err(e) => Err(net_error(&e)),
            }
        })
    }

    fn recv_from<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> BoxFuture<'a, Result<(usize, SocketAddrV4), NetError>> {
        Box::pin(async move {
            loop {
                let (n, from) = self
                    .socket
                    .recv_from(buf)
                    .await
                    .map_err(|e| net_error(&e))?;
                // Bound to an IPv4 address, the socket hears only IPv4.
                if let SocketAddr::V4(from) = from {
                    return Ok((n, from));
                }
            }
        })
    }

    fn port(&self) -> u16 {
        self.port
    }
}
