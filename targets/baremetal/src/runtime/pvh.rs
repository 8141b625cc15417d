//! The PVH entry (ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY), shared by
//! QEMU (microvm and q35) and Xen: it decides the board once (see
//! `pvh_entry`), and QEMU's primitives live in `qemu`, Xen's in `xen`.
//!
//! The entry runs in 32-bit protected mode with paging off and `ebx`
//! pointing at `hvm_start_info`. It builds identity page tables for the
//! first 4 GiB (4 KiB pages for the first 2 MiB, 2 MiB pages above),
//! enables long mode, loads a GDT with the same selectors nym's monitor
//! uses, and calls `pvh_entry`, which copies what it needs from the start
//! info and then unmaps page 0, so a null dereference faults.
//!
//! The firmware (SeaBIOS under `-M microvm`) prints on the same serial
//! port, so the guest starts its output with [`BOOT_MARKER`]; `nym run`
//! shows only what follows it.
#![allow(unsafe_code)] // the PVH entry, page tables, port I/O and MSRs
use super::sys::Board;
use super::{entry, exceptions, heap};

core::arch::global_asm!(
    // The note QEMU and Xen look for: the 32-bit entry's physical address.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 4",
    ".long 18",
    ".asciz \"Xen\"",
    ".balign 4",
    ".long nym_pvh_start32",
    ".popsection",
    ".section .text.boot, \"ax\"",
    ".code32",
    ".global nym_pvh_start32",
    "nym_pvh_start32:",
    "    cli",
    "    mov esi, ebx",
    // The PVH ABI leaves esp undefined (Xen starts it at 0): use ours.
    "    mov esp, offset nym_pvh_stack_top",
    // PT: 4 KiB pages for the first 2 MiB. Page 0 is mapped while the
    // firmware's start info (which may live there) is read, then unmapped.
    "    mov edi, offset nym_pvh_pt",
    "    mov eax, 0x3",
    "    mov ecx, 0",
    "2:  mov [edi + ecx*8], eax",
    "    add eax, 0x1000",
    "    inc ecx",
    "    cmp ecx, 512",
    "    jb 2b",
    // PDs: 2048 entries of 2 MiB, the first pointing at the PT.
    "    mov edi, offset nym_pvh_pd",
    "    mov eax, 0x200083",
    "    mov ecx, 1",
    "3:  mov [edi + ecx*8], eax",
    "    mov dword ptr [edi + ecx*8 + 4], 0",
    "    add eax, 0x200000",
    "    inc ecx",
    "    cmp ecx, 2048",
    "    jb 3b",
    "    mov eax, offset nym_pvh_pt",
    "    or eax, 3",
    "    mov [edi], eax",
    // PDPT: four entries, one per PD page.
    "    mov edi, offset nym_pvh_pdpt",
    "    mov eax, offset nym_pvh_pd",
    "    or eax, 3",
    "    mov ecx, 0",
    "4:  mov [edi + ecx*8], eax",
    "    add eax, 0x1000",
    "    inc ecx",
    "    cmp ecx, 4",
    "    jb 4b",
    "    mov edi, offset nym_pvh_pml4",
    "    mov eax, offset nym_pvh_pdpt",
    "    or eax, 3",
    "    mov [edi], eax",
    // PAE, then the tables, then long mode (and NX), then paging.
    "    mov eax, cr4",
    "    or eax, 0x620",
    "    mov cr4, eax",
    "    mov eax, offset nym_pvh_pml4",
    "    mov cr3, eax",
    "    mov ecx, 0xc0000080",
    "    rdmsr",
    "    or eax, 0x900",
    "    wrmsr",
    "    mov eax, cr0",
    "    or eax, 0x80010023",
    "    mov cr0, eax",
    "    lgdt [nym_pvh_gdtr]",
    "    push 0x08",
    // `push imm32` spelled out: the assembler would pick a 16-bit push.
    "    .byte 0x68",
    "    .long nym_pvh_start64",
    "    retf",
    ".code64",
    "nym_pvh_start64:",
    "    mov ax, 0x10",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    "    mov fs, ax",
    "    mov gs, ax",
    "    mov rsp, offset nym_pvh_stack_top",
    "    mov edi, esi",
    "    xor ebp, ebp",
    "    call {entry}",
    "    ud2",
    ".section .rodata",
    ".balign 8",
    "nym_pvh_gdt:",
    "    .quad 0",
    "    .quad 0x00af9b000000ffff",
    "    .quad 0x00cf93000000ffff",
    "nym_pvh_gdtr:",
    "    .word 23",
    "    .quad nym_pvh_gdt",
    ".section .bss",
    ".balign 4096",
    "nym_pvh_pml4: .skip 4096",
    "nym_pvh_pdpt: .skip 4096",
    "nym_pvh_pd: .skip 4096 * 4",
    ".global nym_pvh_pt",
    "nym_pvh_pt: .skip 4096",
    "nym_pvh_stack: .skip 1024 * 1024",
    "nym_pvh_stack_top:",
    ".text",
    entry = sym pvh_entry,
);

static mut CMDLINE: [u8; 4096] = [0; 4096];

/// Copies the NUL-terminated command line at `paddr` (at most 4095 bytes)
/// into a static buffer.
fn copy_cmdline(paddr: u64) -> &'static str {
    if paddr == 0 {
        return "";
    }
    // SAFETY: the loader wrote a NUL-terminated string at `paddr`; reading
    // stops at the NUL or after 4095 bytes. CMDLINE is written only here,
    // once, during single-threaded boot.
    unsafe {
        let buf = &mut *core::ptr::addr_of_mut!(CMDLINE);
        let mut n = 0;
        while n < buf.len() - 1 {
            let b = *((paddr + n as u64) as *const u8);
            if b == 0 {
                break;
            }
            buf[n] = b;
            n += 1;
        }
        core::str::from_utf8(&buf[..n]).unwrap_or("")
    }
}

/// The PVH start info (only the fields read here).
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    ty: u32,
    reserved: u32,
}

const START_MAGIC: u32 = 0x336e_c578;

/// The line the guest prints first on the serial port.
pub const BOOT_MARKER: &[u8] = b"\x1b[0m\nnym: guest started\n";

extern "C" {
    static __image_end: u8;
    static mut nym_pvh_pt: [u64; 512];
}

extern "C" fn pvh_entry(info: &StartInfo) -> ! {
    // The board, decided once: Xen if its CPUID leaves say so, else QEMU's
    // q35 if there is a PCI host bridge, else its microvm.
    let xen = super::xen::detect() && super::xen::init();
    super::sys::set_board(if xen {
        Board::Xen
    } else if super::virtio::pci::present() {
        Board::Q35
    } else {
        Board::Microvm
    });
    exceptions::install();
    if info.magic != START_MAGIC {
        super::sys::puts(b"nym: bad PVH start info magic\n");
        super::sys::exit(super::sys::EXIT_CRASH);
    }
    // The loader may put the command line right after the image, where the
    // heap will go: copy it first.
    let cmdline = copy_cmdline(info.cmdline_paddr);
    // The heap: from the end of the image to the end of the RAM region
    // holding it (capped at 4 GiB, what the page tables map).
    let start = core::ptr::addr_of!(__image_end) as u64;
    let mut end = 0;
    if info.version >= 1 && info.memmap_paddr != 0 {
        // SAFETY: the loader wrote `memmap_entries` entries at `memmap_paddr`.
        let map = unsafe {
            core::slice::from_raw_parts(
                info.memmap_paddr as *const MemmapEntry,
                info.memmap_entries as usize,
            )
        };
        for e in map.iter().filter(|e| e.ty == 1) {
            if (e.addr..e.addr + e.size).contains(&start) {
                end = (e.addr + e.size).min(4 << 30);
            }
        }
    }
    if end <= start && xen {
        // Xen's start info for dom0 may carry no memory map: ask Xen.
        end = super::xen::ram_end().unwrap_or(0).min(4 << 30);
    }
    if end <= start {
        super::sys::puts(b"nym: no RAM for the heap in the PVH memory map\n");
        super::sys::exit(super::sys::EXIT_CRASH);
    }
    heap::init(start, end);
    if !xen {
        if !super::kvmclock::init() {
            super::sys::puts(b"nym: no kvmclock (run QEMU with -accel kvm)\n");
            super::sys::exit(super::sys::EXIT_CRASH);
        }
        if let Err(lacking) = super::qemu::timer_init() {
            super::sys::puts(b"nym: ");
            super::sys::puts(lacking.as_bytes());
            super::sys::puts(b"\n");
            super::sys::exit(super::sys::EXIT_CRASH);
        }
        exceptions::set_interrupt_handlers(
            super::qemu::TIMER_VECTOR..=super::virtio::pci::LAST_VECTOR,
            super::qemu::SPURIOUS_VECTOR,
        );
    }
    // Everything needed from the start info is copied: unmap page 0.
    // SAFETY: the entry's page table maps the first 2 MiB; clearing entry 0
    // and flushing its TLB entry only removes the null page.
    unsafe {
        core::ptr::addr_of_mut!(nym_pvh_pt[0]).write_volatile(0);
        core::arch::asm!("invlpg [{}]", in(reg) 0u64, options(nostack, preserves_flags));
    }
    super::sys::puts(BOOT_MARKER);
    entry::start(cmdline)
}
