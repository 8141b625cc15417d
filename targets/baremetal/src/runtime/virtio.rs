//! virtio-net over virtio-mmio (version 2), the network interface of a PVH
//! guest under QEMU's microvm machine (`-netdev user,hostfwd=…`).
//!
//! microvm has no PCI bus: its virtio devices sit in eight fixed MMIO slots,
//! each wired to an I/O APIC pin (with ACPI on and `ioapic2=off`, pins 16
//! to 23: slot i on pin 16 + i), which
//! this driver routes to one vector. The interrupt only ends the executor's
//! `hlt`; frames are taken from the rings when the stack polls.
//!
//! Memory is identity-mapped, so a heap address is the physical address
//! the device uses. Two split virtqueues of [`QUEUE`] entries: receive
//! (every buffer posted, reposted as soon as its frame is copied out) and
//! transmit (a slot is reused once the device has returned it).
#![allow(unsafe_code)] // device registers and rings in MMIO and DMA memory
use super::executor::wake_after_wait;
use alloc::alloc::{alloc_zeroed, Layout};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};
use core::task::Poll;
use libos::{BoxFuture, NetError};

const MMIO_BASE: u64 = 0xfeb0_0000;
const SLOT_SIZE: u64 = 0x200;
const SLOTS: u64 = 8;
const FIRST_PIN: u32 = 16;
const IOAPIC: u64 = 0xfec0_0000;

/// The vector the device's interrupt arrives on (acknowledged like the
/// timer's: it only wakes the CPU).
pub const VECTOR: u8 = 0x21;

const MAGIC: u64 = 0x000;
const VERSION: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM_MAX: u64 = 0x034;
const QUEUE_NUM: u64 = 0x038;
const QUEUE_READY: u64 = 0x044;
const QUEUE_NOTIFY: u64 = 0x050;
const INTERRUPT_STATUS: u64 = 0x060;
const INTERRUPT_ACK: u64 = 0x064;
const STATUS: u64 = 0x070;
const QUEUE_DESC: u64 = 0x080;
const QUEUE_DRIVER: u64 = 0x090;
const QUEUE_DEVICE: u64 = 0x0a0;
const CONFIG: u64 = 0x100;

const S_ACKNOWLEDGE: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_FAILED: u32 = 128;

const F_MAC: u32 = 1 << 5;
/// VIRTIO_F_VERSION_1, bit 32: the second features word's bit 0.
const F_VERSION_1_HIGH: u32 = 1;

const NET_DEVICE: u32 = 1;
const DESC_WRITE: u16 = 2;

/// Entries per queue.
const QUEUE: u16 = 32;
// `Net::tx_free` keeps a bit per transmit descriptor.
const _: () = assert!(QUEUE as u32 == u32::BITS);
/// The header before every frame (`virtio_net_hdr` with VERSION_1).
const HEADER: usize = 12;
/// The largest Ethernet frame (no VLAN tag, no FCS).
pub const MTU: usize = 1514;
const BUFFER: usize = 2048;

/// Why no virtio-net device could be used.
#[derive(Clone, Copy)]
pub enum ProbeError {
    /// No slot holds a network device.
    Absent,
    /// The device speaks the legacy interface only.
    Legacy,
    /// The device refused the features this driver needs.
    Features,
}

fn reg(base: u64, offset: u64) -> *mut u32 {
    (base + offset) as *mut u32
}

fn read(base: u64, offset: u64) -> u32 {
    // SAFETY: `base` is a virtio-mmio slot of microvm, identity-mapped;
    // device registers are 32-bit aligned.
    unsafe { read_volatile(reg(base, offset)) }
}

fn write(base: u64, offset: u64, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile(reg(base, offset), value) }
}

/// A descriptor of a split virtqueue.
#[repr(C)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// One split virtqueue in one zeroed page: descriptors at 0, the driver
/// ring at 1024, the device ring at 2048.
struct Queue {
    page: u64,
    /// Buffers, `BUFFER` bytes each.
    buffers: u64,
    /// The next free index of the driver ring.
    avail: u16,
    /// How far the device ring was consumed.
    used: u16,
}

impl Queue {
    fn new() -> Queue {
        let page = zeroed(4096, 4096);
        let buffers = zeroed(BUFFER * usize::from(QUEUE), 4096);
        Queue {
            page,
            buffers,
            avail: 0,
            used: 0,
        }
    }

    fn desc(&self, i: u16) -> *mut Desc {
        (self.page + u64::from(i % QUEUE) * 16) as *mut Desc
    }

    fn buffer(&self, i: u16) -> *mut u8 {
        (self.buffers + u64::from(i % QUEUE) * BUFFER as u64) as *mut u8
    }

    /// Offers descriptor `i`, holding `len` bytes (or room for them), to
    /// the device.
    fn offer(&mut self, i: u16, len: usize, flags: u16) {
        let desc = Desc {
            addr: self.buffer(i) as u64,
            len: len as u32,
            flags,
            next: 0,
        };
        // SAFETY: the queue's page is ours, and the device reads a
        // descriptor only once it is in the driver ring (below).
        unsafe {
            write_volatile(self.desc(i), desc);
            let ring = (self.page + 1024 + 4 + u64::from(self.avail % QUEUE) * 2) as *mut u16;
            write_volatile(ring, i % QUEUE);
            fence(Ordering::SeqCst);
            self.avail = self.avail.wrapping_add(1);
            write_volatile((self.page + 1024 + 2) as *mut u16, self.avail);
        }
        fence(Ordering::SeqCst);
    }

    /// The device ring's index: how many buffers the device has returned.
    /// Fenced after the load, so the entries and buffers read next are
    /// read after it.
    fn device_index(&self) -> u16 {
        // SAFETY: the device ring is in the queue's page.
        let index = unsafe { read_volatile((self.page + 2048 + 2) as *const u16) };
        fence(Ordering::SeqCst);
        index
    }

    /// The next returned buffer, (descriptor, bytes written), if any.
    fn next_used(&mut self) -> Option<(u16, usize)> {
        if self.device_index() == self.used {
            return None;
        }
        let slot = self.page + 2048 + 4 + u64::from(self.used % QUEUE) * 8;
        // SAFETY: the entry is in the queue's page and was written by the
        // device before it moved its index (read, then fenced, above).
        let (id, len) = unsafe {
            (
                read_volatile(slot as *const u32),
                read_volatile((slot + 4) as *const u32),
            )
        };
        self.used = self.used.wrapping_add(1);
        Some(((id % u32::from(QUEUE)) as u16, len as usize))
    }
}

/// `size` zeroed bytes aligned to `align`, kept for the guest's life.
fn zeroed(size: usize, align: usize) -> u64 {
    let layout = Layout::from_size_align(size, align).expect("constant layout");
    // SAFETY: the layout is not zero-sized. The memory is never freed: the
    // device owns it for as long as the guest runs.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        alloc::alloc::handle_alloc_error(layout);
    }
    p as u64
}

/// A virtio-net device, set up and running.
pub struct Net {
    base: u64,
    mac: [u8; 6],
    rx: Queue,
    tx: Queue,
    /// Transmit descriptors not in flight, one bit each.
    tx_free: u32,
}

impl Net {
    /// Finds the first virtio-net device and sets it up.
    pub fn probe() -> Result<Net, ProbeError> {
        let base = (0..SLOTS)
            .map(|i| MMIO_BASE + i * SLOT_SIZE)
            .find(|&b| read(b, MAGIC) == 0x7472_6976 && read(b, DEVICE_ID) == NET_DEVICE)
            .ok_or(ProbeError::Absent)?;
        if read(base, VERSION) != 2 {
            return Err(ProbeError::Legacy);
        }
        write(base, STATUS, 0);
        // The reset is done when the status reads back 0 (QEMU's at once).
        for _ in 0..1000 {
            if read(base, STATUS) == 0 {
                break;
            }
        }
        let set_up = Self::set_up(base);
        if set_up.is_err() {
            write(base, STATUS, read(base, STATUS) | S_FAILED);
        }
        set_up
    }

    /// Negotiates features, gives the device its queues and starts it.
    fn set_up(base: u64) -> Result<Net, ProbeError> {
        write(base, STATUS, S_ACKNOWLEDGE | S_DRIVER);
        write(base, DEVICE_FEATURES_SEL, 0);
        let low = read(base, DEVICE_FEATURES);
        write(base, DEVICE_FEATURES_SEL, 1);
        let high = read(base, DEVICE_FEATURES);
        if low & F_MAC == 0 || high & F_VERSION_1_HIGH == 0 {
            return Err(ProbeError::Features);
        }
        write(base, DRIVER_FEATURES_SEL, 0);
        write(base, DRIVER_FEATURES, F_MAC);
        write(base, DRIVER_FEATURES_SEL, 1);
        write(base, DRIVER_FEATURES, F_VERSION_1_HIGH);
        write(base, STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
        if read(base, STATUS) & S_FEATURES_OK == 0 {
            return Err(ProbeError::Features);
        }
        let queues = [Queue::new(), Queue::new()];
        for (index, q) in queues.iter().enumerate() {
            write(base, QUEUE_SEL, index as u32);
            if read(base, QUEUE_NUM_MAX) < u32::from(QUEUE) {
                return Err(ProbeError::Features);
            }
            write(base, QUEUE_NUM, u32::from(QUEUE));
            for (offset, addr) in [
                (QUEUE_DESC, q.page),
                (QUEUE_DRIVER, q.page + 1024),
                (QUEUE_DEVICE, q.page + 2048),
            ] {
                write(base, offset, addr as u32);
                write(base, offset + 4, (addr >> 32) as u32);
            }
            write(base, QUEUE_READY, 1);
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            // SAFETY: the configuration space is byte-addressable.
            *byte = unsafe { read_volatile((base + CONFIG + i as u64) as *const u8) };
        }
        let [mut rx, tx] = queues;
        for i in 0..QUEUE {
            rx.offer(i, BUFFER, DESC_WRITE);
        }
        write(
            base,
            STATUS,
            S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK,
        );
        write(base, QUEUE_NOTIFY, 0);
        route_interrupts();
        Ok(Net {
            base,
            mac,
            rx,
            tx,
            tx_free: u32::MAX,
        })
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Acknowledges the device's interrupt, so its next one is delivered;
    /// done before looking at the rings, so no frame is missed.
    fn acknowledge(&self) {
        let status = read(self.base, INTERRUPT_STATUS);
        if status != 0 {
            write(self.base, INTERRUPT_ACK, status);
        }
    }

    /// Copies the next received frame into `buf`, if there is one.
    pub fn poll_recv(&mut self, buf: &mut [u8]) -> Option<Result<usize, NetError>> {
        self.acknowledge();
        let (id, len) = self.rx.next_used()?;
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
        write(self.base, QUEUE_NOTIFY, 0);
        Some(result)
    }

    /// Queues `frame` for sending, unless every transmit slot is in flight.
    pub fn try_send(&mut self, frame: &[u8]) -> Option<Result<(), NetError>> {
        if frame.len() > MTU {
            return Some(Err(NetError::FrameTooLarge {
                len: frame.len(),
                mtu: MTU,
            }));
        }
        self.acknowledge();
        while let Some((id, _)) = self.tx.next_used() {
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
        write(self.base, QUEUE_NOTIFY, 1);
        Some(Ok(()))
    }
}

/// Routes microvm's virtio pins to [`VECTOR`] on this CPU: edge-triggered,
/// active high. The device holds its line up until acknowledged, so each
/// acknowledgement re-arms the edge.
fn route_interrupts() {
    for pin in FIRST_PIN..FIRST_PIN + SLOTS as u32 {
        let entry = 0x10 + 2 * pin;
        // SAFETY: the I/O APIC's index and window registers, identity-mapped.
        unsafe {
            write_volatile(IOAPIC as *mut u32, entry + 1);
            write_volatile((IOAPIC + 0x10) as *mut u32, 0); // destination: APIC 0
            write_volatile(IOAPIC as *mut u32, entry);
            write_volatile((IOAPIC + 0x10) as *mut u32, u32::from(VECTOR));
        }
    }
}

/// A future that polls the device behind `net` with `poll` until it
/// answers, waking after each of the executor's waits (which the device's
/// interrupt ends).
fn until_ready<'a, T>(
    net: &'a spin::Mutex<Net>,
    mut poll: impl FnMut(&mut Net) -> Option<T> + Send + 'a,
) -> BoxFuture<'a, T> {
    alloc::boxed::Box::pin(core::future::poll_fn(move |cx| {
        match poll(&mut net.lock()) {
            Some(r) => Poll::Ready(r),
            None => {
                wake_after_wait(cx.waker());
                Poll::Pending
            }
        }
    }))
}

/// A netif future receiving a frame into `buf` from the device behind `net`.
pub fn recv<'a>(
    net: &'a spin::Mutex<Net>,
    buf: &'a mut [u8],
) -> BoxFuture<'a, Result<usize, NetError>> {
    until_ready(net, move |n| n.poll_recv(buf))
}

/// A netif future sending `frame` through the device behind `net`.
pub fn send<'a>(net: &'a spin::Mutex<Net>, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
    until_ready(net, move |n| n.try_send(frame))
}
