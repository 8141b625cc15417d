//! `stack::direct`: a TCP/IP stack (smoltcp) over any [`Netif`].
//!
//! The stack is two halves. [`Direct`] is the handle the graph lends to jobs:
//! its [`Stack`] methods open listeners and connections whose [`Flow`]s read
//! and write smoltcp's socket buffers under a lock. The *driver*
//! ([`Driven::driver`]) is a future the platform runs beside the jobs: it
//! feeds received frames to smoltcp, sends what smoltcp wants sent, and
//! sleeps until a frame arrives, a timer (retransmission, delayed ACK) is
//! due, or a job has queued data ("poked"). Nothing here spawns or blocks, so
//! the same code runs on tokio in-process and on a unikernel's executor.
use crate::net::{Accepted, UdpSocket};
use crate::{
    BoxFuture, Flow, FlowError, Ipv4Cidr, MonoClock, NetError, Netif, Random, Stack, Time,
};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};
use core::future::{poll_fn, Future};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp::{self, State};
use smoltcp::socket::{dhcpv4, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint};

/// Each TCP socket's receive and send buffer. Above 64 KiB smoltcp scales
/// the window, so one connection can keep a fast link busy.
const BUFFER: usize = 128 * 1024;
/// Listening sockets kept ready per port: connections that can complete
/// their handshake while the job has not yet called `accept` again.
const BACKLOG: usize = 8;
/// Frames queued in each direction between smoltcp and the netif; beyond
/// that a frame is dropped, as a busy link would, and TCP resends it.
const QUEUE: usize = 128;
/// Local ports for outgoing connections.
const EPHEMERAL: core::ops::RangeInclusive<u16> = 49152..=65535;
/// How long a connection may be idle before it sends a keep-alive: the
/// stack's persist timer (see [`new_socket`]).
const PERSIST: Duration = Duration::from_secs(1);
/// How long an abandoned connection may go without a word from its peer
/// (keep-alives included) before it is aborted: the peer has vanished.
const LINGER: Duration = Duration::from_secs(30);
/// The longest an abandoned connection is kept at all, for a peer that
/// answers but never closes.
const ORPHAN_MAX: Duration = Duration::from_secs(600);
/// Rounds in a row the driver may find work waiting before it lets the
/// jobs run (see [`drive`]).
const STREAK: u32 = 32;
/// Datagrams, and bytes of them, each UDP socket queues each way.
const UDP_PACKETS: usize = 64;
const UDP_BUFFER: usize = 64 * 1024;
/// Ethernet, IPv4 and UDP headers: what a datagram adds to a frame.
const UDP_OVERHEAD: usize = 14 + 20 + 8;

/// How the stack is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The interface's address and subnet (unused with `dhcp`).
    pub ipv4: Ipv4Cidr,
    /// The router for addresses outside the subnet, if any.
    pub gateway: Option<Ipv4Addr>,
    /// Whether address, subnet and router come from a DHCP server instead.
    pub dhcp: bool,
}

impl Config {
    /// An address and subnet, no gateway.
    pub fn new(ipv4: Ipv4Cidr) -> Config {
        Config {
            ipv4,
            gateway: None,
            dhcp: false,
        }
    }

    /// Address, subnet and router from a DHCP server (`stack::dhcp`).
    pub fn dhcp() -> Config {
        Config {
            ipv4: Ipv4Cidr {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            gateway: None,
            dhcp: true,
        }
    }
}

/// A device that needs a background task: the platform runs
/// [`driver`](Driven::driver) beside the jobs for as long as the device lives.
pub trait Driven {
    /// The background task. It ends when the device is dropped; asking twice
    /// gives a task that ends at once.
    fn driver(&self) -> BoxFuture<'static, ()>;
}

impl<T: Driven + ?Sized> Driven for Arc<T> {
    fn driver(&self) -> BoxFuture<'static, ()> {
        (**self).driver()
    }
}

/// smoltcp over a [`Netif`]: `stack::direct(netif, ipv4 = ...)`.
pub struct Direct {
    shared: Arc<Shared>,
    parts: spin::Mutex<Option<DriverParts>>,
}

struct DriverParts {
    netif: Arc<dyn Netif>,
    clock: Arc<dyn MonoClock>,
    time: Arc<dyn Time>,
}

struct Shared {
    state: spin::Mutex<State_>,
    poke: Poke,
    stopped: AtomicBool,
}

// `State` is smoltcp's TCP state; this is the stack's.
#[allow(non_camel_case_types)]
struct State_ {
    iface: Interface,
    sockets: SocketSet<'static>,
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
    reliable: bool,
    /// Ports with a listener.
    ports: BTreeSet<u16>,
    /// Ports with a UDP socket.
    udp_ports: BTreeSet<u16>,
    /// The DHCP client, if the address comes from one, and its lease.
    dhcp: Option<SocketHandle>,
    lease: Option<(smoltcp::wire::Ipv4Cidr, Option<Ipv4Addr>)>,
    /// Backlogs of dropped listeners, kept listening for the next `listen`
    /// on their port: a job restarted by a hot reload loses no connection.
    parked: BTreeMap<u16, Vec<SocketHandle>>,
    /// Sockets whose flow was dropped: closed gracefully, removed when done.
    orphans: Vec<Orphan>,
    next_port: u16,
    /// Monotonic microseconds at the last poll.
    now: i64,
}

impl Direct {
    /// A stack with `config`'s address on `netif`, keeping time with `clock`
    /// and `time`; `random` seeds sequence numbers and ports.
    pub fn new(
        netif: impl Netif + 'static,
        clock: impl MonoClock + 'static,
        time: impl Time + 'static,
        random: impl Random,
        config: Config,
    ) -> Result<Direct, NetError> {
        let mac = EthernetAddress(netif.mac());
        if !mac.is_unicast() {
            return Err(NetError::BadConfig(
                "the netif's MAC address is not unicast",
            ));
        }
        if !config.dhcp && (config.ipv4.prefix > 32 || config.ipv4.addr.is_unspecified()) {
            return Err(NetError::BadConfig("the IPv4 address is unusable"));
        }
        let mtu = netif.mtu();
        let reliable = netif.reliable();
        if !(576..=65535).contains(&mtu) {
            return Err(NetError::BadConfig(
                "the netif's MTU is outside 576..=65535",
            ));
        }
        let mut seed = [0u8; 8];
        random
            .fill(&mut seed)
            .map_err(|_| NetError::BadConfig("no random seed"))?;
        let seed = u64::from_le_bytes(seed);
        let mut rx = VecDeque::new();
        let mut tx = VecDeque::new();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(mac));
        cfg.random_seed = seed;
        let now = micros(&clock);
        let mut iface = Interface::new(
            cfg,
            &mut Frames {
                rx: &mut rx,
                tx: &mut tx,
                mtu,
                reliable,
            },
            Instant::from_micros(now),
        );
        let mut sockets = SocketSet::new(Vec::new());
        let dhcp = if config.dhcp {
            Some(sockets.add(dhcpv4::Socket::new()))
        } else {
            let cidr = IpCidr::new(IpAddress::Ipv4(config.ipv4.addr), config.ipv4.prefix);
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(cidr);
            });
            None
        };
        if let Some(gw) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .map_err(|_| NetError::BadConfig("no room for the default route"))?;
        }
        let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start());
        let next_port = EPHEMERAL.start() + (seed % span) as u16;
        Ok(Direct {
            shared: Arc::new(Shared {
                state: spin::Mutex::new(State_ {
                    iface,
                    sockets,
                    rx,
                    tx,
                    mtu,
                    reliable,
                    ports: BTreeSet::new(),
                    udp_ports: BTreeSet::new(),
                    dhcp,
                    lease: None,
                    parked: BTreeMap::new(),
                    orphans: Vec::new(),
                    next_port,
                    now,
                }),
                poke: Poke::default(),
                stopped: AtomicBool::new(false),
            }),
            parts: spin::Mutex::new(Some(DriverParts {
                netif: Arc::new(netif),
                clock: Arc::new(clock),
                time: Arc::new(time),
            })),
        })
    }

    /// Each TCP socket's state, send and receive queue lengths (for tests
    /// and diagnostics).
    pub fn socket_states(&self) -> Vec<alloc::string::String> {
        let st = self.shared.state.lock();
        st.sockets
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => Some(alloc::format!(
                    "{} send {} recv {} win {}",
                    t.state(),
                    t.send_queue(),
                    t.recv_queue(),
                    t.recv_capacity() - t.recv_queue()
                )),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect()
    }

    /// How many sockets the stack holds (listening, open and closing).
    pub fn sockets(&self) -> usize {
        self.shared.state.lock().sockets.iter().count()
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.poke.poke();
    }
}

/// `d` as smoltcp's duration (whole milliseconds).
fn smol(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn micros(clock: &impl MonoClock) -> i64 {
    i64::try_from(clock.elapsed_ns() / 1000).unwrap_or(i64::MAX)
}

impl Driven for Direct {
    fn driver(&self) -> BoxFuture<'static, ()> {
        let parts = self.parts.lock().take();
        let shared = self.shared.clone();
        Box::pin(async move {
            if let Some(parts) = parts {
                drive(shared, parts).await
            }
        })
    }
}

type Received = Pin<Box<dyn Future<Output = (Vec<u8>, Result<usize, NetError>)> + Send>>;

async fn drive(shared: Arc<Shared>, parts: DriverParts) {
    let DriverParts { netif, clock, time } = parts;
    let mtu = netif.mtu();
    let mut recv: Option<Received> = None;
    let mut failures: u32 = 0;
    let mut streak: u32 = 0;
    while !shared.stopped.load(Ordering::Acquire) {
        let (delay, backlogged) = shared.poll(micros(&clock));
        // Send what smoltcp queued, outside the lock.
        loop {
            let frame = shared.state.lock().tx.pop_front();
            let Some(frame) = frame else { break };
            // A frame the link refuses is a frame lost on the wire: TCP resends.
            let _ = netif.send(&frame).await;
        }
        if backlogged {
            // More to do at once, but let the jobs run first: frames that
            // keep coming must not starve them (nothing here ever waits
            // when the netif is always ready).
            crate::task::yield_now().await;
            continue;
        }
        let pending = recv.get_or_insert_with(|| {
            let netif = netif.clone();
            Box::pin(async move {
                let mut buf = vec![0; mtu];
                let got = netif.recv(&mut buf).await;
                (buf, got)
            })
        });
        let mut sleep = delay.map(|d| time.sleep(d));
        // Whether this wait returned at once: a frame, a poke or a timer
        // was already there. Rounds that never wait give the jobs no turn,
        // and a peer that sends as fast as the stack answers (a client
        // retrying a refused SYN at once) would starve them: the guest's
        // executor has no budget that forces a yield. So after [`STREAK`]
        // such rounds the driver yields (not after each: a yield per frame
        // cost a third of the requests/s over a tap).
        let mut waited = false;
        let woke = poll_fn(|cx| {
            if let Poll::Ready(got) = pending.as_mut().poll(cx) {
                return Poll::Ready(Some(got));
            }
            if shared.poke.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            match sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(None),
                _ => {
                    waited = true;
                    Poll::Pending
                }
            }
        })
        .await;
        drop(sleep);
        streak = if waited { 0 } else { streak + 1 };
        if streak >= STREAK {
            streak = 0;
            crate::task::yield_now().await;
        }
        let Some((mut frame, got)) = woke else {
            continue;
        };
        recv = None;
        match got {
            Ok(len) if len <= frame.len() => {
                failures = 0;
                frame.truncate(len);
                {
                    let mut st = shared.state.lock();
                    if st.rx.len() < QUEUE {
                        st.rx.push_back(frame);
                    }
                }
                // After this frame, in order: the ones that arrived with it,
                // on a link where each receive is dear (a hypercall).
                if netif.reliable() {
                    take_waiting(&shared, &*netif, mtu).await;
                }
            }
            // A frame too large for the MTU, or a netif lying about lengths:
            // drop it and go on.
            Ok(_) | Err(NetError::FrameTooLarge { .. }) => {}
            Err(_) => {
                // A failing link: back off rather than spin, and keep trying.
                failures = failures.saturating_add(1);
                time.sleep(Duration::from_millis(10 * u64::from(failures.min(100))))
                    .await;
            }
        }
    }
}

/// Takes every frame already waiting on `netif` (one whose `recv` is ready
/// at once), so smoltcp runs once for a burst rather than once per frame.
async fn take_waiting(shared: &Shared, netif: &dyn Netif, mtu: usize) {
    while shared.state.lock().rx.len() < QUEUE {
        let mut frame = vec![0; mtu];
        let ready = {
            let mut recv = netif.recv(&mut frame);
            poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx))).await
        };
        match ready {
            Poll::Ready(Ok(len)) if len <= frame.len() => {
                frame.truncate(len);
                shared.state.lock().rx.push_back(frame);
            }
            Poll::Ready(Ok(_)) | Poll::Ready(Err(NetError::FrameTooLarge { .. })) => {}
            Poll::Ready(Err(_)) | Poll::Pending => return,
        }
    }
}

impl Shared {
    /// Runs smoltcp once at `now` (µs): ingress, egress, timers. Returns how
    /// long it may sleep, and whether the transmit queue filled up (then it
    /// must run again as soon as the queue is sent).
    fn poll(&self, now: i64) -> (Option<Duration>, bool) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.now = now;
        let at = Instant::from_micros(now);
        let mut dev = Frames {
            rx: &mut st.rx,
            tx: &mut st.tx,
            mtu: st.mtu,
            reliable: st.reliable,
        };
        // smoltcp sends at most one segment per socket per poll. On a link
        // where each wake-up is dear (a unikernel's, [`Netif::reliable`]),
        // poll until nothing more goes out, so a window's worth of data
        // leaves at once. (Elsewhere one poll per wake-up: polling until
        // idle over a lossy link made recovery slower, 5 % loss runs of
        // 96 KiB up to 31 s instead of 12 s, measured with smoltcp 0.13.)
        let rounds = if st.reliable { QUEUE } else { 1 };
        for _ in 0..rounds {
            let before = dev.tx.len();
            st.iface.poll(at, &mut dev, &mut st.sockets);
            if dev.tx.len() == before || dev.tx.len() >= QUEUE {
                break;
            }
        }
        if let Some(h) = st.dhcp {
            st.lease_event(h);
        }
        let backlogged = st.tx.len() >= QUEUE || !st.rx.is_empty();
        let sockets = &mut st.sockets;
        st.orphans.retain(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.handle);
            // Closed: done, or timed out (smoltcp then resets it).
            let done = matches!(s.state(), State::Closed | State::TimeWait);
            if done || now as u64 >= o.expires {
                if !done {
                    s.abort();
                }
                sockets.remove(o.handle);
                false
            } else {
                true
            }
        });
        let delay = st
            .iface
            .poll_delay(at, &st.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        let delay = match (delay, st.orphans.is_empty()) {
            // Wake up in time to reap what lingers.
            (None, false) => Some(Duration::from_secs(1)),
            (d, _) => d,
        };
        (delay, backlogged)
    }

    fn listening_socket(st: &mut State_, port: u16) -> Result<SocketHandle, NetError> {
        let mut s = new_socket();
        s.listen(port)
            .map_err(|_| NetError::BadConfig("cannot listen on port 0"))?;
        Ok(st.sockets.add(s))
    }
}

fn new_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUFFER]),
        tcp::SocketBuffer::new(vec![0; BUFFER]),
    );
    s.set_nagle_enabled(false);
    // smoltcp 0.12 has no persist timer: a sender whose peer's window is
    // closed waits for a window update, and if that one segment is lost it
    // waits for ever. A keep-alive from the idle sender draws an ACK that
    // carries the peer's window, which is all a zero-window probe does.
    s.set_keep_alive(Some(smol(PERSIST)));
    s
}

impl Stack for Direct {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn crate::Listener>, NetError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            if port == 0 {
                return Err(NetError::BadConfig("cannot listen on port 0"));
            }
            let mut st = shared.state.lock();
            if !st.ports.insert(port) {
                return Err(NetError::AddrInUse);
            }
            let mut backlog = st.parked.remove(&port).unwrap_or_default();
            while backlog.len() < BACKLOG {
                backlog.push(Shared::listening_socket(&mut st, port)?);
            }
            drop(st);
            Ok(Box::new(DirectListener {
                shared: shared.clone(),
                port,
                backlog,
            }) as Box<dyn crate::Listener>)
        })
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let handle = {
                let mut guard = shared.state.lock();
                let st = &mut *guard;
                let local = st.next_port;
                st.next_port = if local == *EPHEMERAL.end() {
                    *EPHEMERAL.start()
                } else {
                    local + 1
                };
                let mut s = new_socket();
                s.set_timeout(Some(smoltcp::time::Duration::from_secs(30)));
                s.connect(
                    st.iface.context(),
                    (IpAddress::Ipv4(*addr.ip()), addr.port()),
                    local,
                )
                .map_err(|_| NetError::BadConfig("cannot connect to that address"))?;
                st.sockets.add(s)
            };
            shared.poke.poke();
            // Made first, so a failed or abandoned connect is reaped by its drop.
            let flow = DirectFlow {
                shared: shared.clone(),
                handle,
            };
            poll_fn(|cx| {
                let mut st = shared.state.lock();
                let s = st.sockets.get_mut::<tcp::Socket>(handle);
                match s.state() {
                    State::SynSent | State::SynReceived => {
                        s.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    State::Closed | State::TimeWait => Poll::Ready(Err(NetError::Refused)),
                    _ => {
                        s.set_timeout(None);
                        Poll::Ready(Ok(()))
                    }
                }
            })
            .await?;
            Ok(Box::new(flow) as Box<dyn Flow>)
        })
    }

    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut guard = shared.state.lock();
            let st = &mut *guard;
            let port = match port {
                0 => {
                    let free = EPHEMERAL.clone().find(|p| !st.udp_ports.contains(p));
                    free.ok_or(NetError::AddrInUse)?
                }
                p => p,
            };
            if !st.udp_ports.insert(port) {
                return Err(NetError::AddrInUse);
            }
            let buffer = || {
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                    vec![0; UDP_BUFFER],
                )
            };
            let mut s = udp::Socket::new(buffer(), buffer());
            if s.bind(port).is_err() {
                st.udp_ports.remove(&port);
                return Err(NetError::BadConfig("cannot bind UDP port 0"));
            }
            let handle = st.sockets.add(s);
            let mtu = st.mtu;
            drop(guard);
            Ok(Box::new(DirectUdp {
                shared: shared.clone(),
                handle,
                port,
                mtu,
            }) as Box<dyn UdpSocket>)
        })
    }

    fn describe(&self) -> Vec<alloc::string::String> {
        let st = self.shared.state.lock();
        let mut lines = alloc::vec![alloc::format!(
            "listening on {:?}",
            st.ports.iter().collect::<Vec<_>>()
        )];
        if !st.udp_ports.is_empty() {
            lines.push(alloc::format!(
                "udp on {:?}",
                st.udp_ports.iter().collect::<Vec<_>>()
            ));
        }
        if st.dhcp.is_some() {
            lines.push(match st.lease {
                Some((cidr, Some(router))) => alloc::format!("dhcp: {cidr} via {router}"),
                Some((cidr, None)) => alloc::format!("dhcp: {cidr}"),
                None => "dhcp: waiting for a lease".into(),
            });
        }
        drop(st);
        lines.extend(self.socket_states());
        lines
    }
}

impl State_ {
    /// Applies what the DHCP client learnt since the last poll.
    fn lease_event(&mut self, h: SocketHandle) {
        let lease = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some((cidr, _)) = lease {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some((_, Some(router))) = lease {
            let _ = routes.add_default_ipv4_route(router);
        }
        self.lease = lease;
    }
}

/// A UDP socket of [`Direct`].
struct DirectUdp {
    shared: Arc<Shared>,
    handle: SocketHandle,
    port: u16,
    mtu: usize,
}

impl UdpSocket for DirectUdp {
    fn send_to<'a>(
        &'a mut self,
        data: &'a [u8],
        to: SocketAddrV4,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(poll_fn(move |cx| {
            if data.len() + UDP_OVERHEAD > self.mtu {
                return Poll::Ready(Err(NetError::FrameTooLarge {
                    len: data.len() + UDP_OVERHEAD,
                    mtu: self.mtu,
                }));
            }
            let mut st = self.shared.state.lock();
            let s = st.sockets.get_mut::<udp::Socket>(self.handle);
            let to = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
            match s.send_slice(data, to) {
                Ok(()) => {
                    drop(st);
                    self.shared.poke.poke();
                    Poll::Ready(Ok(()))
                }
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::BadConfig(
                    "cannot send a datagram to that address",
                ))),
            }
        }))
    }

    fn recv_from<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> BoxFuture<'a, Result<(usize, SocketAddrV4), NetError>> {
        Box::pin(poll_fn(move |cx| {
            let mut st = self.shared.state.lock();
            let s = st.sockets.get_mut::<udp::Socket>(self.handle);
            match s.recv_slice(buf) {
                Ok((n, meta)) => {
                    let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                    Poll::Ready(Ok((n, SocketAddrV4::new(ip, meta.endpoint.port))))
                }
                Err(udp::RecvError::Truncated) => Poll::Ready(Err(NetError::FrameTooLarge {
                    len: buf.len() + 1,
                    mtu: buf.len(),
                })),
                Err(udp::RecvError::Exhausted) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        }))
    }

    fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for DirectUdp {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.sockets.remove(self.handle);
        st.udp_ports.remove(&self.port);
    }
}

/// A listener of [`Direct`]: a backlog of listening sockets on one port.
struct DirectListener {
    shared: Arc<Shared>,
    port: u16,
    backlog: Vec<SocketHandle>,
}

impl crate::Listener for DirectListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Accepted, NetError>> {
        Box::pin(poll_fn(|cx| {
            let mut guard = self.shared.state.lock();
            let st = &mut *guard;
            for i in 0..self.backlog.len() {
                let h = self.backlog[i];
                let s = st.sockets.get_mut::<tcp::Socket>(h);
                match s.state() {
                    State::Listen | State::SynReceived => s.register_recv_waker(cx.waker()),
                    State::Closed => {
                        // Reset during the handshake: listen again.
                        s.abort();
                        let _ = s.listen(self.port);
                        s.register_recv_waker(cx.waker());
                    }
                    _ => {
                        let peer = match s.remote_endpoint() {
                            Some(IpEndpoint {
                                addr: IpAddress::Ipv4(a),
                                port,
                            }) => SocketAddrV4::new(a, port),
                            _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        };
                        let fresh = Shared::listening_socket(st, self.port)?;
                        self.backlog[i] = fresh;
                        drop(guard);
                        let flow = DirectFlow {
                            shared: self.shared.clone(),
                            handle: h,
                        };
                        return Poll::Ready(Ok((Box::new(flow) as Box<dyn Flow>, peer)));
                    }
                }
            }
            Poll::Pending
        }))
    }
}

impl Drop for DirectListener {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.ports.remove(&self.port);
        st.parked
            .insert(self.port, core::mem::take(&mut self.backlog));
    }
}

/// A socket whose flow was dropped, closing gracefully: removed when
/// closed, timed out by smoltcp after [`LINGER`] without a word from the
/// peer, or aborted at [`ORPHAN_MAX`].
struct Orphan {
    handle: SocketHandle,
    /// Monotonic microseconds when it is aborted whatever its state.
    expires: u64,
}

/// A TCP connection of [`Direct`].
struct DirectFlow {
    shared: Arc<Shared>,
    handle: SocketHandle,
}

impl Flow for DirectFlow {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(poll_fn(move |cx| {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let mut st = self.shared.state.lock();
            let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
            if s.can_recv() {
                let n = s.recv_slice(buf).unwrap_or(0);
                drop(st);
                // The window opened: let the driver tell the peer.
                self.shared.poke.poke();
                return Poll::Ready(Ok(n));
            }
            if !s.may_recv() {
                return Poll::Ready(match s.state() {
                    // Closed without the peer's FIN: a reset or a timeout.
                    State::Closed if s.remote_endpoint().is_none() => Err(FlowError::Reset),
                    _ => Ok(0),
                });
            }
            s.register_recv_waker(cx.waker());
            Poll::Pending
        }))
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(poll_fn(move |cx| {
            if data.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let mut st = self.shared.state.lock();
            let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
            if !s.may_send() {
                return Poll::Ready(Err(match s.state() {
                    State::Closed | State::TimeWait => FlowError::Reset,
                    _ => FlowError::Closed,
                }));
            }
            if s.can_send() {
                let n = s.send_slice(data).unwrap_or(0);
                drop(st);
                self.shared.poke.poke();
                return Poll::Ready(Ok(n));
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        }))
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        self.shared
            .state
            .lock()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .close();
        self.shared.poke.poke();
        Box::pin(async { Ok(()) })
    }
}

impl Drop for DirectFlow {
    fn drop(&mut self) {
        let mut guard = self.shared.state.lock();
        let st = &mut *guard;
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        s.close();
        // Gone when the peer has said nothing for LINGER: its keep-alive
        // answers and ACKs keep a slow reader served to the end.
        s.set_timeout(Some(smol(LINGER)));
        st.orphans.push(Orphan {
            handle: self.handle,
            expires: (st.now as u64).saturating_add(ORPHAN_MAX.as_micros() as u64),
        });
        drop(guard);
        self.shared.poke.poke();
    }
}

/// Wakes the driver when a job changed a socket.
#[derive(Default)]
struct Poke {
    flag: AtomicBool,
    waker: spin::Mutex<Option<Waker>>,
}

impl Poke {
    fn poke(&self) {
        self.flag.store(true, Ordering::Release);
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        if self.flag.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// smoltcp's view of two frame queues: it takes received frames from `rx`
/// and appends what it sends to `tx` (up to a bound, beyond which it holds
/// back). Also used by nym's monitor for its end of a guest's link.
pub struct Frames<'a> {
    /// Frames received, oldest first.
    pub rx: &'a mut VecDeque<Vec<u8>>,
    /// Frames to send, oldest first.
    pub tx: &'a mut VecDeque<Vec<u8>>,
    /// The largest frame, Ethernet header included.
    pub mtu: usize,
    /// Skip checksums (a link that cannot corrupt frames: [`Netif::reliable`]).
    pub reliable: bool,
}

impl Device for Frames<'_> {
    type RxToken<'b>
        = Rx
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        (self.tx.len() < QUEUE).then_some(Tx(&mut *self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        if self.reliable {
            caps.checksum = smoltcp::phy::ChecksumCapabilities::ignored();
        }
        caps
    }
}

/// A received frame.
pub struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room to send a frame.
pub struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}
