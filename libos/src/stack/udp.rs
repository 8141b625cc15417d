//! UDP: sockets of the stack, each bound to one port.
use super::{Shared, EPHEMERAL, UDP_BUFFER, UDP_OVERHEAD, UDP_PACKETS};
use crate::net::UdpSocket;
use crate::{BoxFuture, NetError};
use alloc::{boxed::Box, sync::Arc, vec};
use core::future::poll_fn;
use core::net::SocketAddrV4;
use core::task::Poll;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// The body of [`Stack::udp`](crate::Stack::udp): a socket bound to `port`,
/// or to a free ephemeral port for 0.
pub(super) async fn bind(shared: Arc<Shared>, port: u16) -> Result<Box<dyn UdpSocket>, NetError> {
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
}

/// A UDP socket of [`Direct`](super::Direct).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netif::PAIR_MTU;
    use crate::stack::testkit::{run, two, A, B};
    use crate::Stack;

    #[test]
    fn a_datagram_crosses_a_pair() {
        let mut t = two();
        run(&mut [&mut t.a_driver, &mut t.b_driver], async {
            let mut rx = t.a.udp(5353).await.unwrap();
            let mut tx = t.b.udp(0).await.unwrap();
            tx.send_to(b"datagram", SocketAddrV4::new(A, 5353))
                .await
                .unwrap();
            let mut buf = [0; 64];
            let (n, from) = rx.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"datagram");
            assert_eq!(from, SocketAddrV4::new(B, tx.port()));
        });
    }

    #[test]
    fn a_datagram_too_large_for_the_mtu_is_refused() {
        let t = two();
        run(&mut [], async {
            let mut s = t.a.udp(0).await.unwrap();
            let to = SocketAddrV4::new(B, 9);
            let largest = [0; PAIR_MTU - UDP_OVERHEAD];
            assert!(s.send_to(&largest, to).await.is_ok());
            let larger = [0; PAIR_MTU - UDP_OVERHEAD + 1];
            assert_eq!(
                s.send_to(&larger, to).await,
                Err(NetError::FrameTooLarge {
                    len: PAIR_MTU + 1,
                    mtu: PAIR_MTU
                })
            );
        });
    }

    #[test]
    fn binding_a_port_twice_is_refused() {
        let t = two();
        run(&mut [], async {
            let first = t.a.udp(5353).await.unwrap();
            assert!(matches!(t.a.udp(5353).await, Err(NetError::AddrInUse)));
            assert!(t.b.udp(5353).await.is_ok(), "another stack's port");
            drop(first);
            assert_eq!(t.a.udp(5353).await.unwrap().port(), 5353, "free again");
        });
    }

    #[test]
    fn port_0_picks_a_free_ephemeral_port() {
        let t = two();
        run(&mut [], async {
            let first = t.a.udp(0).await.unwrap();
            let second = t.a.udp(0).await.unwrap();
            assert!(EPHEMERAL.contains(&first.port()));
            assert!(EPHEMERAL.contains(&second.port()));
            assert_ne!(first.port(), second.port());
            assert!(matches!(
                t.a.udp(first.port()).await,
                Err(NetError::AddrInUse)
            ));
        });
    }
}
