//! UDP forwarding (`-p HOST:GUEST/udp`): netd reads each datagram a host
//! client sends to `127.0.0.1:HOST` and sends it on to the guest's port
//! `GUEST` from `10.0.2.2`, through a smoltcp UDP socket in its own stack;
//! what the guest sends back to that socket goes to the client.
//!
//! Each client (an address and port on the host) is a *flow* with a socket,
//! and so a source port on `10.0.2.2`, of its own, so that the answers of
//! several clients never cross. The flows are a small NAT table: at most
//! [`MAX_FLOWS`] across all forwards, each ended after [`IDLE`] with no
//! datagram either way, the least recently used one ended to make room
//! when the table is full. Datagrams queue only in a flow's socket (a few
//! each way); one larger than a frame carries ([`MAX_PAYLOAD`]: the link
//! has no fragmentation), and one that finds a full queue or a host socket
//! that will not take it, is dropped and counted ([`Dropped`]), as a
//! network drops it. The host sockets are always polled for reading and
//! always read to the end, so netd never spins on one; they are bound
//! before netd confines itself, and read and written with `recvfrom` and
//! `sendto` only.
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Flows (host clients) forwarded at once, across all UDP forwards; a new
/// client past it ends the flow idle longest.
pub const MAX_FLOWS: usize = 64;

/// How long a flow lasts with no datagram either way.
pub const IDLE: Duration = Duration::from_secs(60);

/// The largest datagram one frame on the link carries: the frame less its
/// Ethernet (14), IPv4 (20) and UDP (8) headers. Larger ones are dropped.
pub const MAX_PAYLOAD: usize = super::MTU - 14 - 20 - 8;

/// Datagrams a flow's socket holds each way before more are dropped.
const PACKETS: usize = 8;

/// The source ports flows take on `10.0.2.2`, in turn (a port is not
/// reused while a flow holds it, and a late answer to an ended flow only
/// reaches a newer client after the whole range has gone round).
const PORTS: std::ops::RangeInclusive<u16> = 20000..=39999;

/// Datagrams read from one host socket per call of [`Udp::pump`]: a busy
/// forward cannot keep netd from the rest (it is readable again at once).
const BATCH: usize = 64;

/// Datagrams dropped, by why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// From a host client, larger than [`MAX_PAYLOAD`].
    pub too_large: u64,
    /// From a host client, with its flow's socket full (the guest is
    /// slower than its clients) or the flow not made.
    pub to_guest: u64,
    /// From the guest, refused by the host (the client's socket buffer
    /// full, or the client gone).
    pub to_host: u64,
}

/// One UDP forward: the host socket and the guest's port.
#[derive(Debug)]
pub(super) struct Forward {
    /// Bound on `127.0.0.1:HOST` by the caller, non-blocking.
    pub(super) socket: UdpSocket,
    /// The guest's port.
    pub(super) guest_port: u16,
}

/// One host client of a forward, and its socket (its port) on the link.
struct Flow {
    /// Its forward's index.
    forward: usize,
    client: SocketAddr,
    socket: SocketHandle,
    port: u16,
    /// Its last datagram either way.
    last: Instant,
}

/// netd's UDP forwards and their flows.
pub(super) struct Udp {
    forwards: Vec<Forward>,
    flows: Vec<Flow>,
    next_port: u16,
    /// Where a host datagram is read: one byte more than the largest that
    /// is forwarded, so a larger one is seen to be larger.
    buf: Vec<u8>,
    /// What was dropped so far.
    pub(super) dropped: Dropped,
}

impl Udp {
    /// `forwards`, with no flows yet.
    pub(super) fn new(forwards: Vec<Forward>) -> Udp {
        Udp {
            forwards,
            flows: Vec::new(),
            next_port: *PORTS.start(),
            buf: vec![0; MAX_PAYLOAD + 1],
            dropped: Dropped::default(),
        }
    }

    /// The host sockets, each to be polled for reading.
    pub(super) fn fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.forwards.iter().map(|f| f.socket.as_raw_fd())
    }

    /// When the next flow goes idle, if any is open.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.flows.iter().map(|f| f.last + IDLE).min()
    }

    /// The clients with a flow now, oldest flow first.
    #[cfg(test)]
    fn clients(&self) -> Vec<SocketAddr> {
        let mut flows: Vec<&Flow> = self.flows.iter().collect();
        flows.sort_by_key(|f| f.last);
        flows.iter().map(|f| f.client).collect()
    }

    /// Ends idle flows, passes the guest's datagrams to their clients and
    /// the clients' to the guest (at `guest_ip`); whether anything moved.
    pub(super) fn pump(
        &mut self,
        sockets: &mut SocketSet<'static>,
        guest_ip: Ipv4Addr,
        now: Instant,
        trace: bool,
    ) -> bool {
        let mut any = false;
        self.flows.retain(|f| {
            let idle = now.saturating_duration_since(f.last) >= IDLE;
            if idle {
                sockets.remove(f.socket);
                any = true;
            }
            !idle
        });
        // The guest's answers, each to the client of the flow it came to.
        for flow in &mut self.flows {
            let s = sockets.get_mut::<udp::Socket>(flow.socket);
            while let Ok((data, meta)) = s.recv() {
                any = true;
                if meta.endpoint.addr != IpAddress::Ipv4(guest_ip) {
                    continue;
                }
                flow.last = now;
                let host = &self.forwards[flow.forward].socket;
                if let Err(e) = host.send_to(data, flow.client) {
                    self.dropped.to_host += 1;
                    if trace {
                        eprintln!("net: udp answer to {} dropped: {e}", flow.client);
                    }
                }
            }
        }
        // The clients' datagrams.
        for i in 0..self.forwards.len() {
            for _ in 0..BATCH {
                let (n, client) = match self.forwards[i].socket.recv_from(&mut self.buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // WouldBlock: all read. Anything else (an ICMP error
                    // reported once) ends this round too.
                    Err(_) => break,
                };
                any = true;
                if n > MAX_PAYLOAD {
                    self.dropped.too_large += 1;
                    if trace {
                        eprintln!("net: udp datagram from {client} dropped: larger than {MAX_PAYLOAD} bytes");
                    }
                    continue;
                }
                let Some(flow) = self.flow(sockets, i, client, now) else {
                    self.dropped.to_guest += 1;
                    continue;
                };
                let to = IpEndpoint::new(IpAddress::Ipv4(guest_ip), self.forwards[i].guest_port);
                let s = sockets.get_mut::<udp::Socket>(self.flows[flow].socket);
                if s.send_slice(&self.buf[..n], to).is_err() {
                    self.dropped.to_guest += 1;
                    if trace {
                        eprintln!("net: udp datagram from {client} dropped: its queue to the guest is full");
                    }
                }
            }
        }
        any
    }

    /// The index of `client`'s flow through forward `forward`, made if
    /// new (the least recently used flow ended to make room); `None` if
    /// its socket could not be bound.
    fn flow(
        &mut self,
        sockets: &mut SocketSet<'static>,
        forward: usize,
        client: SocketAddr,
        now: Instant,
    ) -> Option<usize> {
        if let Some(i) = self
            .flows
            .iter()
            .position(|f| f.forward == forward && f.client == client)
        {
            self.flows[i].last = now;
            return Some(i);
        }
        if self.flows.len() >= MAX_FLOWS {
            let oldest = (0..self.flows.len()).min_by_key(|&i| self.flows[i].last)?;
            let gone = self.flows.swap_remove(oldest);
            sockets.remove(gone.socket);
        }
        let port = self.free_port();
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; PACKETS],
                vec![0; PACKETS * MAX_PAYLOAD],
            )
        };
        let mut s = udp::Socket::new(buffer(), buffer());
        s.bind(port).ok()?;
        self.flows.push(Flow {
            forward,
            client,
            socket: sockets.add(s),
            port,
            last: now,
        });
        Some(self.flows.len() - 1)
    }

    /// The next port of [`PORTS`] no flow holds (there are far more ports
    /// than flows, so the search is short).
    fn free_port(&mut self) -> u16 {
        loop {
            let port = self.next_port;
            self.next_port = if port >= *PORTS.end() {
                *PORTS.start()
            } else {
                port + 1
            };
            if self.flows.iter().all(|f| f.port != port) {
                return port;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> UdpSocket {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// The table holds at most MAX_FLOWS clients, the least recently
    /// used one making room, and ends a flow idle for IDLE; too large a
    /// datagram makes none and is counted.
    #[test]
    fn the_nat_table_is_bounded_and_forgets_idle_clients() {
        let host = bound();
        let port = host.local_addr().unwrap();
        let mut udp = Udp::new(vec![Forward {
            socket: host,
            guest_port: 53,
        }]);
        let mut sockets = SocketSet::new(Vec::new());
        let guest = Ipv4Addr::new(10, 0, 2, 15);
        let start = Instant::now();
        let clients: Vec<UdpSocket> = (0..=MAX_FLOWS).map(|_| bound()).collect();
        // Each client a tenth of a second after the one before.
        let tick = |i: usize| start + Duration::from_millis(100 * i as u64);
        for (i, c) in clients.iter().enumerate() {
            c.send_to(b"q", port).unwrap();
            let at = tick(i);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !udp.clients().contains(&c.local_addr().unwrap()) {
                assert!(Instant::now() < deadline, "client {i} got no flow");
                udp.pump(&mut sockets, guest, at, false);
            }
        }
        let held = udp.clients();
        assert_eq!(held.len(), MAX_FLOWS);
        assert_eq!(sockets.iter().count(), MAX_FLOWS, "a socket per flow");
        let addr = |i: usize| clients[i].local_addr().unwrap();
        assert!(!held.contains(&addr(0)), "the oldest made room");
        assert_eq!(held[0], addr(1));
        assert_eq!(udp.deadline(), Some(tick(1) + IDLE));
        // Client 1 speaks again: client 2 is now the oldest.
        clients[1].send_to(b"q", port).unwrap();
        let later = tick(MAX_FLOWS + 1);
        while udp.clients()[0] == addr(1) {
            udp.pump(&mut sockets, guest, later, false);
        }
        assert_eq!(udp.clients()[0], addr(2));
        assert_eq!(udp.clients().last(), Some(&addr(1)));
        // Too large for a frame: dropped, counted, no flow made.
        let big = bound();
        big.send_to(&vec![0; MAX_PAYLOAD + 1], port).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while udp.dropped.too_large == 0 {
            assert!(Instant::now() < deadline, "the large datagram never came");
            udp.pump(&mut sockets, guest, later, false);
        }
        assert!(!udp.clients().contains(&big.local_addr().unwrap()));
        // Idle for IDLE: all but client 1 go, then client 1 too.
        udp.pump(&mut sockets, guest, tick(MAX_FLOWS) + IDLE, false);
        assert_eq!(udp.clients(), [addr(1)]);
        udp.pump(&mut sockets, guest, later + IDLE, false);
        assert!(udp.clients().is_empty());
        assert_eq!(sockets.iter().count(), 0);
        assert_eq!(udp.deadline(), None);
    }
}
