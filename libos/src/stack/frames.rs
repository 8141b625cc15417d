//! The frame queues smoltcp reads and writes: [`Frames`], a smoltcp
//! `Device` over two queues, with its tokens [`Rx`] and [`Tx`].
use super::QUEUE;
use alloc::{collections::VecDeque, vec, vec::Vec};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

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
    /// Skip checksums (a link that cannot corrupt frames: [`Netif::reliable`](crate::Netif::reliable)).
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

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::Checksum;

    fn frames<'a>(
        rx: &'a mut VecDeque<Vec<u8>>,
        tx: &'a mut VecDeque<Vec<u8>>,
        reliable: bool,
    ) -> Frames<'a> {
        Frames {
            rx,
            tx,
            mtu: 1514,
            reliable,
        }
    }

    #[test]
    fn transmit_refuses_once_queue_frames_wait() {
        let (mut rx, mut tx) = (VecDeque::new(), VecDeque::new());
        let mut dev = frames(&mut rx, &mut tx, false);
        for n in 0..QUEUE {
            let token = dev.transmit(Instant::ZERO).expect("room below QUEUE");
            token.consume(3, |f| f.copy_from_slice(&[n as u8; 3]));
        }
        assert!(dev.transmit(Instant::ZERO).is_none());
        assert_eq!(tx.len(), QUEUE);
        assert_eq!(tx[0], [0; 3]);
        assert_eq!(tx[QUEUE - 1], [(QUEUE - 1) as u8; 3]);
    }

    #[test]
    fn receive_gives_frames_oldest_first() {
        let mut rx = VecDeque::from([vec![1], vec![2, 2]]);
        let mut tx = VecDeque::new();
        let mut dev = frames(&mut rx, &mut tx, false);
        let mut got = Vec::new();
        while let Some((frame, reply)) = dev.receive(Instant::ZERO) {
            frame.consume(|f| got.push(f.to_vec()));
            // The token that comes with a frame sends on the same queue.
            reply.consume(1, |f| f[0] = 9);
        }
        assert_eq!(got, [vec![1], vec![2, 2]]);
        assert!(rx.is_empty());
        assert_eq!(tx, [vec![9], vec![9]]);
    }

    #[test]
    fn capabilities_say_ethernet_the_mtu_and_skip_checksums_only_when_reliable() {
        let (mut rx, mut tx) = (VecDeque::new(), VecDeque::new());
        let caps = frames(&mut rx, &mut tx, false).capabilities();
        assert_eq!(caps.medium, Medium::Ethernet);
        assert_eq!(caps.max_transmission_unit, 1514);
        let c = &caps.checksum;
        for sum in [&c.ipv4, &c.udp, &c.tcp, &c.icmpv4] {
            assert!(matches!(sum, Checksum::Both));
        }
        let caps = frames(&mut rx, &mut tx, true).capabilities();
        assert_eq!(caps.medium, Medium::Ethernet);
        let c = &caps.checksum;
        for sum in [&c.ipv4, &c.udp, &c.tcp, &c.icmpv4] {
            assert!(matches!(sum, Checksum::None));
        }
    }
}
