//! The stack's history, once a session asks for it
//! ([`Stack::record_changes`](crate::Stack::record_changes)): its
//! neighbours (the ARP cache, as smoltcp fills it: from the ARP frames
//! aimed at this address from this subnet) and its TCP sockets' states,
//! recorded as changes of keys in a [`ChangeLog`]:
//!
//! - `neighbour 10.0.2.2` = `02:6e:79:6d:00:02`, when learned or changed;
//! - `tcp #3` = `Established 10.0.2.15:80 ← 10.0.2.2:51234`, at each
//!   change of the socket's state, and removed when the socket goes.
//!
//! Read-only: what happened on the wire cannot be written back. Off, the
//! driver pays one lock and `None` check per poll.
use super::{Direct, Shared, State_};
use crate::kv::{Change, ChangeLog, Diff, HistoryError, Versioned};
use crate::{BoxFuture, WallClock};
use alloc::collections::BTreeMap;
use alloc::{boxed::Box, format, string::String, sync::Arc, vec::Vec};
use core::net::Ipv4Addr;
use smoltcp::iface::SocketHandle;
use smoltcp::wire::{ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol};

/// What the stack records while a session watches it.
pub(super) struct Recorder {
    log: ChangeLog,
    clock: Arc<dyn WallClock>,
    sockets: BTreeMap<SocketHandle, String>,
}

impl Recorder {
    fn record(&mut self, key: String, old: Option<String>, new: Option<String>) {
        self.log.push(Change {
            seq: 0,
            at_unix_ns: self.clock.now_unix_ns(),
            key,
            old: old.map(String::into_bytes),
            new: new.map(String::into_bytes),
            note: None,
        });
    }

    /// Records what [`State_::learn_neighbours`] learned.
    pub(super) fn neighbours(
        &mut self,
        learned: Vec<(Ipv4Addr, Option<EthernetAddress>, EthernetAddress)>,
    ) {
        for (ip, old, mac) in learned {
            self.record(
                format!("neighbour {ip}"),
                old.map(mac_text),
                Some(mac_text(mac)),
            );
        }
    }

    /// Records the TCP sockets whose state changed since the last look.
    pub(super) fn sockets(&mut self, st: &State_) {
        let mut now: BTreeMap<SocketHandle, String> = BTreeMap::new();
        for (h, s) in st.sockets.iter() {
            #[allow(irrefutable_let_patterns)]
            let smoltcp::socket::Socket::Tcp(t) = s
            else {
                continue;
            };
            let state = match (t.local_endpoint(), t.remote_endpoint()) {
                (Some(l), Some(r)) => format!("{} {l} ← {r}", t.state()),
                _ => format!("{} :{}", t.state(), t.listen_endpoint().port),
            };
            now.insert(h, state);
        }
        let before = core::mem::take(&mut self.sockets);
        for (h, old) in &before {
            if !now.contains_key(h) {
                self.record(format!("tcp {h}"), Some(old.clone()), None);
            }
        }
        for (h, state) in &now {
            let old = before.get(h);
            if old != Some(state) {
                self.record(format!("tcp {h}"), old.cloned(), Some(state.clone()));
            }
        }
        self.sockets = now;
    }
}

impl State_ {
    /// Notes the neighbours the ARP frames waiting for smoltcp teach it
    /// (those aimed at this address from this subnet, as smoltcp fills
    /// its cache): what was learned or changed, with the old address.
    /// Other frames cost a look at their type.
    pub(super) fn learn_neighbours(
        &mut self,
    ) -> Vec<(Ipv4Addr, Option<EthernetAddress>, EthernetAddress)> {
        let mut learned = Vec::new();
        let Some(ours) = self.iface.ipv4_addr() else {
            return learned;
        };
        for frame in &self.rx {
            // EtherType ARP, before any parsing.
            if frame.get(12..14) != Some(&[0x08, 0x06]) {
                continue;
            }
            let Some(ArpRepr::EthernetIpv4 {
                source_hardware_addr: mac,
                source_protocol_addr: ip,
                target_protocol_addr,
                ..
            }) = arp(frame)
            else {
                continue;
            };
            let in_subnet = self.iface.ip_addrs().iter().any(|c| {
                matches!(c, smoltcp::wire::IpCidr::Ipv4(c) if c.address() == ours && c.contains_addr(&ip))
            });
            if target_protocol_addr != ours
                || !in_subnet
                || !mac.is_unicast()
                || ip.is_unspecified()
            {
                continue;
            }
            let old = self.neighbours.insert(ip, mac);
            if old != Some(mac) {
                learned.push((ip, old, mac));
            }
        }
        learned
    }
}

/// `02:6e:79:6d:00:02`, as `ip neigh` writes it.
pub(super) fn mac_text(mac: EthernetAddress) -> String {
    let b = mac.as_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// The ARP message of an Ethernet frame, if it is one.
fn arp(frame: &[u8]) -> Option<ArpRepr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()
}

/// A stack's record, as a session reads it.
struct StackHistory(Arc<Shared>);

impl StackHistory {
    fn with<R>(&self, f: impl FnOnce(&mut ChangeLog) -> R) -> R {
        let mut h = self.0.history.lock();
        match h.as_mut() {
            Some(r) => f(&mut r.log),
            None => f(&mut ChangeLog::new(1)),
        }
    }
}

impl Versioned for StackHistory {
    fn bound(&self) -> usize {
        self.with(|l| l.bound())
    }
    fn set_bound(&self, bound: usize) {
        self.with(|l| l.set_bound(bound))
    }
    fn latest(&self) -> u64 {
        self.with(|l| l.latest())
    }
    fn changes(&self, key: Option<&str>) -> Vec<Change> {
        self.with(|l| l.changes(key))
    }
    fn kept(&self) -> (usize, u64) {
        self.with(|l| l.kept())
    }
    fn diff(&self, from: u64, to: u64) -> Result<Diff, HistoryError> {
        self.with(|l| l.diff(from, to))
    }
    fn revert(&self, _: u64) -> BoxFuture<'_, Result<usize, HistoryError>> {
        Box::pin(async {
            Err(HistoryError::ReadOnly {
                what: "a stack's history (its neighbours and sockets)",
            })
        })
    }
}

impl Direct {
    /// Starts recording the stack's neighbours and sockets (see the
    /// [module](self)), the newest `bound` changes kept, timed by `clock`;
    /// the record, for reading. Asked again, the record goes on with the
    /// new bound.
    pub(super) fn start_recording(
        &self,
        clock: Arc<dyn WallClock>,
        bound: usize,
    ) -> Arc<dyn Versioned> {
        let mut h = self.shared.history.lock();
        match h.as_mut() {
            Some(r) => r.log.set_bound(bound),
            None => {
                *h = Some(Recorder {
                    log: ChangeLog::new(bound),
                    clock,
                    sockets: BTreeMap::new(),
                })
            }
        }
        drop(h);
        // The sockets open now are its first changes.
        self.shared.poke.poke();
        Arc::new(StackHistory(self.shared.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_history::Ticks;
    use crate::stack::testkit::{run, two, until, A, B};
    use crate::Stack;
    use core::net::SocketAddrV4;
    use core::sync::atomic::AtomicU64;

    fn text(v: &Option<Vec<u8>>) -> Option<&str> {
        v.as_deref().map(|b| core::str::from_utf8(b).unwrap())
    }

    #[test]
    fn a_recorded_stack_logs_the_neighbour_it_learns_and_each_socket_state() {
        let mut t = two();
        let h =
            t.a.record_changes(Arc::new(Ticks(AtomicU64::new(1))), 100)
                .expect("stack::direct records");
        run(&mut [&mut t.a_driver, &mut t.b_driver], async {
            let mut listener = t.a.listen(7).await.unwrap();
            let mut client = t.b.connect(SocketAddrV4::new(A, 7)).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.close().await.unwrap();
            server.close().await.unwrap();
            drop((client, server));
            // The server's side passes through the closing states.
            until(|| {
                h.changes(None).iter().any(|c| {
                    text(&c.new)
                        .is_some_and(|s| s.starts_with("TIME-WAIT") || s.starts_with("CLOSED"))
                        || (c.key.starts_with("tcp ") && c.new.is_none())
                })
            })
            .await;
        });
        let changes = h.changes(None);
        // B asked A for its address: A learned B's.
        let n: Vec<_> = changes
            .iter()
            .filter(|c| c.key == alloc::format!("neighbour {B}"))
            .collect();
        assert_eq!(n.len(), 1, "{changes:#?}");
        // (The pair's addresses are handed out in turn: B's is one of them.)
        let mac = text(&n[0].new).unwrap();
        assert!(
            n[0].old.is_none() && mac.starts_with("02:6e:") && mac.len() == 17,
            "{mac}"
        );
        // One of the listener's sockets went from listening to established
        // with B, and the connection's end removed it.
        let states: Vec<&str> = changes.iter().filter_map(|c| text(&c.new)).collect();
        assert!(
            states.iter().any(|s| s.starts_with("LISTEN :7")),
            "{states:?}"
        );
        assert!(
            states
                .iter()
                .any(|s| s.starts_with("ESTABLISHED ") && s.contains(&alloc::format!("← {B}:"))),
            "{states:?}"
        );
        assert!(changes
            .windows(2)
            .all(|w| w[0].seq + 1 == w[1].seq && w[0].at_unix_ns < w[1].at_unix_ns));
        // The record cannot be written back, and the stack says what it
        // knows in :inspect too.
        let err = crate::job::block_on(h.revert(1)).unwrap_err();
        assert!(matches!(err, HistoryError::ReadOnly { .. }), "{err}");
        assert!(t
            .a
            .describe()
            .iter()
            .any(|l| l == &alloc::format!("neighbour {B} is {mac}")));
    }
}
