//! # nym-hvt-abi: the contract between nym's KVM monitor and its guests
//!
//! This crate is the one place the hypercall ABI is written down. The
//! monitor (`targets/hvt`) and the guest runtime (`targets/baremetal`) both
//! depend on it; neither defines a number or a layout of its own.
//!
//! ## Boot
//!
//! The monitor loads the ELF image at the physical addresses its program
//! headers name, builds page tables (identity map, W^X from the segment
//! flags, page 0 unmapped), and starts the vCPU **in 64-bit long mode** at
//! the ELF entry with:
//!
//! | register | value |
//! |---|---|
//! | `rdi` | guest-physical address of a [`BootInfo`] |
//! | `rsp` | top of the stack, 16-byte aligned |
//! | `rflags` | `0x2` (interrupts off) |
//!
//! If the image names its exception handlers (a [`NOTE_EXCEPTIONS`] note in
//! a `PT_NOTE` segment), the monitor also loads an IDT of
//! [`EXCEPTION_VECTORS`] interrupt gates ([`idt_gate`]) to them (the IDT
//! register's base is guest-physical `0x4000`, its limit 511) and sets
//! [`BOOT_IDT`] in [`BootInfo::flags`]; otherwise the IDT register is
//! empty and the guest loads its own. The guest's CPUID is empty: a guest
//! needs no feature beyond x86-64's baseline.
//!
//! ## Hypercalls
//!
//! A hypercall is `out dx, eax` with `dx = PORT_BASE + number` and `eax` the
//! guest-physical address of the call's argument struct (8-byte aligned,
//! wholly inside guest memory). The monitor reads the struct, performs the
//! call, writes the results back into it, and resumes the guest. Buffers a
//! struct points to are checked against guest memory too. **A struct or
//! buffer outside guest memory, misaligned, or whose length overflows is a
//! violation: the monitor ends the guest with a message naming the call and
//! the bad address, and exits with status [`EXIT_VIOLATION`].**
//!
//! | number | name | struct | what it does |
//! |---|---|---|---|
//! | 1 | `WALLTIME` | [`Time`] | `nanos` = ns since the Unix epoch |
//! | 2 | `MONOTIME` | [`Time`] | `nanos` = ns since the guest started (a guest given [`BootInfo::tsc_hz`] reads its TSC instead, without an exit) |
//! | 3 | `PUTS` | [`Puts`] | write `len` bytes at `data` to the console |
//! | 4 | `WAIT` | [`Wait`] | block the vCPU for at most `timeout` ns (no busy loop), or until a frame waits for the guest |
//! | 5 | `BLOCK_INFO` | [`BlockInfo`] | the block device's geometry |
//! | 6 | `BLOCK_READ` | [`BlockIo`] | read sectors into `data` |
//! | 7 | `BLOCK_WRITE` | [`BlockIo`] | write sectors from `data` |
//! | 8 | `RANDOM` | [`Random`] | fill `len` bytes at `data` from the host's entropy; `ret` = [`Ret::Io`] (buffer untouched) if the host could not read it |
//! | 9 | `EXIT` | [`Exit`] | end the guest with `status` |
//! | 10 | `FAULT` | [`Fault`] | report a CPU exception; the monitor symbolises and exits |
//! | 11 | `NET_INFO` | [`NetInfo`] | the network interface's MAC address and MTU |
//! | 12 | `NET_WRITE` | [`NetIo`] | send the Ethernet frame of `len` bytes at `data` |
//! | 13 | `NET_READ` | [`NetIo`] | take the next frame for the guest into `data` (`len` bytes of room); `len` = its length, 0 if none waits |
//! | 14 | `TRACE` | [`Trace`] | hand over `count` [`TraceEvent`]s of the scheduler's log at `data` (0: ask, naming the buffer and its `pending` count); `on` = 1 if the monitor records it |
//!
//! ## The network
//!
//! An image with a network (manifest bit [`DEVICE_NET`]) sits on a virtual
//! Ethernet link to the monitor. The monitor's end is [`NET_HOST_IP`] with
//! MAC [`NET_HOST_MAC`]; the guest takes its own address (by convention
//! [`NET_GUEST_IP`], `/24`). With port forwarding the monitor accepts TCP
//! connections on the host and opens each to the guest's port over the
//! link, so nothing on the host needs configuring.
//!
//! Calls that can fail set `ret` to a [`Ret`] value.
//!
//! ## The manifest
//!
//! An image carries an ELF note (name [`NOTE_NAME`], type
//! [`NOTE_MANIFEST`]) whose descriptor is a [`Manifest`]: the devices it
//! needs. The monitor refuses to boot an image whose devices it was not
//! given (a block file), naming what is missing. A second note of the
//! same name, type [`NOTE_EXCEPTIONS`], names the exception handlers (see
//! "Boot").
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

/// The first hypercall port; call `n` is `PORT_BASE + n`.
pub const PORT_BASE: u16 = 0x500;
/// The number of hypercall ports.
pub const PORT_COUNT: u16 = 16;

/// The hypercalls, once: each line is the call's name in the enum, its
/// constant in [`nr`], its number and its argument struct. Everything else
/// that lists the calls (the [`Hypercall`] enum and its names, [`nr`], the
/// monitor's decoder) is made from this table; `$m` receives it.
#[macro_export]
macro_rules! hypercall_table {
    ($m:ident) => {
        $m! {
            /// [`Time`]: wall clock.
            WallTime WALLTIME = 1 => Time,
            /// [`Time`]: monotonic clock.
            MonoTime MONOTIME = 2 => Time,
            /// [`Puts`]: console output.
            Puts PUTS = 3 => Puts,
            /// [`Wait`]: block until a deadline.
            Wait WAIT = 4 => Wait,
            /// [`BlockInfo`]: block geometry.
            BlockInfo BLOCK_INFO = 5 => BlockInfo,
            /// [`BlockIo`]: read sectors.
            BlockRead BLOCK_READ = 6 => BlockIo,
            /// [`BlockIo`]: write sectors.
            BlockWrite BLOCK_WRITE = 7 => BlockIo,
            /// [`Random`]: host entropy.
            Random RANDOM = 8 => Random,
            /// [`Exit`]: end the guest.
            Exit EXIT = 9 => Exit,
            /// [`Fault`]: report a CPU exception.
            Fault FAULT = 10 => Fault,
            /// [`NetInfo`]: the network interface.
            NetInfo NET_INFO = 11 => NetInfo,
            /// [`NetIo`]: send a frame.
            NetWrite NET_WRITE = 12 => NetIo,
            /// [`NetIo`]: receive a frame.
            NetRead NET_READ = 13 => NetIo,
            /// [`Trace`]: hand the monitor the scheduler's log.
            Trace TRACE = 14 => Trace,
        }
    };
}

/// Every `repr(C)` struct that crosses between monitor and guest (made
/// only of `u64`s: no padding, any bits valid); `$m` receives the list. The
/// monitor marks each as plain data from it.
#[macro_export]
macro_rules! abi_structs {
    ($m:ident) => {
        $m!(
            BootInfo, Time, Puts, Wait, BlockInfo, BlockIo, Random, Exit, NetInfo, NetIo, Fault,
            FaultFrame, Trace, TraceEvent
        );
    };
}

macro_rules! define_hypercalls {
    ($($(#[doc = $doc:literal])* $variant:ident $name:ident = $nr:literal => $arg:ident,)*) => {
        /// Hypercall numbers.
        pub mod nr {
            $($(#[doc = $doc])* pub const $name: u16 = $nr;)*
        }

        /// A hypercall.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u16)]
        pub enum Hypercall {
            $($(#[doc = $doc])* $variant = $nr,)*
        }

        impl Hypercall {
            /// Every hypercall, by number.
            pub const ALL: &'static [Hypercall] = &[$(Hypercall::$variant),*];

            /// Its name, `PUTS`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Hypercall::$variant => stringify!($name),)*
                }
            }

            /// The name of its argument struct, `Puts`.
            pub const fn arg(self) -> &'static str {
                match self {
                    $(Hypercall::$variant => stringify!($arg),)*
                }
            }

            /// Its size in bytes.
            pub const fn arg_size(self) -> usize {
                match self {
                    $(Hypercall::$variant => core::mem::size_of::<$arg>(),)*
                }
            }
        }

        impl TryFrom<u16> for Hypercall {
            type Error = u16;

            /// The hypercall numbered `n`; `Err(n)` if there is none.
            fn try_from(n: u16) -> Result<Hypercall, u16> {
                match n {
                    $($nr => Ok(Hypercall::$variant),)*
                    other => Err(other),
                }
            }
        }
    };
}
hypercall_table!(define_hypercalls);

/// The monitor's address on the guest's link.
pub const NET_HOST_IP: [u8; 4] = [10, 0, 2, 2];
/// The monitor's MAC address on the guest's link.
pub const NET_HOST_MAC: [u8; 6] = [0x02, 0x6e, 0x79, 0x6d, 0x00, 0x02];
/// The guest's MAC address.
pub const NET_GUEST_MAC: [u8; 6] = [0x02, 0x6e, 0x79, 0x6d, 0x00, 0x0f];
/// The guest's address by convention (as under QEMU's user networking).
pub const NET_GUEST_IP: [u8; 4] = [10, 0, 2, 15];
/// The link's MTU: the largest frame, Ethernet header included.
pub const NET_MTU: u64 = 1514;

/// The monitor's exit status when the guest broke the ABI.
pub const EXIT_VIOLATION: i32 = 125;
/// The monitor's exit status when the guest crashed (exception, triple fault).
pub const EXIT_CRASH: i32 = 124;

/// Results of calls that can fail.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// Done.
    Ok = 0,
    /// The image has no such device (no block file was given).
    NoDevice = 1,
    /// The request is outside the device (sectors past the end).
    OutOfRange = 2,
    /// The length is not a whole number of sectors.
    Unaligned = 3,
    /// The host failed.
    Io = 4,
}

impl Ret {
    /// The value for `v`, if it is one.
    pub fn from_u64(v: u64) -> Option<Ret> {
        Some(match v {
            0 => Ret::Ok,
            1 => Ret::NoDevice,
            2 => Ret::OutOfRange,
            3 => Ret::Unaligned,
            4 => Ret::Io,
            _ => return None,
        })
    }
}

/// Handed to the guest in `rdi` at boot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// Bytes of guest memory, from physical address 0.
    pub mem_size: u64,
    /// First free byte after the image (page aligned): the heap starts here.
    pub heap_start: u64,
    /// One past the last byte the heap may use (the stack sits above).
    pub heap_end: u64,
    /// Guest-physical address of the command line (UTF-8, not NUL-terminated).
    pub cmdline: u64,
    /// Its length in bytes.
    pub cmdline_len: u64,
    /// The rate of the guest's time-stamp counter in Hz, constant: the
    /// guest keeps monotonic time with `rdtsc` and no exit. 0 when the
    /// monitor could not tell; the guest then asks by `MONOTIME`.
    pub tsc_hz: u64,
    /// `BOOT_*` bits.
    pub flags: u64,
}

/// [`BootInfo::flags`]: the monitor records no trace log, so the guest
/// need not ask by `TRACE` (a monitor that leaves the bit clear is asked).
pub const BOOT_NO_TRACE: u64 = 1;
/// [`BootInfo::flags`]: the monitor has loaded an IDT whose first
/// [`EXCEPTION_VECTORS`] gates ([`idt_gate`]) enter the handlers the
/// image's [`NOTE_EXCEPTIONS`] note names, so the guest keeps it instead of
/// filling its own (a few hundred instructions, each dear under nested
/// KVM, where the monitor's are cheap).
pub const BOOT_IDT: u64 = 1 << 1;

/// The exception vectors an IDT routes to an image's handlers.
pub const EXCEPTION_VECTORS: usize = 32;

/// The 16-byte IDT entry of an interrupt gate (type 0x8E, present, DPL 0,
/// no IST) to `handler` through code selector 0x08, as two little-endian
/// words: what the guest writes, and the monitor when it loads the IDT.
pub const fn idt_gate(handler: u64) -> [u64; 2] {
    [
        (handler & 0xffff) | (0x08 << 16) | (0x8e << 40) | ((handler >> 16) & 0xffff) << 48,
        handler >> 32,
    ]
}

/// `WALLTIME`, `MONOTIME`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Time {
    /// Out: nanoseconds.
    pub nanos: u64,
}

/// `PUTS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Puts {
    /// In: guest-physical address of the text.
    pub data: u64,
    /// In: its length.
    pub len: u64,
}

/// `WAIT`. Relative, so the guest may keep time its own way (kvmclock)
/// without agreeing with the monitor on a clock's origin.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wait {
    /// In: the longest the guest wants to sleep, in nanoseconds.
    pub timeout: u64,
}

/// `NET_INFO`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetInfo {
    /// Out: [`Ret`] ([`Ret::NoDevice`] without a network).
    pub ret: u64,
    /// Out: the guest's MAC address in the low six bytes, first byte lowest.
    pub mac: u64,
    /// Out: the largest frame, Ethernet header included.
    pub mtu: u64,
    /// Out: [`NET_CHECKSUMS`] when the link leads to a real network (a tap
    /// device), whose hosts compute and check IP and TCP checksums; without
    /// it the link is memory to memory and checksums are skipped both ways.
    pub flags: u64,
}

/// [`NetInfo::flags`]: the guest computes and checks checksums.
pub const NET_CHECKSUMS: u64 = 1;

/// `NET_WRITE`, `NET_READ`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetIo {
    /// Out: [`Ret`]: [`Ret::OutOfRange`] for a frame longer than the MTU
    /// (write) or than the buffer (read; the frame is dropped).
    pub ret: u64,
    /// In: guest-physical address of the frame or buffer.
    pub data: u64,
    /// In: the frame's length (write) or the buffer's (read).
    /// Out (read): the frame's length, 0 if none was waiting.
    pub len: u64,
}

/// `TRACE`: the guest's scheduler log (`nym run --target kvm --trace
/// FILE`). At start the guest asks with `count` 0 whether the monitor
/// records one (unless the boot info says it does not: [`BOOT_NO_TRACE`]),
/// naming its buffer (`data`, room for [`TRACE_MAX`] events) and the word
/// that counts the events waiting there (`pending`); while
/// the monitor records, the guest hands over its events in batches of at
/// most [`TRACE_MAX`], the last before it exits. A guest stopped from
/// outside (Ctrl-C) hands nothing over: the monitor reads what waits in
/// the buffer itself.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trace {
    /// In: guest-physical address of `count` [`TraceEvent`]s (asking: of
    /// the buffer).
    pub data: u64,
    /// In: how many (0: asking).
    pub count: u64,
    /// Out: 1 if the monitor records the guest's log, else 0.
    pub on: u64,
    /// In (asking): guest-physical address of the `u64` counting the
    /// events waiting in the buffer.
    pub pending: u64,
}

/// The most events one `TRACE` hands over.
pub const TRACE_MAX: u64 = 1024;

/// The longest name a [`TRACE_NAME`] event gives.
pub const TRACE_NAME_MAX: u64 = 256;

/// One event of the guest's log; times are the guest's monotonic clock
/// (its TSC since boot, or `MONOTIME`), in nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceEvent {
    /// [`TRACE_POLL`], [`TRACE_WAKE`], [`TRACE_CALL`] or [`TRACE_NAME`].
    pub kind: u64,
    /// The track (a job, the background tasks): a name's id.
    pub track: u64,
    /// When it began; for [`TRACE_NAME`], the guest-physical address of
    /// the name (UTF-8).
    pub at: u64,
    /// How long it lasted; for [`TRACE_NAME`], the name's length.
    pub dur: u64,
    /// For [`TRACE_CALL`], the id of the call's name (`block.read`).
    pub name: u64,
}

impl TraceEvent {
    /// An event of `kind` on `track`, from `at` for `dur` (for a call,
    /// named by id `name`).
    pub const fn new(kind: u64, track: u64, at: u64, dur: u64, name: u64) -> TraceEvent {
        TraceEvent {
            kind,
            track,
            at,
            dur,
            name,
        }
    }
}

/// A poll of the track's future.
pub const TRACE_POLL: u64 = 1;
/// The track was woken (an instant: `dur` is 0).
pub const TRACE_WAKE: u64 = 2;
/// A device call or sleep made by the track.
pub const TRACE_CALL: u64 = 3;
/// Gives id `track` the name at `at`, `dur` bytes long: later events use
/// the id.
pub const TRACE_NAME: u64 = 4;

/// `BLOCK_INFO`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Out: [`Ret`].
    pub ret: u64,
    /// Out: bytes per sector.
    pub sector_size: u64,
    /// Out: number of sectors.
    pub sectors: u64,
    /// Out: 1 if writable.
    pub writable: u64,
}

/// `BLOCK_READ`, `BLOCK_WRITE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// Out: [`Ret`].
    pub ret: u64,
    /// In: the first sector.
    pub sector: u64,
    /// In: guest-physical address of the buffer.
    pub data: u64,
    /// In: its length, a multiple of the sector size.
    pub len: u64,
}

/// `RANDOM`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Random {
    /// In: guest-physical address of the buffer.
    pub data: u64,
    /// In: its length (at most [`RANDOM_MAX`]).
    pub len: u64,
    /// Out: [`Ret`]: [`Ret::Io`] when the host's entropy source failed; the
    /// buffer is then left as it was, so a guest must not use it. (Last, not
    /// first as in the other structs: the two inputs kept their places.)
    pub ret: u64,
}

/// The most bytes one `RANDOM` call fills.
pub const RANDOM_MAX: u64 = 4096;

/// `EXIT`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    /// In: the exit status (0–255 are passed on as they are).
    pub status: u64,
}

/// `FAULT`: what the guest's exception handler saw.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fault {
    /// The exception vector (14 = page fault, 13 = general protection, …).
    pub vector: u64,
    /// The error code the CPU pushed, or 0.
    pub error_code: u64,
    /// Where it happened.
    pub rip: u64,
    /// The stack pointer then.
    pub rsp: u64,
    /// The frame pointer then (the backtrace walks from it).
    pub rbp: u64,
    /// The faulting address, for page faults.
    pub cr2: u64,
    /// Guest address of the [`FaultFrame`] the handler saved.
    pub frame: u64,
}

/// What the guest's exception handler saves on its stack, lowest address
/// first: every general register as it was, then what the CPU pushed. With
/// it, a debugger-aware monitor can put the vCPU back exactly where the
/// exception struck (how `int3` breakpoints work under nym's gdb stub).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultFrame {
    /// r15 down to r8.
    pub r15: u64,
    /// r14.
    pub r14: u64,
    /// r13.
    pub r13: u64,
    /// r12.
    pub r12: u64,
    /// r11.
    pub r11: u64,
    /// r10.
    pub r10: u64,
    /// r9.
    pub r9: u64,
    /// r8.
    pub r8: u64,
    /// rbp.
    pub rbp: u64,
    /// rdi.
    pub rdi: u64,
    /// rsi.
    pub rsi: u64,
    /// rdx.
    pub rdx: u64,
    /// rcx.
    pub rcx: u64,
    /// rbx.
    pub rbx: u64,
    /// rax.
    pub rax: u64,
    /// The exception vector.
    pub vector: u64,
    /// The error code (0 for vectors without one).
    pub error_code: u64,
    /// The instruction pointer the CPU pushed (after the `int3` for #BP).
    pub rip: u64,
    /// cs.
    pub cs: u64,
    /// rflags.
    pub rflags: u64,
    /// rsp before the exception.
    pub rsp: u64,
    /// ss.
    pub ss: u64,
}

/// The ELF note's name.
pub const NOTE_NAME: &[u8] = b"nym";
/// The ELF note type of the [`Manifest`].
pub const NOTE_MANIFEST: u32 = 0x6e79_6d01;
/// The ELF note type whose descriptor (a little-endian u64) is the
/// address of a table of the image's exception handlers:
/// [`EXCEPTION_VECTORS`] addresses (u64), vector 0 first, each in an
/// executable segment. See [`BOOT_IDT`].
pub const NOTE_EXCEPTIONS: u32 = 0x6e79_6d02;

/// The devices an image needs, from its ELF note.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// A bit per device, [`DEVICE_BLOCK`], …
    pub devices: u32,
}

/// The manifest layout this crate describes.
pub const MANIFEST_VERSION: u32 = 1;
/// The image uses the block device.
pub const DEVICE_BLOCK: u32 = 1 << 0;
/// The image uses the network.
pub const DEVICE_NET: u32 = 1 << 1;

/// Names the exception `vector`, as Intel's manual does.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        _ => "exception",
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// The crate documentation's table of calls says what the enum says.
    #[test]
    fn the_documented_table_matches_the_hypercall_table() {
        let doc = include_str!("lib.rs");
        for h in Hypercall::ALL {
            let row = format!("//! | {} | `{}` | [`{}`] |", *h as u16, h.name(), h.arg());
            assert!(
                doc.lines().any(|l| l.starts_with(&row)),
                "no documentation row {row:?}"
            );
            assert_eq!(Hypercall::try_from(*h as u16), Ok(*h));
            assert!(h.arg_size() % 8 == 0, "{} is not made of u64s", h.arg());
            assert!((*h as u16) < PORT_COUNT, "{} has no port", h.name());
        }
        let documented = doc
            .lines()
            .filter(|l| l.starts_with("//! | ") && l[6..].starts_with(|c: char| c.is_ascii_digit()))
            .count();
        assert_eq!(
            documented,
            Hypercall::ALL.len(),
            "a documented call the table lacks"
        );
        assert_eq!(Hypercall::try_from(0), Err(0));
        assert_eq!(Hypercall::try_from(PORT_COUNT), Err(PORT_COUNT));
    }
}
