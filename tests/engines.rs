//! The engines nym hands images to, when something is wrong: a libvirtd
//! that does not answer, a domain name that is someone else's, a QEMU too
//! old for nym's options, a `nym run` killed outright. Each gets one clear
//! error and a non-zero status, and nothing is left defined or running.
mod common;

use common::{nym, project, run, stderr};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh runs")
}

/// The one `nym: error` line of a failed run, checked to be the only one.
fn one_error(out: &std::process::Output) -> String {
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("nym: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_owned()
}

#[test]
fn a_libvirtd_that_does_not_answer_is_one_line() {
    if !common::libvirt_available() {
        return;
    }
    let (_tmp, dir) = project("nodaemon", "hello");
    let out = run(nym(&dir)
        .env(
            "NYM_LIBVIRT_URI",
            "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
        )
        .args(["run", "--target", "libvirt"]));
    let line = one_error(&out);
    assert!(
        line.contains("libvirtd does not answer at qemu+unix"),
        "{line}"
    );
    assert!(stderr(&out).contains("hint: start it"), "{}", stderr(&out));
}

#[test]
fn a_domain_nym_did_not_make_is_left_alone() {
    if !common::libvirt_available() {
        return;
    }
    let (tmp, dir) = project("taken", "hello");
    // Someone's own domain, named as nym would name this project's.
    let xml = tmp.path().join("theirs.xml");
    std::fs::write(
        &xml,
        "<domain type='kvm'><name>nym-taken</name><memory unit='MiB'>32</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>",
    )
    .unwrap();
    let defined = virsh(&["define", xml.to_str().unwrap()]);
    assert!(
        defined.status.success(),
        "{}",
        String::from_utf8_lossy(&defined.stderr)
    );
    let out = run(nym(&dir).args(["run", "--target", "libvirt"]));
    let line = one_error(&out);
    let dump = virsh(&["dumpxml", "nym-taken"]);
    let _ = virsh(&["undefine", "nym-taken"]);
    assert!(
        line.contains("already has a domain named `nym-taken` that nym did not make"),
        "{line}"
    );
    assert!(
        dump.status.success() && !String::from_utf8_lossy(&dump.stdout).contains("nym.dev"),
        "their domain is as it was"
    );
}

#[test]
fn a_domain_nym_left_behind_is_replaced_and_none_outlives_its_run() {
    if !common::libvirt_available() {
        return;
    }
    let (_tmp, dir) = project("leftover", "hello");
    let built = run(nym(&dir).args(["build", "--target", "libvirt"]));
    assert!(built.status.success(), "{}", stderr(&built));
    // A run that was killed would leave its domain defined: nym's own.
    let xml = dir.join("target/nym/libvirt/leftover.xml");
    assert!(virsh(&["define", xml.to_str().unwrap()]).status.success());
    let out = run(nym(&dir).args(["run", "--target", "libvirt", "--", "--count", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(common::stdout(&out).contains("hello from nym #1"));
    assert!(
        !virsh(&["dominfo", "nym-leftover"]).status.success(),
        "the domain is gone after the run"
    );
}

#[test]
fn a_qemu_too_old_is_one_line_before_anything_runs() {
    let (tmp, dir) = project("oldqemu", "hello");
    let fake = tmp.path().join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'QEMU emulator version 4.2.1 (Debian 1:4.2-3ubuntu6)'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for target in ["qemu", "xen"] {
        let out = run(nym(&dir)
            .env("NYM_QEMU", &fake)
            .env("NYM_XEN", &fake)
            .args(["run", "--target", target]));
        let line = one_error(&out);
        assert!(
            line.contains("QEMU 4.2 is too old: nym needs 7.0 or later"),
            "{target}: {line}"
        );
        assert!(
            !stderr(&out).contains("Compiling"),
            "checked before the build"
        );
    }
}

/// Whether a QEMU whose command line names `what` runs.
fn qemu_running(what: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", &format!("qemu-system-x86_64.*{what}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn qemu_ends_with_a_nym_run_killed_outright() {
    if !common::qemu_available() {
        return;
    }
    let (_tmp, dir) = project("orphan", "hello");
    let mut child = nym(&dir)
        .args([
            "run", "--target", "qemu", "--", "--count", "100000", "--pause", "1s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !qemu_running("orphan.elf") {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "QEMU never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap(); // SIGKILL: nym runs no handler.
    let _ = child.wait();
    let gone = Instant::now();
    while qemu_running("orphan.elf") {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "QEMU outlived the nym that started it"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
