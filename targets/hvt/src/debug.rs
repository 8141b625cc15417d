//! The monitor as a gdb debuggee: KVM's guest-debug interface behind
//! [`nym_gdb::Debuggee`].
//!
//! Software breakpoints are one-byte traps the stub writes through guest
//! memory from outside (the guest's page permissions never change). The
//! trap is `hlt`, not `int3`: with no in-kernel interrupt controller a
//! `hlt` exits to the monitor, which puts rip back on it, while `int3`
//! makes KVM emulate a soft interrupt, which fails on this project's nested
//! AMD hosts (no next-RIP support). Hardware
//! breakpoints and watchpoints are the four debug registers; single steps
//! are `KVM_GUESTDBG_SINGLESTEP`. Addresses are guest *virtual*: each page
//! is translated by KVM through the guest's own page tables.
//!
//! Ctrl-C: while the vCPU runs, a helper thread sends it a signal every
//! few milliseconds, so `KVM_RUN` returns and the stub can look for gdb's
//! interrupt even in a guest that never exits on its own; a guest asleep in
//! WAIT sleeps in short slices for the same reason.
#![allow(unsafe_code)] // guest debug registers and page tables from outside
use crate::error::MonitorError;
use crate::hypercall::{self, Call};
use crate::vcpu::{next_exit, Exit, Guest, Outcome};
use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
};
use kvm_ioctls::VcpuFd;
use nym_gdb::{HwKind, HwSlot, Registers, Stop, WatchKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for gdb, then serves it until the session ends. `Some` if the
/// guest ended during the session; `None` if it should run on.
pub(crate) fn debug_session(
    listener: &std::net::TcpListener,
    image: &std::path::Path,
    guest: &mut Guest,
    vcpu: &mut VcpuFd,
    seccomp: bool,
) -> Result<Option<Outcome>, MonitorError> {
    let addr = listener.local_addr().map_err(|source| MonitorError::Gdb {
        what: "reading the listener's address",
        source,
    })?;
    eprintln!(
        "nym: the guest waits for gdb on {addr}: gdb {} -ex 'target remote {addr}'",
        image.display()
    );
    let (stream, _) = listener.accept().map_err(|source| MonitorError::Gdb {
        what: "accepting gdb",
        source,
    })?;
    let _ = stream.set_nodelay(true);
    let mut debugged = Debugged::new(guest, vcpu, seccomp);
    if seccomp {
        // The kicker is started: from here on the stub's calls and the
        // vCPU's, nothing else.
        crate::seccomp::install(crate::seccomp::Thread::Debugger)?;
    }
    let ending = nym_gdb::serve(&mut debugged, nym_gdb::TcpConnection::new(stream));
    let outcome = debugged.release()?;
    match ending {
        nym_gdb::Ending::Killed => {
            eprintln!("nym: gdb killed the guest");
            return Ok(Some(outcome.unwrap_or(Outcome::Exited(137))));
        }
        nym_gdb::Ending::Detached => eprintln!("nym: gdb detached; the guest runs on"),
        nym_gdb::Ending::Disconnected(why) => {
            eprintln!("nym: gdb went away ({why}); the guest runs on")
        }
        nym_gdb::Ending::Exited(_) | nym_gdb::Ending::Crashed => {}
    }
    Ok(outcome)
}

/// How often a running vCPU is kicked to look for gdb's Ctrl-C.
const KICK: Duration = Duration::from_millis(10);

/// Kicks the vCPU thread out of `KVM_RUN` while `running` is set.
struct Kicker {
    alive: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Kicker {
    fn start(running: Arc<AtomicBool>, seccomp: bool) -> Kicker {
        crate::kick::install_handler();
        // SAFETY: pthread_self has no preconditions.
        let vcpu_thread = unsafe { libc::pthread_self() };
        let alive = Arc::new(AtomicBool::new(true));
        let still = alive.clone();
        let thread = std::thread::spawn(move || {
            if seccomp && crate::seccomp::install(crate::seccomp::Thread::Kicker).is_err() {
                // Unconfined, it does not run: Ctrl-C then waits for the
                // guest's next exit.
                return;
            }
            while still.load(Ordering::Relaxed) {
                std::thread::sleep(KICK);
                if running.load(Ordering::Relaxed) {
                    // The vCPU thread outlives this one (joined in drop).
                    crate::kick::kick(vcpu_thread);
                }
            }
        });
        Kicker {
            alive,
            thread: Some(thread),
        }
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A guest under the debugger.
pub(crate) struct Debugged<'g, 'c> {
    guest: &'g mut Guest<'c>,
    vcpu: &'g mut VcpuFd,
    slots: [Option<HwSlot>; 4],
    /// Page-table entries made read-only (or not-present) for watchpoints:
    /// (guest-physical address of the entry, its original value).
    protected: Vec<(u64, u64)>,
    /// Whether the watched pages are protected (see `protect`).
    armed: bool,
    running: Arc<AtomicBool>,
    _kicker: Kicker,
    /// How the guest ended, once it has.
    pub(crate) outcome: Option<Outcome>,
}

impl<'g, 'c> Debugged<'g, 'c> {
    pub(crate) fn new(guest: &'g mut Guest<'c>, vcpu: &'g mut VcpuFd, seccomp: bool) -> Self {
        let running = Arc::new(AtomicBool::new(false));
        let kicker = Kicker::start(running.clone(), seccomp);
        Debugged {
            guest,
            vcpu,
            slots: [None; 4],
            protected: Vec::new(),
            armed: false,
            running,
            _kicker: kicker,
            outcome: None,
        }
    }

    fn program(&mut self, step: bool) -> Result<(), MonitorError> {
        let mut d = kvm_guest_debug {
            control: KVM_GUESTDBG_ENABLE,
            ..Default::default()
        };
        if step {
            d.control |= KVM_GUESTDBG_SINGLESTEP;
        }
        // Only execution breakpoints go to the debug registers: this
        // project's nested hosts never deliver data-breakpoint traps, so
        // watchpoints protect pages instead (see `protect`).
        if self.slots.iter().any(|s| {
            matches!(
                s,
                Some(HwSlot {
                    kind: HwKind::Exec,
                    ..
                })
            )
        }) {
            d.control |= KVM_GUESTDBG_USE_HW_BP;
            let mut dr7 = 0u64;
            for (i, slot) in self.slots.iter().enumerate() {
                let Some(slot) = slot.filter(|s| s.kind == HwKind::Exec) else {
                    continue;
                };
                d.arch.debugreg[i] = slot.addr;
                let (rw, len) = match slot.kind {
                    HwKind::Exec => (0b00, 0b00),
                    HwKind::Data { kind, len } => (
                        if kind == WatchKind::Write { 0b01 } else { 0b11 },
                        match len {
                            1 => 0b00,
                            2 => 0b01,
                            8 => 0b10,
                            _ => 0b11,
                        },
                    ),
                };
                dr7 |= 1 << (2 * i) | (rw | len << 2) << (16 + 4 * i);
            }
            d.arch.debugreg[7] = dr7;
        }
        self.vcpu
            .set_guest_debug(&d)
            .map_err(|source| MonitorError::Kvm {
                what: "setting guest debug",
                source,
            })
    }

    /// Stops debugging: no breakpoints, no watched pages, no single steps.
    pub(crate) fn release(mut self) -> Result<Option<Outcome>, MonitorError> {
        self.unprotect()?;
        let d = kvm_guest_debug::default();
        self.vcpu
            .set_guest_debug(&d)
            .map_err(|source| MonitorError::Kvm {
                what: "clearing guest debug",
                source,
            })?;
        Ok(self.outcome)
    }

    /// The guest-physical address of `gva`, if mapped.
    fn translate(&self, gva: u64) -> Option<u64> {
        let t = self.vcpu.translate_gva(gva).ok()?;
        (t.valid != 0).then_some(t.physical_address)
    }

    /// Visits `len` bytes at `gva` page by page as checked guest ranges;
    /// returns how many bytes were mapped before the first hole.
    fn pages(
        &mut self,
        gva: u64,
        len: usize,
        mut f: impl FnMut(&mut Guest, crate::memory::GuestRange, usize),
    ) -> usize {
        let mut done = 0;
        while done < len {
            let addr = gva.wrapping_add(done as u64);
            let in_page = (0x1000 - (addr & 0xfff)) as usize;
            let n = in_page.min(len - done);
            let Some(gpa) = self.translate(addr) else {
                break;
            };
            let Ok(range) = self.guest.mem.range(gpa, n as u64) else {
                break;
            };
            f(self.guest, range, done);
            done += n;
        }
        done
    }

    /// The guest-physical address of the page-table entry that maps `gva`
    /// (a 4 KiB PTE, or a 2 MiB PDE), by walking the guest's own tables.
    fn leaf_entry(&mut self, gva: u64) -> Result<Option<u64>, MonitorError> {
        let sregs = self.vcpu.get_sregs().map_err(|source| MonitorError::Kvm {
            what: "reading cr3",
            source,
        })?;
        let mut table = sregs.cr3 & 0x000f_ffff_ffff_f000;
        for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] {
            let at = table + ((gva >> shift) & 0x1ff) * 8;
            let Ok(entry) = self.guest.mem.read::<u64>(at) else {
                return Ok(None);
            };
            if entry & 1 == 0 {
                return Ok(None);
            }
            if level == 1 || (level == 2 && entry & 0x80 != 0) {
                return Ok(Some(at));
            }
            table = entry & 0x000f_ffff_ffff_f000;
        }
        Ok(None)
    }

    /// Makes every watched page trap: read-only for write watches,
    /// not-present for read and access watches. Only once the guest can
    /// take a page fault (its IDT is loaded): before that a protected page
    /// would triple-fault it, so arming waits for a later exit.
    fn protect(&mut self) -> Result<(), MonitorError> {
        let sregs = self.vcpu.get_sregs().map_err(|source| MonitorError::Kvm {
            what: "reading the IDT",
            source,
        })?;
        // The reset state has IDTR base 0 (limit 0xffff); the guest's own
        // table is a static, never at 0.
        self.armed = sregs.idt.base != 0;
        if !self.armed {
            return Ok(());
        }
        for slot in self.slots.iter().flatten().copied().collect::<Vec<_>>() {
            let HwKind::Data { kind, .. } = slot.kind else {
                continue;
            };
            for page in [slot.addr & !0xfff, slot.last() & !0xfff] {
                let Some(at) = self.leaf_entry(page)? else {
                    continue;
                };
                let original = self
                    .protected
                    .iter()
                    .find(|(a, _)| *a == at)
                    .map(|(_, v)| *v);
                let original = match original {
                    Some(v) => v,
                    None => {
                        let v = self.guest.mem.read::<u64>(at).unwrap_or(0);
                        self.protected.push((at, v));
                        v
                    }
                };
                let mask = if kind == WatchKind::Write {
                    !0b10
                } else {
                    !0b1
                };
                let current = self.guest.mem.read::<u64>(at).unwrap_or(original);
                let _ = self.guest.mem.write(at, &(current & mask));
            }
        }
        self.flush_tlb()
    }

    /// Gives every protected entry back its original value.
    fn unprotect(&mut self) -> Result<(), MonitorError> {
        for (at, original) in std::mem::take(&mut self.protected) {
            let _ = self.guest.mem.write(at, &original);
        }
        self.flush_tlb()
    }

    /// Drops the guest's cached translations: KVM resets the vCPU's MMU
    /// context when CR4 changes, so toggling a bit there and back flushes.
    fn flush_tlb(&mut self) -> Result<(), MonitorError> {
        let kvm = |source| MonitorError::Kvm {
            what: "flushing the guest's TLB",
            source,
        };
        let mut s = self.vcpu.get_sregs().map_err(kvm)?;
        let cr4 = s.cr4;
        s.cr4 = cr4 ^ (1 << 7); // PGE
        self.vcpu.set_sregs(&s).map_err(kvm)?;
        s.cr4 = cr4;
        self.vcpu.set_sregs(&s).map_err(kvm)
    }

    /// Puts the vCPU back as it was when the guest's exception struck, from
    /// the frame its handler saved.
    fn rewind(&mut self, frame: u64) -> Result<(), MonitorError> {
        let f: nym_hvt_abi::FaultFrame =
            self.guest.mem.read(frame).map_err(|e| MonitorError::Gdb {
                what: "reading the exception frame",
                source: std::io::Error::other(e.to_string()),
            })?;
        let r = kvm_bindings::kvm_regs {
            rax: f.rax,
            rbx: f.rbx,
            rcx: f.rcx,
            rdx: f.rdx,
            rsi: f.rsi,
            rdi: f.rdi,
            rsp: f.rsp,
            rbp: f.rbp,
            r8: f.r8,
            r9: f.r9,
            r10: f.r10,
            r11: f.r11,
            r12: f.r12,
            r13: f.r13,
            r14: f.r14,
            r15: f.r15,
            rip: f.rip,
            rflags: f.rflags,
        };
        self.vcpu.set_regs(&r).map_err(|source| MonitorError::Kvm {
            what: "rewinding to the faulting instruction",
            source,
        })
    }

    /// A page fault on a watched page: rewinds to the access, lets it
    /// happen with the page unprotected for one step, protects it again,
    /// and says which watchpoint (if any) the access hit.
    fn watched_access(
        &mut self,
        fault: &nym_hvt_abi::Fault,
    ) -> Result<Result<Option<usize>, Stop>, MonitorError> {
        self.rewind(fault.frame)?;
        self.unprotect()?;
        self.program(true)?;
        loop {
            self.running.store(true, Ordering::Relaxed);
            let exit = next_exit(self.vcpu);
            self.running.store(false, Ordering::Relaxed);
            match exit? {
                Exit::Debug(_) => break,
                Exit::Kicked => {}
                other => {
                    if let Some(outcome) = self.guest.handle(other, self.vcpu)? {
                        return Ok(Err(self.finish(outcome)));
                    }
                }
            }
        }
        self.protect()?;
        let write = fault.error_code & 0b10 != 0;
        let hit = self.slots.iter().position(|s| match s {
            Some(
                slot @ HwSlot {
                    kind: HwKind::Data { kind, .. },
                    ..
                },
            ) => slot.covers(fault.cr2) && (write || *kind != WatchKind::Write),
            _ => false,
        });
        Ok(Ok(hit))
    }

    /// Whether `addr` lies in a page the watchpoints protect.
    fn is_protected(&self, addr: u64) -> bool {
        let page = |a: u64| a & !0xfff;
        self.armed
            && self.slots.iter().flatten().any(|s| match s.kind {
                HwKind::Data { .. } => page(addr) == page(s.addr) || page(addr) == page(s.last()),
                HwKind::Exec => false,
            })
    }

    fn finish(&mut self, outcome: Outcome) -> Stop {
        let stop = match &outcome {
            Outcome::Exited(s) => Stop::Exited(*s as u8),
            Outcome::Violation(_) => Stop::Exited(nym_hvt_abi::EXIT_VIOLATION as u8),
            Outcome::Crashed(_) => Stop::Crashed,
            Outcome::Stopped => Stop::Exited(130),
        };
        // The crash report is shown now, while gdb is attached, and not
        // again when the guest's outcome is reported at the end.
        let outcome = match outcome {
            Outcome::Crashed(report) => {
                eprint!("nym: {report}");
                Outcome::Crashed(String::new())
            }
            other => other,
        };
        self.outcome = Some(outcome);
        stop
    }
}

impl nym_gdb::Debuggee for Debugged<'_, '_> {
    type Error = MonitorError;

    fn read_registers(&mut self) -> Result<Registers, MonitorError> {
        let kvm = |what| move |source| MonitorError::Kvm { what, source };
        let r = self.vcpu.get_regs().map_err(kvm("reading registers"))?;
        let s = self
            .vcpu
            .get_sregs()
            .map_err(kvm("reading segment registers"))?;
        let f = self.vcpu.get_fpu().map_err(kvm("reading FPU registers"))?;
        let mut regs = Registers {
            regs: [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            eflags: r.rflags as u32,
            rip: r.rip,
            mxcsr: f.mxcsr,
            ..Default::default()
        };
        regs.segments.cs = s.cs.selector.into();
        regs.segments.ss = s.ss.selector.into();
        regs.segments.ds = s.ds.selector.into();
        regs.segments.es = s.es.selector.into();
        regs.segments.fs = s.fs.selector.into();
        regs.segments.gs = s.gs.selector.into();
        for (dst, src) in regs.st.iter_mut().zip(f.fpr.iter()) {
            dst.copy_from_slice(&src[..10]);
        }
        regs.fpu.fctrl = f.fcw.into();
        regs.fpu.fstat = f.fsw.into();
        regs.fpu.ftag = f.ftwx.into();
        regs.fpu.fop = f.last_opcode.into();
        for (dst, src) in regs.xmm.iter_mut().zip(f.xmm.iter()) {
            *dst = u128::from_le_bytes(*src);
        }
        Ok(regs)
    }

    fn write_registers(&mut self, regs: &Registers) -> Result<(), MonitorError> {
        let kvm = |what| move |source| MonitorError::Kvm { what, source };
        let mut r = self.vcpu.get_regs().map_err(kvm("reading registers"))?;
        let g = &regs.regs;
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) =
            (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        r.rip = regs.rip;
        r.rflags = u64::from(regs.eflags) | 0x2;
        self.vcpu.set_regs(&r).map_err(kvm("writing registers"))
    }

    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, MonitorError> {
        let len = buf.len();
        Ok(self.pages(addr, len, |g, range, at| {
            g.mem.read_into(range, &mut buf[at..at + range.len()]);
        }))
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<bool, MonitorError> {
        let n = self.pages(addr, data.len(), |g, range, at| {
            g.mem.write_from(range, &data[at..at + range.len()]);
        });
        Ok(n == data.len())
    }

    fn breakpoint_byte(&self) -> u8 {
        0xf4 // hlt
    }

    fn set_hw_slots(&mut self, slots: &[Option<HwSlot>; 4]) -> Result<(), MonitorError> {
        self.unprotect()?;
        self.slots = *slots;
        self.protect()?;
        self.program(false)
    }

    fn resume(
        &mut self,
        step: bool,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Stop, MonitorError> {
        if self.outcome.is_some() {
            // Already over: say so again rather than run a dead vCPU.
            return Ok(match self.outcome {
                Some(Outcome::Exited(s)) => Stop::Exited(s as u8),
                Some(Outcome::Crashed(_)) => Stop::Crashed,
                Some(Outcome::Stopped) => Stop::Exited(130),
                _ => Stop::Exited(nym_hvt_abi::EXIT_VIOLATION as u8),
            });
        }
        self.program(step)?;
        loop {
            if self.guest.stop.requested() {
                return Ok(self.finish(Outcome::Stopped));
            }
            if interrupted() {
                return Ok(Stop::Interrupted);
            }
            self.running.store(true, Ordering::Relaxed);
            let exit = next_exit(self.vcpu);
            self.running.store(false, Ordering::Relaxed);
            let exit = exit?;
            let watching = self.slots.iter().flatten().any(|s| s.kind != HwKind::Exec);
            if watching && !self.armed {
                self.protect()?;
            }
            match exit {
                // A planted hlt: KVM has already stepped past it.
                Exit::Hlt => {
                    let kvm = |source| MonitorError::Kvm {
                        what: "rewinding to the breakpoint",
                        source,
                    };
                    let mut r = self.vcpu.get_regs().map_err(kvm)?;
                    r.rip = r.rip.wrapping_sub(1);
                    self.vcpu.set_regs(&r).map_err(kvm)?;
                    return Ok(Stop::SwBreak);
                }
                Exit::Debug(arch) => {
                    return Ok(match arch.exception {
                        3 => Stop::SwBreak,
                        _ if arch.dr6 & 0xf != 0 => Stop::Hw(arch.dr6.trailing_zeros() as usize),
                        _ => Stop::Step,
                    });
                }
                Exit::Out(port, data) if hypercall::is_hypercall(port) => {
                    match hypercall::decode(&self.guest.mem, port, &data) {
                        // Sleep in slices, so Ctrl-C reaches a sleeping guest.
                        Ok(Call::Wait { timeout }) => {
                            let until = Instant::now() + Duration::from_nanos(timeout);
                            while Instant::now() < until {
                                if interrupted() {
                                    return Ok(Stop::Interrupted);
                                }
                                self.guest.wait(
                                    KICK.min(until.saturating_duration_since(Instant::now())),
                                );
                                if self.guest.frame_waiting() {
                                    break;
                                }
                            }
                        }
                        Ok(Call::Fault(f)) if f.vector == 14 && self.is_protected(f.cr2) => {
                            match self.watched_access(&f)? {
                                Err(stop) => return Ok(stop),
                                Ok(Some(slot)) => return Ok(Stop::Hw(slot)),
                                Ok(None) if step => return Ok(Stop::Step),
                                Ok(None) => self.program(false)?,
                            }
                        }
                        Ok(call) => {
                            if let Some(outcome) = self.guest.serve(call, self.vcpu)? {
                                return Ok(self.finish(outcome));
                            }
                        }
                        Err(v) => return Ok(self.finish(Outcome::Violation(v))),
                    }
                }
                other => {
                    if let Some(outcome) = self.guest.handle(other, self.vcpu)? {
                        return Ok(self.finish(outcome));
                    }
                }
            }
        }
    }
}
