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
mod dhcp;
mod driver;
mod frames;
mod record;
mod tcp;
#[cfg(test)]
mod testkit;
mod udp;

pub use frames::{Frames, Rx, Tx};

use crate::net::UdpSocket;
use crate::{BoxFuture, Flow, Ipv4Cidr, MonoClock, NetError, Netif, Random, Stack, Time};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use driver::Poke;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use tcp::Orphan;

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
/// stack's persist timer (see [`new_socket`](tcp::new_socket)).
const PERSIST: Duration = Duration::from_secs(1);
/// How long an abandoned connection may go without a word from its peer
/// (keep-alives included) before it is aborted: the peer has vanished.
const LINGER: Duration = Duration::from_secs(30);
/// The longest an abandoned connection is kept at all, for a peer that
/// answers but never closes.
const ORPHAN_MAX: Duration = Duration::from_secs(600);
/// Rounds in a row the driver may find work waiting before it lets the
/// jobs run (see [`drive`](driver::drive)).
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
    /// The neighbours and sockets recorded, once a session asks.
    history: spin::Mutex<Option<record::Recorder>>,
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
    /// The neighbours learned from ARP (as smoltcp's cache is filled).
    neighbours: BTreeMap<Ipv4Addr, EthernetAddress>,
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
                    neighbours: BTreeMap::new(),
                    next_port,
                    now,
                }),
                poke: Poke::default(),
                stopped: AtomicBool::new(false),
                history: spin::Mutex::new(None),
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

impl Stack for Direct {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn crate::Listener>, NetError>> {
        Box::pin(tcp::listen(self.shared.clone(), port))
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        Box::pin(tcp::connect(self.shared.clone(), addr))
    }

    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        Box::pin(udp::bind(self.shared.clone(), port))
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
        lines.extend(st.describe_lease());
        lines.extend(
            (st.neighbours.iter())
                .map(|(ip, mac)| alloc::format!("neighbour {ip} is {}", record::mac_text(*mac))),
        );
        drop(st);
        lines.extend(self.socket_states());
        lines
    }

    fn record_changes(
        &self,
        clock: Arc<dyn crate::WallClock>,
        bound: usize,
    ) -> Option<Arc<dyn crate::kv::Versioned>> {
        Some(self.start_recording(clock, bound))
    }
}
