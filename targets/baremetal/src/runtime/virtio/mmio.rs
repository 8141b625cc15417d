//! The virtio-mmio transport (version 2), the bus of QEMU's microvm
//! machine: eight fixed MMIO slots, slot `i` wired to I/O APIC pin
//! `16 + i` (with ACPI on and `ioapic2=off`), which this transport routes
//! to its own vector, `MMIO_VECTORS + i`.
use super::{read_reg, write_reg, DeviceType, ProbeError, Queue, Registers, QUEUE};

const MMIO_BASE: u64 = 0xfeb0_0000;
const SLOT_SIZE: u64 = 0x200;
const SLOTS: u64 = 8;
const FIRST_PIN: u32 = 16;
const IOAPIC: u64 = 0xfec0_0000;

/// The first of the slots' vectors (slot `i` interrupts on this plus `i`).
pub const MMIO_VECTORS: u8 = 0x21;

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

/// A virtio-mmio slot holding a device.
pub struct Mmio {
    base: u64,
}

impl Mmio {
    /// The first slot holding a device of type `ty`, its interrupt routed.
    pub fn find(ty: DeviceType) -> Result<Mmio, ProbeError> {
        let slot = (0..SLOTS)
            .find(|&i| {
                let b = MMIO_BASE + i * SLOT_SIZE;
                read_reg::<u32>(b + MAGIC) == 0x7472_6976
                    && read_reg::<u32>(b + DEVICE_ID) == ty as u32
            })
            .ok_or(ProbeError::Absent)?;
        let base = MMIO_BASE + slot * SLOT_SIZE;
        if read_reg::<u32>(base + VERSION) != 2 {
            return Err(ProbeError::Legacy);
        }
        route(slot as u32);
        Ok(Mmio { base })
    }

    fn reg(&self, offset: u64) -> u32 {
        read_reg(self.base + offset)
    }

    fn set(&self, offset: u64, value: u32) {
        write_reg(self.base + offset, value)
    }

    pub(super) fn acknowledge(&self) {
        let status = self.reg(INTERRUPT_STATUS);
        if status != 0 {
            self.set(INTERRUPT_ACK, status);
        }
    }
}

impl Registers for Mmio {
    fn device_features(&self) -> u64 {
        self.set(DEVICE_FEATURES_SEL, 0);
        let low = self.reg(DEVICE_FEATURES);
        self.set(DEVICE_FEATURES_SEL, 1);
        let high = self.reg(DEVICE_FEATURES);
        u64::from(high) << 32 | u64::from(low)
    }

    fn set_driver_features(&self, features: u64) {
        self.set(DRIVER_FEATURES_SEL, 0);
        self.set(DRIVER_FEATURES, features as u32);
        self.set(DRIVER_FEATURES_SEL, 1);
        self.set(DRIVER_FEATURES, (features >> 32) as u32);
    }

    fn status(&self) -> u8 {
        self.reg(STATUS) as u8
    }

    fn set_status(&self, status: u8) {
        self.set(STATUS, u32::from(status));
    }

    fn set_queue(&self, index: u16, q: &Queue) -> bool {
        self.set(QUEUE_SEL, u32::from(index));
        if self.reg(QUEUE_NUM_MAX) < u32::from(QUEUE) {
            return false;
        }
        self.set(QUEUE_NUM, u32::from(QUEUE));
        for (offset, addr) in [
            (QUEUE_DESC, q.desc_addr()),
            (QUEUE_DRIVER, q.driver_addr()),
            (QUEUE_DEVICE, q.device_addr()),
        ] {
            self.set(offset, addr as u32);
            self.set(offset + 4, (addr >> 32) as u32);
        }
        self.set(QUEUE_READY, 1);
        true
    }

    fn notify(&self, index: u16) {
        self.set(QUEUE_NOTIFY, u32::from(index));
    }

    fn config_u8(&self, offset: u64) -> u8 {
        read_reg(self.base + CONFIG + offset)
    }
}

/// Routes slot `slot`'s I/O APIC pin to its vector on this CPU:
/// edge-triggered, active high. The device holds its line up until
/// acknowledged, so each acknowledgement re-arms the edge.
fn route(slot: u32) {
    let entry = 0x10 + 2 * (FIRST_PIN + slot);
    write_reg(IOAPIC, entry + 1);
    write_reg(IOAPIC + 0x10, 0u32); // destination: APIC 0
    write_reg(IOAPIC, entry);
    write_reg(IOAPIC + 0x10, u32::from(MMIO_VECTORS) + slot);
}
