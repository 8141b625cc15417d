//! The qemu target end to end: the image booted through its PVH entry
//! under `qemu-system-x86_64 -accel kvm`, compared with the in-process run.
mod common;
use common::{nym, project, qemu_available, rewrite, run, stderr, stdout};

#[test]
fn hello_under_qemu_prints_what_it_prints_in_process() {
    if !qemu_available() {
        return;
    }
    let (_tmp, dir) = project("qemuhello", "hello");
    let unix = run(nym(&dir).args(["run", "--", "--count", "2"]));
    assert!(unix.status.success());
    let qemu = run(nym(&dir).args(["run", "--target", "qemu", "--", "--count", "2"]));
    assert!(qemu.status.success(), "exit {:?}", qemu.status);
    assert_eq!(
        stdout(&qemu),
        stdout(&unix),
        "no firmware noise, same output"
    );

    let build = run(nym(&dir).args(["build", "--target", "qemu"]));
    assert!(build.status.success());
    let line = stdout(&build);
    assert!(line.starts_with("qemu-system-x86_64 -accel kvm"), "{line}");
    assert!(
        line.contains("-kernel ") && line.contains("target/nym/qemu/qemuhello.elf"),
        "{line}"
    );
}

#[test]
fn guest_status_panics_and_crashes_come_back_from_qemu() {
    if !qemu_available() {
        return;
    }
    let (_tmp, dir) = project("qemucrash", "hello");
    rewrite(
        &dir,
        r#"#![no_std]
use libos::Console;
pub async fn start(console: impl Console, how: u32) -> Result<(), &'static str> {
    let _ = console.log("starting").await;
    match how {
        0 => Err("nope"),
        1 => panic!("qemu guest gave up"),
        // SAFETY: a deliberate null dereference.
        2 => { let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) }; if v == 7 { Ok(()) } else { Err("?") } }
        _ => Ok(()),
    }
}
"#,
        "let j = job qemucrash::start(console::default(), key(\"how\", 9));\nregister(\"qemucrash\", [j]);\n",
    );
    let ok = run(nym(&dir).args(["run", "--target", "qemu"]));
    assert_eq!(ok.status.code(), Some(0));
    let failed = run(nym(&dir).args(["run", "--target", "qemu", "--", "--how", "0"]));
    assert_eq!(failed.status.code(), Some(1));
    assert!(stdout(&failed).contains("qemucrash: job j failed: nope"));
    let panicked = run(nym(&dir).args(["run", "--target", "qemu", "--", "--how", "1"]));
    assert_eq!(panicked.status.code(), Some(101));
    assert!(stdout(&panicked).contains("qemu guest gave up"));
    let crashed = run(nym(&dir).args(["run", "--target", "qemu", "--", "--how", "2"]));
    assert_eq!(crashed.status.code(), Some(124));
    let report = stderr(&crashed);
    assert!(
        report.contains("guest crashed: page fault (vector 14) at address 0x0"),
        "{report}"
    );
    assert!(
        report.contains("qemucrash::start"),
        "symbolised from the image: {report}"
    );
}

#[test]
fn kv_under_qemu_prints_what_a_first_unix_run_prints() {
    if !qemu_available() {
        return;
    }
    let (_tmp, dir) = project("qemustore", "kv");
    let unix = run(nym(&dir).arg("run"));
    let qemu = run(nym(&dir).args(["run", "--target", "qemu"]));
    assert!(qemu.status.success(), "exit {:?}", qemu.status);
    assert_eq!(stdout(&qemu), stdout(&unix));
}
