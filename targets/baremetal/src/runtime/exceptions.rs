//! CPU exceptions: an IDT whose 32 handlers report the fault to the monitor
//! (vector, error code, rip, cr2 and the frame pointer to walk), which
//! prints it with a symbolised backtrace and ends the guest.
#![allow(unsafe_code)] // the IDT and the handlers' register frames
use super::sys;
use nym_hvt_abi as abi;

/// What the stubs leave on the stack: the ABI's frame, so the monitor can
/// read it too.
type Frame = abi::FaultFrame;

// Vectors 8, 10–14, 17, 21, 29 and 30 push an error code; the others get a 0.
core::arch::global_asm!(
    ".altmacro",
    ".macro nym_stub v, code",
    ".global nym_exc_\\v",
    "nym_exc_\\v:",
    ".if \\code == 0",
    "    push 0",
    ".endif",
    "    push \\v",
    "    jmp nym_exc_common",
    ".endm",
    "nym_stub 0, 0", "nym_stub 1, 0", "nym_stub 2, 0", "nym_stub 3, 0",
    "nym_stub 4, 0", "nym_stub 5, 0", "nym_stub 6, 0", "nym_stub 7, 0",
    "nym_stub 8, 1", "nym_stub 9, 0", "nym_stub 10, 1", "nym_stub 11, 1",
    "nym_stub 12, 1", "nym_stub 13, 1", "nym_stub 14, 1", "nym_stub 15, 0",
    "nym_stub 16, 0", "nym_stub 17, 1", "nym_stub 18, 0", "nym_stub 19, 0",
    "nym_stub 20, 0", "nym_stub 21, 1", "nym_stub 22, 0", "nym_stub 23, 0",
    "nym_stub 24, 0", "nym_stub 25, 0", "nym_stub 26, 0", "nym_stub 27, 0",
    "nym_stub 28, 0", "nym_stub 29, 1", "nym_stub 30, 1", "nym_stub 31, 0",
    "nym_exc_common:",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {handler}",
    "    ud2",
    // Timer and spurious interrupts (PVH): acknowledge and return.
    ".global nym_irq_timer",
    "nym_irq_timer:",
    "    push rax",
    "    push rcx",
    "    push rdx",
    "    mov ecx, 0x80b",
    "    xor eax, eax",
    "    xor edx, edx",
    "    wrmsr",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    "    iretq",
    ".global nym_irq_spurious",
    "nym_irq_spurious:",
    "    iretq",
    ".balign 8",
    ".global nym_exc_table",
    "nym_exc_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .quad nym_exc_\\v",
    ".endr",
    // The note that lets nym's monitor load the IDT (BOOT_IDT): name
    // "nym", an 8-byte descriptor, the table's address.
    ".pushsection .note.nym, \"a\", @note",
    ".balign 4",
    ".long 4, 8, {note}",
    ".asciz \"nym\"",
    ".quad nym_exc_table",
    ".popsection",
    handler = sym exception,
    note = const abi::NOTE_EXCEPTIONS,
);

extern "C" {
    static nym_exc_table: [u64; abi::EXCEPTION_VECTORS];
    fn nym_irq_timer();
    fn nym_irq_spurious();
}

use abi::idt_gate as gate;

/// Routes `vectors` (the timer's, devices') to a handler that acknowledges
/// the local APIC and returns, and `spurious` to one that just returns
/// (PVH only): an interrupt's only job is to end a `hlt`.
pub fn set_interrupt_handlers(vectors: core::ops::RangeInclusive<u8>, spurious: u8) {
    // SAFETY: boot is single-threaded and interrupts are off; the CPU reads
    // the table only when an interrupt is delivered.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for v in vectors {
            idt[usize::from(v)] = gate(nym_irq_timer as *const () as u64);
        }
        idt[usize::from(spurious)] = gate(nym_irq_spurious as *const () as u64);
    }
}

#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

static mut IDT: [[u64; 2]; 256] = [[0; 2]; 256];

/// Installs the exception handlers.
pub fn install() {
    // SAFETY: boot is single-threaded; the table is only written here, then
    // loaded with `lidt` and read by the CPU.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        // The stubs sit together, in order, so their addresses mostly share
        // all but the low 16 bits: the gates then differ only there, and
        // filling the table is a few instructions a vector (each one dear
        // under emulation).
        let (first, last) = (nym_exc_table[0], nym_exc_table[31]);
        if first >> 16 == last >> 16 {
            let [shared, high] = gate(first & !0xffff);
            for (entry, &handler) in idt.iter_mut().zip(nym_exc_table.iter()) {
                entry[0] = shared | (handler & 0xffff);
                entry[1] = high;
            }
        } else {
            for (entry, &handler) in idt.iter_mut().zip(nym_exc_table.iter()) {
                *entry = gate(handler);
            }
        }
        let idtr = Idtr {
            limit: (core::mem::size_of::<[[u64; 2]; 256]>() - 1) as u16,
            base: idt.as_ptr() as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags));
    }
}

extern "C" fn exception(frame: &Frame) -> ! {
    let cr2: u64;
    // SAFETY: reading cr2 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags))
    };
    let mut f = abi::Fault {
        vector: frame.vector,
        error_code: frame.error_code,
        rip: frame.rip,
        rsp: frame.rsp,
        rbp: frame.rbp,
        cr2,
        frame: frame as *const Frame as u64,
    };
    sys::report_fault(&mut f);
    sys::exit(abi::EXIT_CRASH)
}
