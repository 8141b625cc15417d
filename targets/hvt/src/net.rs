//! The guest's network: a virtual Ethernet link between the guest and the
//! monitor, and port forwarding over it with no root and no host set-up.
//!
//! The monitor's end of the link is a small TCP/IP stack of its own
//! (smoltcp, at `10.0.2.2`), run by the *netd* thread. For each forward
//! `HOST:GUEST` netd accepts connections on `127.0.0.1:HOST`, opens a TCP
//! connection over the link to the guest's port `GUEST`, and copies bytes
//! both ways, as QEMU's user-mode networking does; for each UDP forward
//! `HOST:GUEST/udp` it sends each datagram on to the guest's port and its
//! answers back, a source port on the link per client ([`udp`]). The vCPU
//! thread only moves frames in and out of two queues ([`Link`]); a guest frame is never
//! parsed by anything but smoltcp. The link is memory to memory, so neither
//! end computes or checks IP and TCP checksums (the guest's `Netif` says
//! it is `reliable`): a guest's CPU is the scarce thing under nested KVM.
//!
//! netd never spins and holds a bounded amount: a TCP forward has at most
//! [`MAX_CONNS`] connections open (or its own `max_conns`, in
//! [`Listener::Tcp`]), and more wait in the kernel's accept queue of the
//! host port, served in turn as others close; UDP forwards have at most
//! [`udp::MAX_FLOWS`] clients between them, each with a few datagrams
//! queued, and drop what does not fit; a descriptor is polled only while netd wants something
//! from it or its host may still reset it; a host side that hangs up or
//! fails ends the guest's side too (a reset netd sends before it lets the
//! socket go), and a connection whose host side has ended gets [`LINGER`]
//! to close on the guest's side before netd resets it.
#![allow(unsafe_code)] // eventfd, poll and the tap's descriptor
mod tap;
mod trace;
pub mod udp;

use tap::TapBridge;
use trace::trace;

use libos::stack::Frames;
use nym_hvt_abi as abi;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;
use std::io::{
    self,
    ErrorKind::{ConnectionAborted, Interrupted},
    Read, Write,
};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Frames queued each way before new ones are dropped (TCP resends).
const QUEUE: usize = 256;
const MTU: usize = abi::NET_MTU as usize;
/// Each forwarded connection's buffers on the monitor's side.
const BUFFER: usize = 64 * 1024;

/// Connections a forward has open at once unless told otherwise (`nym run
/// --max-conns N`): each holds two [`BUFFER`]s here and a socket with
/// buffers of its own in the guest. Connections beyond it wait in the
/// kernel's accept queue of the host port (std's backlog, 128; past that
/// the kernel drops their SYNs and clients retry) and are served as others
/// close: a burst of clients is slowed, never refused or dropped by netd.
pub const MAX_CONNS: usize = 64;

/// How long a connection whose host side has ended (closed both ways, or
/// reset) may take to close on the guest's side before netd resets it.
/// smoltcp's own timeout restarts at every segment the guest sends, so a
/// guest that answers but never acknowledges netd's FIN would otherwise
/// hold the connection for ever. The same as the guest's own linger.
pub const LINGER: Duration = Duration::from_secs(30);

/// When netd lets go of a connection whose host side ended, if its reset
/// at [`LINGER`] could not go out either (a guest that no longer answers
/// ARP).
const GIVE_UP: Duration = Duration::from_secs(35);

/// How long a listener rests after `accept` failed for want of descriptors
/// or memory: the connection stays queued, so the listener stays readable
/// and polling it at once would spin. A connection that closes (freeing a
/// descriptor) ends the rest early.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// One port forward.
#[derive(Debug)]
pub struct Forward {
    /// The host's end.
    pub listener: Listener,
    /// The guest's port.
    pub guest_port: u16,
}

/// A forward's host end: a TCP listener and how many connections it
/// forwards at once, or a UDP socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP (`-p HOST:GUEST`): each connection accepted is copied to one
    /// netd opens to the guest.
    Tcp {
        /// Bound on the host (by the caller, so "port in use" is its error).
        socket: TcpListener,
        /// Connections forwarded at once ([`MAX_CONNS`] by default); more
        /// wait in `socket`'s accept queue. At least one.
        max_conns: usize,
    },
    /// UDP (`-p HOST:GUEST/udp`): each datagram is sent on to the guest,
    /// and its answers back to the client that sent it ([`udp`]).
    Udp {
        /// Bound on the host (by the caller, so "port in use" is its error).
        socket: UdpSocket,
    },
}

impl Listener {
    /// Another handle to the same socket, with the same cap.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp { socket, max_conns } => Listener::Tcp {
                socket: socket.try_clone()?,
                max_conns: *max_conns,
            },
            Listener::Udp { socket } => Listener::Udp {
                socket: socket.try_clone()?,
            },
        })
    }
}

/// The guest's network.
#[derive(Debug)]
pub struct NetConfig {
    /// Host ports forwarded to the guest.
    pub forwards: Vec<Forward>,
    /// The guest's address on the link.
    pub guest_ip: Ipv4Addr,
    /// A tap device (opened, non-blocking) the guest's frames go to and
    /// come from instead of the monitor's stack: the guest is a host on
    /// the tap's network, and `forwards` is empty.
    pub tap: Option<OwnedFd>,
}

/// The two frame queues between the vCPU thread and netd.
pub struct Link {
    to_guest: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
    from_guest: Mutex<VecDeque<Vec<u8>>>,
    /// Written to wake netd.
    wake: OwnedFd,
    stop: AtomicBool,
}

impl Link {
    /// Empty queues, and the eventfd that wakes netd.
    fn new() -> io::Result<Arc<Link>> {
        // SAFETY: eventfd(2) with flags; the result is checked and owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Link {
            to_guest: Mutex::default(),
            arrived: Condvar::new(),
            from_guest: Mutex::default(),
            // SAFETY: `fd` was just created and is owned by nothing else.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
            stop: AtomicBool::new(false),
        }))
    }

    /// A frame the guest sent.
    pub fn from_guest(&self, frame: Vec<u8>) {
        let mut q = self.from_guest.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < QUEUE {
            q.push_back(frame);
        }
        drop(q);
        self.poke();
    }

    /// The next frame for the guest.
    pub fn to_guest(&self) -> Option<Vec<u8>> {
        self.to_guest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Whether a frame waits for the guest.
    pub fn pending(&self) -> bool {
        !self
            .to_guest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Blocks the vCPU for at most `timeout`, less if a frame waits for it.
    pub fn wait(&self, timeout: Duration) {
        let q = self.to_guest.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_empty() {
            let _ = self.arrived.wait_timeout(q, timeout);
        }
    }

    /// Ends the vCPU's wait early (a stop was asked for).
    pub(crate) fn interrupt(&self) {
        let _queue = self.to_guest.lock().unwrap_or_else(|p| p.into_inner());
        self.arrived.notify_all();
    }

    fn poke(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
}

/// The running netd thread; stops it when dropped.
pub struct Net {
    /// The link the vCPU thread uses.
    pub link: Arc<Link>,
    /// Whether the link leads to a tap device (a real network).
    pub tap: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.link.stop.store(true, Ordering::Release);
        self.link.poke();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts netd for `config`; with `seccomp`, netd confines itself to its
/// allowlist once set up, before it handles a frame.
pub fn start(config: NetConfig, seccomp: bool) -> io::Result<Net> {
    let link = Link::new()?;
    for f in &config.forwards {
        match &f.listener {
            Listener::Tcp { socket, .. } => socket.set_nonblocking(true)?,
            Listener::Udp { socket } => socket.set_nonblocking(true)?,
        }
    }
    let netd_link = link.clone();
    let tap = config.tap.is_some();
    let (started, ready) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("nym-netd".into())
        .spawn(move || {
            // Set up (thread start, first allocations), then the allowlist.
            let confine = || match seccomp {
                true => crate::seccomp::install(crate::seccomp::Thread::Netd)
                    .map_err(|e| io::Error::other(e.to_string())),
                false => Ok(()),
            };
            if let Some(tap) = config.tap {
                let bridge = TapBridge::new(netd_link, tap);
                let confined = confine();
                let ok = confined.is_ok();
                let _ = started.send(confined);
                if ok {
                    bridge.run();
                }
                return;
            }
            let netd = Netd::new(netd_link, config);
            let confined = confine();
            let ok = confined.is_ok();
            let _ = started.send(confined);
            if ok {
                netd.run()
            }
        })?;
    let confined = ready
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("netd ended while starting")));
    let net = Net {
        link,
        tap,
        thread: Some(thread),
    };
    confined?;
    Ok(net)
}

/// A host connection forwarded to the guest.
struct Conn {
    stream: TcpStream,
    socket: SocketHandle,
    /// The forward it came through (its index in `forwards`).
    forward: usize,
    /// Bytes from the guest not yet written to the host.
    to_host: Vec<u8>,
    /// The host sent its FIN (a read returned 0).
    host_eof: bool,
    /// The guest's FIN was passed on (`shutdown(Write)`).
    host_shut: bool,
    /// poll(2) said the host reset the connection (an error, or a hang-up
    /// before the guest's FIN was passed on).
    host_reset: bool,
    /// When the host side ended: closed both ways, or reset. From then its
    /// descriptor is never polled (it would report a hang-up for ever),
    /// and the guest's side has [`LINGER`] to close.
    host_ended: Option<Instant>,
}

/// A TCP forward as netd keeps it.
struct TcpForward {
    socket: TcpListener,
    max_conns: usize,
    guest_port: u16,
}

/// What netd knows of a TCP forward besides its listener.
#[derive(Default)]
struct Port {
    /// Connections open through it.
    open: usize,
    /// Accept failed for want of resources: rest until then.
    resting_until: Option<Instant>,
}

struct Netd {
    link: Arc<Link>,
    /// The TCP forwards.
    forwards: Vec<TcpForward>,
    /// The UDP forwards and their flows.
    udp: udp::Udp,
    guest_ip: Ipv4Addr,
    iface: Interface,
    sockets: SocketSet<'static>,
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    conns: Vec<Conn>,
    /// One per forward, in the same order.
    ports: Vec<Port>,
    next_port: u16,
    epoch: Instant,
    /// `NYM_NET_TRACE` is set: print a line per frame on the link.
    trace: bool,
    /// Where host bytes are read before they go to a socket (allocated
    /// once: `pump` runs on every wake-up).
    scratch: Vec<u8>,
}

impl Netd {
    fn new(link: Arc<Link>, config: NetConfig) -> Netd {
        let mut rx = VecDeque::new();
        let mut tx = VecDeque::new();
        let epoch = Instant::now();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(
            abi::NET_HOST_MAC,
        )));
        cfg.random_seed = epoch.elapsed().subsec_nanos().into();
        let mut iface = Interface::new(
            cfg,
            &mut Frames {
                rx: &mut rx,
                tx: &mut tx,
                mtu: MTU,
                reliable: true,
            },
            SmolInstant::from_micros(0),
        );
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(
                IpAddress::Ipv4(Ipv4Addr::from(abi::NET_HOST_IP)),
                24,
            ));
        });
        let (mut forwards, mut udp) = (Vec::new(), Vec::new());
        for f in config.forwards {
            match f.listener {
                Listener::Tcp { socket, max_conns } => forwards.push(TcpForward {
                    socket,
                    max_conns,
                    guest_port: f.guest_port,
                }),
                Listener::Udp { socket } => udp.push(udp::Forward {
                    socket,
                    guest_port: f.guest_port,
                }),
            }
        }
        let ports = forwards.iter().map(|_| Port::default()).collect();
        Netd {
            link,
            forwards,
            udp: udp::Udp::new(udp),
            guest_ip: config.guest_ip,
            iface,
            sockets: SocketSet::new(Vec::new()),
            rx,
            tx,
            conns: Vec::new(),
            ports,
            next_port: 40000,
            epoch,
            trace: std::env::var_os("NYM_NET_TRACE").is_some(),
            scratch: vec![0; BUFFER],
        }
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn run(mut self) {
        while !self.link.stop.load(Ordering::Acquire) {
            self.turn();
            let now = self.now();
            let delay = self.iface.poll_delay(now, &self.sockets);
            self.sleep(delay.map(|d| Duration::from_micros(d.total_micros())));
        }
    }

    /// One turn of netd's loop, until nothing moves: frames in, smoltcp,
    /// connections, frames out.
    fn turn(&mut self) {
        {
            for _ in 0..64 {
                let mut moved = self.take_guest_frames();
                let now = self.now();
                // One segment per socket per poll: poll until nothing more goes out.
                for _ in 0..QUEUE {
                    let before = self.tx.len();
                    self.iface.poll(
                        now,
                        &mut Frames {
                            rx: &mut self.rx,
                            tx: &mut self.tx,
                            mtu: MTU,
                            reliable: true,
                        },
                        &mut self.sockets,
                    );
                    if self.tx.len() == before || self.tx.len() >= QUEUE {
                        break;
                    }
                }
                moved |= self.accept();
                moved |= self.pump();
                let now = Instant::now();
                moved |= self
                    .udp
                    .pump(&mut self.sockets, self.guest_ip, now, self.trace);
                moved |= self.give_guest_frames();
                if !moved {
                    break;
                }
            }
        }
    }

    fn take_guest_frames(&mut self) -> bool {
        let mut q = self
            .link
            .from_guest
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let any = !q.is_empty();
        if self.trace {
            q.iter().for_each(|f| trace("guest", f, self.epoch));
        }
        self.rx.extend(q.drain(..));
        any
    }

    fn give_guest_frames(&mut self) -> bool {
        if self.tx.is_empty() {
            return false;
        }
        let mut q = self.link.to_guest.lock().unwrap_or_else(|p| p.into_inner());
        for frame in self.tx.drain(..) {
            if self.trace {
                trace("monitor", &frame, self.epoch);
            }
            if q.len() < QUEUE {
                q.push_back(frame);
            }
        }
        drop(q);
        self.link.arrived.notify_all();
        true
    }

    /// Accepts host connections, up to each forward's cap, and opens each
    /// to the guest.
    fn accept(&mut self) -> bool {
        let mut any = false;
        let now = Instant::now();
        for i in 0..self.forwards.len() {
            if self.ports[i].resting_until.is_some_and(|t| now < t) {
                continue;
            }
            self.ports[i].resting_until = None;
            let guest_port = self.forwards[i].guest_port;
            while self.ports[i].open < self.forwards[i].max_conns {
                let stream = match self.forwards[i].socket.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The client gave up while queued: the next one.
                    Err(e) if matches!(e.kind(), ConnectionAborted | Interrupted) => continue,
                    Err(e) => {
                        // Out of descriptors or memory: the connection stays
                        // queued and the listener readable, so rest.
                        if self.trace {
                            eprintln!("net: accepting on a forwarded port: {e}; resting");
                        }
                        self.ports[i].resting_until = Some(now + ACCEPT_PAUSE);
                        break;
                    }
                };
                any = true;
                if let Err(e) = stream.set_nonblocking(true) {
                    if self.trace {
                        eprintln!("net: a forwarded connection is dropped: {e}");
                    }
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; BUFFER]),
                    tcp::SocketBuffer::new(vec![0; BUFFER]),
                );
                s.set_nagle_enabled(false);
                s.set_timeout(Some(smoltcp::time::Duration::from_secs(30)));
                let local = self.next_port;
                self.next_port = if local >= 60000 { 40000 } else { local + 1 };
                let remote = (IpAddress::Ipv4(self.guest_ip), guest_port);
                if let Err(e) = s.connect(self.iface.context(), remote, local) {
                    if self.trace {
                        eprintln!("net: a forwarded connection is dropped: {e:?}");
                    }
                    continue;
                }
                let socket = self.sockets.add(s);
                self.ports[i].open += 1;
                self.conns.push(Conn {
                    stream,
                    socket,
                    forward: i,
                    to_host: Vec::new(),
                    host_eof: false,
                    host_shut: false,
                    host_reset: false,
                    host_ended: None,
                });
            }
        }
        any
    }

    /// Copies bytes both ways; ends the guest's side of connections whose
    /// host side ended; removes finished connections.
    fn pump(&mut self) -> bool {
        let mut any = false;
        let now = Instant::now();
        let buf = &mut self.scratch;
        let sockets = &mut self.sockets;
        let ports = &mut self.ports;
        self.conns.retain_mut(|c| {
            let s = sockets.get_mut::<tcp::Socket>(c.socket);
            if c.host_ended.is_none() {
                any |= c.forward_bytes(s, buf);
                if c.host_reset || (c.host_eof && c.host_shut && c.to_host.is_empty()) {
                    c.host_ended = Some(now);
                    any = true;
                }
            }
            // A host side that ended leaves the guest's side LINGER to close.
            let closed = matches!(s.state(), State::Closed | State::TimeWait);
            let overdue = c.host_ended.map(|t| now.duration_since(t));
            if !closed && overdue.is_some_and(|d| d >= LINGER) {
                s.abort();
                any = true;
            }
            // Gone once the guest was told: a reset sent (smoltcp forgets
            // the peer then), or the FINs both ways acknowledged.
            let told = match s.state() {
                State::Closed => s.remote_endpoint().is_none(),
                State::TimeWait => true,
                _ => false,
            };
            let given_up = overdue.is_some_and(|d| d >= GIVE_UP);
            let finished = (told && c.to_host.is_empty()) || given_up;
            if finished {
                sockets.remove(c.socket);
                ports[c.forward].open -= 1;
                // A descriptor is free: a resting listener may try again.
                ports.iter_mut().for_each(|p| p.resting_until = None);
                any = true;
            }
            !finished
        });
        any
    }

    /// Sleeps until a guest frame, a host event, or `delay`.
    fn sleep(&mut self, delay: Option<Duration>) {
        let now = Instant::now();
        let mut fds = vec![pollfd(self.link.wake.as_raw_fd(), libc::POLLIN)];
        // The earliest of smoltcp's timers, a resting listener's wake-up,
        // a lingering connection's deadline and a UDP flow's going idle.
        let mut until = delay.map(|d| now + d);
        let mut due = |t: Instant| until = Some(until.map_or(t, |u| u.min(t)));
        if let Some(t) = self.udp.deadline() {
            due(t);
        }
        // UDP sockets are always read to the end: always polled.
        fds.extend(self.udp.fds().map(|fd| pollfd(fd, libc::POLLIN)));
        for (f, p) in self.forwards.iter().zip(&self.ports) {
            // At its cap, or resting, a listener is left out: its queued
            // connections would keep it readable.
            match p.resting_until {
                Some(t) => due(t),
                None if p.open < f.max_conns => {
                    fds.push(pollfd(f.socket.as_raw_fd(), libc::POLLIN))
                }
                None => {}
            }
        }
        let mut polled = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(t) = c.host_ended {
                due(t + if now < t + LINGER { LINGER } else { GIVE_UP });
                continue;
            }
            let s = self.sockets.get::<tcp::Socket>(c.socket);
            let mut events = 0;
            if !c.host_eof && s.may_send() && s.send_queue() < s.send_capacity() {
                events |= libc::POLLIN;
            }
            if !c.to_host.is_empty() {
                events |= libc::POLLOUT;
            }
            // poll(2) reports POLLHUP and POLLERR whatever is asked. With
            // nothing asked, a descriptor is polled only to hear of a reset
            // (POLLERR, or POLLHUP: the connection is closed both ways while
            // netd has not closed its own). Once the guest's FIN is passed
            // on, the host's FIN alone makes it hang up for ever, so it is
            // left out: netd reads it again once there is room.
            if events == 0 && c.host_shut {
                continue;
            }
            fds.push(pollfd(c.stream.as_raw_fd(), events));
            polled.push(i);
        }
        // Round up: a timer due in 0.4 ms must not become a busy loop.
        let timeout = until.map_or(-1, |t| {
            let d = t.saturating_duration_since(now);
            d.as_micros().div_ceil(1000).min(60_000) as i32
        });
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let conn_fds = &fds[fds.len() - polled.len()..];
        for (fd, &i) in conn_fds.iter().zip(&polled) {
            let c = &mut self.conns[i];
            let hung_up = fd.revents & libc::POLLHUP != 0 && !c.host_shut;
            if fd.revents & libc::POLLERR != 0 || hung_up {
                c.host_reset = true;
            }
        }
        let mut sink = [0u8; 8];
        // SAFETY: reads the eventfd's 8-byte counter into a local (resetting it).
        unsafe { libc::read(self.link.wake.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
    }
}

impl Conn {
    /// Moves what it can between the host and the guest's socket `s`;
    /// notes the host's end (a reset aborts `s`, so the guest gets one
    /// too). Whether anything moved.
    fn forward_bytes(&mut self, s: &mut tcp::Socket, buf: &mut [u8]) -> bool {
        let mut any = false;
        if self.host_reset {
            s.abort();
            self.to_host.clear();
            return true;
        }
        // Host to guest, as much as the socket has room for.
        if !self.host_eof && s.may_send() {
            let room = s.send_capacity() - s.send_queue();
            if room > 0 {
                match self.stream.read(&mut buf[..room]) {
                    Ok(0) => {
                        self.host_eof = true;
                        s.close();
                        any = true;
                    }
                    Ok(n) => {
                        let _ = s.send_slice(&buf[..n]);
                        any = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.host_reset = true;
                        s.abort();
                        self.to_host.clear();
                        return true;
                    }
                }
            }
        }
        // Guest to host.
        while s.can_recv() && self.to_host.len() < BUFFER {
            let _ = s.recv(|d| {
                self.to_host.extend_from_slice(d);
                (d.len(), ())
            });
            any = true;
        }
        if !self.to_host.is_empty() {
            match self.stream.write(&self.to_host) {
                Ok(n) => {
                    self.to_host.drain(..n);
                    any |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The host side is gone: stop the guest side too.
                    self.host_reset = true;
                    self.to_host.clear();
                    s.abort();
                    return true;
                }
            }
        }
        // The guest finished sending: pass its FIN on.
        let guest_done = !s.may_recv() && !matches!(s.state(), State::SynSent | State::SynReceived);
        if guest_done && self.to_host.is_empty() && !self.host_shut {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_shut = true;
            any = true;
        }
        any
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Feeds `frames` to a netd serving one forwarded port (on loopback) as
/// if a guest had sent them, turning its loop after each as its thread
/// would; the frames it sent back. For fuzzing netd's side of the link
/// (`fuzz/fuzz_targets/netd_frames.rs` and the bounded property test).
#[doc(hidden)]
pub fn fuzz_frames(frames: &[&[u8]]) -> io::Result<Vec<Vec<u8>>> {
    let link = Link::new()?;
    let socket = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_nonblocking(true)?;
    let config = NetConfig {
        forwards: vec![Forward {
            listener: Listener::Tcp {
                socket,
                max_conns: MAX_CONNS,
            },
            guest_port: 80,
        }],
        guest_ip: Ipv4Addr::from(abi::NET_GUEST_IP),
        tap: None,
    };
    let mut netd = Netd::new(link.clone(), config);
    let mut back = Vec::new();
    for f in frames {
        link.from_guest(f.to_vec());
        netd.turn();
        while let Some(frame) = link.to_guest() {
            back.push(frame);
        }
    }
    Ok(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest's end of the link: a smoltcp stack of its own, at
    /// [`abi::NET_GUEST_IP`], with `listeners` sockets listening on port 7.
    struct Guest {
        iface: Interface,
        sockets: SocketSet<'static>,
        rx: VecDeque<Vec<u8>>,
        tx: VecDeque<Vec<u8>>,
        epoch: Instant,
        handles: Vec<SocketHandle>,
    }

    impl Guest {
        fn new(listeners: usize) -> Guest {
            let (mut rx, mut tx) = (VecDeque::new(), VecDeque::new());
            let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x0f]);
            let mut iface = Interface::new(
                IfaceConfig::new(HardwareAddress::Ethernet(mac)),
                &mut frames(&mut rx, &mut tx),
                SmolInstant::from_micros(0),
            );
            iface.update_ip_addrs(|a| {
                let ip = IpAddress::Ipv4(Ipv4Addr::from(abi::NET_GUEST_IP));
                let _ = a.push(IpCidr::new(ip, 24));
            });
            let mut sockets = SocketSet::new(Vec::new());
            let handles = (0..listeners)
                .map(|_| {
                    let mut s = tcp::Socket::new(
                        tcp::SocketBuffer::new(vec![0; 4096]),
                        tcp::SocketBuffer::new(vec![0; 4096]),
                    );
                    s.listen(7).unwrap();
                    sockets.add(s)
                })
                .collect();
            Guest {
                iface,
                sockets,
                rx,
                tx,
                epoch: Instant::now(),
                handles,
            }
        }

        /// Runs the guest's stack against netd until `done` holds of its
        /// sockets' states, for at most `within`; whether it did.
        fn until(
            &mut self,
            link: &Link,
            within: Duration,
            done: impl Fn(&[State]) -> bool,
        ) -> bool {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                while let Some(f) = link.to_guest() {
                    self.rx.push_back(f);
                }
                let now = SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64);
                let device = &mut frames(&mut self.rx, &mut self.tx);
                self.iface.poll(now, device, &mut self.sockets);
                self.tx.drain(..).for_each(|f| link.from_guest(f));
                if done(&self.states()) {
                    return true;
                }
                link.wait(Duration::from_millis(5));
            }
            false
        }

        fn states(&self) -> Vec<State> {
            let state = |h| self.sockets.get::<tcp::Socket>(h).state();
            self.handles.iter().map(|&h| state(h)).collect()
        }
    }

    /// A UDP echo server on the guest's port 7: each datagram comes back
    /// as `echo:` and itself; every source it saw, in order.
    struct Echo {
        guest: Guest,
        socket: SocketHandle,
        seen: Vec<smoltcp::wire::IpEndpoint>,
    }

    impl Echo {
        fn new() -> Echo {
            use smoltcp::socket::udp as u;
            let mut guest = Guest::new(0);
            let buffer =
                || u::PacketBuffer::new(vec![u::PacketMetadata::EMPTY; 16], vec![0; 16 * 1500]);
            let mut s = u::Socket::new(buffer(), buffer());
            s.bind(7).unwrap();
            let socket = guest.sockets.add(s);
            Echo {
                guest,
                socket,
                seen: Vec::new(),
            }
        }

        /// Runs the guest against netd, echoing, until `done` holds, for at
        /// most `within`; whether it did.
        fn until(&mut self, link: &Link, within: Duration, mut done: impl FnMut() -> bool) -> bool {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                let g = &mut self.guest;
                while let Some(f) = link.to_guest() {
                    g.rx.push_back(f);
                }
                let now = SmolInstant::from_micros(g.epoch.elapsed().as_micros() as i64);
                g.iface
                    .poll(now, &mut frames(&mut g.rx, &mut g.tx), &mut g.sockets);
                let s = g
                    .sockets
                    .get_mut::<smoltcp::socket::udp::Socket>(self.socket);
                let mut answers = Vec::new();
                while let Ok((data, meta)) = s.recv() {
                    self.seen.push(meta.endpoint);
                    answers.push(([b"echo:", data].concat(), meta.endpoint));
                }
                for (answer, to) in answers {
                    s.send_slice(&answer, to).unwrap();
                }
                g.iface
                    .poll(now, &mut frames(&mut g.rx, &mut g.tx), &mut g.sockets);
                g.tx.drain(..).for_each(|f| link.from_guest(f));
                if done() {
                    return true;
                }
                link.wait(Duration::from_millis(5));
            }
            false
        }
    }

    /// netd (confined by its seccomp allowlist, as `nym run` has it)
    /// forwarding a loopback UDP port to the guest's port 7; the port.
    fn udp_netd() -> (Net, u16) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = socket.local_addr().unwrap().port();
        let config = NetConfig {
            forwards: vec![Forward {
                listener: Listener::Udp { socket },
                guest_port: 7,
            }],
            guest_ip: abi::NET_GUEST_IP.into(),
            tap: None,
        };
        (start(config, true).unwrap(), port)
    }

    fn client() -> UdpSocket {
        let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        c.set_nonblocking(true).unwrap();
        c
    }

    /// What `c` has received (datagrams, and whom from).
    fn received(c: &UdpSocket, into: &mut Vec<(Vec<u8>, std::net::SocketAddr)>) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = c.recv_from(&mut buf) {
            into.push((buf[..n].to_vec(), from));
        }
    }

    fn frames<'a>(rx: &'a mut VecDeque<Vec<u8>>, tx: &'a mut VecDeque<Vec<u8>>) -> Frames<'a> {
        Frames {
            rx,
            tx,
            mtu: MTU,
            reliable: true,
        }
    }

    /// netd forwarding a loopback port to the guest's port 7, at most
    /// `max_conns` connections at once; the port.
    fn netd(max_conns: usize) -> (Net, u16) {
        let socket = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = socket.local_addr().unwrap().port();
        let config = NetConfig {
            forwards: vec![Forward {
                listener: Listener::Tcp { socket, max_conns },
                guest_port: 7,
            }],
            guest_ip: abi::NET_GUEST_IP.into(),
            tap: None,
        };
        (start(config, false).unwrap(), port)
    }

    fn established(states: &[State]) -> usize {
        states.iter().filter(|s| **s == State::Established).count()
    }

    /// Closes `s` with a reset (SO_LINGER 0).
    fn reset(s: TcpStream) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: sets SO_LINGER on our socket from a local of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }

    #[test]
    fn a_host_that_resets_resets_the_guests_side() {
        let (net, port) = netd(MAX_CONNS);
        let mut guest = Guest::new(1);
        let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let second = Duration::from_secs(5);
        assert!(guest.until(&net.link, second, |s| established(s) == 1));
        reset(client);
        // netd's reset carries an ACK, so a listener on the same port
        // cannot take it for its own.
        assert!(
            guest.until(&net.link, second, |s| s == [State::Closed]),
            "the guest's side outlived the host's: {:?}",
            guest.states()
        );
    }

    #[test]
    fn a_forward_opens_max_conns_and_the_rest_wait_their_turn() {
        let (net, port) = netd(2);
        let mut guest = Guest::new(4);
        let connect = || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let mut clients: Vec<TcpStream> = (0..4).map(|_| connect()).collect();
        let second = Duration::from_secs(5);
        assert!(guest.until(&net.link, second, |s| established(s) == 2));
        assert!(
            !guest.until(&net.link, Duration::from_millis(500), |s| established(s)
                > 2),
            "more than 2 open: {:?}",
            guest.states()
        );
        // One host side closes; the guest closes its own, and the next
        // client is let in.
        drop(clients.remove(0));
        let closing = |s: &[State]| s.contains(&State::CloseWait);
        assert!(guest.until(&net.link, second, closing));
        let h = guest.states().iter().position(|s| *s == State::CloseWait);
        let h = h.unwrap();
        guest
            .sockets
            .get_mut::<tcp::Socket>(guest.handles[h])
            .close();
        let let_in = |s: &[State]| s[h] == State::Closed && established(s) == 2;
        assert!(
            guest.until(&net.link, second, let_in),
            "{:?}",
            guest.states()
        );
        assert!(
            !guest.until(&net.link, Duration::from_millis(500), |s| established(s)
                > 2)
        );
    }

    #[test]
    fn a_datagram_goes_to_the_guest_and_its_answer_back_and_too_large_ones_are_dropped() {
        let (net, port) = udp_netd();
        let mut guest = Echo::new();
        let c = client();
        // Larger than a frame carries: dropped; the next one goes.
        c.send_to(
            &vec![b'x'; udp::MAX_PAYLOAD + 1],
            (Ipv4Addr::LOCALHOST, port),
        )
        .unwrap();
        c.send_to(b"hello", (Ipv4Addr::LOCALHOST, port)).unwrap();
        let mut got = Vec::new();
        let answered = guest.until(&net.link, Duration::from_secs(5), || {
            received(&c, &mut got);
            !got.is_empty()
        });
        assert!(answered, "no answer; the guest saw {:?}", guest.seen);
        let from = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(got, [(b"echo:hello".to_vec(), from)]);
        assert_eq!(guest.seen.len(), 1, "{:?}", guest.seen);
        let host_ip = IpAddress::Ipv4(Ipv4Addr::from(abi::NET_HOST_IP));
        assert_eq!(guest.seen[0].addr, host_ip);
        // The largest that fits a frame goes whole.
        let largest = vec![b'y'; udp::MAX_PAYLOAD - 5];
        c.send_to(&largest, (Ipv4Addr::LOCALHOST, port)).unwrap();
        got.clear();
        assert!(guest.until(&net.link, Duration::from_secs(5), || {
            received(&c, &mut got);
            !got.is_empty()
        }));
        assert_eq!(got[0].0, [b"echo:".as_slice(), &largest].concat());
    }

    #[test]
    fn clients_each_get_their_own_answers_from_a_port_of_their_own() {
        let (net, port) = udp_netd();
        let mut guest = Echo::new();
        let (a, b) = (client(), client());
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        for round in 0..3 {
            a.send_to(format!("a{round}").as_bytes(), (Ipv4Addr::LOCALHOST, port))
                .unwrap();
            b.send_to(format!("b{round}").as_bytes(), (Ipv4Addr::LOCALHOST, port))
                .unwrap();
            let want = round + 1;
            let both = guest.until(&net.link, Duration::from_secs(5), || {
                received(&a, &mut got_a);
                received(&b, &mut got_b);
                got_a.len() == want && got_b.len() == want
            });
            assert!(both, "round {round}: {got_a:?} {got_b:?}");
        }
        let texts = |got: &[(Vec<u8>, std::net::SocketAddr)]| -> Vec<String> {
            got.iter()
                .map(|(d, _)| String::from_utf8_lossy(d).into_owned())
                .collect()
        };
        assert_eq!(texts(&got_a), ["echo:a0", "echo:a1", "echo:a2"]);
        assert_eq!(texts(&got_b), ["echo:b0", "echo:b1", "echo:b2"]);
        // Two source ports on the link, one per client, kept across rounds.
        let mut ports: Vec<u16> = guest.seen.iter().map(|e| e.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 2, "{:?}", guest.seen);
    }
}

/// netd's side of the link against frames a hostile guest could send:
/// random bytes, and ARP, IPv4 and ICMP frames with fields mutated (the
/// IPv4 and ICMP checksums made right again, so the mutation reaches the
/// layer above). netd must neither panic nor stop answering.
#[cfg(test)]
mod frames_from_a_hostile_guest {
    use super::*;
    use proptest::prelude::*;

    const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0f];

    fn checksum(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn ethernet(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend(GUEST_MAC);
        f.extend(ethertype.to_be_bytes());
        f.extend(payload);
        f
    }

    /// "Who has the monitor's address?", from the guest.
    fn arp_request() -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend(GUEST_MAC);
        a.extend(abi::NET_GUEST_IP);
        a.extend([0; 6]);
        a.extend(abi::NET_HOST_IP);
        ethernet([0xff; 6], 0x0806, &a)
    }

    /// A ping of the monitor, from the guest; `fix` makes the checksums
    /// right after a mutation.
    fn ping(payload: &[u8]) -> Vec<u8> {
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
        icmp.extend(payload);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
        ip.extend(abi::NET_GUEST_IP);
        ip.extend(abi::NET_HOST_IP);
        let total = (ip.len() + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend(icmp);
        let mut f = ethernet(abi::NET_HOST_MAC, 0x0800, &ip);
        fix(&mut f);
        f
    }

    /// Recomputes the IPv4 header's and the ICMP message's checksums of an
    /// Ethernet frame, where the frame is long enough to hold them.
    fn fix(f: &mut [u8]) {
        if f.len() < 34 || f[12..14] != [8, 0] {
            return;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        if ihl < 20 || f.len() < 14 + ihl {
            return;
        }
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        if f[23] == 1 && f.len() >= 14 + ihl + 4 {
            let icmp = 14 + ihl;
            f[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
            let c = checksum(&f[icmp..]);
            f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        }
    }

    fn is_arp_reply(f: &[u8]) -> bool {
        f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2]
    }

    fn is_echo_reply(f: &[u8]) -> bool {
        f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 1 && f[34] == 0
    }

    /// A frame: random bytes, or a template with some bytes changed.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        let edits = proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8);
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..1600),
            (edits.clone(), 0..64usize).prop_map(|(edits, cut)| {
                let mut f = arp_request();
                for (at, b) in edits {
                    let n = f.len();
                    f[at % n] = b;
                }
                f.truncate(f.len() - cut.min(f.len()));
                f
            }),
            (edits, proptest::collection::vec(any::<u8>(), 0..1500)).prop_map(
                |(edits, payload)| {
                    let mut f = ping(&payload);
                    for (at, b) in edits {
                        let n = f.len();
                        f[at % n] = b;
                    }
                    fix(&mut f);
                    f
                }
            ),
        ]
    }

    #[test]
    fn a_well_formed_arp_request_and_ping_are_answered() {
        let back = fuzz_frames(&[&arp_request(), &ping(b"nym")]).unwrap();
        assert!(back.iter().any(|f| is_arp_reply(f)), "{back:?}");
        assert!(back.iter().any(|f| is_echo_reply(f)), "{back:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn hostile_frames_leave_netd_answering(frames in proptest::collection::vec(frame(), 1..24)) {
            let mut all: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let (arp, ping) = (arp_request(), ping(b"still there?"));
            all.push(&arp);
            all.push(&ping);
            let back = fuzz_frames(&all).unwrap();
            prop_assert!(back.iter().any(|f| is_arp_reply(f)));
            prop_assert!(back.iter().any(|f| is_echo_reply(f)));
        }
    }
}
