//! virtio 1.0+ ("modern") devices for a guest under QEMU or libvirt, over
//! either transport: virtio-mmio (the microvm machine, no PCI) and
//! virtio-pci (q35, what libvirt, Cloud Hypervisor and Firecracker give a
//! guest). The devices ([`net`], [`blk`]) speak to a [`Transport`]; what
//! differs between the buses stays in [`mmio`] and [`pci`].
//!
//! Memory is identity-mapped, so a heap address is the physical address
//! the device uses. Each queue is a split virtqueue of [`QUEUE`] entries in
//! one zeroed page (descriptors at 0, the driver ring at 1024, the device
//! ring at 2048), its buffers allocated once and owned by the driver until
//! the device gives them back: a request abandoned by its future completes
//! into the driver's memory, never into freed memory.
//!
//! A device's interrupt only ends the executor's `hlt` (its vector's
//! handler acknowledges the local APIC); the rings are read when the
//! device's futures are polled again, after every wait.
#![allow(unsafe_code)] // device registers and rings in MMIO and DMA memory
pub mod blk;
pub mod mmio;
pub mod net;
pub mod pci;

pub use super::heap::zeroed;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

/// Entries per queue.
pub const QUEUE: u16 = 32;
// `Net::tx_free` keeps a bit per transmit descriptor.
const _: () = assert!(QUEUE as u32 == u32::BITS);

/// The device status bits.
pub const S_ACKNOWLEDGE: u8 = 1;
/// The driver knows the device.
pub const S_DRIVER: u8 = 2;
/// The driver is ready.
pub const S_DRIVER_OK: u8 = 4;
/// Features are negotiated.
pub const S_FEATURES_OK: u8 = 8;
/// The driver gave up on the device.
pub const S_FAILED: u8 = 128;

/// VIRTIO_F_VERSION_1: a modern device.
pub const F_VERSION_1: u64 = 1 << 32;

/// Descriptor flags.
pub const DESC_NEXT: u16 = 1;
/// The device writes this buffer.
pub const DESC_WRITE: u16 = 2;

/// The virtio device types this runtime drives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceType {
    /// virtio-net.
    Net = 1,
    /// virtio-blk.
    Blk = 2,
}

/// Why a device could not be used.
#[derive(Clone, Copy)]
pub enum ProbeError {
    /// No device of that type on the bus.
    Absent,
    /// The device speaks the legacy interface only.
    Legacy,
    /// The device refused the features this driver needs.
    Features,
    /// A register or BAR is where this runtime cannot reach it.
    Unmapped,
}

impl ProbeError {
    /// What went wrong, for a device of `what`.
    pub fn message(self) -> &'static str {
        match self {
            ProbeError::Absent => "no such virtio device",
            ProbeError::Legacy => {
                "a legacy virtio device (QEMU needs -global virtio-mmio.force-legacy=false)"
            }
            ProbeError::Features => "the virtio device lacks a feature this driver needs",
            ProbeError::Unmapped => "the virtio device's registers are above 4 GiB",
        }
    }
}

/// Where a device sits: its registers and how its interrupts arrive.
pub enum Transport {
    /// A virtio-mmio slot.
    Mmio(mmio::Mmio),
    /// A virtio-pci function.
    Pci(pci::Pci),
}

/// The registers every virtio transport has, in its own layout.
pub trait Registers {
    /// The device's feature bits.
    fn device_features(&self) -> u64;
    /// The features the driver takes.
    fn set_driver_features(&self, features: u64);
    /// The device status.
    fn status(&self) -> u8;
    /// Sets the device status.
    fn set_status(&self, status: u8);
    /// Gives queue `index` to the device, or `false` if it has none that
    /// large.
    fn set_queue(&self, index: u16, queue: &Queue) -> bool;
    /// Tells the device that queue `index` has new buffers.
    fn notify(&self, index: u16);
    /// Byte `offset` of the device's configuration space.
    fn config_u8(&self, offset: u64) -> u8;
}

impl core::ops::Deref for Transport {
    type Target = dyn Registers;

    fn deref(&self) -> &(dyn Registers + 'static) {
        match self {
            Transport::Mmio(t) => t,
            Transport::Pci(t) => t,
        }
    }
}

impl Transport {
    /// Acknowledges the device's interrupt (virtio-mmio's line stays up
    /// until then; MSI-X needs nothing), before the rings are read, so no
    /// completion is missed.
    fn acknowledge(&self) {
        if let Transport::Mmio(t) = self {
            t.acknowledge();
        }
    }

    /// The little-endian `u64` at `offset` of the configuration space.
    fn config_u64(&self, offset: u64) -> u64 {
        (0..8).fold(0, |v, i| {
            v | u64::from(self.config_u8(offset + i)) << (8 * i)
        })
    }

    /// Resets the device, negotiates `wanted` (VERSION_1 always; the
    /// features in `optional` when offered) and returns what was agreed.
    fn negotiate(&self, wanted: u64, optional: u64) -> Result<u64, ProbeError> {
        self.set_status(0);
        // The reset is done when the status reads back 0 (QEMU's at once).
        for _ in 0..1000 {
            if self.status() == 0 {
                break;
            }
        }
        self.set_status(S_ACKNOWLEDGE | S_DRIVER);
        let offered = self.device_features();
        let wanted = wanted | F_VERSION_1;
        if offered & wanted != wanted {
            self.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FAILED);
            return Err(ProbeError::Features);
        }
        let agreed = wanted | (offered & optional);
        self.set_driver_features(agreed);
        self.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
        if self.status() & S_FEATURES_OK == 0 {
            self.set_status(S_FAILED);
            return Err(ProbeError::Features);
        }
        Ok(agreed)
    }

    /// Gives the device its queues, in order, and starts it.
    fn start(&self, queues: &[&Queue]) -> Result<(), ProbeError> {
        for (index, q) in queues.iter().enumerate() {
            if !self.set_queue(index as u16, q) {
                self.set_status(S_FAILED);
                return Err(ProbeError::Features);
            }
        }
        self.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        Ok(())
    }
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
pub struct Queue {
    page: u64,
    /// The next free index of the driver ring.
    avail: u16,
    /// How far the device ring was consumed.
    used: u16,
}

impl Queue {
    /// A queue of [`QUEUE`] entries.
    pub fn new() -> Queue {
        Queue {
            page: zeroed(4096, 4096),
            avail: 0,
            used: 0,
        }
    }

    /// Where the descriptors are (guest-physical).
    pub fn desc_addr(&self) -> u64 {
        self.page
    }

    /// Where the driver ring is.
    pub fn driver_addr(&self) -> u64 {
        self.page + 1024
    }

    /// Where the device ring is.
    pub fn device_addr(&self) -> u64 {
        self.page + 2048
    }

    /// Writes descriptor `i`: `len` bytes at `addr`, with `flags`, chained
    /// to `next` when `flags` has [`DESC_NEXT`].
    fn set_desc(&mut self, i: u16, addr: u64, len: usize, flags: u16, next: u16) {
        let desc = Desc {
            addr,
            len: len as u32,
            flags,
            next: next % QUEUE,
        };
        // SAFETY: the descriptor is in the queue's page, and the device
        // reads it only once its chain is in the driver ring (`offer`).
        unsafe { write_volatile((self.page + u64::from(i % QUEUE) * 16) as *mut Desc, desc) };
    }

    /// Puts the chain starting at descriptor `head` in the driver ring.
    fn offer(&mut self, head: u16) {
        // SAFETY: the driver ring is in the queue's page; the index is
        // published after the entry (fenced), as the spec orders.
        unsafe {
            let ring = (self.page + 1024 + 4 + u64::from(self.avail % QUEUE) * 2) as *mut u16;
            write_volatile(ring, head % QUEUE);
            fence(Ordering::SeqCst);
            self.avail = self.avail.wrapping_add(1);
            write_volatile((self.page + 1024 + 2) as *mut u16, self.avail);
        }
        fence(Ordering::SeqCst);
    }

    /// The next chain the device gave back, (head descriptor, bytes
    /// written), if any.
    fn next_used(&mut self) -> Option<(u16, usize)> {
        // SAFETY: the device ring is in the queue's page. The entry is read
        // after the index (fenced), which the device moved after writing it.
        unsafe {
            let index = read_volatile((self.page + 2048 + 2) as *const u16);
            fence(Ordering::SeqCst);
            if index == self.used {
                return None;
            }
            let slot = self.page + 2048 + 4 + u64::from(self.used % QUEUE) * 8;
            let id = read_volatile(slot as *const u32);
            let len = read_volatile((slot + 4) as *const u32);
            self.used = self.used.wrapping_add(1);
            Some(((id % u32::from(QUEUE)) as u16, len as usize))
        }
    }
}

/// Reads a register of 8, 16 or 32 bits at `addr` (identity-mapped MMIO).
fn read_reg<T: Copy>(addr: u64) -> T {
    // SAFETY: callers pass a register of a probed device, inside its
    // mapped registers and aligned for `T`.
    unsafe { read_volatile(addr as *const T) }
}

/// Writes a register of 8, 16 or 32 bits at `addr`.
fn write_reg<T: Copy>(addr: u64, value: T) {
    // SAFETY: as in `read_reg`.
    unsafe { write_volatile(addr as *mut T, value) }
}

/// How a board finds a device of a type on its bus: [`on_mmio`] or [`on_pci`].
pub type Find = fn(DeviceType) -> Result<Transport, ProbeError>;

/// The first virtio-mmio slot holding a device of type `ty` (microvm).
pub fn on_mmio(ty: DeviceType) -> Result<Transport, ProbeError> {
    mmio::Mmio::find(ty).map(Transport::Mmio)
}

/// The first virtio-pci function of type `ty` (q35).
pub fn on_pci(ty: DeviceType) -> Result<Transport, ProbeError> {
    pci::Pci::find(ty).map(Transport::Pci)
}
