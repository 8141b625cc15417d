//! `NYM_NET_TRACE`: a line on stderr for each frame on the link.
use std::time::Instant;

/// One line on stderr for a frame: milliseconds since boot, who sent it,
/// and for TCP the ports, flags and payload length, for UDP the ports and
/// payload length.
pub(super) fn trace(from: &str, f: &[u8], epoch: Instant) {
    use smoltcp::wire::UdpPacket;
    use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
    let ms = epoch.elapsed().as_millis();
    let Ok(eth) = EthernetFrame::new_checked(f) else {
        return eprintln!("net {ms:>6} {from:<7} {} bytes, not Ethernet", f.len());
    };
    let ip = (eth.ethertype() == EthernetProtocol::Ipv4)
        .then(|| Ipv4Packet::new_checked(eth.payload()).ok())
        .flatten();
    let udp = ip
        .as_ref()
        .filter(|ip| ip.next_header() == IpProtocol::Udp)
        .and_then(|ip| UdpPacket::new_checked(ip.payload()).ok());
    if let Some(u) = udp {
        let (src, dst, len) = (u.src_port(), u.dst_port(), u.payload().len());
        return eprintln!("net {ms:>6} {from:<7} udp {src} > {dst} len {len}");
    }
    let tcp = ip
        .filter(|ip| ip.next_header() == IpProtocol::Tcp)
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
