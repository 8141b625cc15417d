//! DHCP: applying the lease smoltcp's DHCP client obtains (`stack::dhcp`).
use super::State_;
use alloc::string::String;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::dhcpv4;
use smoltcp::wire::IpCidr;

impl State_ {
    /// Applies what the DHCP client learnt since the last poll.
    pub(super) fn lease_event(&mut self, h: SocketHandle) {
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

    /// The lease as [`describe`](crate::Stack::describe) shows it, if the
    /// address comes from a DHCP server.
    pub(super) fn describe_lease(&self) -> Option<String> {
        self.dhcp?;
        Some(match self.lease {
            Some((cidr, Some(router))) => alloc::format!("dhcp: {cidr} via {router}"),
            Some((cidr, None)) => alloc::format!("dhcp: {cidr}"),
            None => "dhcp: waiting for a lease".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::stack::testkit::{cidr, direct, driving, run, until, Clock, A};
    use crate::stack::{Config, Direct};
    use crate::{NetError, Stack};
    use alloc::vec;
    use core::net::{Ipv4Addr, SocketAddrV4};
    use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr};

    /// The address the fake server leases.
    const LEASED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);

    fn address(stack: &Direct) -> Option<Ipv4Addr> {
        stack.shared.state.lock().iface.ipv4_addr()
    }

    #[test]
    fn without_a_lease_the_stack_waits_and_has_no_address() {
        let clock = Clock::default();
        let (end, _server) = crate::netif::pair();
        let stack = direct(end, &clock, Config::dhcp());
        let mut driver = driving(&stack);
        run(&mut [&mut driver], async {
            // The client's first DISCOVER goes out, unanswered.
            until(|| clock.now().as_secs() >= 5).await;
            assert!(stack
                .describe()
                .contains(&"dhcp: waiting for a lease".into()));
            assert_eq!(address(&stack), None);
            let to = SocketAddrV4::new(A, 80);
            assert!(matches!(
                stack.connect(to).await,
                Err(NetError::BadConfig(_))
            ));
        });
    }

    #[test]
    fn a_lease_from_a_server_on_the_link_is_applied() {
        let clock = Clock::default();
        let (end, server_end) = crate::netif::pair();
        let client = direct(end, &clock, Config::dhcp());
        let server = direct(server_end, &clock, cidr(A));
        // DISCOVER gets an OFFER, REQUEST an ACK, each broadcast.
        let serve = async {
            let mut sock = server.udp(67).await.unwrap();
            let mut buf = [0; 1024];
            for _ in 0..2 {
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                let ask = DhcpPacket::new_checked(&buf[..n]).unwrap();
                let ask = DhcpRepr::parse(&ask).unwrap();
                let message_type = match ask.message_type {
                    DhcpMessageType::Discover => DhcpMessageType::Offer,
                    DhcpMessageType::Request => DhcpMessageType::Ack,
                    other => panic!("unexpected {other:?}"),
                };
                let answer = DhcpRepr {
                    message_type,
                    your_ip: LEASED,
                    server_identifier: Some(A),
                    router: Some(A),
                    subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                    lease_duration: Some(3600),
                    requested_ip: None,
                    client_identifier: None,
                    parameter_request_list: None,
                    max_size: None,
                    ..ask
                };
                let mut out = vec![0; answer.buffer_len()];
                answer
                    .emit(&mut DhcpPacket::new_unchecked(&mut out[..]))
                    .unwrap();
                let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
                sock.send_to(&out, to).await.unwrap();
            }
            // Dropping the socket would drop the ACK it has yet to send.
            core::future::pending::<()>().await;
        };
        let mut server_side = driving(&server);
        server_side.push(serve);
        let mut client_side = driving(&client);
        run(
            &mut [&mut client_side, &mut server_side],
            until(|| address(&client).is_some()),
        );
        assert_eq!(address(&client), Some(LEASED));
        let lease = "dhcp: 10.0.0.7/24 via 10.0.0.1".into();
        assert!(
            client.describe().contains(&lease),
            "{:?}",
            client.describe()
        );
    }
}
