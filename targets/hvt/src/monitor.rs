//! The monitor's run loop: set up a VM, boot the image, serve hypercalls
//! until the guest exits, crashes or breaks the ABI.
use crate::boot::{self, BootError, BOOT_INFO};
use crate::elf::{ElfError, Image};
use crate::hypercall::{self, Call, Violation};
use crate::memory::{GuestMemory, MemoryError};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};
use nym_hvt_abi as abi;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to boot and with what.
#[derive(Debug)]
pub struct Config {
    /// The image.
    pub image: PathBuf,
    /// Guest memory in bytes.
    pub mem_size: u64,
    /// The guest's command line (its keys).
    pub cmdline: String,
    /// The block device's backing file, if the image has one.
    pub block: Option<BlockFile>,
    /// Install the system-call allowlist before the guest runs (on unless
    /// debugging the monitor itself; never while gdb is attached).
    pub seccomp: bool,
    /// Serve gdb here; the guest waits before its first instruction until
    /// gdb attaches.
    pub gdb: Option<std::net::TcpListener>,
    /// The guest's network: its link and port forwards.
    pub net: Option<crate::net::NetConfig>,
}

/// A host file served as the guest's block device.
#[derive(Debug, Clone)]
pub struct BlockFile {
    /// The file; created with `size` bytes if missing.
    pub path: PathBuf,
    /// The size of a new file.
    pub size: u64,
}

/// Why the guest could not be booted.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The image cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The image.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The image is not a bootable ELF.
    #[error("{}: {source}", path.display())]
    Elf {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        source: ElfError,
    },
    /// The image has no nym manifest.
    #[error("{}: not a nym image (no manifest note); build images with `nym build --target kvm`", .0.display())]
    NoManifest(PathBuf),
    /// The image needs a device it was not given.
    #[error("the image uses {0}, but the monitor was given none")]
    MissingDevice(&'static str),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Layout.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The block file.
    #[error("block file {}: {source}", path.display())]
    Block {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The allowlist could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The guest's network could not be set up.
    #[error("setting up the guest's network: {0}")]
    Net(std::io::Error),
    /// The gdb connection failed.
    #[error("gdb stub: {what}: {source}")]
    Gdb {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// KVM refused something.
    #[error("KVM: {what}: {source}\n  hint: is /dev/kvm present and accessible to you?")]
    Kvm {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: kvm_ioctls::Error,
    },
}

/// How a guest ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest called `EXIT`.
    Exited(i32),
    /// The guest broke the ABI; it was stopped.
    Violation(Violation),
    /// The guest crashed; the report names the exception and the backtrace.
    Crashed(String),
}

impl Outcome {
    /// The status `nym` exits with.
    pub fn status(&self) -> i32 {
        match self {
            Outcome::Exited(s) => *s,
            Outcome::Violation(_) => abi::EXIT_VIOLATION,
            Outcome::Crashed(_) => abi::EXIT_CRASH,
        }
    }
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> MonitorError {
    move |source| MonitorError::Kvm { what, source }
}

/// Loads and validates an image, checking that it fits `mem_size`.
pub fn load_image(path: &std::path::Path, mem_size: u64) -> Result<Image, MonitorError> {
    let bytes = std::fs::read(path).map_err(|source| MonitorError::Read {
        path: path.to_owned(),
        source,
    })?;
    let elf = |source| MonitorError::Elf {
        path: path.to_owned(),
        source,
    };
    let image = Image::parse(bytes).map_err(elf)?;
    image.check_fits(mem_size, boot::IMAGE_MIN).map_err(elf)?;
    Ok(image)
}

/// Boots `config.image`, writing the guest's console to `console`.
pub fn run(config: &Config, console: &mut dyn Write) -> Result<Outcome, MonitorError> {
    let image = load_image(&config.image, config.mem_size)?;
    let manifest = image
        .manifest()
        .map_err(|source| MonitorError::Elf {
            path: config.image.clone(),
            source,
        })?
        .ok_or_else(|| MonitorError::NoManifest(config.image.clone()))?;
    let block = match (&config.block, manifest.devices & abi::DEVICE_BLOCK != 0) {
        (Some(b), true) => Some(open_block(b)?),
        (None, true) => {
            return Err(MonitorError::MissingDevice(
                "a block device (block::file): give it a file",
            ))
        }
        (_, false) => None,
    };
    let needs_net = manifest.devices & abi::DEVICE_NET != 0;
    if needs_net && config.net.is_none() {
        return Err(MonitorError::MissingDevice(
            "a network (netif::default): forward a port to it with -p HOST:GUEST",
        ));
    }

    let mut mem = GuestMemory::new(config.mem_size)?;
    boot::load(&mut mem, &image, &config.cmdline)?;

    let kvm_fd = Kvm::new().map_err(kvm("opening /dev/kvm"))?;
    let vm = kvm_fd.create_vm().map_err(kvm("creating a VM"))?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: mem.size(),
        userspace_addr: mem.host_base(),
        flags: 0,
    };
    // SAFETY: the region is `mem`'s mapping, which outlives the VM (both are
    // locals here, and `vm` is declared after `mem` so it is dropped first).
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm("mapping guest memory"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm("creating the vCPU"))?;
    let cpuid = kvm_fd
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm("reading CPUID"))?;
    vcpu.set_cpuid2(&cpuid).map_err(kvm("setting CPUID"))?;
    let sregs = boot::sregs(vcpu.get_sregs().map_err(kvm("reading sregs"))?);
    vcpu.set_sregs(&sregs).map_err(kvm("entering long mode"))?;
    let regs = kvm_bindings::kvm_regs {
        rip: image.entry(),
        rsp: mem.size(),
        rdi: BOOT_INFO,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm("setting registers"))?;

    // Everything the run loop touches is open before the allowlist goes on.
    let random = File::open("/dev/urandom").ok();
    let net = match config.net.as_ref().filter(|_| needs_net) {
        Some(n) => Some(
            crate::net::start(crate::net::NetConfig {
                forwards: n
                    .forwards
                    .iter()
                    .map(|f| {
                        Ok(crate::net::Forward {
                            listener: f.listener.try_clone()?,
                            guest_port: f.guest_port,
                        })
                    })
                    .collect::<std::io::Result<_>>()
                    .map_err(MonitorError::Net)?,
                guest_ip: n.guest_ip,
                tap: n
                    .tap
                    .as_ref()
                    .map(|t| t.try_clone())
                    .transpose()
                    .map_err(MonitorError::Net)?,
            })
            .map_err(MonitorError::Net)?,
        ),
        None => None,
    };
    let mut guest = Guest {
        mem,
        image,
        block,
        started: Instant::now(),
        console,
        random,
        net,
    };
    if let Some(listener) = &config.gdb {
        if let Some(outcome) = debug_session(listener, &config.image, &mut guest, &mut vcpu)? {
            return Ok(outcome);
        }
    } else if config.seccomp {
        // Not while debugging: the stub needs sockets and a kicker thread.
        crate::seccomp::install()?;
    }
    guest.run(&mut vcpu)
}

/// Waits for gdb, then serves it until the session ends. `Some` if the
/// guest ended during the session; `None` if it should run on.
fn debug_session(
    listener: &std::net::TcpListener,
    image: &std::path::Path,
    guest: &mut Guest,
    vcpu: &mut VcpuFd,
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
    let mut debugged = crate::debug::Debugged::new(guest, vcpu);
    let ending = nym_gdb::serve(&mut debugged, stream);
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

fn open_block(b: &BlockFile) -> Result<(File, u64), MonitorError> {
    let err = |source| MonitorError::Block {
        path: b.path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&b.path)
        .map_err(err)?;
    let mut len = file.metadata().map_err(err)?.len();
    if len == 0 {
        file.set_len(b.size).map_err(err)?;
        len = b.size;
    }
    if !len.is_multiple_of(512) || len == 0 {
        return Err(err(std::io::Error::other(format!(
            "its size, {len} bytes, is not a positive multiple of 512"
        ))));
    }
    Ok((file, len / 512))
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
    block: Option<(File, u64)>,
    started: Instant,
    console: &'c mut dyn Write,
    random: Option<File>,
    net: Option<crate::net::Net>,
}

impl Guest<'_> {
    fn run(&mut self, vcpu: &mut VcpuFd) -> Result<Outcome, MonitorError> {
        loop {
            let exit = next_exit(vcpu)?;
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

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Serves one call; `Some` ends the guest.
    pub(crate) fn serve(
        &mut self,
        call: Call,
        vcpu: &mut VcpuFd,
    ) -> Result<Option<Outcome>, MonitorError> {
        match call {
            Call::WallTime { at } => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let _ = self.mem.write(at, &abi::Time { nanos });
            }
            Call::MonoTime { at } => {
                let nanos = self.now();
                let _ = self.mem.write(at, &abi::Time { nanos });
            }
            Call::Puts(text) => {
                let _ = self.console.write_all(self.mem.bytes(text));
                let _ = self.console.flush();
            }
            Call::Wait { timeout } => self.wait(Duration::from_nanos(timeout)),
            Call::BlockInfo { at } => {
                let info = match &self.block {
                    Some((_, sectors)) => abi::BlockInfo {
                        ret: abi::Ret::Ok as u64,
                        sector_size: 512,
                        sectors: *sectors,
                        writable: 1,
                    },
                    None => abi::BlockInfo {
                        ret: abi::Ret::NoDevice as u64,
                        ..Default::default()
                    },
                };
                let _ = self.mem.write(at, &info);
            }
            Call::BlockIo {
                at,
                read,
                sector,
                buf,
            } => {
                let ret = self.block_io(read, sector, buf);
                let mut io: abi::BlockIo = self.mem.read(at).unwrap_or_default();
                io.ret = ret as u64;
                let _ = self.mem.write(at, &io);
            }
            Call::Random(buf) => {
                let dst = self.mem.bytes_mut(buf);
                if let Some(f) = &mut self.random {
                    let _ = f.read_exact(dst);
                }
            }
            Call::Exit(status) => return Ok(Some(Outcome::Exited((status & 0xff) as i32))),
            Call::Fault(f) => return Ok(Some(Outcome::Crashed(self.report_fault(&f, vcpu)))),
            Call::NetInfo { at } => {
                let info = match &self.net {
                    Some(net) => abi::NetInfo {
                        ret: abi::Ret::Ok as u64,
                        mac: abi::NET_GUEST_MAC
                            .iter()
                            .rev()
                            .fold(0, |m, &b| (m << 8) | u64::from(b)),
                        mtu: abi::NET_MTU,
                        flags: if net.tap { abi::NET_CHECKSUMS } else { 0 },
                    },
                    None => abi::NetInfo {
                        ret: abi::Ret::NoDevice as u64,
                        ..Default::default()
                    },
                };
                let _ = self.mem.write(at, &info);
            }
            Call::NetWrite { at, frame } => {
                let ret = match &self.net {
                    None => abi::Ret::NoDevice,
                    Some(_) if frame.len() as u64 > abi::NET_MTU => abi::Ret::OutOfRange,
                    Some(net) => {
                        net.link.from_guest(self.mem.bytes(frame).to_vec());
                        abi::Ret::Ok
                    }
                };
                let mut io: abi::NetIo = self.mem.read(at).unwrap_or_default();
                io.ret = ret as u64;
                let _ = self.mem.write(at, &io);
            }
            Call::NetRead { at, buf } => {
                let mut io: abi::NetIo = self.mem.read(at).unwrap_or_default();
                (io.ret, io.len) = match self.net.as_ref().map(|n| n.link.to_guest()) {
                    None => (abi::Ret::NoDevice as u64, 0),
                    Some(None) => (abi::Ret::Ok as u64, 0),
                    Some(Some(f)) if f.len() > buf.len() => (abi::Ret::OutOfRange as u64, 0),
                    Some(Some(f)) => {
                        self.mem.bytes_mut(buf)[..f.len()].copy_from_slice(&f);
                        (abi::Ret::Ok as u64, f.len() as u64)
                    }
                };
                let _ = self.mem.write(at, &io);
            }
        }
        Ok(None)
    }

    /// Whether a frame waits for the guest.
    pub(crate) fn frame_waiting(&self) -> bool {
        self.net.as_ref().is_some_and(|n| n.link.pending())
    }

    /// Blocks the vCPU for at most `d`; less when a frame waits for the guest.
    pub(crate) fn wait(&self, d: Duration) {
        match &self.net {
            Some(net) => net.link.wait(d),
            None => std::thread::sleep(d),
        }
    }

    fn block_io(&mut self, read: bool, sector: u64, buf: crate::memory::GuestRange) -> abi::Ret {
        let Some((file, sectors)) = &self.block else {
            return abi::Ret::NoDevice;
        };
        if !buf.len().is_multiple_of(512) {
            return abi::Ret::Unaligned;
        }
        let count = (buf.len() / 512) as u64;
        match sector.checked_add(count) {
            Some(end) if end <= *sectors => {}
            _ => return abi::Ret::OutOfRange,
        }
        let offset = sector * 512;
        let result = if read {
            file.read_exact_at(self.mem.bytes_mut(buf), offset)
        } else {
            file.write_all_at(self.mem.bytes(buf), offset)
                .and_then(|()| file.sync_data())
        };
        if result.is_ok() {
            abi::Ret::Ok
        } else {
            abi::Ret::Io
        }
    }

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

    fn report_fault(&self, f: &abi::Fault, _vcpu: &mut VcpuFd) -> String {
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

    fn report_regs(&self, what: &str, vcpu: &mut VcpuFd) -> String {
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
