//! The qemu target: the PVH image under `qemu-system-x86_64 -accel kvm`
//! (`-cpu host` less `arch-capabilities`, an MSR nested KVM refuses),
//! its serial console on our stdout, its isa-debug-exit status turned back
//! into the guest's own, and a crash line (`nym-fault: …`) symbolised from
//! the image, as nym's monitor would.
use crate::guest::{PortForward, Protocol, Stop};
use crate::Out;
use nym_hvt::elf::Image;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// The QEMU binary nym runs.
pub const QEMU: &str = "qemu-system-x86_64";

/// The oldest QEMU nym runs: 7.0 (microvm with `ioapic2=off` and modern
/// virtio-mmio, PVH on q35); the tests use 10.
pub const QEMU_MIN: (u32, u32) = (7, 0);

/// The QEMU to run: `$NYM_QEMU`, else `qemu-system-x86_64` on the PATH.
pub fn binary() -> std::ffi::OsString {
    std::env::var_os("NYM_QEMU").unwrap_or_else(|| QEMU.into())
}

/// Checks that the QEMU nym would run is there and new enough; its
/// version.
pub fn check_version() -> Result<(u32, u32), QemuError> {
    let out = Command::new(binary())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(QemuError::Spawn)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| {
            let mut parts = v
                .split('.')
                .map(|n| n.trim_matches(|c: char| !c.is_ascii_digit()).parse::<u32>());
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .ok_or_else(|| QemuError::NoVersion(text.trim().to_owned()))?;
    if version < QEMU_MIN {
        return Err(QemuError::TooOld {
            major: version.0,
            minor: version.1,
        });
    }
    Ok(version)
}

/// The guest's last console line off nym's monitor: `nym: exit status N`.
pub const STATUS_MARKER: &str = "nym: exit status ";

/// The machine QEMU emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// microvm: no PCI, virtio devices in eight MMIO slots (the fastest
    /// to boot).
    #[default]
    Microvm,
    /// q35: PCI Express, virtio-pci devices, as libvirt, Cloud Hypervisor
    /// and Firecracker give a guest.
    Q35,
}

impl Machine {
    /// Its name for `--machine`.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

/// What QEMU boots: the image, its memory and command line, and the
/// devices the graph uses.
#[derive(Debug, Clone, Copy)]
pub struct Vm<'a> {
    /// The PVH image.
    pub image: &'a Path,
    /// Guest memory in bytes.
    pub mem: u64,
    /// The guest's command line (its keys).
    pub cmdline: &'a str,
    /// Host ports forwarded to guest ports (TCP or UDP), through a
    /// virtio-net device on QEMU's user network; empty for no network.
    pub forwards: &'a [PortForward],
    /// The disk: a host file attached as a virtio-blk device.
    pub block: Option<&'a Path>,
    /// microvm or q35.
    pub machine: Machine,
}

/// The arguments that boot `vm`.
pub fn args(vm: &Vm) -> Vec<String> {
    let (machine, bus) = match vm.machine {
        // No PCI on microvm: virtio devices sit in its eight MMIO slots,
        // on I/O APIC pins 16 to 23 with the second I/O APIC off.
        Machine::Microvm => ("microvm,ioapic2=off", "device"),
        Machine::Q35 => ("q35", "pci"),
    };
    let mut a: Vec<String> = [
        "-accel",
        "kvm",
        "-cpu",
        "host,-arch-capabilities",
        "-M",
        machine,
        "-nodefaults",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if vm.machine == Machine::Microvm {
        a.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
    }
    a.extend([
        "-m".into(),
        format!("{}M", vm.mem >> 20),
        "-kernel".into(),
        vm.image.display().to_string(),
    ]);
    if !vm.cmdline.is_empty() {
        a.extend(["-append".into(), vm.cmdline.into()]);
    }
    // Modern devices only: the guest drives virtio 1.0 and nothing older.
    let modern = if bus == "pci" {
        ",disable-legacy=on"
    } else {
        ""
    };
    if let Some(file) = vm.block {
        a.extend([
            "-drive".into(),
            format!(
                "id=blk0,file={},format=raw,if=none,cache=none",
                file.display().to_string().replace(',', ",,")
            ),
            "-device".into(),
            format!("virtio-blk-{bus},drive=blk0{modern}"),
        ]);
    }
    if !vm.forwards.is_empty() {
        a.extend([
            "-netdev".into(),
            user_netdev(vm.forwards),
            "-device".into(),
            format!("virtio-net-{bus},netdev=net0{modern}"),
        ]);
    }
    a
}

/// QEMU's user network with `forwards` (`hostfwd=tcp:…` or
/// `hostfwd=udp:…`), each host port on 127.0.0.1 only.
pub fn user_netdev(forwards: &[PortForward]) -> String {
    let rules: String = forwards
        .iter()
        .map(|f| {
            let (proto, host, guest) = (f.protocol.name(), f.host, f.guest);
            format!(",hostfwd={proto}:127.0.0.1:{host}-:{guest}")
        })
        .collect();
    format!("user,id=net0{rules}")
}

/// Fails, naming the port, if a forwarded host port is taken (for its
/// protocol): QEMU's own message for it comes late and names no port.
pub fn check_forwards(forwards: &[PortForward]) -> Result<(), crate::Error> {
    for f in forwards {
        match f.protocol {
            Protocol::Tcp => drop(crate::kvm::bind_forward(f.host)?),
            Protocol::Udp => drop(crate::kvm::bind_udp_forward(f.host)?),
        }
    }
    Ok(())
}

/// The command line as a user would type it.
pub fn command_line(vm: &Vm) -> String {
    std::iter::once(QEMU.to_owned())
        .chain(args(vm).into_iter().map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why QEMU could not run the guest.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// QEMU is not installed.
    #[error("cannot start {QEMU}: {0}\n  hint: scripts/install.sh installs QEMU 10 from bookworm-backports")]
    Spawn(std::io::Error),
    /// QEMU is older than nym needs.
    #[error("QEMU {major}.{minor} is too old: nym needs {}.{} or later for the options it uses\n  hint: scripts/install.sh installs QEMU 10 from bookworm-backports", QEMU_MIN.0, QEMU_MIN.1)]
    TooOld {
        /// Its major version.
        major: u32,
        /// Its minor version.
        minor: u32,
    },
    /// `--version` said something nym cannot read.
    #[error("cannot tell QEMU's version from `{QEMU} --version`: {0:?}")]
    NoVersion(String),
    /// QEMU failed on its own (bad options, no KVM).
    #[error("{QEMU} failed with status {0} before the guest finished (its message is above)")]
    Failed(i32),
    /// QEMU ended without the guest's status.
    #[error("{QEMU} ended without the guest reporting a status ({0})")]
    NoStatus(String),
}

/// Boots `image` under QEMU, the guest's console lines going to
/// `console` and crash reports to `out`; the guest's exit status.
/// `stop` ends QEMU from another thread.
pub fn run(vm: &Vm, console: &mut dyn Write, out: &Out, stop: &Stop) -> Result<u8, QemuError> {
    let image = vm.image;
    let mut child = crate::child::dies_with_parent(&mut Command::new(binary()))
        .args(args(vm))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(QemuError::Spawn)?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().map(|e| {
        let out = out.clone();
        crate::forward_lines(e, move |l| out.line(l))
    });
    stop.hold(child);
    let elf = std::fs::read(image).ok().and_then(|b| Image::parse(b).ok());
    if let Some(stdout) = stdout {
        // The firmware writes to the same serial port: skip to the guest's marker.
        let mut started = false;
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if !started {
                started = line.ends_with(b"nym: guest started");
                continue;
            }
            let text = std::str::from_utf8(&line).unwrap_or("");
            if text.starts_with(STATUS_MARKER) {
                // The guest's status, for hosts without an exit device:
                // QEMU's own exit status says it here.
                continue;
            }
            match text.strip_prefix("nym-fault: ") {
                Some(fault) => out.line(&format!("nym: {}", report(elf.as_ref(), fault))),
                None => {
                    let _ = console.write_all(&line);
                    let _ = console.write_all(b"\n");
                    let _ = console.flush();
                }
            }
        }
    }
    let status = stop.release().map(|mut c| c.wait());
    if let Some(e) = stderr {
        let _ = e.join();
    }
    if stop.requested() {
        return Ok(130);
    }
    let status = status.ok_or(QemuError::NoStatus("it was stopped".into()))?;
    match status.map_err(QemuError::Spawn)?.code() {
        // isa-debug-exit: QEMU exits with 2·status + 1.
        Some(c) if c % 2 == 1 => Ok(((c - 1) / 2) as u8),
        Some(0) => Err(QemuError::NoStatus("it exited with 0".into())),
        Some(c) => Err(QemuError::Failed(c)),
        None => Err(QemuError::NoStatus("it was killed by a signal".into())),
    }
}

/// The report for a `nym-fault:` line printed by the guest in `image`.
pub fn fault_report(image: &Path, fault: &str) -> String {
    let elf = std::fs::read(image).ok().and_then(|b| Image::parse(b).ok());
    report(elf.as_ref(), fault)
}

/// The report for a `nym-fault:` line: `vector=14 error=0x0 cr2=0x0 frames=0x…,0x…`.
fn report(elf: Option<&Image>, fault: &str) -> String {
    let field = |name: &str| {
        fault
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name))
            .unwrap_or("")
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0);
    let vector: u64 = field("vector=").parse().unwrap_or(u64::MAX);
    let mut out = format!(
        "guest crashed: {} (vector {vector})",
        nym_hvt::abi::exception_name(vector)
    );
    if vector == 14 {
        out.push_str(&format!(" at address {}", field("cr2=")));
    }
    out.push_str("\nbacktrace:\n");
    for (i, frame) in field("frames=")
        .split(',')
        .filter(|f| !f.is_empty())
        .enumerate()
    {
        let addr = hex(frame);
        let name = elf.and_then(|e| e.symbolize(addr)).map_or_else(
            || "??".to_owned(),
            |s| {
                format!(
                    "{}+{:#x}{}",
                    s.name,
                    s.offset,
                    s.location
                        .map(|(f, l)| format!(" at {f}:{l}"))
                        .unwrap_or_default()
                )
            },
        );
        out.push_str(&format!("  #{i:<2} {addr:#010x}  {name}\n"));
    }
    out
}
