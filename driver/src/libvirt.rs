//! The libvirt target: the PVH image as a libvirt domain, in libvirt's own
//! format, run by a libvirtd the user already operates. The domain is a
//! q35 machine booting the image directly (`<kernel>`, the keys as its
//! `<cmdline>`), its serial console in a file nym follows, the graph's disk
//! a virtio-blk device, its network QEMU's user network with the `-p`
//! forwards (through `<qemu:commandline>`, as is QEMU's isa-debug-exit
//! device that ends it). The guest prints its exit status as its last
//! console line, which is how it reaches nym.
//!
//! `nym run --target libvirt` defines the domain, starts it, shows its
//! console, waits for it to end, and removes it; a domain of the same name
//! that nym did not make is never touched.
use crate::guest::Stop;
use crate::{Error, Out};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The client nym drives libvirtd with.
pub const VIRSH: &str = "virsh";
/// The connection: the system daemon (QEMU needs /dev/kvm).
pub const URI: &str = "qemu:///system";

/// The connection nym uses: `$NYM_LIBVIRT_URI`, else [`URI`].
pub fn uri() -> String {
    std::env::var("NYM_LIBVIRT_URI").unwrap_or_else(|_| URI.to_owned())
}
/// What marks a domain as nym's, in its `<metadata>`.
const NYM_NS: &str = "https://nym.dev/libvirt/1";
/// How often the console file and the domain's state are looked at.
const POLL: Duration = Duration::from_millis(50);

/// Why libvirt could not run the guest.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    /// virsh is not installed.
    #[error("cannot run {VIRSH}: {0}\n  hint: scripts/install.sh installs libvirt (Debian's libvirt-daemon-system and libvirt-clients)")]
    NoVirsh(std::io::Error),
    /// libvirtd does not answer.
    #[error("libvirtd does not answer at {uri}: {message}\n  hint: start it (`libvirtd -d`, or `systemctl start libvirtd`)")]
    NoDaemon {
        /// The connection tried.
        uri: String,
        /// What virsh said.
        message: String,
    },
    /// A domain of that name exists and is not nym's.
    #[error("libvirt already has a domain named `{0}` that nym did not make; nym leaves it alone (remove it with `virsh undefine {0}`, or rename the project)")]
    Taken(String),
    /// A nym domain of that name is running (another `nym run`).
    #[error("the domain `{0}` is running (another `nym run --target libvirt` of this project?); stop it first (`virsh destroy {0}`)")]
    Running(String),
    /// virsh failed.
    #[error("virsh {what} failed: {message}")]
    Virsh {
        /// The subcommand.
        what: String,
        /// What virsh said.
        message: String,
    },
    /// The guest ended without its status line.
    #[error("the guest ended without reporting a status ({0})")]
    NoStatus(&'static str),
    /// A file of the run could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The domain for one image.
#[derive(Debug, Clone)]
pub struct Domain<'a> {
    /// The guest (its network is virtio-net on QEMU's user network, its
    /// disk virtio-blk).
    pub guest: crate::guest::Domain<'a>,
    /// Host ports forwarded to guest ports (TCP or UDP) over that network.
    pub forwards: &'a [crate::guest::PortForward],
    /// Where the serial console goes.
    pub console: &'a Path,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// The domain's XML, as `virsh define` takes it.
pub fn domain_xml(d: &Domain) -> String {
    // No USB, no balloon: nothing the guest does not drive.
    let mut devices = format!(
        "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n    <serial type='file'>\n      <source path='{}'/>\n      <target port='0'/>\n    </serial>\n",
        escape(&d.console.display().to_string())
    );
    if let Some(file) = d.guest.disk {
        devices.push_str(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw' cache='none'/>\n      <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
            escape(&file.display().to_string())
        ));
    }
    let mut args = vec![
        "-device".to_owned(),
        "isa-debug-exit,iobase=0xf4,iosize=4".to_owned(),
    ];
    if d.guest.net || !d.forwards.is_empty() {
        args.extend([
            "-netdev".to_owned(),
            crate::qemu::user_netdev(d.forwards),
            "-device".to_owned(),
            // On the root bus, in a slot libvirt's own placement (root
            // ports from 00:01.0 up) leaves free.
            "virtio-net-pci,netdev=net0,disable-legacy=on,bus=pcie.0,addr=0x10".to_owned(),
        ]);
    }
    let qemu_args: String = args
        .iter()
        .map(|a| format!("    <qemu:arg value='{}'/>\n", escape(a)))
        .collect();
    format!(
        "<!-- Generated by nym from the project's graph: define it with virsh, or let nym run it (target libvirt). -->\n\
         <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n\
         \x20 <name>{name}</name>\n\
         \x20 <metadata>\n    <nym:image xmlns:nym='{NYM_NS}'>{image}</nym:image>\n  </metadata>\n\
         \x20 <memory unit='KiB'>{mem}</memory>\n\
         \x20 <vcpu>1</vcpu>\n\
         \x20 <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <kernel>{image}</kernel>\n    <cmdline>{cmdline}</cmdline>\n  </os>\n\
         \x20 <features>\n    <acpi/>\n  </features>\n\
         \x20 <cpu mode='host-passthrough'>\n    <feature policy='disable' name='arch-capabilities'/>\n  </cpu>\n\
         \x20 <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n\
         \x20 <devices>\n{devices}  </devices>\n\
         \x20 <qemu:commandline>\n{qemu_args}  </qemu:commandline>\n\
         </domain>\n",
        name = escape(d.guest.name),
        image = escape(&d.guest.image.display().to_string()),
        mem = d.guest.mem >> 10,
        cmdline = escape(d.guest.cmdline),
    )
}

/// Runs `virsh ARGS` on the system connection; its output, or why not.
fn virsh(args: &[&str]) -> Result<String, LibvirtError> {
    let out = Command::new(VIRSH)
        .arg("-c")
        .arg(uri())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(LibvirtError::NoVirsh)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LibvirtError::Virsh {
            what: args.first().copied().unwrap_or("").to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The domain's state (`running`, `shut off`, …), or `None` if libvirt
/// has no domain of that name.
fn state(name: &str) -> Result<Option<String>, LibvirtError> {
    match virsh(&["domstate", name]) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(LibvirtError::Virsh { message, .. })
            if message.contains("failed to get domain") || message.contains("Domain not found") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether the defined domain `name` is one nym made.
fn is_nyms(name: &str) -> bool {
    virsh(&["dumpxml", name]).is_ok_and(|xml| xml.contains(NYM_NS))
}

/// Makes room for the domain `name`: none there, or a stopped one of
/// nym's (a run that was killed) removed; anything else is refused.
fn claim(name: &str) -> Result<(), LibvirtError> {
    virsh(&["version"]).map_err(|e| match e {
        LibvirtError::Virsh { message, .. } => LibvirtError::NoDaemon {
            uri: uri(),
            message: message.lines().last().unwrap_or("").to_owned(),
        },
        other => other,
    })?;
    match state(name)? {
        None => Ok(()),
        Some(_) if !is_nyms(name) => Err(LibvirtError::Taken(name.to_owned())),
        Some(s) if s == "shut off" => {
            virsh(&["undefine", name])?;
            Ok(())
        }
        Some(_) => Err(LibvirtError::Running(name.to_owned())),
    }
}

/// The domain, defined: destroyed (if running) and undefined when dropped,
/// whatever ends the run.
struct Defined<'a> {
    name: &'a str,
}

impl Drop for Defined<'_> {
    fn drop(&mut self) {
        if matches!(state(self.name), Ok(Some(s)) if s != "shut off") {
            let _ = virsh(&["destroy", self.name]);
        }
        let _ = virsh(&["undefine", self.name]);
    }
}

/// Writes the domain's XML to `xml`, defines and starts it, shows its
/// console on `console` until it ends (or `stop`), removes it, and returns
/// the guest's exit status.
pub fn run(
    d: &Domain,
    xml: &Path,
    console: &mut dyn Write,
    out: &Out,
    stop: &Stop,
) -> Result<u8, Error> {
    let io = |what: String| move |source| LibvirtError::Io { what, source };
    claim(d.guest.name)?;
    std::fs::write(xml, domain_xml(d)).map_err(io(format!("writing {}", xml.display())))?;
    // The console file is libvirt's to create; an old one would be read
    // as this run's.
    let _ = std::fs::remove_file(d.console);
    virsh(&["define", &xml.display().to_string()])?;
    let defined = Defined { name: d.guest.name };
    virsh(&["start", d.guest.name])?;
    out.line(&format!(
        "nym: started the libvirt domain {} ({}); its console is {}",
        d.guest.name,
        xml.display(),
        d.console.display()
    ));
    let mut follow = Follow::new(d.console, d.guest.image);
    let status = loop {
        follow.read(console, out);
        if let Some(status) = follow.status {
            break Ok(status);
        }
        if stop.requested() {
            break Ok(130);
        }
        match state(d.guest.name)? {
            Some(s) if s == "running" || s == "paused" || s == "in shutdown" => {}
            _ => {
                // Ended: read what it wrote last.
                std::thread::sleep(POLL);
                follow.read(console, out);
                break follow
                    .status
                    .ok_or(LibvirtError::NoStatus("its domain stopped"));
            }
        }
        std::thread::sleep(POLL);
    };
    drop(defined);
    Ok(status?)
}

/// Follows the console file as the guest writes it.
struct Follow<'a> {
    path: &'a Path,
    image: &'a Path,
    read: u64,
    partial: Vec<u8>,
    started: bool,
    status: Option<u8>,
}

impl<'a> Follow<'a> {
    fn new(path: &'a Path, image: &'a Path) -> Follow<'a> {
        Follow {
            path,
            image,
            read: 0,
            partial: Vec::new(),
            started: false,
            status: None,
        }
    }

    /// Shows the lines written since the last read.
    fn read(&mut self, console: &mut dyn Write, out: &Out) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.read)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        let Ok(n) = f.read_to_end(&mut bytes) else {
            return;
        };
        self.read += n as u64;
        self.partial.extend_from_slice(&bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            let text = text.trim_end_matches('\r');
            if !self.started {
                // The firmware writes to the same port: skip to the guest.
                self.started = text.ends_with("nym: guest started");
                continue;
            }
            if let Some(s) = text.strip_prefix(crate::qemu::STATUS_MARKER) {
                self.status = Some(s.trim().parse::<i32>().map_or(1, |s| s.clamp(0, 255)) as u8);
                continue;
            }
            match text.strip_prefix("nym-fault: ") {
                Some(fault) => out.line(&format!(
                    "nym: {}",
                    crate::qemu::fault_report(self.image, fault)
                )),
                None => {
                    let _ = console.write_all(text.as_bytes());
                    let _ = console.write_all(b"\n");
                    let _ = console.flush();
                }
            }
        }
    }
}

/// The domain name for a graph: `nym-NAME`.
pub fn domain_name(graph_name: &str) -> String {
    format!("nym-{graph_name}")
}

/// Where a run keeps the domain's XML and console: beside the image.
pub fn files(image: &Path) -> (PathBuf, PathBuf) {
    (image.with_extension("xml"), image.with_extension("console"))
}
