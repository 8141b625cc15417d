//! x86 port I/O, the way a PVH guest reaches QEMU's serial port and
//! debug-exit device ([`qemu`](super::qemu)) and PCI configuration space
//! ([`pci`](super::virtio::pci)). (nym's monitor's hypercalls are port
//! writes too, but ones that hand the host memory: `hvt` keeps its own.)
#![allow(unsafe_code)] // the `in` and `out` instructions

/// Writes byte `v` to `port`.
pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O touches no memory; callers name their device's ports.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from `port`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as in `outb`.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Writes the 32-bit `v` to `port`.
pub fn outl(port: u16, v: u32) {
    // SAFETY: as in `outb`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// Reads 32 bits from `port`.
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as in `outb`.
    unsafe {
        core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    }
    v
}
