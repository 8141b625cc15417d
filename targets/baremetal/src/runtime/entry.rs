//! Entry from nym's monitor (64-bit, boot info in `rdi`) to `nym_main`,
//! and the panic handler.
#![allow(unsafe_code)] // the entry from the monitor and the boot info it passes
use super::{exceptions, heap, hvt, sys};
use nym_hvt_abi::BootInfo;

core::arch::global_asm!(
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    call {entry}",
    "    ud2",
    // The PVH entry is reached from nothing but its note: name it here, so
    // the linker, which pulls an object from an archive only for a symbol
    // it needs, keeps the PVH code and note with `_start`.
    ".pushsection .rodata.nym_entries, \"a\"",
    ".quad nym_pvh_start32",
    ".popsection",
    entry = sym hvt_entry,
);

extern "Rust" {
    /// The generated program's main (see `nym build --target kvm`).
    fn nym_main() -> i32;
}

static mut CMDLINE: &str = "";

/// The guest's command line.
pub fn cmdline() -> &'static str {
    // SAFETY: written once in `hvt_entry` before anything reads it.
    unsafe { CMDLINE }
}

extern "C" fn hvt_entry(info: &BootInfo) -> ! {
    heap::init(info.heap_start, info.heap_end);
    hvt::boot(info);
    if info.flags & nym_hvt_abi::BOOT_IDT == 0 {
        exceptions::install();
    }
    // SAFETY: the monitor wrote `cmdline_len` bytes at `cmdline` (inside
    // guest memory, identity-mapped); they are never written again.
    let bytes = unsafe {
        core::slice::from_raw_parts(info.cmdline as *const u8, info.cmdline_len as usize)
    };
    // An ASCII line (the usual one) is checked a word at a time.
    let line = match bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        true => unsafe { core::str::from_utf8_unchecked(bytes) },
        false => core::str::from_utf8(bytes).unwrap_or(""),
    };
    start(line)
}

/// Runs the program with `cmdline` as its arguments, then exits with its
/// status. Both entries end here.
pub fn start(cmdline: &'static str) -> ! {
    // SAFETY: single-threaded boot, before anything reads CMDLINE.
    unsafe { CMDLINE = cmdline };
    // SAFETY: `nym_main` is defined by the generated program this runtime is
    // linked into, with exactly this signature.
    let status = unsafe { nym_main() };
    sys::exit(status)
}

/// Writes formatted text straight to the console, allocating nothing (a
/// panic may come from a failed allocation).
struct Raw;

impl core::fmt::Write for Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::puts(s.as_bytes());
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = core::fmt::write(
        &mut Raw,
        format_args!("panicked at {}: {}\n", LocationOr(info), info.message()),
    );
    sys::exit(101)
}

struct LocationOr<'a>(&'a core::panic::PanicInfo<'a>);

impl core::fmt::Display for LocationOr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0.location() {
            Some(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
            None => f.write_str("an unknown place"),
        }
    }
}
