//! Networking: raw Ethernet interfaces ([`Netif`]) and TCP/IP stacks
//! ([`Stack`]) that hand out [`Flow`]s.
//!
//! Portable implementations live in [`crate::stack`] (smoltcp over any
//! `Netif`) and [`crate::netif`] (in-memory links, a lossy wrapper); host
//! sockets and tap devices in `targets/unix`, the monitor's virtual link in
//! `targets/baremetal`.
use crate::kv::Versioned;
use crate::{BoxFuture, Flow, WallClock};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddrV4;

/// Why a network operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The address or port is taken.
    #[error("address in use")]
    AddrInUse,
    /// The peer refused the connection.
    #[error("connection refused")]
    Refused,
    /// The frame is larger than the interface's MTU.
    #[error("frame of {len} bytes exceeds the MTU of {mtu}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The interface's MTU.
        mtu: usize,
    },
    /// The device was configured with something it cannot use.
    #[error("bad network configuration: {0}")]
    BadConfig(&'static str),
    /// The interface or stack is shut down.
    #[error("the interface is down")]
    Down,
    /// A TLS device could not set up or complete a session.
    #[error("TLS: {0}")]
    Tls(&'static str),
    /// The backend failed.
    #[error("network I/O: {0}")]
    Io(#[from] crate::IoError),
}

/// A network interface carrying Ethernet frames (MirageOS: `Mirage_net`).
pub trait Netif: Send + Sync {
    /// The interface's MAC address.
    fn mac(&self) -> [u8; 6];
    /// The largest frame, in bytes, including the Ethernet header.
    fn mtu(&self) -> usize;
    /// Sends one frame.
    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>>;
    /// Receives one frame into `buf`, returning its length.
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>>;
    /// Whether the link cannot corrupt frames (memory to memory, as a
    /// unikernel's link to its monitor), so a stack over it may skip IP
    /// and TCP checksums both ways. Both ends must agree; the default is no.
    fn reliable(&self) -> bool {
        false
    }
}

crate::delegate_arc!(Netif {
    fn mac(&self) -> [u8; 6];
    fn mtu(&self) -> usize;
    fn reliable(&self) -> bool;
    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>>;
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>>;
});

/// An accepted connection and the peer's address.
pub type Accepted = (Box<dyn Flow>, SocketAddrV4);

/// A listening TCP socket.
pub trait Listener: Send {
    /// Waits for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, Result<Accepted, NetError>>;
}

/// Accepts connections on `listener` for as long as it works, running
/// `handle` for each one beside the others (in a [`Group`](crate::task::Group)),
/// so a slow or vanished client never holds up the rest: the accept loop
/// of a server job. Returns the error that ended accepting; the
/// connections still open are dropped with it.
///
/// ```
/// # use libos::{Flow, Listener};
/// # async fn job(mut listener: Box<dyn Listener>) -> Result<(), String> {
/// let err = libos::net::serve(&mut *listener, |mut flow, _peer| async move {
///     let _ = flow.write(b"hello\n").await;
/// })
/// .await;
/// Err(format!("accepting: {err}"))
/// # }
/// ```
pub async fn serve<'a, F, Fut>(listener: &mut dyn Listener, mut handle: F) -> NetError
where
    F: FnMut(Box<dyn Flow>, SocketAddrV4) -> Fut,
    Fut: core::future::Future<Output = ()> + Send + 'a,
{
    let mut conns = crate::task::Group::new();
    loop {
        match conns.alongside(listener.accept()).await {
            Ok((flow, peer)) => conns.push(handle(flow, peer)),
            Err(e) => return e,
        }
    }
}

/// Listens on `port`, with the error a server job returns when it cannot:
/// the port and why (`cannot listen on port 80: address in use`).
pub async fn listen<S: Stack + ?Sized>(stack: &S, port: u16) -> Result<Box<dyn Listener>, String> {
    stack
        .listen(port)
        .await
        .map_err(|e| alloc::format!("cannot listen on port {port}: {e}"))
}

/// A bound UDP socket: datagrams to and from any address.
pub trait UdpSocket: Send {
    /// Sends one datagram to `to`.
    fn send_to<'a>(
        &'a mut self,
        data: &'a [u8],
        to: SocketAddrV4,
    ) -> BoxFuture<'a, Result<(), NetError>>;
    /// Receives one datagram into `buf`: its length and sender. A datagram
    /// larger than `buf` is dropped with [`NetError::FrameTooLarge`].
    fn recv_from<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> BoxFuture<'a, Result<(usize, SocketAddrV4), NetError>>;
    /// The local port.
    fn port(&self) -> u16;
}

/// A TCP/IP stack (MirageOS: `Mirage_stack`).
pub trait Stack: Send + Sync {
    /// Listens for TCP connections on `port`.
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>>;
    /// Opens a TCP connection to `addr`.
    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>>;
    /// Binds a UDP socket to `port` (0: any free port).
    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        let _ = port;
        Box::pin(async { Err(NetError::BadConfig("this stack has no UDP")) })
    }
    /// The stack's sockets and their states, one line each, for people
    /// looking at a running stack (`:inspect` in the REPL).
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }
    /// Starts recording the stack's changes (its neighbours, its sockets'
    /// states), the newest `bound` kept, timed by `clock`, and answers the
    /// record; `None` for a stack that keeps none (`stack::direct` does).
    fn record_changes(
        &self,
        clock: Arc<dyn WallClock>,
        bound: usize,
    ) -> Option<Arc<dyn Versioned>> {
        let _ = (clock, bound);
        None
    }
}

crate::delegate_arc!(Stack {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>>;
    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>>;
    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>>;
    fn describe(&self) -> Vec<String>;
    fn record_changes(&self, clock: Arc<dyn WallClock>, bound: usize) -> Option<Arc<dyn Versioned>>;
});
