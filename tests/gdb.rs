//! Step-debugging guests with the stock gdb (`/usr/bin/gdb`, batch mode)
//! against nym's monitor on /dev/kvm: breakpoints by source line, bt,
//! next, locals, hardware breakpoints, watchpoints on a static, Ctrl-C of
//! a sleeping guest, detach, kill, a gdb that dies mid-session, a port in use.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, kvm_available, nym, project, required, rewrite, run, runs};

const APP: &str = r#"#![no_std]
extern crate alloc;
use core::time::Duration;
use libos::{Console, Time};

/// Written by the job, for watchpoints.
#[no_mangle]
pub static mut NYM_COUNTER: u64 = 0;

pub async fn start(console: impl Console, time: impl Time, count: u32, pause: Duration) {
    for i in 1..=count {
        // SAFETY: one job, no other writer.
        unsafe { core::ptr::addr_of_mut!(NYM_COUNTER).write_volatile(u64::from(i)) };
        let line = alloc::format!("tick {i}");
        let _ = console.log(&line).await;
        time.sleep(pause).await;
    }
    let _ = console.log("done").await;
}
"#;
const TICK_LINE: u32 = 14; // `let line = ...`

fn gdb_available() -> bool {
    kvm_available()
        && required(
            runs("gdb"),
            "gdb cannot run: scripts/install.sh installs it",
        )
}

/// One `ticker` build at a time (see [`ticker`]).
fn building() -> std::sync::MutexGuard<'static, ()> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BUILDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A project with the ticking app, its image built.
///
/// The tests build their `ticker`s at once into one shared target
/// directory (`$CARGO_TARGET_DIR`), where every copy of the crate has the
/// same artifact names: one build at a time, each taking its image before
/// the next build begins. In CI one test's image carried another test's
/// source paths (whose folder was gone, so gdb had no source to list),
/// most likely from a build that ran between another's cargo and its
/// taking the image. (`nym debug` builds too: [`nym_debug`] takes the
/// same turn.)
fn ticker() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let _one = building();
    let (tmp, dir) = project("ticker", "hello");
    rewrite(
        &dir,
        APP,
        "let j = job ticker::start(console::default(), time::default(), key(\"count\", 3), key(\"pause\", 50ms));\nregister(\"ticker\", [j]);\n",
    );
    assert!(run(nym(&dir).args(["build", "--target", "kvm"]))
        .status
        .success());
    let image = dir.join("target/nym/kvm/ticker.elf");
    (tmp, dir, image)
}

/// Boots `image` under the stub and waits until it listens.
fn boot(dir: &Path, image: &Path, port: u16, keys: &[&str]) -> Child {
    let mut child = nym(dir)
        .arg("boot")
        .arg(image)
        .args(["--gdb", &format!("127.0.0.1:{port}"), "--"])
        .args(keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("waits for gdb"), "{line}");
    // Keep draining stderr so the monitor never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    child
}

fn gdb(image: &Path, port: u16, commands: &[&str]) -> Output {
    let mut cmd = Command::new("gdb");
    cmd.args([
        "-batch",
        "-nx",
        "-ex",
        "set confirm off",
        "-ex",
        &format!("target remote 127.0.0.1:{port}"),
    ]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let out = cmd.arg(image).output().unwrap();
    eprintln!(
        "--- gdb:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn finish(mut child: Child) -> (Option<i32>, String) {
    let status = common::exit_within(&mut child, Duration::from_secs(30), "the monitor ends");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    (status.code(), out)
}

#[test]
fn break_bt_next_print_locals_and_detach() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let out = gdb(
        &image,
        port,
        &[
            &format!("break lib.rs:{TICK_LINE}"),
            "continue",
            "bt",
            "print i",
            "next",
            "next",
            "info locals",
            "detach",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("lib.rs:{TICK_LINE}")),
        "stopped at the line: {text}"
    );
    assert!(
        text.contains("#0  ticker::start::{async_fn#0}"),
        "bt shows the job's frame: {text}"
    );
    assert!(text.contains("$1 = 1"), "the local i: {text}");
    assert!(text.contains("count = 3"), "info locals: {text}");
    let (status, output) = finish(monitor);
    assert_eq!(status, Some(0));
    assert_eq!(
        output, "tick 1\ntick 2\ntick 3\ndone\n",
        "after detach the guest ran on, with no breakpoint left"
    );
}

/// gdb attached and the guest stopped at a breakpoint: the monitor's
/// guest thread (now also the stub's) still runs under its seccomp filter.
#[test]
fn the_filter_stays_while_gdb_is_attached() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let tasks = format!("/proc/{}/task/*/status", monitor.id());
    let out = gdb(
        &image,
        port,
        &[
            &format!("break lib.rs:{TICK_LINE}"),
            "continue",
            &format!("shell grep -h -e '^Name:' -e '^Seccomp:' {tasks}"),
            "detach",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("lib.rs:{TICK_LINE}")),
        "stopped: {text}"
    );
    let filtered = text.lines().filter(|l| *l == "Seccomp:\t2").count();
    assert!(
        filtered >= 1,
        "no thread of the monitor is filtered while gdb is attached:\n{text}"
    );
    let (status, _) = finish(monitor);
    assert_eq!(status, Some(0));
}

#[test]
fn hardware_breakpoints_stop_in_the_right_iteration_and_kill_ends_the_guest() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let out = gdb(
        &image,
        port,
        &[
            &format!("hbreak lib.rs:{TICK_LINE}"),
            "continue",
            "continue",
            "print i",
            "stepi",
            "info registers rip",
            "kill",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hardware assisted breakpoint 1"), "{text}");
    assert!(
        text.contains("$1 = 2"),
        "the second hit is the second tick: {text}"
    );
    let (status, output) = finish(monitor);
    assert_eq!(status, Some(137), "kill ends the guest");
    assert_eq!(output, "tick 1\n", "nothing ran after the kill");
}

/// Watchpoints protect the watched page (this project's nested hosts never
/// deliver data-breakpoint traps), so the write faults, and the monitor
/// steps over it and reports the watch. gdb's Rust mode calls a `static
/// mut` a constant, so the watch is written in C.
#[test]
fn a_watchpoint_on_a_static_triggers_at_each_write() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let out = gdb(
        &image,
        port,
        &[
            "set language c",
            "watch *(unsigned long *)&NYM_COUNTER",
            "continue",
            "continue",
            "kill",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hardware watchpoint 1"), "{text}");
    assert!(
        text.contains("Old value = 0") && text.contains("New value = 1"),
        "the first write: {text}"
    );
    assert!(
        text.contains("Old value = 1") && text.contains("New value = 2"),
        "the second write: {text}"
    );
    let (status, _) = finish(monitor);
    assert_eq!(status, Some(137));
}

#[test]
fn ctrl_c_interrupts_a_sleeping_guest() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &["--count", "2", "--pause", "30s"]);
    // gdb turns a SIGINT during `continue` into the remote interrupt, as a
    // user's Ctrl-C does; the guest is asleep in WAIT by then.
    let g = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("target remote 127.0.0.1:{port}"),
            "-ex",
            "continue",
            "-ex",
            // The port write, the hypercall (traced or not), WAIT.
            "bt 3",
            "-ex",
            "kill",
        ])
        .arg(&image)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(Command::new("kill")
        .args(["-INT", &g.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = g.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("SIGINT"), "gdb reports the interrupt: {all}");
    assert!(
        text.contains("hvt::wait"),
        "stopped while asleep in WAIT: {text}"
    );
    let started = Instant::now();
    let (status, output) = finish(monitor);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not after the 30 s sleep"
    );
    assert_eq!(status, Some(137));
    assert_eq!(output, "tick 1\n", "interrupted during the first sleep");
}

#[test]
fn a_gdb_killed_mid_session_leaves_the_guest_to_finish() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let mut g = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("target remote 127.0.0.1:{port}"),
        ])
        .args([
            "-ex",
            &format!("break lib.rs:{TICK_LINE}"),
            "-ex",
            "continue",
            "-ex",
            "shell sleep 60",
        ])
        .arg(&image)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    g.kill().unwrap(); // stopped at a breakpoint, then gone
    let _ = g.wait();
    let (status, output) = finish(monitor);
    assert_eq!(status, Some(0), "the monitor neither hangs nor crashes");
    assert_eq!(
        output, "tick 1\ntick 2\ntick 3\ndone\n",
        "the breakpoint was removed: the guest ran to its end"
    );
}

#[test]
fn a_gdb_port_in_use_is_a_clear_error() {
    if !gdb_available() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let out = run(nym(tmp.path()).args([
        "boot",
        "/nonexistent.elf",
        "--gdb",
        &format!("127.0.0.1:{port}"),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for gdb on 127.0.0.1:{port}"))
            && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn gdb_is_served_on_loopback_only_unless_remote_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let boot = |args: &[&str]| {
        let mut all = vec!["boot", "/nonexistent.elf"];
        all.extend(args);
        let out = run(nym(tmp.path()).args(&all));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = boot(&["--gdb", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--gdb 0.0.0.0:0: gdb's protocol gives whoever connects")
            && err.contains("--gdb-allow-remote"),
        "{err}"
    );
    // Asked for, or on loopback by name: the boot goes on, to the image.
    for args in [
        &["--gdb", "0.0.0.0:0", "--gdb-allow-remote"][..],
        &["--gdb", "localhost:0"],
    ] {
        let (code, err) = boot(args);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            !err.contains("loopback only") && err.contains("/nonexistent.elf"),
            "{args:?}: {err}"
        );
    }
    // The flag means nothing without --gdb.
    let (code, _) = boot(&["--gdb-allow-remote"]);
    assert_eq!(code, Some(2));
}

/// Runs `nym debug ARGS` in `dir` with `input` as gdb's commands (gdb reads
/// them from standard input when it is not a terminal).
fn nym_debug(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    // It builds the image again: a turn of its own, held to the end
    // (its build's end is not visible from here).
    let _one = building();
    let mut child = nym(dir)
        .arg("debug")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn nym_debug_starts_the_guest_with_gdb_attached_and_a_first_breakpoint() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, _image) = ticker();
    let out = nym_debug(
        &dir,
        &["--break", &format!("lib.rs:{TICK_LINE}")],
        b"continue\nprint i\ncontinue\nprint i\ndelete\ncontinue\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Breakpoint 1 at"),
        "the breakpoint is set before the guest starts: {text}"
    );
    assert!(text.contains("$1 = 1") && text.contains("$2 = 2"), "{text}");
    assert!(
        text.contains("tick 3") && text.contains("done"),
        "the guest ran to its end: {text}"
    );
    assert_eq!(out.status.code(), Some(0), "the guest's status");

    // Without --break it stops in the first job's async body.
    let out = nym_debug(&dir, &[], b"continue\ninfo locals\ndelete\ncontinue\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Breakpoint 1.1, ticker::start::{async_fn#0}"),
        "{text}"
    );
    assert!(text.contains("count = 3"), "the job's locals: {text}");
    assert_eq!(out.status.code(), Some(0));
}

/// nym's gdb extension: `break JOB` (gdb's own finds no function named
/// after a generic async job) stops at the first line of the job's body,
/// `info nym-tasks` lists the executor's jobs, and other locations are
/// gdb's own; `nym debug` loads it.
#[test]
fn the_extension_breaks_on_a_job_by_name_and_lists_the_executors_tasks() {
    if !gdb_available() {
        return;
    }
    let (_tmp, dir, image) = ticker();
    let extension = Path::new(env!("CARGO_MANIFEST_DIR")).join("gdb/nym-gdb.py");
    let port = free_port();
    let monitor = boot(&dir, &image, port, &[]);
    let out = gdb(
        &image,
        port,
        &[
            &format!("source {}", extension.display()),
            "break start",
            "break no_such_function",
            "nym-break no_such_job",
            &format!("break lib.rs:{TICK_LINE} if i == 2"),
            "continue",
            "info nym-tasks",
            "continue",
            "print i",
            "delete",
            "continue",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    // The job's body starts at the `for` under its signature (line 11),
    // where it stops once: not at every turn of the loop.
    assert!(
        text.contains("nym: start is a job: breakpoint 1 at its body")
            && text.contains("Breakpoint 1, ticker::start::{async_fn#0}")
            && text.matches("\n11\t    for i in 1..=count {").count() == 1,
        "{text}"
    );
    assert!(
        errors.contains("Function \"no_such_function\" not defined.")
            && errors.contains("no job `no_such_job` in this image"),
        "{errors}"
    );
    assert!(
        text.contains("  0  running       1  j\n") && text.contains("background tasks: 0"),
        "the one job, in its first poll: {text}"
    );
    assert!(text.contains("$1 = 2"), "the condition held: {text}");
    let (status, output) = finish(monitor);
    assert_eq!(status, Some(0), "{output}");
    assert!(output.contains("done"), "{output}");

    // `nym debug --break start` loads it.
    let out = nym_debug(
        &dir,
        &["--break", "start"],
        b"continue\ninfo nym-tasks\ndelete\ncontinue\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Breakpoint 1, ticker::start::{async_fn#0}"),
        "{text}"
    );
    assert!(text.contains("  0  running       1  j\n"), "{text}");
    assert!(dir.join("target/nym/kvm/nym-gdb.py").exists());
    assert_eq!(out.status.code(), Some(0));
}
