//! The guest's network: a virtual Ethernet link between the guest and the
//! monitor, and port forwarding over it with no root and no host set-up.
//!
//! The monitor's end of the link is a small TCP/IP stack of its own
//! (smoltcp, at `10.0.2.2`), run by the *netd* thread. For each forward
//! `HOST:GUEST` netd accepts connections on `127.0.0.1:HOST`, opens a TCP
//! connection over the link to the guest's port `GUEST`, and copies bytes
//! both ways, as QEMU's user-mode networking does. The vCPU thread only
//! moves frames in and out of two queues ([`Link`]); a guest frame is never
//! parsed by anything but smoltcp. The link is memory to memory, so neither
//! end computes or checks IP and TCP checksums (the guest's `Netif` says
//! it is `reliable`): a guest's CPU is the scarce thing under nested KVM.
#![allow(unsafe_code)] // eventfd, poll and the tap's descriptor
use libos::stack::Frames;
use nym_hvt_abi as abi;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Frames queued each way before new ones are dropped (TCP resends).
const QUEUE: usize = 256;
const MTU: usize = abi::NET_MTU as usize;
/// Each forwarded connection's buffers on the monitor's side.
const BUFFER: usize = 64 * 1024;

/// One port forward.
#[derive(Debug)]
pub struct Forward {
    /// Bound on the host (by the caller, so "port in use" is its error).
    pub listener: TcpListener,
    /// The guest's port.
    pub guest_port: u16,
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
    // SAFETY: eventfd(2) with flags; the result is checked and owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let link = Arc::new(Link {
        to_guest: Mutex::default(),
        arrived: Condvar::new(),
        from_guest: Mutex::default(),
        // SAFETY: `fd` was just created and is owned by nothing else.
        wake: unsafe { OwnedFd::from_raw_fd(fd) },
        stop: AtomicBool::new(false),
    });
    for f in &config.forwards {
        f.listener.set_nonblocking(true)?;
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
    /// Bytes from the guest not yet written to the host.
    to_host: Vec<u8>,
    host_eof: bool,
    host_shut: bool,
}

struct Netd {
    link: Arc<Link>,
    config: NetConfig,
    iface: Interface,
    sockets: SocketSet<'static>,
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    conns: Vec<Conn>,
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
        Netd {
            link,
            config,
            iface,
            sockets: SocketSet::new(Vec::new()),
            rx,
            tx,
            conns: Vec::new(),
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
            // Until nothing moves: frames in, smoltcp, connections, frames out.
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
                moved |= self.give_guest_frames();
                if !moved {
                    break;
                }
            }
            let now = self.now();
            let delay = self.iface.poll_delay(now, &self.sockets);
            self.sleep(delay.map(|d| Duration::from_micros(d.total_micros())));
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

    /// Accepts host connections and opens each to the guest.
    fn accept(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.config.forwards.len() {
            let guest_port = self.config.forwards[i].guest_port;
            while let Ok((stream, _)) = self.config.forwards[i].listener.accept() {
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
                let remote = (IpAddress::Ipv4(self.config.guest_ip), guest_port);
                if let Err(e) = s.connect(self.iface.context(), remote, local) {
                    if self.trace {
                        eprintln!("net: a forwarded connection is dropped: {e:?}");
                    }
                    continue;
                }
                let socket = self.sockets.add(s);
                self.conns.push(Conn {
                    stream,
                    socket,
                    to_host: Vec::new(),
                    host_eof: false,
                    host_shut: false,
                });
            }
        }
        any
    }

    /// Copies bytes both ways; removes finished connections.
    fn pump(&mut self) -> bool {
        let mut any = false;
        let buf = &mut self.scratch;
        let sockets = &mut self.sockets;
        self.conns.retain_mut(|c| {
            let s = sockets.get_mut::<tcp::Socket>(c.socket);
            // Host to guest, as much as the socket has room for.
            if !c.host_eof && s.may_send() {
                let room = s.send_capacity() - s.send_queue();
                if room > 0 {
                    match c.stream.read(&mut buf[..room]) {
                        Ok(0) => {
                            c.host_eof = true;
                            s.close();
                            any = true;
                        }
                        Ok(n) => {
                            let _ = s.send_slice(&buf[..n]);
                            any = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => {
                            s.abort();
                            c.host_eof = true;
                        }
                    }
                }
            }
            // Guest to host.
            while s.can_recv() && c.to_host.len() < BUFFER {
                let _ = s.recv(|d| {
                    c.to_host.extend_from_slice(d);
                    (d.len(), ())
                });
                any = true;
            }
            if !c.to_host.is_empty() {
                match c.stream.write(&c.to_host) {
                    Ok(n) => {
                        c.to_host.drain(..n);
                        any |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        // The host side is gone: stop the guest side too.
                        c.to_host.clear();
                        c.host_eof = true;
                        s.abort();
                    }
                }
            }
            // The guest finished sending: pass its FIN on.
            let guest_done =
                !s.may_recv() && !matches!(s.state(), State::SynSent | State::SynReceived);
            if guest_done && c.to_host.is_empty() && !c.host_shut {
                let _ = c.stream.shutdown(Shutdown::Write);
                c.host_shut = true;
                any = true;
            }
            let finished =
                matches!(s.state(), State::Closed | State::TimeWait) && c.to_host.is_empty();
            if finished {
                sockets.remove(c.socket);
            }
            !finished
        });
        any
    }

    /// Sleeps until a guest frame, a host event, or `delay`.
    fn sleep(&mut self, delay: Option<Duration>) {
        let mut fds = vec![pollfd(self.link.wake.as_raw_fd(), libc::POLLIN)];
        for f in &self.config.forwards {
            fds.push(pollfd(f.listener.as_raw_fd(), libc::POLLIN));
        }
        for c in &self.conns {
            let s = self.sockets.get::<tcp::Socket>(c.socket);
            let mut events = 0;
            if !c.host_eof && s.may_send() && s.send_queue() < s.send_capacity() {
                events |= libc::POLLIN;
            }
            if !c.to_host.is_empty() {
                events |= libc::POLLOUT;
            }
            fds.push(pollfd(c.stream.as_raw_fd(), events));
        }
        // Round up: a timer due in 0.4 ms must not become a busy loop.
        let timeout = delay.map_or(-1, |d| d.as_micros().div_ceil(1000).min(60_000) as i32);
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let mut sink = [0u8; 8];
        // SAFETY: reads the eventfd's 8-byte counter into a local (resetting it).
        unsafe { libc::read(self.link.wake.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
    }
}

/// netd over a tap device: frames pass between the guest and the tap as
/// they are, with no stack in the monitor.
struct TapBridge {
    link: Arc<Link>,
    tap: OwnedFd,
    /// Where a frame from the tap is read (allocated before the allowlist).
    buf: Vec<u8>,
}

impl TapBridge {
    fn new(link: Arc<Link>, tap: OwnedFd) -> TapBridge {
        TapBridge {
            link,
            tap,
            buf: vec![0; MTU],
        }
    }

    fn run(mut self) {
        while !self.link.stop.load(Ordering::Acquire) {
            let frames: Vec<Vec<u8>> = self
                .link
                .from_guest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect();
            for f in frames {
                // SAFETY: writes the frame's bytes to our tap descriptor. A
                // frame the tap refuses (full queue) is lost, as on a wire.
                unsafe { libc::write(self.tap.as_raw_fd(), f.as_ptr().cast(), f.len()) };
            }
            let mut arrived = false;
            loop {
                // SAFETY: reads at most `buf.len()` bytes into `buf`; the
                // descriptor is non-blocking.
                let n = unsafe {
                    libc::read(
                        self.tap.as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                    )
                };
                let Ok(n @ 1..) = usize::try_from(n) else {
                    break;
                };
                let mut q = self.link.to_guest.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() < QUEUE {
                    q.push_back(self.buf[..n].to_vec());
                }
                arrived = true;
            }
            if arrived {
                self.link.arrived.notify_all();
            }
            let mut fds = [
                pollfd(self.link.wake.as_raw_fd(), libc::POLLIN),
                pollfd(self.tap.as_raw_fd(), libc::POLLIN),
            ];
            // SAFETY: `fds` is a live array of two pollfd structs.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            let mut sink = [0u8; 8];
            // SAFETY: reads the eventfd's counter into a local (resetting it).
            unsafe { libc::read(self.link.wake.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// One line on stderr for a frame: milliseconds since boot, who sent it,
/// and for TCP the ports, flags and payload length.
fn trace(from: &str, f: &[u8], epoch: Instant) {
    use smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet, TcpPacket};
    let ms = epoch.elapsed().as_millis();
    let Ok(eth) = EthernetFrame::new_checked(f) else {
        return eprintln!("net {ms:>6} {from:<7} {} bytes, not Ethernet", f.len());
    };
    let tcp = (eth.ethertype() == EthernetProtocol::Ipv4)
        .then(|| Ipv4Packet::new_checked(eth.payload()).ok())
        .flatten()
        .and_then(|ip| {
            TcpPacket::new_checked(ip.payload()).ok().map(|t| {
                (
                    t.src_port(),
                    t.dst_port(),
                    [t.syn(), t.ack(), t.fin(), t.rst()],
                    t.payload().len(),
                )
            })
        });
    match tcp {
        Some((src, dst, flags, len)) => {
            let flags: String = flags
                .iter()
                .zip(["SYN ", "ACK ", "FIN ", "RST "])
                .filter(|(on, _)| **on)
                .map(|(_, name)| name)
                .collect();
            eprintln!("net {ms:>6} {from:<7} tcp {src} > {dst} {flags}len {len}");
        }
        None => eprintln!(
            "net {ms:>6} {from:<7} {} ({} bytes)",
            eth.ethertype(),
            f.len()
        ),
    }
}
