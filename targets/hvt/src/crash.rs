//! Crash reports: the exception, the faulting address and a backtrace
//! symbolised from the image's symbol table and DWARF line tables.
use crate::vcpu::Guest;
use kvm_ioctls::VcpuFd;
use nym_hvt_abi as abi;

impl Guest<'_> {
    fn symbol(&self, addr: u64) -> String {
        match self.image.symbolize(addr) {
            Some(s) => {
                let at = s
                    .location
                    .map(|(file, line)| format!(" at {file}:{line}"))
                    .unwrap_or_default();
                format!("{}+{:#x}{at}", s.name, s.offset)
            }
            None => "??".into(),
        }
    }

    /// The frames from `rbp` up: each frame holds the caller's rbp and the
    /// return address (the image is built with frame pointers).
    fn backtrace(&self, rip: u64, mut rbp: u64) -> String {
        let mut out = format!("  #0  {rip:#010x}  {}\n", self.symbol(rip));
        for i in 1..64 {
            let (Ok(next), Ok(ret)) = (
                self.mem.read::<u64>(rbp),
                self.mem.read::<u64>(rbp.wrapping_add(8)),
            ) else {
                break;
            };
            if ret == 0 {
                break;
            }
            // The call instruction is just before the return address.
            out.push_str(&format!(
                "  #{i:<2} {ret:#010x}  {}\n",
                self.symbol(ret - 1)
            ));
            if next <= rbp {
                break;
            }
            rbp = next;
        }
        out
    }

    pub(crate) fn report_fault(&self, f: &abi::Fault, _vcpu: &mut VcpuFd) -> String {
        let mut head = format!(
            "guest crashed: {} (vector {})",
            abi::exception_name(f.vector),
            f.vector
        );
        if f.vector == 14 {
            let access = if f.error_code & 0x10 != 0 {
                "executing"
            } else if f.error_code & 0x2 != 0 {
                "writing"
            } else {
                "reading"
            };
            let why = if f.error_code & 1 != 0 {
                "a protected page"
            } else {
                "an unmapped page"
            };
            head.push_str(&format!(" {access} {why} at address {:#x}", f.cr2));
        } else if f.error_code != 0 {
            head.push_str(&format!(", error code {:#x}", f.error_code));
        }
        format!(
            "{head}\n  in {}\nbacktrace:\n{}",
            self.symbol(f.rip),
            self.backtrace(f.rip, f.rbp)
        )
    }

    pub(crate) fn report_regs(&self, what: &str, vcpu: &mut VcpuFd) -> String {
        match vcpu.get_regs() {
            Ok(r) => format!(
                "{what}\n  at {:#x} in {}\nbacktrace:\n{}",
                r.rip,
                self.symbol(r.rip),
                self.backtrace(r.rip, r.rbp)
            ),
            Err(_) => what.to_owned(),
        }
    }
}
