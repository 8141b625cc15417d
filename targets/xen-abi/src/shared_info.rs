//! The shared info page (`struct shared_info`, x86_64): per-vCPU info with
//! its PV clock, the 2-level event channel bitmaps, and the wall clock.

/// vCPU 0's `vcpu_time_info` (the PV clock, kvmclock's layout).
pub const VCPU0_TIME: usize = 32;
/// `evtchn_pending`: one bit per port, set by Xen, cleared by the guest.
pub const EVTCHN_PENDING: usize = 2048;
/// `evtchn_mask`: one bit per port; a masked port is never delivered as an
/// upcall, but still wakes `SCHEDOP_poll`.
pub const EVTCHN_MASK: usize = 2560;
/// `wc_version`, `wc_sec`, `wc_nsec`: the wall clock at system time 0.
pub const WALLCLOCK: usize = 3072;
/// The ports the 2-level ABI has (64 words of 64 bits).
pub const PORTS: u32 = 4096;

/// The offset of the 64-bit word holding `port`'s bit in a bitmap at
/// `base`, and the bit.
pub fn bit(base: usize, port: u32) -> (usize, u32) {
    let port = port % PORTS;
    (base + (port / 64) as usize * 8, port % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bits_stay_in_their_bitmap() {
        assert_eq!(bit(EVTCHN_PENDING, 0), (2048, 0));
        assert_eq!(bit(EVTCHN_PENDING, 65), (2056, 1));
        let (off, b) = bit(EVTCHN_MASK, u32::MAX);
        assert!(off < EVTCHN_MASK + 512 && b < 64);
    }
}
