//! The Xen host `nym run --target xen` starts guests on: Xen 4.17 with a
//! Linux dom0, inside QEMU with software emulation (no nested
//! virtualisation here): `-M q35 -cpu max` gives Xen SVM with nested
//! paging, `-device intel-iommu` the IOMMU Xen wants.
//!
//! The dom0 is Debian's: its kernel (booted as a PV dom0), its Xen
//! backend modules (netback, blkback), `xl`, `xenstored`, `xenconsoled`,
//! Xen's hotplug scripts, bash and busybox, unpacked by
//! `scripts/install.sh` into [`DEFAULT_DIR`] (`vmlinuz`, `initrd.gz`)
//! without booting anything on the host. At each boot nym appends its own
//! scripts (`dom0/init`, `dom0/agent`, `dom0/relay`, compiled into nym)
//! as a second archive, so dom0 always runs the scripts of the nym that
//! boots it.
//!
//! dom0's network is QEMU's user network (192.168.76.0/24); the host
//! reaches dom0's agent through a forwarded port (its [`Host::ctl`]),
//! and a run's `-p` forwards are added to QEMU at run time over QMP. dom0
//! sees the host's file system at `/host` (9p), so `xl` reads the image
//! and the disk where nym wrote them.
//!
//! A dom0 lives as long as the run that booted it, or, started by `nym
//! dom0`, until that command ends: runs meanwhile find it through its
//! state file ([`state_dir`]) and start their guests in seconds.
use super::cpio::Archive;
use super::XenError;
use crate::Out;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where scripts/install.sh puts the dom0 image.
pub const DEFAULT_DIR: &str = "/var/cache/nym/xen-dom0";
/// Where scripts/install.sh puts the uncompressed hypervisor.
pub const DEFAULT_XEN: &str = "/var/cache/nym/xen-4.17-amd64";
/// The longest Xen and dom0 may take to come up (software emulation).
pub const BOOT_WITHIN: Duration = Duration::from_secs(180);
/// dom0's port for its agent (`dom0/agent`, one connection per run).
pub const AGENT_PORT: u16 = 1;
/// Memory of the emulated machine, and what Xen gives dom0 of it: the
/// rest is for guests.
const MACHINE_MB: u64 = 1536;
const DOM0_MB: u64 = 512;

const INIT: &str = include_str!("dom0/init");
const AGENT: &str = include_str!("dom0/agent");
const RELAY: &str = include_str!("dom0/relay");

/// The files a dom0 boots from.
#[derive(Debug, Clone)]
pub struct Image {
    /// The hypervisor (a multiboot image).
    pub xen: PathBuf,
    /// dom0's kernel.
    pub kernel: PathBuf,
    /// dom0's base initramfs.
    pub initrd: PathBuf,
}

impl Image {
    /// The hypervisor at `$NYM_XEN` or [`DEFAULT_XEN`], dom0 in
    /// `$NYM_XEN_DOM0_IMAGE` or [`DEFAULT_DIR`].
    pub fn find() -> Result<Image, XenError> {
        let env = |var: &str, default: &str| {
            std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        let xen = env("NYM_XEN", DEFAULT_XEN);
        if !xen.is_file() {
            return Err(XenError::NoXen(xen));
        }
        let dir = env("NYM_XEN_DOM0_IMAGE", DEFAULT_DIR);
        let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.gz"));
        if !kernel.is_file() || !initrd.is_file() {
            return Err(XenError::NoDom0(dir));
        }
        Ok(Image {
            xen,
            kernel,
            initrd,
        })
    }
}

/// Where a shared dom0 (`nym dom0`) keeps its state: `$NYM_XEN_DOM0`,
/// else `nym-dom0-UID` in the temporary directory.
pub fn state_dir() -> PathBuf {
    std::env::var_os("NYM_XEN_DOM0").map_or_else(
        || std::env::temp_dir().join(format!("nym-dom0-{}", uid())),
        PathBuf::from,
    )
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// A running dom0, as runs reach it.
#[derive(Debug, Clone)]
pub struct Host {
    /// The host's end of the forward to dom0's agent.
    pub ctl: SocketAddr,
    /// QEMU's QMP socket.
    qmp: PathBuf,
}

impl Host {
    /// The shared dom0 of `dir`, if one runs there (its state file names
    /// a live process).
    pub fn shared(dir: &Path) -> Option<Host> {
        let text = std::fs::read_to_string(dir.join("state")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_owned)
        };
        let pid: i32 = field("pid")?.parse().ok()?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return None;
        }
        Some(Host {
            ctl: SocketAddr::from((Ipv4Addr::LOCALHOST, field("ctl")?.parse().ok()?)),
            qmp: PathBuf::from(field("qmp")?),
        })
    }

    /// Forwards the host's `127.0.0.1:port` to dom0's `port`.
    pub fn forward(&self, port: u16) -> Result<(), XenError> {
        let reply = self.hmp(&format!("hostfwd_add net0 tcp:127.0.0.1:{port}-:{port}"))?;
        if reply.trim().is_empty() {
            Ok(())
        } else {
            Err(XenError::Forward(port, reply.trim().to_owned()))
        }
    }

    /// Removes the forward of the host's `port`.
    pub fn unforward(&self, port: u16) {
        let _ = self.hmp(&format!("hostfwd_remove net0 tcp:127.0.0.1:{port}"));
    }

    /// One human monitor command through QMP; its output.
    fn hmp(&self, command: &str) -> Result<String, XenError> {
        let fail = |e: std::io::Error| XenError::Qmp(e.to_string());
        let mut s = UnixStream::connect(&self.qmp).map_err(fail)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(fail)?;
        let mut r = BufReader::new(s.try_clone().map_err(fail)?);
        let mut reply = |s: &mut UnixStream, msg: serde_json::Value| {
            if let Err(e) = writeln!(s, "{msg}") {
                return Err(fail(e));
            }
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).map_err(fail)? == 0 {
                    return Err(XenError::Qmp("QEMU closed its QMP socket".into()));
                }
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(ret) = v.get("return") {
                    return Ok(ret.as_str().unwrap_or("").to_owned());
                }
                if let Some(e) = v.get("error") {
                    return Err(XenError::Qmp(e.to_string()));
                }
            }
        };
        // The greeting, then capabilities, then the command.
        let mut greeting = String::new();
        BufReader::new(s.try_clone().map_err(fail)?)
            .read_line(&mut greeting)
            .map_err(fail)?;
        reply(&mut s, serde_json::json!({"execute": "qmp_capabilities"}))?;
        reply(
            &mut s,
            serde_json::json!({"execute": "human-monitor-command",
                "arguments": {"command-line": command}}),
        )
    }
}

/// The last lines of dom0's console, for errors.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A dom0 this process booted: QEMU, its child.
pub struct Booted {
    /// How runs reach it.
    pub host: Host,
    child: Option<Child>,
    dir: PathBuf,
    /// Whether `dir` is ours to remove.
    temporary: bool,
    ready: mpsc::Receiver<Result<(), String>>,
    tail: Tail,
    started: Instant,
}

impl Booted {
    /// Boots Xen and dom0 from `image`, keeping its files (the initramfs,
    /// QMP's socket, the console log) in `dir` (made private); returns at
    /// once: [`Booted::wait_ready`] waits for dom0.
    pub fn start(image: &Image, dir: &Path, temporary: bool) -> Result<Booted, XenError> {
        let io = |what: &str, e: std::io::Error| XenError::Io(format!("{what}: {e}"));
        std::fs::create_dir_all(dir).map_err(|e| io(&format!("making {}", dir.display()), e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let initrd = dir.join("initrd");
        let mut bytes = std::fs::read(&image.initrd)
            .map_err(|e| io(&format!("reading {}", image.initrd.display()), e))?;
        // Linux looks for the next archive at a 4-byte boundary, skipping
        // zeros: pad the compressed base to one.
        bytes.resize(bytes.len().next_multiple_of(512), 0);
        bytes.extend(overlay());
        std::fs::write(&initrd, bytes)
            .map_err(|e| io(&format!("writing {}", initrd.display()), e))?;
        let qmp = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp);
        let ctl = free_port().map_err(|e| io("finding a free port", e))?;
        let mut child = crate::child::dies_with_parent(&mut Command::new(crate::qemu::binary()))
            .args(args(image, &initrd, &qmp, ctl))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(XenError::Spawn)?;
        let tail: Tail = Arc::default();
        let (tx, ready) = mpsc::channel();
        let log = std::fs::File::create(dir.join("console.log")).ok();
        if let Some(out) = child.stdout.take() {
            watch_console(out, log, tail.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    push(&tail, format!("qemu: {line}"));
                }
                let _ = tx.send(Err("QEMU ended".into()));
            });
        }
        Ok(Booted {
            host: Host {
                ctl: SocketAddr::from((Ipv4Addr::LOCALHOST, ctl)),
                qmp,
            },
            child: Some(child),
            dir: dir.to_owned(),
            temporary,
            ready,
            tail,
            started: Instant::now(),
        })
    }

    /// Waits until dom0 is ready to run guests, for at most
    /// [`BOOT_WITHIN`] from the start; `stopped` is asked all along.
    pub fn wait_ready(&mut self, stopped: &dyn Fn() -> bool) -> Result<Duration, XenError> {
        loop {
            if stopped() {
                return Err(XenError::Stopped);
            }
            let Some(left) = BOOT_WITHIN.checked_sub(self.started.elapsed()) else {
                return Err(XenError::Dom0(
                    format!("dom0 did not come up within {} s", BOOT_WITHIN.as_secs()),
                    self.tail(),
                ));
            };
            match self
                .ready
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(Ok(())) => return Ok(self.started.elapsed()),
                Ok(Err(why)) => return Err(XenError::Dom0(why, self.tail())),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(XenError::Dom0("QEMU ended".into(), self.tail()))
                }
            }
        }
    }

    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The last lines of its console.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().map(|l| format!("  {l}\n")).collect()
    }

    /// Where it keeps its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes QEMU out, for a [`crate::guest::Stop`] to hold.
    pub fn take_child(&mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn push(tail: &Tail, line: String) {
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == 40 {
        t.pop_front();
    }
    t.push_back(line);
}

/// Reads QEMU's serial console (Xen's and dom0's messages): every line to
/// `log`, the last ones to `tail`, and news of dom0 to `ready`.
fn watch_console(
    out: impl Read + Send + 'static,
    mut log: Option<std::fs::File>,
    tail: Tail,
    ready: mpsc::Sender<Result<(), String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r').to_owned();
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{text}");
            }
            if text.contains("nym-dom0: ready") {
                let _ = ready.send(Ok(()));
            } else if text.contains("Kernel panic") || text.contains("Panic on CPU") {
                push(&tail, text.clone());
                let _ = ready.send(Err(format!("dom0 failed: {text}")));
            }
            push(&tail, text);
        }
    });
}

/// nym's scripts, as an archive appended to the base initramfs.
fn overlay() -> Vec<u8> {
    let mut a = Archive::default();
    a.dir("nym");
    a.file("init", 0o755, INIT.as_bytes());
    a.file("nym/agent", 0o755, AGENT.as_bytes());
    a.file("nym/relay", 0o755, RELAY.as_bytes());
    a.finish()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// QEMU's arguments: Xen as the kernel, dom0's kernel and initramfs as
/// its modules, QEMU's user network with the agent's forward, the host's
/// files over 9p, and QMP.
pub fn args(image: &Image, initrd: &Path, qmp: &Path, ctl: u16) -> Vec<String> {
    let mut a: Vec<String> = [
        "-nographic",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-M",
        "q35",
        "-cpu",
        "max",
        "-device",
        "intel-iommu",
    ]
    .map(String::from)
    .to_vec();
    a.extend([
        "-m".into(),
        format!("{MACHINE_MB}M"),
        "-kernel".into(),
        image.xen.display().to_string(),
        // Multiboot modules: dom0's kernel with its command line, then
        // its initramfs.
        "-initrd".into(),
        format!(
            "{} console=hvc0 quiet,{}",
            image.kernel.display(),
            initrd.display()
        ),
        "-append".into(),
        format!("console=com1 dom0_mem={DOM0_MB}M dom0_max_vcpus=1 iommu=1 guest_loglvl=all"),
        "-netdev".into(),
        format!("user,id=net0,net=192.168.76.0/24,hostfwd=tcp:127.0.0.1:{ctl}-:{AGENT_PORT}"),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
        "-virtfs".into(),
        "local,path=/,mount_tag=host,security_model=none,id=host".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ]);
    a
}

/// The state file of a shared dom0, for [`Host::shared`].
pub fn write_state(dir: &Path, host: &Host) -> std::io::Result<()> {
    let tmp = dir.join("state.tmp");
    std::fs::write(
        &tmp,
        format!(
            "pid {}\nctl {}\nqmp {}\n",
            std::process::id(),
            host.ctl.port(),
            host.qmp.display()
        ),
    )?;
    std::fs::rename(tmp, dir.join("state"))
}

/// `nym dom0`: boots a dom0 in `dir` and keeps it until `stop` says so
/// (or QEMU ends), for runs to share; its boot time.
pub fn serve(dir: &Path, out: &Out, stop: &dyn Fn() -> bool) -> Result<(), XenError> {
    if let Some(host) = Host::shared(dir) {
        return Err(XenError::Io(format!(
            "a dom0 already runs for {} (its agent at {})",
            dir.display(),
            host.ctl
        )));
    }
    let image = Image::find()?;
    crate::qemu::check_version().map_err(XenError::Qemu)?;
    out.line("nym: booting Xen 4.17 and its Linux dom0 in QEMU (software emulation: about 30 s)");
    let mut booted = Booted::start(&image, dir, false)?;
    let took = booted.wait_ready(stop)?;
    write_state(dir, &booted.host).map_err(|e| XenError::Io(format!("writing the state: {e}")))?;
    out.line(&format!(
        "nym: dom0 is up after {:.1} s; `nym run --target xen` starts its guests there until this ends (Ctrl-C); its console is in {}",
        took.as_secs_f64(),
        dir.join("console.log").display()
    ));
    while !stop() && booted.running() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(dir.join("state"));
    if !booted.running() && !stop() {
        return Err(XenError::Dom0("QEMU ended".into(), booted.tail()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_boots_xen_with_dom0_as_its_modules() {
        let image = Image {
            xen: "/c/xen".into(),
            kernel: "/c/vmlinuz".into(),
            initrd: "/c/initrd.gz".into(),
        };
        let a = args(
            &image,
            Path::new("/s/initrd"),
            Path::new("/s/qmp.sock"),
            4000,
        )
        .join(" ");
        assert!(
            a.contains("-kernel /c/xen -initrd /c/vmlinuz console=hvc0 quiet,/s/initrd"),
            "{a}"
        );
        assert!(a.contains("-device intel-iommu"), "{a}");
        assert!(a.contains("hostfwd=tcp:127.0.0.1:4000-:1"), "{a}");
        assert!(
            a.contains("-qmp unix:/s/qmp.sock,server=on,wait=off"),
            "{a}"
        );
    }

    #[test]
    fn the_overlay_carries_the_scripts() {
        let bytes = overlay();
        let text = String::from_utf8_lossy(&bytes);
        for name in ["init\0", "nym/agent\0", "nym/relay\0"] {
            assert!(text.contains(name), "{name}");
        }
        assert!(
            text.contains("nc -ll -p 1 -e /nym/agent"),
            "the agent's port"
        );
    }

    /// The relay run on this host with a stand-in `nc` that dies of
    /// SIGSEGV its first `deaths` times and then exits with `last`: (the
    /// relay's status, how many times nc ran).
    fn relay_with(deaths: u32, last: i32) -> (i32, u32) {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let nc = dir.path().join("nc");
        std::fs::write(
            &nc,
            format!(
                "#!/bin/sh\n[ \"$*\" = \"10.0.2.15 8443\" ] || exit 99\n\
                 echo x >> {count}\n\
                 [ $(wc -l < {count}) -le {deaths} ] && kill -SEGV $$\n\
                 exit {last}\n",
                count = count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&nc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(RELAY)
            .env("PATH", path)
            .env("NYM_RELAY_TO", "10.0.2.15 8443")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let runs = std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count();
        (status.code().unwrap_or(-1), runs as u32)
    }

    #[test]
    fn the_relay_starts_nc_again_after_it_crashed_and_only_then() {
        // Two crashes, then a clean end: the connection goes on.
        assert_eq!(relay_with(2, 0), (0, 3));
        // An nc that ends by itself (refused, or done) is not run again.
        assert_eq!(relay_with(0, 1), (1, 1));
        assert_eq!(relay_with(1, 1), (1, 2));
        // A crash every time: five tries, then the crash is the status.
        assert_eq!(relay_with(99, 0), (139, 5));
    }

    #[test]
    fn a_state_file_of_a_dead_process_is_no_dom0() {
        let dir = std::env::temp_dir().join(format!("nym-dom0-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state"), "pid 999999999\nctl 4000\nqmp /x\n").unwrap();
        assert!(Host::shared(&dir).is_none());
        write_state(
            &dir,
            &Host {
                ctl: SocketAddr::from((Ipv4Addr::LOCALHOST, 4001)),
                qmp: "/q".into(),
            },
        )
        .unwrap();
        let host = Host::shared(&dir).expect("this process is alive");
        assert_eq!(host.ctl.port(), 4001);
        assert_eq!(host.qmp, Path::new("/q"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
