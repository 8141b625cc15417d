//! nym's KVM monitor: hypercalls (`out dx, eax` with the argument
//! struct's address; guest memory is identity-mapped, so a pointer is its
//! physical address), the primitives over them, and the monitor's devices
//! ([`devices`]).
#![allow(unsafe_code)] // hypercalls to nym's monitor (port I/O)
pub mod devices;

use super::kvmclock::rdtsc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libos::{IoError, RandomError};
use nym_hvt_abi::{self as abi, PORT_BASE};

/// Makes hypercall `nr` with `arg`, which the monitor may update in place.
/// The device calls among them are traced (see [`super::trace`]).
pub fn call<T>(nr: u16, arg: &mut T) {
    let device = match nr {
        abi::nr::PUTS => "console.puts",
        abi::nr::BLOCK_READ => "block.read",
        abi::nr::BLOCK_WRITE => "block.write",
        abi::nr::NET_WRITE => "netif.send",
        abi::nr::NET_READ => "netif.recv",
        abi::nr::RANDOM => "random.fill",
        _ => return raw_call(nr, arg),
    };
    super::trace::call(device, || raw_call(nr, arg))
}

fn raw_call<T>(nr: u16, arg: &mut T) {
    let addr = arg as *mut T as usize as u32;
    // SAFETY: the monitor reads and writes only `*arg` (checked against guest
    // memory) and resumes after the `out`; no other state changes.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") PORT_BASE + nr, in("eax") addr, options(nostack, preserves_flags));
    }
}

/// Ends the guest with `status`.
pub fn exit(status: i32) -> ! {
    let mut e = abi::Exit {
        status: status as u64,
    };
    call(abi::nr::EXIT, &mut e);
    // The monitor never resumes after EXIT; halt in case it does.
    loop {
        // SAFETY: halting with interrupts off just stops this vCPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Writes `bytes` to the console.
pub fn puts(bytes: &[u8]) {
    let mut p = abi::Puts {
        data: bytes.as_ptr() as u64,
        len: bytes.len() as u64,
    };
    call(abi::nr::PUTS, &mut p);
}

/// The TSC at boot, and nanoseconds per tick as a 32.32 fixed-point
/// number (0: the monitor gave no rate; time comes by `MONOTIME`).
static TSC_START: AtomicU64 = AtomicU64::new(0);
static NS_PER_TICK: AtomicU64 = AtomicU64::new(0);
/// The monitor records no trace log ([`abi::BOOT_NO_TRACE`]).
static NO_TRACE: AtomicBool = AtomicBool::new(false);

/// Takes what the monitor says at boot: the TSC's rate (monotonic time is
/// then read without an exit) and whether tracing is off.
pub fn boot(info: &abi::BootInfo) {
    NO_TRACE.store(info.flags & abi::BOOT_NO_TRACE != 0, Ordering::Relaxed);
    // (10^9 << 32) fits in 64 bits; a rate under 1 Hz is no rate.
    if let Some(per_tick) = (1_000_000_000u64 << 32).checked_div(info.tsc_hz) {
        TSC_START.store(rdtsc(), Ordering::Relaxed);
        NS_PER_TICK.store(per_tick, Ordering::Relaxed);
    }
}

/// Whether the monitor said it records no trace log.
pub fn no_trace() -> bool {
    NO_TRACE.load(Ordering::Relaxed)
}

/// The monotonic time in nanoseconds since boot.
pub fn monotime() -> u64 {
    let per_tick = NS_PER_TICK.load(Ordering::Relaxed);
    if per_tick != 0 {
        // A TSC that stepped back (it should not: KVM refuses the rate of
        // an unstable one) reads as boot, not as a time far ahead.
        let ticks = rdtsc().saturating_sub(TSC_START.load(Ordering::Relaxed));
        return ((u128::from(ticks) * u128::from(per_tick)) >> 32) as u64;
    }
    let mut t = abi::Time::default();
    call(abi::nr::MONOTIME, &mut t);
    t.nanos
}

/// The wall time in nanoseconds since the Unix epoch.
pub fn walltime() -> u64 {
    let mut t = abi::Time::default();
    call(abi::nr::WALLTIME, &mut t);
    t.nanos
}

/// Blocks for at most `timeout` nanoseconds.
pub fn wait(timeout: u64) {
    let mut w = abi::Wait { timeout };
    call(abi::nr::WAIT, &mut w);
}

/// Fills `buf` with the host's entropy; an error if the monitor could not
/// read its source (then `buf` holds nothing to rely on).
pub fn random(buf: &mut [u8]) -> Result<(), RandomError> {
    for chunk in buf.chunks_mut(abi::RANDOM_MAX as usize) {
        let mut r = abi::Random {
            data: chunk.as_mut_ptr() as u64,
            len: chunk.len() as u64,
            // Anything but `Ok`, so that a monitor that never answers fails.
            ret: abi::Ret::Io as u64,
        };
        call(abi::nr::RANDOM, &mut r);
        if r.ret != abi::Ret::Ok as u64 {
            return Err(RandomError::Unavailable(IoError::Other(
                "the monitor could not read the host's entropy",
            )));
        }
    }
    Ok(())
}
