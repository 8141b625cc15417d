//! The virtio-pci transport (modern, virtio 1.0+), the bus of a q35
//! machine (QEMU `-M q35`, libvirt): devices are found by walking PCI
//! configuration space from bus 0 through its bridges (libvirt puts each
//! device behind its own PCIe root port), their registers located through
//! the virtio capabilities (common, notify, device configuration) in BARs
//! the firmware assigned, and their queues' interrupts delivered as MSI-X
//! messages to a vector of this device's own.
use super::{read_reg, write_reg, DeviceType, ProbeError, Queue, Registers, QUEUE};
use crate::runtime::port::{inl, outl};
use core::sync::atomic::{AtomicU8, Ordering};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const VIRTIO_VENDOR: u16 = 0x1af4;
const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_DEVICE: u8 = 4;
/// "No MSI-X vector" in the common configuration.
const NO_VECTOR: u16 = 0xffff;

/// The first vector PCI devices interrupt on; each device takes the next.
pub const PCI_VECTORS: u8 = 0x30;
/// The last vector this runtime acknowledges.
pub const LAST_VECTOR: u8 = 0x3f;
static NEXT_VECTOR: AtomicU8 = AtomicU8::new(PCI_VECTORS);

// The common configuration's registers.
const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0c;
const CONFIG_MSIX_VECTOR: u64 = 0x10;
const DEVICE_STATUS: u64 = 0x14;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE: u64 = 0x18;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const QUEUE_ENABLE: u64 = 0x1c;
const QUEUE_NOTIFY_OFF: u64 = 0x1e;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;

/// A PCI function: bus, device, function.
#[derive(Clone, Copy)]
struct Function(u8, u8, u8);

impl Function {
    fn select(self, offset: u8) {
        let Function(bus, dev, func) = self;
        outl(
            CONFIG_ADDRESS,
            0x8000_0000
                | u32::from(bus) << 16
                | u32::from(dev) << 11
                | u32::from(func) << 8
                | u32::from(offset & 0xfc),
        );
    }

    fn read(self, offset: u8) -> u32 {
        self.select(offset);
        inl(CONFIG_DATA)
    }

    fn write(self, offset: u8, value: u32) {
        self.select(offset);
        outl(CONFIG_DATA, value);
    }

    fn byte(self, offset: u8) -> u8 {
        (self.read(offset) >> (8 * (offset & 3))) as u8
    }

    /// The address BAR `bar` decodes, if it is a memory BAR below 4 GiB
    /// (what the page tables map).
    fn bar(self, bar: u8) -> Result<u64, ProbeError> {
        let offset = 0x10 + 4 * bar;
        let low = self.read(offset);
        if low & 1 != 0 {
            return Err(ProbeError::Unmapped);
        }
        let mut addr = u64::from(low & !0xf);
        if (low >> 1) & 3 == 2 {
            addr |= u64::from(self.read(offset + 4)) << 32;
        }
        if addr == 0 || addr >= 4 << 30 {
            return Err(ProbeError::Unmapped);
        }
        Ok(addr)
    }

    /// Capability offsets, following the list (bounded: a malformed list
    /// cannot loop).
    fn capabilities(self) -> impl Iterator<Item = u8> {
        let has_list = self.read(0x04) >> 16 & 0x10 != 0;
        let mut next = if has_list { self.byte(0x34) & 0xfc } else { 0 };
        (0..48).map_while(move |_| {
            let at = next;
            if at < 0x40 {
                return None;
            }
            next = self.byte(at + 1) & 0xfc;
            Some(at)
        })
    }
}

/// The functions on `bus` and the buses behind its bridges, depth first.
fn walk(bus: u8, depth: u8, found: &mut dyn FnMut(Function) -> bool) -> bool {
    for dev in 0..32 {
        let f0 = Function(bus, dev, 0);
        if f0.read(0) & 0xffff == 0xffff {
            continue;
        }
        let multi = f0.byte(0x0e) & 0x80 != 0;
        for func in 0..if multi { 8 } else { 1 } {
            let f = Function(bus, dev, func);
            if f.read(0) & 0xffff == 0xffff {
                continue;
            }
            if found(f) {
                return true;
            }
            // A PCI-to-PCI bridge (class 06, subclass 04): its secondary bus.
            let class = f.read(0x08) >> 16;
            if class == 0x0604 && depth < 4 {
                let secondary = f.byte(0x19);
                if secondary > bus && walk(secondary, depth + 1, found) {
                    return true;
                }
            }
        }
    }
    false
}

/// A virtio-pci function, its registers located.
pub struct Pci {
    common: u64,
    notify: u64,
    notify_multiplier: u32,
    device: u64,
    /// The MSI-X table entry each queue's vector goes to is the queue's
    /// index; all of them deliver `vector`.
    msix_entries: u16,
}

impl Pci {
    /// The first virtio device of type `ty` on the machine's PCI buses,
    /// with bus mastering on and MSI-X set up to a vector of its own.
    pub fn find(ty: DeviceType) -> Result<Pci, ProbeError> {
        let modern = 0x1040 + ty as u32;
        // Transitional devices: 0x1000 net, 0x1001 block; the subsystem id
        // says the type.
        let transitional = 0x1000 + ty as u32 - 1;
        let mut hit = None;
        walk(0, 0, &mut |f| {
            let id = f.read(0);
            if id & 0xffff != u32::from(VIRTIO_VENDOR) {
                return false;
            }
            let device = id >> 16;
            let subsystem = f.read(0x2c) >> 16;
            if device == modern || (device == transitional && subsystem == ty as u32) {
                hit = Some(f);
                return true;
            }
            false
        });
        Pci::set_up(hit.ok_or(ProbeError::Absent)?)
    }

    fn set_up(f: Function) -> Result<Pci, ProbeError> {
        let (mut common, mut notify, mut device, mut multiplier, mut msix) =
            (None, None, None, 0, None);
        for cap in f.capabilities() {
            match f.byte(cap) {
                CAP_VENDOR => {
                    let ty = f.byte(cap + 3);
                    let bar = f.byte(cap + 4);
                    let offset = u64::from(f.read(cap + 8));
                    let at = || f.bar(bar).map(|b| b + offset);
                    match ty {
                        CFG_COMMON => common = Some(at()?),
                        CFG_NOTIFY => {
                            notify = Some(at()?);
                            multiplier = f.read(cap + 16);
                        }
                        CFG_DEVICE => device = Some(at()?),
                        _ => {}
                    }
                }
                CAP_MSIX => msix = Some(cap),
                _ => {}
            }
        }
        let (Some(common), Some(notify), Some(device)) = (common, notify, device) else {
            return Err(ProbeError::Legacy);
        };
        // Memory decoding and bus mastering (the device reads and writes
        // the rings itself).
        f.write(0x04, (f.read(0x04) & 0xffff) | 0x6);
        let msix_entries = match msix {
            Some(cap) => enable_msix(f, cap, next_vector())?,
            None => 0,
        };
        let pci = Pci {
            common,
            notify,
            notify_multiplier: multiplier,
            device,
            msix_entries,
        };
        write_reg::<u16>(pci.common + CONFIG_MSIX_VECTOR, NO_VECTOR);
        Ok(pci)
    }
}

impl Registers for Pci {
    fn device_features(&self) -> u64 {
        write_reg::<u32>(self.common + DEVICE_FEATURE_SELECT, 0);
        let low = read_reg::<u32>(self.common + DEVICE_FEATURE);
        write_reg::<u32>(self.common + DEVICE_FEATURE_SELECT, 1);
        let high = read_reg::<u32>(self.common + DEVICE_FEATURE);
        u64::from(high) << 32 | u64::from(low)
    }

    fn set_driver_features(&self, features: u64) {
        write_reg::<u32>(self.common + DRIVER_FEATURE_SELECT, 0);
        write_reg::<u32>(self.common + DRIVER_FEATURE, features as u32);
        write_reg::<u32>(self.common + DRIVER_FEATURE_SELECT, 1);
        write_reg::<u32>(self.common + DRIVER_FEATURE, (features >> 32) as u32);
    }

    fn status(&self) -> u8 {
        read_reg(self.common + DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) {
        write_reg(self.common + DEVICE_STATUS, status);
    }

    fn set_queue(&self, index: u16, q: &Queue) -> bool {
        write_reg(self.common + QUEUE_SELECT, index);
        if read_reg::<u16>(self.common + QUEUE_SIZE) < QUEUE {
            return false;
        }
        write_reg(self.common + QUEUE_SIZE, QUEUE);
        for (offset, addr) in [
            (QUEUE_DESC, q.desc_addr()),
            (QUEUE_DRIVER, q.driver_addr()),
            (QUEUE_DEVICE, q.device_addr()),
        ] {
            write_reg::<u32>(self.common + offset, addr as u32);
            write_reg::<u32>(self.common + offset + 4, (addr >> 32) as u32);
        }
        let vector = if index < self.msix_entries {
            index
        } else {
            NO_VECTOR
        };
        write_reg(self.common + QUEUE_MSIX_VECTOR, vector);
        write_reg::<u16>(self.common + QUEUE_ENABLE, 1);
        true
    }

    fn notify(&self, index: u16) {
        write_reg(self.common + QUEUE_SELECT, index);
        let off = read_reg::<u16>(self.common + QUEUE_NOTIFY_OFF);
        write_reg(
            self.notify + u64::from(off) * u64::from(self.notify_multiplier),
            index,
        );
    }

    fn config_u8(&self, offset: u64) -> u8 {
        read_reg(self.device + offset)
    }
}

/// The next free interrupt vector for a PCI device (they share the last
/// one if there are more devices than vectors: an interrupt only wakes).
fn next_vector() -> u8 {
    let v = NEXT_VECTOR.fetch_add(1, Ordering::Relaxed);
    v.min(LAST_VECTOR)
}

/// Points every entry of the function's MSI-X table at `vector` on CPU 0,
/// unmasked, and enables MSI-X; the number of entries.
fn enable_msix(f: Function, cap: u8, vector: u8) -> Result<u16, ProbeError> {
    let control = f.read(cap) >> 16;
    let entries = (control & 0x7ff) as u16 + 1;
    let table = f.read(cap + 4);
    let base = f.bar((table & 7) as u8)? + u64::from(table & !7);
    for i in 0..entries.min(QUEUE) {
        let entry = base + u64::from(i) * 16;
        write_reg::<u32>(entry, 0xfee0_0000); // the local APIC of CPU 0
        write_reg::<u32>(entry + 4, 0);
        write_reg::<u32>(entry + 8, u32::from(vector)); // fixed, edge
        write_reg::<u32>(entry + 12, 0); // unmasked
    }
    // Enable (bit 15), function mask off (bit 14).
    let control = (control | 0x8000) & !0x4000;
    f.write(cap, (f.read(cap) & 0xffff) | control << 16);
    Ok(entries)
}

/// Whether the machine has a PCI bus (a host bridge at 00:00.0): q35 does,
/// microvm does not.
pub fn present() -> bool {
    Function(0, 0, 0).read(0) & 0xffff != 0xffff
}
