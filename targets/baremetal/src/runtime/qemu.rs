//! QEMU's primitives for a PVH guest under KVM, on either machine
//! (microvm, q35): the serial port (COM1) for the console, kvmclock for
//! time, the x2APIC TSC-deadline timer with `hlt` for waiting (no busy
//! loop), RDRAND for entropy and QEMU's isa-debug-exit device to end with
//! a status.
#![allow(unsafe_code)] // hlt, MSRs and RDRAND
use super::kvmclock::{self, cpuid, rdmsr, rdtsc, wrmsr};
use super::port::{inb, outb};
use libos::{IoError, RandomError};

const COM1: u16 = 0x3f8;

/// Writes bytes to the serial port.
pub fn puts(bytes: &[u8]) {
    for &b in bytes {
        let mut spins = 0;
        while inb(COM1 + 5) & 0x20 == 0 && spins < 100_000 {
            spins += 1;
        }
        outb(COM1, b);
    }
}

/// Ends the guest through QEMU's isa-debug-exit (QEMU exits with 2·status+1).
pub fn exit(status: i32) -> ! {
    outb(0xf4, status as u8);
    loop {
        // SAFETY: halting with interrupts off stops this vCPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// The timer's vector; devices take theirs from the next one up (virtio-mmio
/// slots, PCI functions), to `virtio::pci::LAST_VECTOR`.
pub const TIMER_VECTOR: u8 = 0x20;
/// Where the local APIC sends spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Sets up the local APIC's TSC-deadline timer; what the CPU lacks if it
/// cannot.
pub fn timer_init() -> Result<(), &'static str> {
    // The firmware leaves the legacy 8259 PICs routing the PIT to low
    // vectors; this runtime uses the local APIC only, so mask them all.
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    const IA32_APIC_BASE: u32 = 0x1b;
    const X2APIC_SVR: u32 = 0x80f;
    const X2APIC_LVT_TIMER: u32 = 0x832;
    let f = cpuid(1);
    if f.ecx & (1 << 21) == 0 || f.ecx & (1 << 24) == 0 {
        return Err("the CPU lacks x2APIC or the TSC-deadline timer (run QEMU with -cpu host)");
    }
    wrmsr(
        IA32_APIC_BASE,
        rdmsr(IA32_APIC_BASE) | (1 << 11) | (1 << 10),
    );
    wrmsr(X2APIC_SVR, 0x100 | u64::from(SPURIOUS_VECTOR));
    wrmsr(X2APIC_LVT_TIMER, u64::from(TIMER_VECTOR) | (0b10 << 17));
    Ok(())
}

/// Sleeps until monotonic time `deadline` or a device's interrupt (a
/// frame for virtio-net), whichever comes first; the executor polls again
/// either way.
pub fn wait(deadline: u64) {
    const IA32_TSC_DEADLINE: u32 = 0x6e0;
    let now = kvmclock::monotime();
    if now >= deadline {
        return;
    }
    let (_, _, mul, shift) = kvmclock::params();
    // Inverse of `scale`: nanoseconds to TSC ticks.
    let mut ticks = ((u128::from(deadline - now) << 32) / u128::from(mul.max(1))) as u64;
    ticks = if shift >= 0 {
        ticks >> shift
    } else {
        ticks << -shift
    };
    wrmsr(IA32_TSC_DEADLINE, rdtsc().saturating_add(ticks.max(1)));
    // SAFETY: `sti; hlt` sleeps until an interrupt (the one-instruction
    // shadow of sti makes the pair atomic); the handlers only acknowledge it.
    unsafe { core::arch::asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// 64 random bits from RDRAND, retried as Intel advises.
fn rdrand() -> Option<u64> {
    if cpuid(1).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let mut v = 0u64;
        // SAFETY: RDRAND is present (checked above) and only writes `v`.
        if unsafe { core::arch::x86_64::_rdrand64_step(&mut v) } == 1 {
            return Some(v);
        }
    }
    None
}

/// Fills `buf` from RDRAND.
pub fn rdrand_fill(buf: &mut [u8]) -> Result<(), RandomError> {
    for chunk in buf.chunks_mut(8) {
        let v = rdrand().ok_or(RandomError::Unavailable(IoError::Other(
            "the CPU has no RDRAND",
        )))?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}
