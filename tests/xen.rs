//! The xen target as Xen hosts run it, for real: Xen 4.17 and Debian's
//! Linux dom0 in QEMU (software emulation), booted once for this whole
//! test binary by `nym dom0`. Every case is a PVH domU that dom0's `xl
//! create` starts: its console is the PV console ring xenconsoled reads,
//! its disk blkfront on dom0's blkback, its network netfront on dom0's
//! netback and bridge, reached from the host through `-p`.
//!
//! The cases queue for the one dom0 (its agent runs a guest at a time).
//! The times they take are in BENCHMARKS.md, measured with
//! `NYM_XEN_TRACE=1`.
mod common;
use common::net::{curl_available, http_answers_like_a_web_server};
use common::{free_port, nym, project, rewrite, run, shared_target, stderr, stdout, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// The dom0 `nym dom0` keeps for this binary: it ends when the pipe to
/// its standard input closes, that is when this process does.
struct Dom0 {
    _child: Child,
    dir: PathBuf,
}

static DOM0: OnceLock<Option<Dom0>> = OnceLock::new();

/// The shared dom0's state directory (for `NYM_XEN_DOM0`), booting it
/// on first use; `None` where Xen cannot run (see `common::required`).
fn dom0() -> Option<&'static Path> {
    let d = DOM0.get_or_init(|| {
        if !common::xen_available() {
            return None;
        }
        let dir = shared_target().join("xen-dom0");
        std::fs::create_dir_all(&dir).unwrap();
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nym"))
            .arg("dom0")
            .env("NYM_XEN_DOM0", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nym dom0 starts");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("dom0: {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = started + Duration::from_secs(300);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(line) if line.contains("dom0 is up") => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("nym dom0 ended before dom0 was up: {:?}", child.wait())
                }
            }
            assert!(Instant::now() < deadline, "dom0 did not come up in 300 s");
        }
        eprintln!(
            "dom0 up {:.1} s after `nym dom0` started",
            started.elapsed().as_secs_f64()
        );
        Some(Dom0 { _child: child, dir })
    });
    d.as_ref().map(|d| d.dir.as_path())
}

/// `nym` in `dir`, running its xen guests on the shared dom0.
fn on_xen(dir: &Path, dom0: &Path) -> Command {
    let mut c = nym(dir);
    c.env("NYM_XEN_DOM0", dom0);
    c
}

fn xen_run(dir: &Path, dom0: &Path, args: &[&str]) -> Output {
    run(on_xen(dir, dom0)
        .args(["run", "--target", "xen"])
        .args(args))
}

/// `nym run --target xen -p PORT:GUEST` in `dir`, once the guest listens.
fn forwarded(dir: &Path, dom0: &Path, port: u16, guest: u16) -> Server {
    let mut c = on_xen(dir, dom0);
    let g = guest.to_string();
    c.args(["run", "--target", "xen", "-p", &format!("{port}:{g}")])
        .args(["--", "--port", &g]);
    let mut server = Server::start(c);
    server.wait_for(&format!("listening on port {g}"));
    server
}

#[test]
fn hello_on_a_domu_prints_through_the_pv_console_what_it_prints_in_process() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenhello", "hello");
    let keys = ["--", "--count", "3", "--pause", "300ms"];
    let unix = run(nym(&dir).arg("run").args(keys));
    let xen = xen_run(&dir, dom0, &keys);
    assert!(xen.status.success(), "exit {:?}", xen.status);
    assert_eq!(
        stdout(&xen),
        stdout(&unix),
        "the console, the clock and the sleeps of a domU"
    );
    assert!(
        !stderr(&xen).contains("booting Xen"),
        "the shared dom0 ran it: {}",
        stderr(&xen)
    );
}

#[test]
fn kv_counter_survives_a_second_xl_create_on_blkfront() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenkv", "kv");
    for n in 1..=2 {
        let out = xen_run(&dir, dom0, &[]);
        assert!(out.status.success(), "exit {:?}", out.status);
        assert!(
            stdout(&out).starts_with(&format!("run #{n}\n")),
            "the counter is on the disk dom0's blkback serves: {}",
            stdout(&out)
        );
    }
    // The same lines as in-process (whose store is a directory).
    let unix = run(nym(&dir).arg("run"));
    let xen = xen_run(&dir, dom0, &[]);
    assert_eq!(stdout(&xen).replacen("run #3", "run #1", 1), stdout(&unix));
}

#[test]
fn http_and_https_over_netfront_answer_the_host_through_forwarded_ports() {
    let Some(dom0) = dom0() else { return };
    if !curl_available() {
        return;
    }
    let (_tmp, dir) = project("xenweb", "http");
    let port = free_port();
    let server = forwarded(&dir, dom0, port, 8080);
    http_answers_like_a_web_server(None, &format!("http://127.0.0.1:{port}"), None);
    drop(server);

    let (_tmp2, dir) = project("xensecure", "https");
    let port = free_port();
    let _server = forwarded(&dir, dom0, port, 8443);
    let ca = dir.join("tls/ca.pem");
    common::net::https_answers_with_its_certificate(port, ca.to_str().unwrap());
}

#[test]
fn echo_over_netfront_sends_back_every_byte() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenecho", "echo");
    let port = free_port();
    let _server = forwarded(&dir, dom0, port, 7);
    // More than a ring of frames each way, on two connections.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for chunk in [&data[..], b"and a second connection\n"] {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut writer = s.try_clone().unwrap();
        let sent = chunk.to_vec();
        let w = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut back = vec![0; chunk.len()];
        s.read_exact(&mut back).unwrap();
        w.join().unwrap();
        assert!(back == chunk, "the same bytes came back");
    }
}

#[test]
fn build_for_xen_writes_an_xl_config_that_xl_create_runs() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenbuilt", "kv");
    let out = run(nym(&dir).args(["build", "--target", "xen"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = PathBuf::from(stdout(&out).trim());
    assert_eq!(cfg, dir.join("target/nym/xen/xenbuilt.cfg"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let image = dir.join("target/nym/xen/xenbuilt.elf");
    let disk = dir.join("kv.img");
    for want in [
        "type = \"pvh\"".to_owned(),
        format!("kernel = \"{}\"", image.display()),
        "memory = 32".into(),
        "on_crash = \"destroy\"".into(),
        format!(
            "disk = [ \"format=raw, vdev=xvda, access=rw, target={}\" ]",
            disk.display()
        ),
    ] {
        assert!(text.contains(&want), "{want} in:\n{text}");
    }
    assert!(!text.contains("vif"), "kv has no network: {text}");
    // A Xen host runs it as it is; dom0 sees this host's files under
    // /host, so only the paths change.
    std::fs::write(&disk, vec![0u8; 64 << 10]).unwrap();
    let host = |p: &Path| format!("/host{}", p.canonicalize().unwrap().display());
    let moved = text
        .replace(&image.display().to_string(), &host(&image))
        .replace(&disk.display().to_string(), &host(&disk));
    let in_dom0 = cfg.with_extension("host.cfg");
    std::fs::write(&in_dom0, moved).unwrap();
    let console = agent_run(dom0, "xenbuilt", &host(&in_dom0));
    assert!(
        console.iter().any(|l| l == "run #1"),
        "the guest ran: {console:?}"
    );
    assert_eq!(console.last().map(String::as_str), Some("ended poweroff"));
    // The store it wrote is on the file the config names.
    let again = xen_run(&dir, dom0, &[]);
    assert!(stdout(&again).starts_with("run #2\n"), "{}", stdout(&again));

    // An http project's config has its vif on the bridge dom0 makes.
    let (_tmp2, web) = project("xenbuiltweb", "http");
    let out = run(nym(&web).args(["build", "--target", "xen", "--", "--port", "9000"]));
    assert!(out.status.success());
    let text = std::fs::read_to_string(stdout(&out).trim()).unwrap();
    assert!(text.contains("vif = [ \"bridge=xenbr0\" ]"), "{text}");
    assert!(text.contains("cmdline = \"--port 9000\""), "{text}");
    assert!(!text.contains("disk"), "{text}");
}

/// Runs the xl config at `cfg` (a path in dom0) through dom0's agent
/// (`xl create` and the console), as `nym run` does; the guest's console
/// lines, then `ended REASON`.
fn agent_run(dom0: &Path, name: &str, cfg: &str) -> Vec<String> {
    use nym_driver::xen::agent::{Event, Request, Session};
    let host = nym_driver::xen::dom0::Host::shared(dom0).expect("the shared dom0 runs");
    let request = Request {
        name: name.into(),
        cfg: cfg.into(),
        timeout: 120,
        ..Request::default()
    };
    let mut session = Session::start(host.ctl, &request).expect("dom0's agent answers");
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        match session.next_event().expect("the agent's events") {
            Some(Event::Console(l)) => lines.push(l),
            Some(Event::Failed(why)) => panic!("xl create refused it: {why}"),
            Some(Event::Ended(why)) => {
                lines.push(format!("ended {why}"));
                return lines;
            }
            Some(e) => eprintln!("agent: {e:?}"),
            None => {}
        }
    }
    panic!("the guest did not end: {lines:?}");
}

#[test]
fn check_for_xen_accepts_every_template() {
    for template in ["hello", "kv", "echo", "http", "https"] {
        let (_tmp, dir) = project(&format!("xencheck{template}"), template);
        let out = run(nym(&dir).args(["check", "--target", "xen"]));
        assert!(out.status.success(), "{template}: {}", stderr(&out));
    }
}

#[test]
fn without_the_dom0_image_or_xen_nym_says_what_builds_them() {
    let (tmp, dir) = project("xennone", "hello");
    let empty = tmp.path().join("no-dom0-here");
    let out = run(nym(&dir)
        .env("NYM_XEN_DOM0", &empty)
        .env("NYM_XEN_DOM0_IMAGE", &empty)
        .args(["run", "--target", "xen"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no dom0 image in"), "{err}");
    assert!(err.contains("scripts/install.sh builds it"), "{err}");
    assert!(!err.contains("Compiling"), "said before the build: {err}");
    let out = run(nym(&dir)
        .env("NYM_XEN_DOM0", &empty)
        .env("NYM_XEN", &empty)
        .args(["run", "--target", "xen"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no Xen hypervisor at"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_guest_that_panics_on_xen_reports_it_and_fails() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenpanic", "hello");
    rewrite(
        &dir,
        "#![no_std]\nuse libos::Console;\npub async fn start(c: impl Console) {\n    let _ = c.log(\"about to panic\").await;\n    panic!(\"xen guest gave up\");\n}\n",
        "let j = job xenpanic::start(console::default());\nregister(\"xenpanic\", [j]);\n",
    );
    let out = xen_run(&dir, dom0, &[]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    assert!(stdout(&out).contains("about to panic"));
    assert!(
        stdout(&out).contains("xen guest gave up"),
        "the panic message: {}",
        stdout(&out)
    );
}

#[test]
fn a_guest_that_never_shuts_down_is_destroyed_at_its_timeout() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenforever", "hello");
    let out = xen_run(
        &dir,
        dom0,
        &["--timeout", "8s", "--", "--count", "1000", "--pause", "1s"],
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello from nym #1"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("did not shut down within 8 s: its domain was destroyed"),
        "{}",
        stderr(&out)
    );
    let other = run(nym(&dir).args(["run", "--target", "kvm", "--timeout", "8s"]));
    assert_eq!(other.status.code(), Some(2), "--timeout is xen's");
}

/// A domU whose xenstore keys dom0 spoiled before it ran (`NYM_XEN_BEFORE`
/// runs in dom0 between `xl create` and the unpause): the device and the
/// key are named, and the guest stops with a failure instead of hanging.
#[test]
fn malformed_xenstore_keys_name_the_device_and_stop_the_guest() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenspoiled", "echo");
    let out = run(on_xen(&dir, dom0)
        .env(
            "NYM_XEN_BEFORE",
            "xenstore-write /local/domain/$DOMID/device/vif/0/mac zz:16:3e",
        )
        .args(["run", "--target", "xen"]));
    let all = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("netfront (device/vif/0): the key device/vif/0/mac is malformed: 'zz:16:3e'"),
        "{all}"
    );

    let (_tmp2, kv) = project("xenspoiledkv", "kv");
    let out = run(on_xen(&kv, dom0)
        .env(
            "NYM_XEN_BEFORE",
            "xenstore-rm /local/domain/$DOMID/device/vbd/51712/backend",
        )
        .args(["run", "--target", "xen"]));
    let all = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("blkfront (device/vbd/51712): the key device/vbd/51712/backend is missing"),
        "{all}"
    );
}

/// The guest's side of the hypercall ABI broken on purpose: a domU that
/// hands Xen wild pointers, grant references that name nothing, ports it
/// does not own, and a call that does not exist. Xen refuses each with an
/// error the guest sees, the guest runs on and ends cleanly, and dom0 runs
/// the next guest as before.
const HOSTILE: &str = r#"#![no_std]
extern crate alloc;
use alloc::format;
use libos::Console;

/// A raw hypercall (vmmcall on AMD, vmcall on Intel), as a PVH guest may
/// make one without the hypercall page.
fn hypercall(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let vendor: u32;
    // SAFETY: cpuid leaf 0 only reads the vendor.
    unsafe {
        core::arch::asm!("push rbx", "cpuid", "mov {v:e}, ebx", "pop rbx",
            v = out(reg) vendor, inout("eax") 0u32 => _, out("ecx") _, out("edx") _)
    };
    let ret: i64;
    // SAFETY: a hostile guest: the arguments are wrong on purpose; Xen
    // checks them, and preserves every register but rax.
    unsafe {
        if vendor == u32::from_le_bytes(*b"Auth") {
            core::arch::asm!("vmmcall", inlateout("rax") nr as i64 => ret,
                in("rdi") a1, in("rsi") a2, in("rdx") a3)
        } else {
            core::arch::asm!("vmcall", inlateout("rax") nr as i64 => ret,
                in("rdi") a1, in("rsi") a2, in("rdx") a3)
        }
    }
    ret
}

const WILD: u64 = 0xdead_beef_0000;

pub async fn start(console: impl Console) {
    let _ = console.log("hostile domU starting").await;
    // GNTTABOP_map_grant_ref of dom0's reference 0x0fff_ffff.
    let mut map = [0u64; 4];
    map[1] = 2 | (0x0fff_ffffu64 << 32); // flags: GNTMAP_host_map; ref
    map[0] = map.as_ptr() as u64 + 4096 * 1024; // host_addr: far away
    let rc = hypercall(20, 0, map.as_mut_ptr() as u64, 1);
    let status = (map[2] >> 16) as u16 as i16;
    let _ = console.log(&format!("map_grant_ref wild ref: rc {rc} status {status}")).await;
    let r = [
        ("map_grant_ref wild pointer", hypercall(20, 0, WILD, 1)),
        ("grant_table_op wild count", hypercall(20, 0, map.as_ptr() as u64, u64::MAX)),
        ("add_to_physmap wild pointer", hypercall(12, 7, WILD, 0)),
        ("evtchn send wild port", hypercall(32, 4, [4095u32, 0].as_ptr() as u64, 0)),
        ("sched poll wild ports", hypercall(29, 3, [WILD, 1, 1].as_ptr() as u64, 0)),
        ("sched poll too many ports", hypercall(29, 3, [WILD, 1 << 20, 1].as_ptr() as u64, 0)),
        ("no such hypercall", hypercall(63, 0, 0, 0)),
    ];
    for (what, rc) in r {
        let _ = console.log(&format!("{what}: rc {rc}")).await;
    }
    let _ = console.log("hostile domU still running").await;
}
"#;

#[test]
fn wild_hypercalls_and_grant_references_are_refused_and_dom0_runs_on() {
    let Some(dom0) = dom0() else { return };
    let (_tmp, dir) = project("xenhostile", "hello");
    rewrite(
        &dir,
        HOSTILE,
        "let j = job xenhostile::start(console::default());\nregister(\"xenhostile\", [j]);\n",
    );
    let out = xen_run(&dir, dom0, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("hostile domU still running"), "{text}");
    // Xen's answers, as its headers name them: the wild reference is
    // GNTST_bad_gntref (-3) in the op's status, pointers into nothing
    // -EFAULT, counts and ports out of range -EINVAL, the call that does
    // not exist -ENOSYS.
    for want in [
        "map_grant_ref wild ref: rc 0 status -3",
        "map_grant_ref wild pointer: rc -14",
        "grant_table_op wild count: rc -22",
        "add_to_physmap wild pointer: rc -14",
        "evtchn send wild port: rc -22",
        "sched poll wild ports: rc -14",
        "sched poll too many ports: rc -22",
        "no such hypercall: rc -38",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} in:\n{text}");
    }
    // dom0 is fine: the next guest runs.
    let (_tmp2, hello) = project("xenafter", "hello");
    let out = xen_run(&hello, dom0, &["--", "--count", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello from nym #1"));
}
