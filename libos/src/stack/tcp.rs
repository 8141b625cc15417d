//! TCP: listeners and flows over smoltcp's sockets, and the sockets whose
//! flow was dropped (orphans), closed gracefully and reaped.
use super::{smol, Shared, State_, BACKLOG, BUFFER, EPHEMERAL, LINGER, ORPHAN_MAX, PERSIST};
use crate::net::Accepted;
use crate::{BoxFuture, Flow, FlowError, NetError};
use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};
use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::Poll;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint};

pub(super) fn new_socket() -> tcp::Socket<'static> {
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

impl Shared {
    pub(super) fn listening_socket(st: &mut State_, port: u16) -> Result<SocketHandle, NetError> {
        let mut s = new_socket();
        s.listen(port)
            .map_err(|_| NetError::BadConfig("cannot listen on port 0"))?;
        Ok(st.sockets.add(s))
    }
}

/// The body of [`Stack::listen`](crate::Stack::listen): a listener with a
/// backlog of listening sockets, or a dropped listener's parked backlog.
pub(super) async fn listen(
    shared: Arc<Shared>,
    port: u16,
) -> Result<Box<dyn crate::Listener>, NetError> {
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
    // The driver looks at the new sockets (a recorded stack logs them).
    shared.poke.poke();
    Ok(Box::new(DirectListener {
        shared: shared.clone(),
        port,
        backlog,
    }) as Box<dyn crate::Listener>)
}

/// The body of [`Stack::connect`](crate::Stack::connect): a flow once the
/// handshake is done.
pub(super) async fn connect(
    shared: Arc<Shared>,
    addr: SocketAddrV4,
) -> Result<Box<dyn Flow>, NetError> {
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
}

/// A listener of [`Direct`](super::Direct): a backlog of listening sockets on one port.
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
/// peer, or aborted at [`ORPHAN_MAX`] (see [`State_::reap_orphans`]).
pub(super) struct Orphan {
    handle: SocketHandle,
    /// Monotonic microseconds when it is aborted whatever its state.
    expires: u64,
}

/// A TCP connection of [`Direct`](super::Direct).
struct DirectFlow {
    shared: Arc<Shared>,
    handle: SocketHandle,
}

impl DirectFlow {
    /// Polls the connection's socket under the stack's lock: an empty
    /// buffer is done at once; otherwise `act` answers, saying too whether
    /// data moved, in which case the driver is poked (to send, or to tell
    /// the peer the window opened) once the lock is released.
    fn poll_socket(
        &self,
        empty: bool,
        act: impl FnOnce(&mut tcp::Socket<'static>) -> (Poll<Result<usize, FlowError>>, bool),
    ) -> Poll<Result<usize, FlowError>> {
        if empty {
            return Poll::Ready(Ok(0));
        }
        let mut st = self.shared.state.lock();
        let (answer, moved) = act(st.sockets.get_mut::<tcp::Socket>(self.handle));
        drop(st);
        if moved {
            self.shared.poke.poke();
        }
        answer
    }
}

impl Flow for DirectFlow {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(poll_fn(move |cx| {
            self.poll_socket(buf.is_empty(), |s| {
                if s.can_recv() {
                    return (Poll::Ready(Ok(s.recv_slice(buf).unwrap_or(0))), true);
                }
                if !s.may_recv() {
                    return match s.state() {
                        // Closed without the peer's FIN: a reset or a timeout.
                        State::Closed if s.remote_endpoint().is_none() => {
                            (Poll::Ready(Err(FlowError::Reset)), false)
                        }
                        _ => (Poll::Ready(Ok(0)), false),
                    };
                }
                s.register_recv_waker(cx.waker());
                (Poll::Pending, false)
            })
        }))
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(poll_fn(move |cx| {
            self.poll_socket(data.is_empty(), |s| {
                if !s.may_send() {
                    let err = match s.state() {
                        State::Closed | State::TimeWait => FlowError::Reset,
                        _ => FlowError::Closed,
                    };
                    return (Poll::Ready(Err(err)), false);
                }
                if s.can_send() {
                    return (Poll::Ready(Ok(s.send_slice(data).unwrap_or(0))), true);
                }
                s.register_send_waker(cx.waker());
                (Poll::Pending, false)
            })
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

impl State_ {
    /// Removes the orphans that are done, timed out or past their
    /// [`ORPHAN_MAX`], at `now` (µs).
    pub(super) fn reap_orphans(&mut self, now: i64) {
        let sockets = &mut self.sockets;
        self.orphans.retain(|o| {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testkit::{run, two, until, A, B};
    use crate::Stack;
    use core::time::Duration;

    const PORT: u16 = 80;

    /// Reads until `want` bytes came, or the end.
    async fn read(flow: &mut dyn Flow, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0; 64];
        while got.len() < want {
            match flow.read(&mut buf).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    #[test]
    fn two_stacks_connect_exchange_bytes_both_ways_and_close() {
        let mut t = two();
        let backlog = run(&mut [&mut t.a_driver, &mut t.b_driver], async {
            let mut listener = t.a.listen(PORT).await.unwrap();
            let backlog = t.a.sockets();
            let mut client = t.b.connect(SocketAddrV4::new(A, PORT)).await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            assert_eq!(*peer.ip(), B);
            assert!(EPHEMERAL.contains(&peer.port()));

            assert_eq!(client.write(b"ping").await.unwrap(), 4);
            assert_eq!(read(&mut *server, 4).await, b"ping");
            assert_eq!(server.write(b"pong!").await.unwrap(), 5);
            assert_eq!(read(&mut *client, 5).await, b"pong!");

            client.close().await.unwrap();
            assert_eq!(read(&mut *server, 1).await, b"", "the server sees the end");
            server.close().await.unwrap();
            assert_eq!(read(&mut *client, 1).await, b"", "the client sees the end");
            drop((client, server));
            // Both ends let go of the connection; the listener keeps its backlog.
            until(|| t.a.sockets() == backlog && t.b.sockets() == 0).await;
            backlog
        });
        assert_eq!(backlog, BACKLOG);
    }

    #[test]
    fn a_dropped_flow_whose_peer_vanished_is_reaped_after_linger() {
        let mut t = two();
        let (flow, _client) = run(&mut [&mut t.a_driver, &mut t.b_driver], async {
            let mut listener = t.a.listen(PORT).await.unwrap();
            let client = t.b.connect(SocketAddrV4::new(A, PORT)).await.unwrap();
            let (flow, _) = listener.accept().await.unwrap();
            (flow, client)
        });
        // The peer vanishes: its driver is never polled again.
        let open = t.a.sockets();
        let since = t.clock.now();
        drop(flow);
        // When the clock last showed the orphan still there, and when not.
        let mut seen = since;
        run(
            &mut [&mut t.a_driver],
            until(|| {
                let kept = t.a.sockets() == open;
                if kept {
                    seen = t.clock.now();
                }
                !kept
            }),
        );
        let gone = t.clock.now();
        assert_eq!(t.a.sockets(), open - 1);
        assert!(
            seen - since > LINGER - Duration::from_secs(2),
            "kept until {seen:?}"
        );
        // The peer's last word came after the clock's origin.
        assert!(gone >= LINGER, "reaped at {gone:?}");
        assert!(
            gone - since < LINGER + Duration::from_secs(2),
            "reaped at {gone:?}"
        );
    }

    #[test]
    fn listening_twice_on_one_port_is_refused() {
        let t = two();
        run(&mut [], async {
            let first = t.a.listen(PORT).await.unwrap();
            assert!(matches!(t.a.listen(PORT).await, Err(NetError::AddrInUse)));
            assert!(matches!(t.a.listen(0).await, Err(NetError::BadConfig(_))));
            drop(first);
            assert!(t.a.listen(PORT).await.is_ok(), "free again once dropped");
        });
    }

    #[test]
    fn a_dropped_listeners_backlog_is_kept_for_the_next_listen() {
        let mut t = two();
        run(&mut [&mut t.a_driver, &mut t.b_driver], async {
            let listener = t.a.listen(PORT).await.unwrap();
            let sockets = t.a.sockets();
            // Completes its handshake with a socket of the backlog.
            let mut client = t.b.connect(SocketAddrV4::new(A, PORT)).await.unwrap();
            client.write(b"early").await.unwrap();
            drop(listener);
            assert_eq!(t.a.sockets(), sockets, "parked, not closed");
            assert!(t.a.describe()[0].contains("[]"), "{:?}", t.a.describe());

            let mut listener = t.a.listen(PORT).await.unwrap();
            assert_eq!(t.a.sockets(), sockets, "the parked backlog, no new one");
            let (mut flow, peer) = listener.accept().await.unwrap();
            assert_eq!(*peer.ip(), B);
            assert_eq!(read(&mut *flow, 5).await, b"early");
        });
    }
}
