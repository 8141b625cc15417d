//! Helpers shared by the end-to-end tests: run the real `nym` binary in a
//! project, with generated builds sharing one target directory.
#![allow(unreachable_pub)] // shared by several test binaries, each using some
#![allow(dead_code)]
pub mod net;
pub mod tls;
pub mod tmux;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e")
}

pub fn nym(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nym"));
    c.current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("NO_COLOR", "1");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("nym starts");
    eprintln!(
        "--- stderr of {cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A new project from `template` in a fresh temporary directory.
pub fn project(name: &str, template: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(nym(tmp.path()).args(["new", name, "--template", template]));
    assert!(out.status.success(), "nym new failed");
    let dir = tmp.path().join(name);
    (tmp, dir)
}

/// `ok`, or, when a peer or device the test needs is missing, a loud
/// failure under CI (`CI=true`) and a note saying why the test does nothing
/// elsewhere.
pub fn required(ok: bool, missing: &str) -> bool {
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI=true but {missing}");
        eprintln!("skipped: {missing}");
    }
    ok
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether KVM can be used (see [`required`]).
pub fn kvm_available() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    required(ok, "/dev/kvm cannot be opened: the KVM tests must run")
}

/// Replaces a project's application and graph.
pub fn rewrite(dir: &Path, lib_rs: &str, graph: &str) {
    std::fs::write(dir.join("src/lib.rs"), lib_rs).unwrap();
    std::fs::write(dir.join("unikernel.nym"), graph).unwrap();
}

/// Whether the image at `path` links functions of `krate` (from its
/// symbol table: debug info names types of crates whose code is not there).
pub fn links(path: &Path, krate: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image = nym_hvt::elf::Image::parse(bytes).expect("a valid image");
    let prefix = format!("{krate}::");
    let inner = format!("<{krate}::");
    let found = image
        .function_names()
        .any(|n| n.starts_with(&prefix) || n.contains(&inner));
    found
}

/// A project whose build would take ten minutes (its build script
/// sleeps): for what Ctrl-C does during a build.
pub fn slow_build_project(name: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = project(name, "hello");
    std::fs::write(
        dir.join("build.rs"),
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(600)); }\n",
    )
    .unwrap();
    (tmp, dir)
}

/// Waits for `child` to end, for at most `within`; its status. A child
/// still running then is killed, and the test fails saying `what`.
pub fn exit_within(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if started.elapsed() >= within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether QEMU (with KVM, which it uses) can run (see [`required`]).
pub fn qemu_available() -> bool {
    kvm_available()
        && required(
            runs("qemu-system-x86_64"),
            "qemu-system-x86_64 cannot run: scripts/install.sh installs it",
        )
}

/// Whether a libvirtd answers on `qemu:///system`, starting one (with its
/// log daemon) when it is installed but not running, as CI needs (see
/// [`required`]).
pub fn libvirt_available() -> bool {
    let answers = || {
        Command::new("virsh")
            .args(["-c", "qemu:///system", "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    static START: std::sync::Once = std::sync::Once::new();
    START.call_once(|| {
        if !answers() && Path::new("/usr/sbin/libvirtd").exists() {
            let _ = Command::new("/usr/sbin/virtlogd").arg("-d").status();
            let _ = Command::new("/usr/sbin/libvirtd").arg("-d").status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !answers() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    qemu_available()
        && required(
            answers(),
            "libvirtd does not answer at qemu:///system: scripts/install.sh installs libvirt",
        )
}

/// Whether QEMU, the Xen hypervisor image and the dom0 image are there
/// (see [`required`]). Xen runs in QEMU's software emulation: no KVM
/// needed.
pub fn xen_available() -> bool {
    let found = nym_driver::xen::hypervisor();
    let missing = match &found {
        Ok(_) => "QEMU is missing: scripts/install.sh installs it".to_owned(),
        Err(e) => e.to_string(),
    };
    required(found.is_ok() && runs("qemu-system-x86_64"), &missing)
}

/// A `nym run` in the background, stopped with Ctrl-C when dropped.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nym starts");
        let (tx, lines) = mpsc::channel();
        fn forward(out: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("server: {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        forward(child.stdout.take().unwrap(), tx.clone());
        forward(child.stderr.take().unwrap(), tx);
        Server { child, lines }
    }

    /// Waits (building takes a while the first time) for a line of its
    /// stdout or stderr containing `text`; returns the lines before it.
    /// Waits for lines containing each of `texts`, in any order (stdout
    /// and stderr are read apart, so their lines may interleave either way).
    pub fn wait_for_all(&mut self, texts: &[&str]) {
        let mut left: Vec<&str> = texts.to_vec();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !left.is_empty() && Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => left.retain(|t| !line.contains(t)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        assert!(left.is_empty(), "no {left:?} from nym run");
    }

    pub fn wait_for(&mut self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut before = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(text) => return before,
                Ok(line) => before.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nym run ended ({status}) before printing {text:?}");
            }
        }
        panic!("no {text:?} from nym run");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on this host right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `GET path` on a fresh connection: the body, or why there is none.
pub fn get(port: u16, path: &str) -> Result<String, std::io::Error> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned()))
}

pub fn put(port: u16, path: &str, body: &str) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
}

pub fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

pub fn wait_for_body(port: u16, path: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if get(port, path).is_ok_and(|b| b == want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never answered {want:?}");
}
