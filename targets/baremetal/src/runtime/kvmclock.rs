//! The paravirtual clock: a `pvclock_vcpu_time_info` the hypervisor keeps
//! up to date, read with the TSC and no VM exit. KVM's kvmclock (registered
//! through MSRs; PVH under QEMU) and Xen's (in the shared info page) use
//! the same structure, so one reader serves both.
#![allow(unsafe_code)] // MSRs, CPUID and the shared clock page
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

#[repr(C, align(32))]
struct PvClock {
    version: u32,
    pad0: u32,
    tsc_timestamp: u64,
    system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    flags: u8,
    pad: [u8; 2],
}

#[repr(C, align(4))]
struct WallClockInfo {
    version: u32,
    sec: u32,
    nsec: u32,
}

static mut PVCLOCK: PvClock = PvClock {
    version: 0,
    pad0: 0,
    tsc_timestamp: 0,
    system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    flags: 0,
    pad: [0; 2],
};
static mut WALL: WallClockInfo = WallClockInfo {
    version: 0,
    sec: 0,
    nsec: 0,
};
/// The clock structure in use: KVM's (ours) or Xen's (in shared info).
static CLOCK: AtomicPtr<PvClock> = AtomicPtr::new(core::ptr::null_mut());
static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static WALL_BASE_NS: AtomicU64 = AtomicU64::new(0);

pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: writing the architectural and KVM MSRs named in this module.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    }
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading the architectural MSRs named in this module.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

pub fn rdtsc() -> u64 {
    // SAFETY: reading the time-stamp counter has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid(leaf)
}

/// The 12-byte hypervisor signature in a CPUID result's ebx, ecx, edx.
pub fn signature(r: &core::arch::x86_64::CpuidResult) -> [u8; 12] {
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&r.edx.to_le_bytes());
    sig
}

fn kvm_features() -> Option<u32> {
    (signature(&cpuid(0x4000_0000)) == *b"KVMKVMKVM\0\0\0").then(|| cpuid(0x4000_0001).eax)
}

/// Registers the clock structures with KVM; false if KVM offers no
/// kvmclock (then time comes from the monitor's hypercalls).
pub fn init() -> bool {
    const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
    const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
    const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
    match kvm_features() {
        Some(f) if f & KVM_FEATURE_CLOCKSOURCE2 != 0 => {}
        _ => return false,
    }
    CLOCK.store(core::ptr::addr_of_mut!(PVCLOCK), Ordering::Relaxed);
    // Identity mapping: the statics' addresses are their physical addresses.
    wrmsr(
        MSR_KVM_SYSTEM_TIME_NEW,
        core::ptr::addr_of!(PVCLOCK) as u64 | 1,
    );
    wrmsr(MSR_KVM_WALL_CLOCK_NEW, core::ptr::addr_of!(WALL) as u64);
    // SAFETY: KVM wrote the wall clock synchronously during the wrmsr.
    let wall = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WALL)) };
    WALL_BASE_NS.store(
        u64::from(wall.sec) * 1_000_000_000 + u64::from(wall.nsec),
        Ordering::Relaxed,
    );
    BOOT_NS.store(system_ns(), Ordering::Relaxed);
    true
}

/// (tsc_timestamp, system_time, mul, shift), read consistently.
fn pvclock() -> (u64, u64, u32, i8) {
    loop {
        let p = CLOCK.load(Ordering::Relaxed).cast_const();
        // SAFETY: KVM updates the struct in place; the version protocol
        // (odd while updating, changed after) makes the read consistent.
        unsafe {
            let v1 = core::ptr::read_volatile(core::ptr::addr_of!((*p).version));
            core::sync::atomic::fence(Ordering::Acquire);
            let r = (
                core::ptr::read_volatile(core::ptr::addr_of!((*p).tsc_timestamp)),
                core::ptr::read_volatile(core::ptr::addr_of!((*p).system_time)),
                core::ptr::read_volatile(core::ptr::addr_of!((*p).tsc_to_system_mul)),
                core::ptr::read_volatile(core::ptr::addr_of!((*p).tsc_shift)),
            );
            core::sync::atomic::fence(Ordering::Acquire);
            let v2 = core::ptr::read_volatile(core::ptr::addr_of!((*p).version));
            if v1 == v2 && v1 & 1 == 0 {
                return r;
            }
        }
    }
}

/// The TSC-to-nanoseconds multiplier and shift, for converting back.
pub fn params() -> (u64, u64, u32, i8) {
    pvclock()
}

fn scale(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta << shift
    } else {
        delta >> -shift
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

fn system_ns() -> u64 {
    let (ts, sys, mul, shift) = pvclock();
    sys + scale(rdtsc().saturating_sub(ts), mul, shift)
}

/// Reads Xen's clock: `time` is vcpu_info[0].time in the shared info page,
/// `wall` its wall-clock fields (version, seconds, nanoseconds, seconds'
/// high bits).
pub fn use_xen(time: u64, wall: u64) {
    CLOCK.store(time as *mut PvClock, Ordering::Relaxed);
    let base = loop {
        let w = wall as *const u32;
        // SAFETY: the shared info page is mapped (identity) and Xen keeps
        // these fields up to date; a torn read is retried through the version.
        unsafe {
            let v1 = core::ptr::read_volatile(w);
            let sec = u64::from(core::ptr::read_volatile(w.add(1)));
            let nsec = u64::from(core::ptr::read_volatile(w.add(2)));
            let hi = u64::from(core::ptr::read_volatile(w.add(3)));
            if v1 & 1 == 0 && v1 == core::ptr::read_volatile(w) {
                break ((hi << 32) | sec) * 1_000_000_000 + nsec;
            }
        }
    };
    WALL_BASE_NS.store(base, Ordering::Relaxed);
    BOOT_NS.store(system_ns(), Ordering::Relaxed);
}

/// The hypervisor's system time at monotonic time `mono` (for timeouts
/// given to the hypervisor).
pub fn system_time_at(mono: u64) -> u64 {
    BOOT_NS.load(Ordering::Relaxed).saturating_add(mono)
}

/// Nanoseconds since boot.
pub fn monotime() -> u64 {
    system_ns().saturating_sub(BOOT_NS.load(Ordering::Relaxed))
}

/// Nanoseconds since the Unix epoch.
pub fn walltime() -> u64 {
    WALL_BASE_NS.load(Ordering::Relaxed) + system_ns()
}
