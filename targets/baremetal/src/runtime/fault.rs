//! The crash line a guest off nym's monitor prints, for the host to
//! symbolise: `nym-fault: vector=14 error=0x0 cr2=0x0 frames=0x1029ba,…`.
//! It writes to whatever it is given and calls nothing else of the runtime.
#![allow(unsafe_code)] // reading the stack's frame pointers
use core::fmt::Write;
use nym_hvt_abi as abi;

/// Writes `f`'s crash line to `out`: the fault and the return addresses
/// up the frame pointers.
pub fn write_line(f: &abi::Fault, out: &mut dyn Write) {
    // Frame pointers are only followed inside what the PVH page tables map
    // (the first 4 GiB less page 0), so a corrupt chain cannot fault again.
    let stack = 0x1000u64..(4 << 30);
    let _ = write!(
        out,
        "nym-fault: vector={} error={:#x} cr2={:#x} frames={:#x}",
        f.vector, f.error_code, f.cr2, f.rip
    );
    let mut rbp = f.rbp;
    for _ in 0..32 {
        if !rbp.is_multiple_of(8) || !stack.contains(&rbp) {
            break;
        }
        // SAFETY: `rbp` is aligned and inside the mapped stack area checked above.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        let _ = write!(out, ",{:#x}", ret - 1);
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    let _ = writeln!(out);
}
