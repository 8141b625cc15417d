//! x86 port I/O, the way a PVH guest reaches QEMU's serial port and
//! debug-exit device ([`qemu`](super::qemu)) and PCI configuration space
//! ([`pci`](super::virtio::pci)). (nym's monitor's hypercalls are port
//! writes too, but ones that hand the host memory: `hvt` keeps its own.)
#![allow(unsafe_code)] // the `in` and `out` instructions

/// An `out` and an `in` of one width, through the accumulator register
/// of that width.
macro_rules! port_io {
    ($(#[$o:meta])* $out:ident, $(#[$i:meta])* $inp:ident, $t:ty, $reg:tt) => {
        $(#[$o])*
        pub fn $out(port: u16, v: $t) {
            // SAFETY: port I/O touches no memory; callers name their
            // device's ports.
            unsafe {
                core::arch::asm!(concat!("out dx, ", $reg), in("dx") port, in($reg) v, options(nomem, nostack, preserves_flags))
            }
        }

        $(#[$i])*
        pub fn $inp(port: u16) -> $t {
            let v: $t;
            // SAFETY: as above.
            unsafe {
                core::arch::asm!(concat!("in ", $reg, ", dx"), in("dx") port, out($reg) v, options(nomem, nostack, preserves_flags))
            }
            v
        }
    };
}

port_io!(
    /// Writes byte `v` to `port`.
    outb,
    /// Reads a byte from `port`.
    inb,
    u8,
    "al"
);
port_io!(
    /// Writes the 32-bit `v` to `port`.
    outl,
    /// Reads 32 bits from `port`.
    inl,
    u32,
    "eax"
);
