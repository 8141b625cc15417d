//! virtio-net over either transport: `netif::default()` under QEMU and
//! libvirt. Two queues: receive (every buffer posted, reposted as soon as
//! its frame is copied out) and transmit (a slot is reused once the device
//! has returned it).
use super::{zeroed, DeviceType, ProbeError, Queue, Transport, DESC_WRITE, QUEUE};
use crate::runtime::frames::{Frames, SharedNet};
use libos::NetError;

const F_MAC: u64 = 1 << 5;
/// The header before every frame (`virtio_net_hdr` with VERSION_1).
const HEADER: usize = 12;
/// The largest Ethernet frame (no VLAN tag, no FCS).
pub const MTU: usize = 1514;
const BUFFER: usize = 2048;

/// A queue and its buffers, `BUFFER` bytes per descriptor.
struct Ring {
    queue: Queue,
    buffers: u64,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            queue: Queue::new(),
            buffers: zeroed(BUFFER * usize::from(QUEUE), 4096),
        }
    }

    fn buffer(&self, i: u16) -> *mut u8 {
        (self.buffers + u64::from(i % QUEUE) * BUFFER as u64) as *mut u8
    }

    /// Offers buffer `i`, holding `len` bytes (or room for them).
    fn offer(&mut self, i: u16, len: usize, flags: u16) {
        let addr = self.buffer(i) as u64;
        self.queue.set_desc(i, addr, len, flags, 0);
        self.queue.offer(i);
    }
}

/// A virtio-net device, set up and running.
pub struct Net {
    transport: Transport,
    mac: [u8; 6],
    rx: Ring,
    tx: Ring,
    /// Transmit descriptors not in flight, one bit each.
    tx_free: u32,
}

impl Net {
    /// Sets up the virtio-net device found on `find`'s bus.
    pub fn open(find: super::Find) -> Result<Net, ProbeError> {
        let transport = find(DeviceType::Net)?;
        transport.negotiate(F_MAC, 0)?;
        let mut rx = Ring::new();
        let tx = Ring::new();
        transport.start(&[&rx.queue, &tx.queue])?;
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = transport.config_u8(i as u64);
        }
        for i in 0..QUEUE {
            rx.offer(i, BUFFER, DESC_WRITE);
        }
        transport.notify(0);
        Ok(Net {
            transport,
            mac,
            rx,
            tx,
            tx_free: u32::MAX,
        })
    }
}

impl Frames for Net {
    /// Copies the next received frame into `buf`, if there is one.
    fn poll_recv(&mut self, buf: &mut [u8]) -> Option<Result<usize, NetError>> {
        self.transport.acknowledge();
        let (id, len) = self.rx.queue.next_used()?;
        let len = len.clamp(HEADER, BUFFER) - HEADER;
        let result = if len > buf.len() {
            Err(NetError::FrameTooLarge {
                len,
                mtu: buf.len(),
            })
        } else {
            // SAFETY: the device wrote `len` bytes after the header into
            // buffer `id`, which is ours again until it is reoffered.
            let frame = unsafe { core::slice::from_raw_parts(self.rx.buffer(id).add(HEADER), len) };
            buf[..len].copy_from_slice(frame);
            Ok(len)
        };
        self.rx.offer(id, BUFFER, DESC_WRITE);
        self.transport.notify(0);
        Some(result)
    }

    /// Queues `frame` for sending, unless every transmit slot is in flight.
    fn try_send(&mut self, frame: &[u8]) -> Option<Result<(), NetError>> {
        if frame.len() > MTU {
            return Some(Err(NetError::FrameTooLarge {
                len: frame.len(),
                mtu: MTU,
            }));
        }
        self.transport.acknowledge();
        while let Some((id, _)) = self.tx.queue.next_used() {
            self.tx_free |= 1 << id;
        }
        if self.tx_free == 0 {
            return None;
        }
        let slot = self.tx_free.trailing_zeros() as u16;
        self.tx_free &= !(1 << slot);
        // SAFETY: descriptor `slot` is not in flight (its bit was free), so
        // its buffer is ours; header and frame fit in BUFFER bytes.
        unsafe {
            let buf = self.tx.buffer(slot);
            core::ptr::write_bytes(buf, 0, HEADER);
            core::ptr::copy_nonoverlapping(frame.as_ptr(), buf.add(HEADER), frame.len());
        }
        self.tx.offer(slot, HEADER + frame.len(), 0);
        self.transport.notify(1);
        Some(Ok(()))
    }
}

/// The device as a [`libos::Netif`]: shared by the stack's driver and its
/// sends.
pub type VirtioNet = SharedNet<Net>;

impl SharedNet<Net> {
    /// Sets up the device found on `find`'s bus.
    pub fn open(find: super::Find) -> Result<VirtioNet, ProbeError> {
        let net = Net::open(find)?;
        let mac = net.mac;
        Ok(SharedNet::new(net, mac, MTU))
    }
}
