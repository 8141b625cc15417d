//! Preparing a guest to start in 64-bit long mode: the low memory layout,
//! the GDT, identity page tables with W^X taken from the image's segment
//! flags (page 0 left unmapped, so a null dereference faults), the boot
//! info, and the vCPU's registers.
//!
//! ```text
//! 0x0000_0000  page 0: not mapped
//! 0x0000_1000  GDT
//! 0x0000_2000  BootInfo
//! 0x0000_3000  command line (up to 4 KiB)
//! 0x0000_4000  IDT, when the image names its exception handlers
//! 0x0001_0000  page tables
//! 0x0010_0000  the image's segments, then the heap
//! mem - STACK  the stack, growing down from the top of memory
//! ```
use crate::elf::{Flags, Image};
use crate::memory::{BadAddress, GuestMemory, MemoryError, HUGE};
use nym_hvt_abi::{self as abi, BootInfo};

/// Where the GDT lives.
pub const GDT: u64 = 0x1000;
/// Where the boot info lives.
pub const BOOT_INFO: u64 = 0x2000;
/// Where the command line lives.
pub const CMDLINE: u64 = 0x3000;
/// The longest command line.
pub const CMDLINE_MAX: usize = 4096;
/// Where the IDT lives, when the monitor loads one (`BOOT_IDT`).
pub const IDT: u64 = 0x4000;
/// Where the page tables start.
pub const PAGE_TABLES: u64 = 0x1_0000;
/// The end of the page-table area; images load at or above it.
pub const IMAGE_MIN: u64 = 0x10_0000;
/// Bytes reserved for the stack at the top of memory.
pub const STACK_SIZE: u64 = 1 << 20;

const PAGE: u64 = 0x1000;
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE_PAGE: u64 = 1 << 7;
const NO_EXEC: u64 = 1 << 63;

/// Selectors in the GDT.
pub const CODE_SELECTOR: u16 = 0x08;
/// The data segment's selector.
pub const DATA_SELECTOR: u16 = 0x10;

/// Why a guest could not be laid out.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The command line is too long.
    #[error("the guest command line is {0} bytes; at most {CMDLINE_MAX}")]
    CmdlineTooLong(usize),
    /// Two segments with different permissions share a page.
    #[error("segments at {0:#x} and {1:#x} share a page with different permissions; link the image with page-aligned segments")]
    SharedPage(u64, u64),
    /// The image and the page tables do not fit.
    #[error("the image needs more page tables than fit below 1 MiB; it is too large")]
    TooManyTables,
    /// The image leaves no room for heap and stack.
    #[error("{0} bytes of guest memory leave no room for the heap and stack; give more with -m")]
    TooSmall(u64),
    /// A write into guest memory failed (a nym bug: the layout is fixed).
    #[error("laying out guest memory: {0}")]
    Memory(#[from] BadAddress),
    /// Guest memory could not be made.
    #[error(transparent)]
    Map(#[from] MemoryError),
}

/// Maps `mem_size` bytes of guest memory and lays the guest out in it:
/// the image's segments, the GDT, page tables, boot info (with the
/// `BOOT_*` `flags`; the TSC's rate is unknown until the vCPU exists, so 0
/// here) and command line. Returns the memory and the boot info.
///
/// The memory is made here, so it is all zero: a segment's `.bss` and the
/// page tables' unused entries are left as they are, not written (the
/// pages of a 1 MiB `.bss` that the guest never touches then cost
/// nothing).
pub fn load(
    mem_size: u64,
    image: &Image,
    cmdline: &str,
    flags: u64,
) -> Result<(GuestMemory, BootInfo), BootError> {
    if cmdline.len() > CMDLINE_MAX {
        return Err(BootError::CmdlineTooLong(cmdline.len()));
    }
    let mut mem = GuestMemory::new(mem_size)?;
    for seg in image.segments() {
        let dst = mem.range(seg.paddr, seg.mem_size)?;
        let file = image.segment_data(seg);
        mem.write_from(dst.split_at(file.len()).0, file);
    }
    write_gdt(&mut mem)?;
    page_tables(&mut mem, image)?;
    let flags = match write_idt(&mut mem, image)? {
        true => flags | abi::BOOT_IDT,
        false => flags,
    };

    let r = mem.range(CMDLINE, cmdline.len() as u64)?;
    mem.write_from(r, cmdline.as_bytes());

    let heap_start = image.end().div_ceil(PAGE) * PAGE;
    let heap_end = mem
        .size()
        .checked_sub(STACK_SIZE)
        .filter(|e| *e > heap_start)
        .ok_or(BootError::TooSmall(mem.size()))?;
    let info = BootInfo {
        mem_size: mem.size(),
        heap_start,
        heap_end,
        cmdline: CMDLINE,
        cmdline_len: cmdline.len() as u64,
        tsc_hz: 0,
        flags,
    };
    mem.write(BOOT_INFO, &info)?;
    // Huge pages for the heap's bulk only: not for the 4 KiB-mapped pages
    // at the bottom (image, tables, the allocator's first chunks) nor the
    // stack's, which every guest touches sparsely. Zeroing three 2 MiB
    // pages for hello's few dozen 4 KiB ones took 0.2 ms of its boot.
    let fine_end = fine_end(image);
    if let Some(len) = heap_end.checked_sub(fine_end) {
        mem.huge_pages(mem.range(fine_end, len)?);
    }
    Ok((mem, info))
}

fn write_gdt(mem: &mut GuestMemory) -> Result<(), BadAddress> {
    // null; 64-bit code (L=1, P, S, exec/read); data (P, S, read/write).
    let entries: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
    for (i, e) in entries.iter().enumerate() {
        mem.write(GDT + 8 * i as u64, e)?;
    }
    Ok(())
}

/// Loads the IDT for the exception handlers the image's
/// [`abi::NOTE_EXCEPTIONS`] note names: true if it did (`BOOT_IDT`); false
/// for an image without the note, or one whose table or handlers are not
/// where a sound image has them (its guest then fills its own IDT, as it
/// would under a monitor that does not do this).
fn write_idt(mem: &mut GuestMemory, image: &Image) -> Result<bool, BadAddress> {
    // The segments' notes only: an image without the note must not cost
    // reading the whole file to look in its sections.
    let Some(table) = image
        .segment_note(abi::NOTE_NAME, abi::NOTE_EXCEPTIONS)
        .and_then(|d| Some(u64::from_le_bytes(d.try_into().ok()?)))
    else {
        return Ok(false);
    };
    let mut handlers = [0u64; abi::EXCEPTION_VECTORS];
    for (i, h) in handlers.iter_mut().enumerate() {
        match table
            .checked_add(8 * i as u64)
            .map(|at| mem.read::<u64>(at))
        {
            Some(Ok(addr)) if image.exec_segment(addr).is_some() => *h = addr,
            _ => return Ok(false),
        }
    }
    for (i, &h) in handlers.iter().enumerate() {
        let [low, high] = abi::idt_gate(h);
        mem.write(IDT + 16 * i as u64, &low)?;
        mem.write(IDT + 16 * i as u64 + 8, &high)?;
    }
    Ok(true)
}

/// The end of the 4 KiB-mapped memory: the first 2 MiB boundary past the
/// image (and at least 2 MiB).
fn fine_end(image: &Image) -> u64 {
    image.end().max(HUGE).div_ceil(HUGE) * HUGE
}

/// Identity-maps all of memory: 4 KiB pages up to the first 2 MiB boundary
/// past the image (each page with its segment's permissions; everything
/// else read-write, never executable; page 0 absent), 2 MiB pages above.
fn page_tables(mem: &mut GuestMemory, image: &Image) -> Result<(), BootError> {
    let size = mem.size();
    let fine_end = fine_end(image);
    let pts = fine_end / HUGE;
    let pds = size.div_ceil(1 << 30);
    // PML4, PDPT, the PDs, then the PTs.
    let pml4 = PAGE_TABLES;
    let pdpt = pml4 + PAGE;
    let pd = pdpt + PAGE;
    let pt = pd + pds * PAGE;
    if pt + pts * PAGE > IMAGE_MIN {
        return Err(BootError::TooManyTables);
    }
    mem.write(pml4, &(pdpt | PRESENT | WRITABLE))?;
    for i in 0..pds {
        mem.write(pdpt + 8 * i, &((pd + i * PAGE) | PRESENT | WRITABLE))?;
    }
    let mut addr = 0;
    while addr < size {
        let pde = pd + 8 * (addr / HUGE);
        if addr < fine_end {
            let table = pt + (addr / HUGE) * PAGE;
            mem.write(pde, &(table | PRESENT | WRITABLE))?;
            for page in 0..512 {
                let a = addr + page * PAGE;
                mem.write(table + 8 * page, &page_entry(image, a)?)?;
            }
        } else {
            mem.write(pde, &(addr | PRESENT | WRITABLE | HUGE_PAGE | NO_EXEC))?;
        }
        addr += HUGE;
    }
    Ok(())
}

fn page_entry(image: &Image, addr: u64) -> Result<u64, BootError> {
    if addr == 0 {
        return Ok(0);
    }
    let mut flags: Option<(Flags, u64)> = None;
    for seg in image.segments() {
        let start = seg.paddr / PAGE * PAGE;
        let end = (seg.paddr + seg.mem_size).div_ceil(PAGE) * PAGE;
        if (start..end).contains(&addr) {
            match flags {
                Some((f, other)) if f != seg.flags => {
                    return Err(BootError::SharedPage(other, seg.paddr))
                }
                _ => flags = Some((seg.flags, seg.paddr)),
            }
        }
    }
    Ok(match flags {
        Some((f, _)) => {
            addr | PRESENT | if f.write { WRITABLE } else { 0 } | if f.exec { 0 } else { NO_EXEC }
        }
        None => addr | PRESENT | WRITABLE | NO_EXEC,
    })
}

/// The vCPU's special registers for long mode with the tables above (and
/// the IDT, if `info` says it was loaded).
pub fn sregs(mut s: kvm_bindings::kvm_sregs, info: &BootInfo) -> kvm_bindings::kvm_sregs {
    const CR0_PE: u64 = 1;
    const CR0_MP: u64 = 1 << 1;
    const CR0_ET: u64 = 1 << 4;
    const CR0_NE: u64 = 1 << 5;
    const CR0_WP: u64 = 1 << 16;
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const CR4_OSFXSR: u64 = 1 << 9;
    const CR4_OSXMMEXCPT: u64 = 1 << 10;
    const EFER_LME: u64 = 1 << 8;
    const EFER_LMA: u64 = 1 << 10;
    const EFER_NXE: u64 = 1 << 11;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = PAGE_TABLES;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s.efer = EFER_LME | EFER_LMA | EFER_NXE;
    let code = kvm_bindings::kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: CODE_SELECTOR,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = kvm_bindings::kvm_segment {
        selector: DATA_SELECTOR,
        type_: 0x3,
        db: 1,
        l: 0,
        ..code
    };
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.gdt.base = GDT;
    s.gdt.limit = 3 * 8 - 1;
    if info.flags & abi::BOOT_IDT != 0 {
        s.idt.base = IDT;
        s.idt.limit = (16 * abi::EXCEPTION_VECTORS - 1) as u16;
    }
    s
}
