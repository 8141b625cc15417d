//! # nym-gdb: the gdb remote stub
//!
//! Serves the GDB Remote Serial Protocol (through the `gdbstub` crate, with
//! its x86-64 + SSE target description) for anything that implements
//! [`Debuggee`]: registers, memory by guest *virtual* address, hardware
//! breakpoint and watchpoint slots, and resuming with an interrupt check.
//! Software breakpoints are kept here: the stub saves the byte under each
//! and writes the debuggee's one-byte trap ([`Debuggee::breakpoint_byte`],
//! `int3` unless it says otherwise) through [`Debuggee::write_memory`],
//! which writes guest memory from outside, so the guest's own page
//! permissions (W^X) never change.
//!
//! The monitor (`targets/hvt`) implements [`Debuggee`] with KVM's
//! guest-debug interface; the tests here use a fake. This crate knows
//! nothing of KVM.
mod conn;

pub use conn::TcpConnection;

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use std::collections::BTreeMap;
use std::marker::PhantomData;

pub use gdbstub::target::ext::breakpoints::WatchKind;
pub use gdbstub_arch::x86::reg::X86_64CoreRegs as Registers;

/// What a hardware debug-register slot watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwKind {
    /// Executing the instruction at the address (`hbreak`).
    Exec,
    /// Accessing `len` bytes at the address (`watch`, `rwatch`, `awatch`).
    Data {
        /// Write, read or either (x86 has no read-only kind: reads arm
        /// read/write and the stub reports it as an access).
        kind: WatchKind,
        /// 1, 2, 4 or 8, the address aligned to it.
        len: u8,
    },
}

/// One of the four x86 hardware breakpoint slots (DR0–DR3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwSlot {
    /// The address watched.
    pub addr: u64,
    /// What is watched.
    pub kind: HwKind,
}

impl HwSlot {
    /// The last byte the slot covers (its own address for a breakpoint),
    /// computed without overflow: a slot at the top of the address space
    /// ends at `u64::MAX`.
    pub fn last(&self) -> u64 {
        match self.kind {
            HwKind::Exec => self.addr,
            HwKind::Data { len, .. } => self.addr.saturating_add(u64::from(len).saturating_sub(1)),
        }
    }

    /// Whether `addr` is one of the bytes the slot covers.
    pub fn covers(&self, addr: u64) -> bool {
        (self.addr..=self.last()).contains(&addr)
    }
}

/// Why the debuggee stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It hit an `int3` the stub planted; `rip` is the breakpoint's address.
    SwBreak,
    /// A hardware slot fired: `Exec` slots are breakpoints, `Data` slots
    /// watchpoints.
    Hw(usize),
    /// One instruction was stepped.
    Step,
    /// The interrupt check asked it to stop (gdb's Ctrl-C).
    Interrupted,
    /// It ended with this status.
    Exited(u8),
    /// It crashed (the report has already been printed).
    Crashed,
}

/// What the stub needs from a debuggee.
pub trait Debuggee {
    /// A fatal error.
    type Error: std::fmt::Display;
    /// All registers.
    fn read_registers(&mut self) -> Result<Registers, Self::Error>;
    /// Writes the general registers, rip and rflags.
    fn write_registers(&mut self, regs: &Registers) -> Result<(), Self::Error>;
    /// Reads guest virtual memory at `addr`; returns how many bytes were
    /// readable before the first unmapped page.
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;
    /// Writes guest virtual memory at `addr` from outside the guest (its
    /// page permissions do not apply); false if some page is unmapped.
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<bool, Self::Error>;
    /// Programs the four hardware slots.
    fn set_hw_slots(&mut self, slots: &[Option<HwSlot>; 4]) -> Result<(), Self::Error>;
    /// The one-byte instruction planted for a software breakpoint; when it
    /// traps, [`Debuggee::resume`] reports [`Stop::SwBreak`] with rip on it.
    fn breakpoint_byte(&self) -> u8 {
        0xcc
    }
    /// Runs (one instruction if `step`) until it stops. It calls
    /// `interrupted` whenever it can (at least every few tens of
    /// milliseconds, sleeping guests included) and stops with
    /// [`Stop::Interrupted`] once that returns true.
    fn resume(
        &mut self,
        step: bool,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Stop, Self::Error>;
}

/// How a debugging session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// gdb detached: the debuggee should run on, undebugged.
    Detached,
    /// gdb killed the debuggee.
    Killed,
    /// The debuggee exited with this status.
    Exited(u8),
    /// It crashed.
    Crashed,
    /// The connection broke (gdb vanished): the debuggee should run on.
    Disconnected(String),
}

/// The gdbstub target: a debuggee plus the stub's breakpoint bookkeeping.
pub struct Stub<'d, D: Debuggee> {
    debuggee: &'d mut D,
    /// Software breakpoints: address → the byte `int3` replaced.
    sw: BTreeMap<u64, u8>,
    hw: [Option<HwSlot>; 4],
    step: bool,
    last_error: Option<String>,
}

impl<'d, D: Debuggee> Stub<'d, D> {
    /// Wraps `debuggee`.
    pub fn new(debuggee: &'d mut D) -> Self {
        Self {
            debuggee,
            sw: BTreeMap::new(),
            hw: [None; 4],
            step: false,
            last_error: None,
        }
    }

    /// Removes every breakpoint the stub planted, restoring the code, and
    /// clears the hardware slots: the debuggee runs on as if never debugged.
    pub fn clear(&mut self) -> Result<(), D::Error> {
        for (addr, byte) in std::mem::take(&mut self.sw) {
            self.debuggee.write_memory(addr, &[byte])?;
        }
        self.hw = [None; 4];
        self.debuggee.set_hw_slots(&self.hw)
    }

    fn fatal(&mut self, e: D::Error) -> TargetError<String> {
        let text = e.to_string();
        self.last_error = Some(text.clone());
        TargetError::Fatal(text)
    }

    /// The stop reason gdb is told for `stop`, or `None` for an interrupt
    /// (which gdbstub reports itself).
    fn stop_reason(&self, stop: Stop) -> SingleThreadStopReason<u64> {
        match stop {
            Stop::SwBreak => SingleThreadStopReason::SwBreak(()),
            Stop::Hw(slot) => match self.hw.get(slot).copied().flatten() {
                Some(HwSlot {
                    addr,
                    kind: HwKind::Data { kind, .. },
                }) => SingleThreadStopReason::Watch {
                    tid: (),
                    kind,
                    addr,
                },
                _ => SingleThreadStopReason::HwBreak(()),
            },
            // `T05thread:…;` rather than `S05`: a stop that names its
            // thread spares gdb asking for the thread list after every
            // step (two round trips of the few a `stepi` makes).
            Stop::Step => SingleThreadStopReason::SignalWithThread {
                tid: (),
                signal: Signal::SIGTRAP,
            },
            Stop::Interrupted => SingleThreadStopReason::Signal(Signal::SIGINT),
            Stop::Exited(code) => SingleThreadStopReason::Exited(code),
            Stop::Crashed => SingleThreadStopReason::Terminated(Signal::SIGSEGV),
        }
    }
}

impl<D: Debuggee> Target for Stub<'_, D> {
    type Arch = gdbstub_arch::x86::X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }
    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
    // Breakpoints are planted by the stub itself: gdb must not fall back
    // to writing int3 through memory writes it cannot tell apart.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl<D: Debuggee> SingleThreadBase for Stub<'_, D> {
    fn read_registers(&mut self, regs: &mut Registers) -> TargetResult<(), Self> {
        *regs = self.debuggee.read_registers().map_err(|e| self.fatal(e))?;
        Ok(())
    }
    fn write_registers(&mut self, regs: &Registers) -> TargetResult<(), Self> {
        self.debuggee
            .write_registers(regs)
            .map_err(|e| self.fatal(e))
    }
    fn read_addrs(&mut self, addr: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let n = self
            .debuggee
            .read_memory(addr, data)
            .map_err(|e| self.fatal(e))?;
        if n == 0 && !data.is_empty() {
            return Err(TargetError::Errno(14)); // EFAULT: nothing mapped there
        }
        // gdb sees the code as it was: planted int3s are hidden.
        for (a, byte) in self.sw.range(addr..addr.saturating_add(n as u64)) {
            data[(a - addr) as usize] = *byte;
        }
        Ok(n)
    }
    fn write_addrs(&mut self, addr: u64, data: &[u8]) -> TargetResult<(), Self> {
        match self.debuggee.write_memory(addr, data) {
            Ok(true) => Ok(()),
            Ok(false) => Err(TargetError::Errno(14)), // EFAULT: unmapped
            Err(e) => Err(self.fatal(e)),
        }
    }
    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SingleThreadResume for Stub<'_, D> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = false;
        Ok(())
    }
    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SingleThreadSingleStep for Stub<'_, D> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = true;
        Ok(())
    }
}

impl<D: Debuggee> Breakpoints for Stub<'_, D> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SwBreakpoint for Stub<'_, D> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.sw.contains_key(&addr) {
            return Ok(true);
        }
        let mut old = [0u8];
        if self
            .debuggee
            .read_memory(addr, &mut old)
            .map_err(|e| self.fatal(e))?
            != 1
        {
            return Ok(false);
        }
        let trap = self.debuggee.breakpoint_byte();
        if !self
            .debuggee
            .write_memory(addr, &[trap])
            .map_err(|e| self.fatal(e))?
        {
            return Ok(false);
        }
        self.sw.insert(addr, old[0]);
        Ok(true)
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(old) = self.sw.remove(&addr) else {
            return Ok(false);
        };
        self.debuggee
            .write_memory(addr, &[old])
            .map_err(|e| self.fatal(e))
    }
}

impl<D: Debuggee> Stub<'_, D> {
    fn add_slot(&mut self, slot: HwSlot) -> TargetResult<bool, Self> {
        let Some(free) = self.hw.iter().position(Option::is_none) else {
            return Ok(false);
        };
        self.hw[free] = Some(slot);
        self.debuggee
            .set_hw_slots(&self.hw)
            .map_err(|e| self.fatal(e))?;
        Ok(true)
    }
    fn remove_slot(&mut self, slot: HwSlot) -> TargetResult<bool, Self> {
        let Some(i) = self.hw.iter().position(|s| *s == Some(slot)) else {
            return Ok(false);
        };
        self.hw[i] = None;
        self.debuggee
            .set_hw_slots(&self.hw)
            .map_err(|e| self.fatal(e))?;
        Ok(true)
    }
}

fn data_slot(addr: u64, len: u64, kind: WatchKind) -> Option<HwSlot> {
    let len = u8::try_from(len)
        .ok()
        .filter(|l| matches!(l, 1 | 2 | 4 | 8))?;
    addr.is_multiple_of(u64::from(len)).then_some(HwSlot {
        addr,
        kind: HwKind::Data { kind, len },
    })
}

impl<D: Debuggee> HwBreakpoint for Stub<'_, D> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.add_slot(HwSlot {
            addr,
            kind: HwKind::Exec,
        })
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.remove_slot(HwSlot {
            addr,
            kind: HwKind::Exec,
        })
    }
}

impl<D: Debuggee> HwWatchpoint for Stub<'_, D> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        // x86 debug registers watch 1, 2, 4 or 8 aligned bytes; gdb splits
        // larger watches itself when told no.
        data_slot(addr, len, kind).map_or(Ok(false), |slot| self.add_slot(slot))
    }
    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        data_slot(addr, len, kind).map_or(Ok(false), |slot| self.remove_slot(slot))
    }
}

/// The blocking event loop: runs the debuggee, checking the connection
/// for gdb's Ctrl-C whenever the debuggee allows.
struct EventLoop<'d, D, C>(PhantomData<(&'d mut D, C)>);

impl<'d, D: Debuggee, C: ConnectionExt> BlockingEventLoop for EventLoop<'d, D, C> {
    type Target = Stub<'d, D>;
    type Connection = C;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Self::Target,
        conn: &mut Self::Connection,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<String, C::Error>> {
        let mut conn_error = None;
        let mut incoming = false;
        let step = target.step;
        let stop = {
            let mut check = || match conn.peek() {
                Ok(Some(_)) => {
                    incoming = true;
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    conn_error = Some(e);
                    true
                }
            };
            target.debuggee.resume(step, &mut check)
        };
        if let Some(e) = conn_error {
            return Err(WaitForStopReasonError::Connection(e));
        }
        let mut stop = stop.map_err(|e| WaitForStopReasonError::Target(e.to_string()))?;
        if stop == Stop::SwBreak {
            // Only a trap the stub planted is a breakpoint; the guest's own
            // copy of that instruction is a crash.
            let rip = target
                .debuggee
                .read_registers()
                .map_err(|e| WaitForStopReasonError::Target(e.to_string()))?
                .rip;
            if !target.sw.contains_key(&rip) {
                stop = Stop::Crashed;
            }
        }
        if stop == Stop::Interrupted && incoming {
            let byte = conn.read().map_err(WaitForStopReasonError::Connection)?;
            return Ok(Event::IncomingData(byte));
        }
        Ok(Event::TargetStopped(target.stop_reason(stop)))
    }

    fn on_interrupt(_target: &mut Self::Target) -> Result<Option<Self::StopReason>, String> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Serves one gdb session on `conn` until gdb detaches, kills, the
/// debuggee ends, or the connection breaks. Afterwards every breakpoint is
/// removed, whatever happened, so the debuggee can run on cleanly.
pub fn serve<D: Debuggee, C: ConnectionExt>(debuggee: &mut D, conn: C) -> Ending
where
    C::Error: std::fmt::Debug,
{
    let mut stub = Stub::new(debuggee);
    let ending = match GdbStub::new(conn).run_blocking::<EventLoop<'_, D, C>>(&mut stub) {
        Ok(DisconnectReason::Disconnect) => Ending::Detached,
        Ok(DisconnectReason::Kill) => Ending::Killed,
        Ok(DisconnectReason::TargetExited(code)) => Ending::Exited(code),
        Ok(DisconnectReason::TargetTerminated(_)) => Ending::Crashed,
        Err(e) => Ending::Disconnected(format!("{e:?}")),
    };
    let _ = stub.clear();
    ending
}

#[cfg(test)]
mod tests;
