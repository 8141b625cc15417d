//! The board this image booted on, decided once at entry, and its
//! primitives: console output, clocks, waiting with a deadline, entropy,
//! fault reports and the exit. Each board's primitives live in its own
//! module (`hvt`, `qemu`, `xen`); this is the one place that chooses
//! between them, and devices never do.
use super::{fault, hvt, kvmclock, qemu, xen};
use core::sync::atomic::{AtomicU8, Ordering};
use libos::RandomError;
use nym_hvt_abi as abi;

/// What started this image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Board {
    /// nym's KVM monitor: hypercalls.
    Hvt = 0,
    /// QEMU's microvm machine through PVH: virtio-mmio.
    Microvm = 1,
    /// A q35 machine through PVH (QEMU, libvirt): virtio-pci.
    Q35 = 2,
    /// Xen, through PVH.
    Xen = 3,
}

static BOARD: AtomicU8 = AtomicU8::new(Board::Hvt as u8);

/// Records the board. Called once, by the entry, before anything else runs.
pub fn set_board(board: Board) {
    BOARD.store(board as u8, Ordering::Relaxed);
}

/// The board this image booted on.
pub fn board() -> Board {
    match BOARD.load(Ordering::Relaxed) {
        1 => Board::Microvm,
        2 => Board::Q35,
        3 => Board::Xen,
        _ => Board::Hvt,
    }
}

/// The status a crashed guest exits with (the monitor's, on every board).
pub const EXIT_CRASH: i32 = abi::EXIT_CRASH;

/// Writes to the console.
pub fn puts(bytes: &[u8]) {
    match board() {
        Board::Hvt => hvt::puts(bytes),
        Board::Microvm | Board::Q35 => qemu::puts(bytes),
        Board::Xen => xen::puts(bytes),
    }
}

/// Writes `line` and a newline as one console write (two for a line of
/// [`LINE`] bytes or more).
#[allow(unsafe_code)] // an uninitialised buffer: zeroing it cost as much as the copy
pub fn puts_line(line: &[u8]) {
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); LINE];
    if line.len() >= LINE {
        puts(line);
        puts(b"\n");
        return;
    }
    // SAFETY: the first `line.len() + 1 <= LINE` bytes of `buf` are written
    // (the line, then the newline) before they are read as a slice.
    let out = unsafe {
        let p = buf.as_mut_ptr().cast::<u8>();
        core::ptr::copy_nonoverlapping(line.as_ptr(), p, line.len());
        p.add(line.len()).write(b'\n');
        core::slice::from_raw_parts(p, line.len() + 1)
    };
    puts(out);
}

/// The longest line [`puts_line`] writes at once, with its newline.
const LINE: usize = 256;

/// Nanoseconds since boot. Under nym's monitor it is the TSC at the rate
/// the monitor passed at boot (no exit; by hypercall if it passed none):
/// measured, both are cheaper under nested virtualisation than kvmclock,
/// whose updates make every VM entry dearer.
pub fn monotime() -> u64 {
    match board() {
        Board::Hvt => hvt::monotime(),
        _ => kvmclock::monotime(),
    }
}

/// Nanoseconds since the Unix epoch.
pub fn walltime() -> u64 {
    match board() {
        Board::Hvt => hvt::walltime(),
        _ => kvmclock::walltime(),
    }
}

/// Sleeps until monotonic time `deadline`, or until a device interrupts.
pub fn wait(deadline: u64) {
    match board() {
        Board::Hvt => hvt::wait(deadline.saturating_sub(monotime())),
        Board::Microvm | Board::Q35 => qemu::wait(deadline),
        Board::Xen => xen::wait(deadline),
    }
}

/// Fills `buf` with entropy: the host's through the monitor, RDRAND
/// elsewhere.
pub fn random(buf: &mut [u8]) -> Result<(), RandomError> {
    match board() {
        Board::Hvt => hvt::random(buf),
        _ => qemu::rdrand_fill(buf),
    }
}

/// Reports a CPU exception: to the monitor, which symbolises it, or as a
/// `nym-fault:` console line the host symbolises.
pub fn report_fault(f: &mut abi::Fault) {
    match board() {
        Board::Hvt => hvt::call(abi::nr::FAULT, f),
        _ => {
            struct Console;
            impl core::fmt::Write for Console {
                fn write_str(&mut self, s: &str) -> core::fmt::Result {
                    puts(s.as_bytes());
                    Ok(())
                }
            }
            fault::write_line(f, &mut Console)
        }
    }
}

/// Ends the guest with `status`. Off nym's monitor the status also goes on
/// the console (`nym: exit status N`), for hosts that cannot pass it on
/// (Xen, libvirt).
pub fn exit(status: i32) -> ! {
    match board() {
        Board::Hvt => {
            // The scheduler's log, if the monitor records it, before the end.
            super::trace::flush();
            hvt::exit(status)
        }
        Board::Microvm | Board::Q35 => {
            let mut line = [0u8; 40];
            puts(status_line(status, &mut line));
            qemu::exit(status)
        }
        Board::Xen => {
            let mut line = [0u8; 40];
            puts(status_line(status, &mut line));
            xen::exit(status)
        }
    }
}

/// The last console line of a guest off nym's monitor: `nym: exit status N`.
pub const STATUS_MARKER: &str = "nym: exit status ";

/// `nym: exit status N\n` into `buf`, without allocating (a panic may come
/// from a failed allocation).
fn status_line(status: i32, buf: &mut [u8; 40]) -> &[u8] {
    let prefix = STATUS_MARKER.as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 12];
    let mut v = status.unsigned_abs();
    let mut d = 0;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if status < 0 {
        buf[n] = b'-';
        n += 1;
    }
    for i in (0..d).rev() {
        buf[n] = digits[i];
        n += 1;
    }
    buf[n] = b'\n';
    &buf[..n + 1]
}
