//! The vCPU loop: run until the next exit, hand each exit to the
//! devices, the hypercall decoder or the crash report, until the guest ends.
#![allow(unsafe_code)] // reads the vCPU's run area after KVM_EXIT_INTERNAL_ERROR
use crate::elf::Image;
use crate::error::MonitorError;
use crate::hypercall::{self, Violation};
use crate::memory::GuestMemory;
use kvm_ioctls::{VcpuExit, VcpuFd};
use nym_hvt_abi as abi;
use std::fs::File;
use std::io::Write;
use std::time::Instant;

/// How a guest ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest called `EXIT`.
    Exited(i32),
    /// The guest broke the ABI; it was stopped.
    Violation(Violation),
    /// The guest crashed; the report names the exception and the backtrace.
    Crashed(String),
    /// The guest was stopped from outside ([`Stopper`](crate::Stopper)).
    Stopped,
}

impl Outcome {
    /// The status `nym` exits with.
    pub fn status(&self) -> i32 {
        match self {
            Outcome::Exited(s) => *s,
            Outcome::Violation(_) => abi::EXIT_VIOLATION,
            Outcome::Crashed(_) => abi::EXIT_CRASH,
            Outcome::Stopped => 130,
        }
    }
}

/// Why `KVM_RUN` returned, copied out of the vCPU's run area.
pub(crate) enum Exit {
    Out(u16, Vec<u8>),
    In(u16),
    Hlt,
    Shutdown,
    Mmio(u64),
    /// A debug exception the debugger asked for (breakpoint, step, watch).
    Debug(kvm_bindings::kvm_debug_exit_arch),
    /// A signal cut the run short (the debugger's periodic kick).
    Kicked,
    Other(String),
}

impl Exit {
    /// What [`crate::Stats`] counts it as: a hypercall's name, or what
    /// else stopped the vCPU.
    fn kind(&self) -> &'static str {
        match self {
            Exit::Out(port, _) if hypercall::is_hypercall(*port) => {
                hypercall::at_port(*port).map_or("unknown hypercall", abi::Hypercall::name)
            }
            Exit::Out(..) | Exit::In(_) => "port I/O",
            Exit::Hlt => "hlt",
            Exit::Shutdown => "triple fault",
            Exit::Mmio(_) => "MMIO",
            Exit::Debug(_) => "debug",
            Exit::Kicked => "interrupted",
            Exit::Other(_) => "other",
        }
    }
}

/// Runs the vCPU until its next exit.
pub(crate) fn next_exit(vcpu: &mut VcpuFd) -> Result<Exit, MonitorError> {
    Ok(match vcpu.run() {
        Ok(VcpuExit::IoOut(port, data)) => Exit::Out(port, data.to_vec()),
        Ok(VcpuExit::IoIn(port, _)) => Exit::In(port),
        Ok(VcpuExit::Hlt) => Exit::Hlt,
        Ok(VcpuExit::Shutdown) => Exit::Shutdown,
        Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => Exit::Mmio(addr),
        Ok(VcpuExit::Debug(arch)) => Exit::Debug(arch),
        Ok(VcpuExit::InternalError) => {
            // SAFETY: after KVM_EXIT_INTERNAL_ERROR the run area's union
            // holds the `internal` member.
            let internal = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal };
            let data = &internal.data[..(internal.ndata as usize).min(internal.data.len())];
            Exit::Other(format!(
                "KVM internal error {} {data:x?}",
                internal.suberror
            ))
        }
        Ok(other) => Exit::Other(format!("{other:?}")),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Kicked,
        Err(source) => {
            return Err(MonitorError::Kvm {
                what: "running the vCPU",
                source,
            })
        }
    })
}

pub(crate) struct Guest<'c> {
    pub(crate) mem: GuestMemory,
    pub(crate) image: Image,
    pub(crate) block: Option<(File, u64)>,
    pub(crate) started: Instant,
    pub(crate) console: &'c mut dyn Write,
    pub(crate) random: Option<File>,
    pub(crate) net: Option<crate::net::Net>,
    /// Asked from outside to end the guest.
    pub(crate) stop: crate::Stopper,
    /// Where the guest's log goes, if it is recorded.
    pub(crate) trace: Option<crate::trace::TraceSink>,
    /// Its exits and run time so far.
    pub(crate) stats: crate::Stats,
}

impl Guest<'_> {
    pub(crate) fn run(&mut self, vcpu: &mut VcpuFd) -> Result<Outcome, MonitorError> {
        loop {
            if self.stop.requested() {
                return Ok(Outcome::Stopped);
            }
            let entered = Instant::now();
            let exit = next_exit(vcpu)?;
            self.stats.in_guest += entered.elapsed();
            *self.stats.exits.entry(exit.kind()).or_default() += 1;
            if let Some(outcome) = self.handle(exit, vcpu)? {
                return Ok(outcome);
            }
        }
    }

    /// Handles one exit; `Some` ends the guest.
    pub(crate) fn handle(
        &mut self,
        exit: Exit,
        vcpu: &mut VcpuFd,
    ) -> Result<Option<Outcome>, MonitorError> {
        let violation = |call: String, problem: String| {
            Ok(Some(Outcome::Violation(Violation { call, problem })))
        };
        match exit {
            Exit::Kicked | Exit::Debug(_) => Ok(None),
            Exit::Out(port, data) if hypercall::is_hypercall(port) => {
                match hypercall::decode(&self.mem, port, &data) {
                    Ok(call) => self.serve(call, vcpu),
                    Err(v) => Ok(Some(Outcome::Violation(v))),
                }
            }
            Exit::Out(port, _) | Exit::In(port) => violation(
                format!("on port {port:#x}"),
                "the guest used an I/O port nym's monitor does not serve".into(),
            ),
            Exit::Mmio(addr) => violation(
                "memory access".into(),
                format!(
                    "guest-physical address {addr:#x} is outside guest memory ({:#x} bytes)",
                    self.mem.size()
                ),
            ),
            Exit::Hlt => Ok(Some(Outcome::Crashed(
                self.report_regs("the guest halted without calling EXIT", vcpu),
            ))),
            Exit::Shutdown => Ok(Some(Outcome::Crashed(self.report_regs(
                "the guest triple-faulted (an exception it could not handle)",
                vcpu,
            )))),
            Exit::Other(what) => Ok(Some(Outcome::Crashed(
                self.report_regs(&format!("unexpected VM exit: {what}"), vcpu),
            ))),
        }
    }
}
