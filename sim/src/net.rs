//! The simulated network: one switch with a port per node, each frame
//! between two nodes subject to their link (latency, jitter, bandwidth,
//! loss, reordering, duplication), partitions and links down.
//!
//! Every choice that is random comes from one generator seeded by the
//! run's seed, drawn in the order frames are sent: on one thread, on
//! virtual time, the same seed makes the same choices. A frame in flight
//! is a task sleeping until its arrival.
use crate::pcap::Pcap;
use crate::topology::{Link, Topology};
use libos::{BoxFuture, NetError, Netif};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The largest frame a port carries (Ethernet with its header).
pub const MTU: usize = 1514;

/// Frames waiting at a port before the newest are dropped, as a NIC's ring.
const QUEUE: usize = 1024;

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True `percent` % of the time.
    pub fn chance(&mut self, percent: u8) -> bool {
        percent > 0 && self.draw() % 100 < u64::from(percent)
    }
}

/// Counts of what the network did with frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames handed to the switch.
    pub sent: u64,
    /// Frames delivered to a port (duplicates counted).
    pub delivered: u64,
    /// Lost to a link's loss.
    pub lost: u64,
    /// Stopped by a partition or a link down.
    pub cut: u64,
    /// Held back behind later frames.
    pub reordered: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Dropped at a full port or a port whose node is down.
    pub dropped: u64,
}

struct Port {
    frames: VecDeque<Vec<u8>>,
    up: bool,
    mac: [u8; 6],
    pcap: Option<Pcap>,
}

struct State {
    ports: Vec<Port>,
    /// Which port each MAC was last seen sending from.
    learned: BTreeMap<[u8; 6], usize>,
    /// Each node's partition group, while partitioned.
    groups: Option<Vec<usize>>,
    down: BTreeSet<(usize, usize)>,
    /// When each directed pair's link is free to start the next frame.
    busy: BTreeMap<(usize, usize), Instant>,
    rng: Rng,
    counts: Counts,
}

/// The switch and its ports.
pub struct Network {
    links: Vec<Vec<Link>>,
    start: Instant,
    state: Mutex<State>,
    arrived: Vec<Notify>,
}

impl Network {
    /// The network of `topology`, with randomness from `seed`, started now.
    pub fn new(topology: &Topology, seed: u64) -> Arc<Network> {
        let n = topology.nodes.len();
        let links = (0..n)
            .map(|a| (0..n).map(|b| topology.link(a, b)).collect())
            .collect();
        let ports = (0..n)
            .map(|i| Port {
                frames: VecDeque::new(),
                up: true,
                // Locally administered, unicast, numbered by node.
                mac: [0x02, 0x6e, 0x79, 0x6d, (i >> 8) as u8, i as u8],
                pcap: None,
            })
            .collect();
        Arc::new(Network {
            links,
            start: Instant::now(),
            state: Mutex::new(State {
                ports,
                learned: BTreeMap::new(),
                groups: None,
                down: BTreeSet::new(),
                busy: BTreeMap::new(),
                rng: Rng::new(seed ^ 0x006e_796d_5f6e_6574),
                counts: Counts::default(),
            }),
            arrived: (0..n).map(|_| Notify::new()).collect(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulated time since the run started.
    pub fn now(&self) -> Duration {
        Instant::now() - self.start
    }

    /// Node `node`'s interface.
    pub fn port(self: &Arc<Self>, node: usize) -> Arc<dyn Netif> {
        Arc::new(PortNetif {
            net: self.clone(),
            node,
        })
    }

    /// Writes every frame node `node` sends or receives to `pcap`.
    pub fn capture(&self, node: usize, pcap: Pcap) {
        self.lock().ports[node].pcap = Some(pcap);
    }

    /// The captures, finished (their files flushed).
    pub fn finish_captures(&self) -> std::io::Result<()> {
        let mut st = self.lock();
        for p in &mut st.ports {
            if let Some(pcap) = &mut p.pcap {
                pcap.flush()?;
            }
        }
        Ok(())
    }

    /// What the network did so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Splits the nodes into `groups`; nodes in no group form one more.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let mut st = self.lock();
        let n = st.ports.len();
        let mut of = vec![groups.len(); n];
        for (g, nodes) in groups.iter().enumerate() {
            for &node in nodes {
                of[node] = g;
            }
        }
        st.groups = Some(of);
    }

    /// Ends every partition.
    pub fn heal(&self) {
        self.lock().groups = None;
    }

    /// Takes the link between `a` and `b` down (or up).
    pub fn set_link(&self, a: usize, b: usize, up: bool) {
        let mut st = self.lock();
        let key = (a.min(b), a.max(b));
        if up {
            st.down.remove(&key);
        } else {
            st.down.insert(key);
        }
    }

    /// Marks node `node`'s port down (its node crashed: what waits is
    /// dropped, and what arrives too) or up again.
    pub fn set_port(&self, node: usize, up: bool) {
        let mut st = self.lock();
        st.ports[node].up = up;
        st.ports[node].frames.clear();
    }

    /// A frame from node `from`: to the port its destination MAC was last
    /// seen on, or to every other port (broadcast, or not yet learned).
    fn send(self: &Arc<Self>, from: usize, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let now = Instant::now();
        let at = self.now();
        let mut st = self.lock();
        st.counts.sent += 1;
        let src: [u8; 6] = frame[6..12].try_into().unwrap_or_default();
        let dst: [u8; 6] = frame[0..6].try_into().unwrap_or_default();
        if src[0] & 1 == 0 {
            st.learned.insert(src, from);
        }
        if let Some(p) = &mut st.ports[from].pcap {
            p.frame(at, frame);
        }
        let to: Vec<usize> = match st.learned.get(&dst) {
            Some(&p) if dst[0] & 1 == 0 => vec![p],
            _ => (0..st.ports.len()).filter(|&p| p != from).collect(),
        };
        for dest in to {
            if dest == from {
                continue;
            }
            let cut = st.groups.as_ref().is_some_and(|g| g[from] != g[dest])
                || st.down.contains(&(from.min(dest), from.max(dest)));
            if cut {
                st.counts.cut += 1;
                continue;
            }
            let link = self.links[from][dest];
            if st.rng.chance(link.loss) {
                st.counts.lost += 1;
                continue;
            }
            // Serialisation: the frame starts when the link is free.
            let start = st.busy.get(&(from, dest)).copied().unwrap_or(now).max(now);
            let wire = match link.kbps {
                0 => Duration::ZERO,
                kbps => Duration::from_nanos(frame.len() as u64 * 8 * 1_000_000 / kbps),
            };
            st.busy.insert((from, dest), start + wire);
            let mut delay = (start - now) + wire + link.latency;
            if !link.jitter.is_zero() {
                let ns = link.jitter.as_nanos() as u64;
                delay += Duration::from_nanos(st.rng.draw() % (ns + 1));
            }
            if st.rng.chance(link.reorder) {
                // Held back by one more latency (at least 1 ms): frames
                // sent after it overtake it.
                st.counts.reordered += 1;
                delay += link.latency.max(Duration::from_millis(1));
            }
            let copies = if st.rng.chance(link.duplicate) {
                st.counts.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let net = self.clone();
                let frame = frame.to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep_until(now + delay).await;
                    net.arrive(dest, frame);
                });
            }
        }
    }

    fn arrive(&self, node: usize, frame: Vec<u8>) {
        let at = self.now();
        let mut st = self.lock();
        let port = &mut st.ports[node];
        if !port.up || port.frames.len() >= QUEUE {
            st.counts.dropped += 1;
            return;
        }
        if let Some(p) = &mut port.pcap {
            p.frame(at, &frame);
        }
        port.frames.push_back(frame);
        st.counts.delivered += 1;
        drop(st);
        self.arrived[node].notify_one();
    }
}

/// A node's end of the network, its `netif::default()`.
struct PortNetif {
    net: Arc<Network>,
    node: usize,
}

impl Netif for PortNetif {
    fn mac(&self) -> [u8; 6] {
        self.net.lock().ports[self.node].mac
    }

    fn mtu(&self) -> usize {
        MTU
    }

    fn reliable(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            if frame.len() > MTU {
                return Err(NetError::BadConfig("frame larger than the MTU"));
            }
            self.net.send(self.node, frame);
            Ok(())
        })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(async move {
            loop {
                let frame = self.net.lock().ports[self.node].frames.pop_front();
                if let Some(frame) = frame {
                    let n = frame.len().min(buf.len());
                    buf[..n].copy_from_slice(&frame[..n]);
                    return Ok(n);
                }
                self.net.arrived[self.node].notified().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn topology(extra: &str) -> Topology {
        let text = format!(
            "[nodes.a]\nproject = \"x\"\n[nodes.b]\nproject = \"x\"\n[nodes.c]\nproject = \"x\"\n{extra}"
        );
        Topology::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn frame(dst: [u8; 6], src: [u8; 6], n: u8) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00, n]);
        f
    }

    const BROADCAST: [u8; 6] = [0xff; 6];

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    async fn recv(port: &Arc<dyn Netif>) -> Vec<u8> {
        let mut buf = [0u8; MTU];
        let n = port.recv(&mut buf).await.unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn broadcasts_reach_every_other_node_after_the_latency_and_unicast_is_learned() {
        rt().block_on(async {
            let net = Network::new(&topology("[network]\nlatency = \"5ms\""), 1);
            let (a, b, c) = (net.port(0), net.port(1), net.port(2));
            let t0 = Instant::now();
            a.send(&frame(BROADCAST, a.mac(), 1)).await.unwrap();
            assert_eq!(recv(&b).await[14], 1);
            assert_eq!(Instant::now() - t0, Duration::from_millis(5));
            assert_eq!(recv(&c).await[14], 1);
            // b answers a by MAC: c hears nothing of it.
            b.send(&frame(a.mac(), b.mac(), 2)).await.unwrap();
            assert_eq!(recv(&a).await[14], 2);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(net.lock().ports[2].frames.len(), 0);
        });
    }

    #[test]
    fn bandwidth_queues_frames_behind_each_other() {
        rt().block_on(async {
            // 1000 kbit/s: a 125-byte frame takes 1 ms on the wire.
            let net = Network::new(&topology("[network]\nkbps = 1000"), 1);
            let (a, b) = (net.port(0), net.port(1));
            b.send(&frame(BROADCAST, b.mac(), 0)).await.unwrap();
            let mut f = frame(b.mac(), a.mac(), 0);
            f.resize(125, 0);
            let t0 = Instant::now();
            for _ in 0..3 {
                a.send(&f).await.unwrap();
            }
            let mut times = Vec::new();
            for _ in 0..3 {
                recv(&b).await;
                times.push((Instant::now() - t0).as_micros());
            }
            assert_eq!(times, [1000, 2000, 3000]);
        });
    }

    #[test]
    fn partitions_and_links_down_cut_frames_until_healed() {
        rt().block_on(async {
            let net = Network::new(&topology(""), 1);
            let (a, b) = (net.port(0), net.port(1));
            net.partition(&[vec![0], vec![1, 2]]);
            a.send(&frame(BROADCAST, a.mac(), 1)).await.unwrap();
            net.heal();
            net.set_link(1, 0, false);
            a.send(&frame(BROADCAST, a.mac(), 2)).await.unwrap();
            net.set_link(0, 1, true);
            a.send(&frame(BROADCAST, a.mac(), 3)).await.unwrap();
            assert_eq!(recv(&b).await[14], 3);
            assert_eq!(
                net.counts().cut,
                3,
                "b and c in the partition, b by the link"
            );
        });
    }

    #[test]
    fn loss_duplication_and_reordering_follow_the_seed() {
        let run = |seed| {
            rt().block_on(async {
                let net = Network::new(
                    &topology(
                        "[network]\nlatency = \"1ms\"\nloss = 20\nduplicate = 10\nreorder = 10",
                    ),
                    seed,
                );
                let (a, b) = (net.port(0), net.port(1));
                b.send(&frame(BROADCAST, b.mac(), 0)).await.unwrap();
                for n in 0..200u8 {
                    a.send(&frame(b.mac(), a.mac(), n)).await.unwrap();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                let order: Vec<u8> = net.lock().ports[1].frames.iter().map(|f| f[14]).collect();
                (net.counts(), order)
            })
        };
        let (counts, order) = run(7);
        assert_eq!(
            run(7),
            (counts, order.clone()),
            "the same seed, the same run"
        );
        assert_ne!(run(8).1, order, "another seed, other choices");
        assert!((20..60).contains(&counts.lost), "{counts:?}");
        assert!(counts.duplicated > 5 && counts.reordered > 5, "{counts:?}");
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "some frames overtaken"
        );
    }

    #[test]
    fn a_crashed_nodes_port_drops_what_comes() {
        rt().block_on(async {
            let net = Network::new(&topology(""), 1);
            let (a, b) = (net.port(0), net.port(1));
            net.set_port(1, false);
            a.send(&frame(BROADCAST, a.mac(), 1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            net.set_port(1, true);
            a.send(&frame(BROADCAST, a.mac(), 2)).await.unwrap();
            assert_eq!(recv(&b).await[14], 2);
        });
    }
}
