//! Helpers shared by the end-to-end tests: run the real `nym` binary in a
//! project, with generated builds sharing one target directory.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Fails loudly under CI when `/dev/kvm` is missing; elsewhere says why the
/// test does nothing and returns false.
pub fn kvm_available() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but /dev/kvm cannot be opened: KVM tests must run in CI"
        );
        eprintln!("skipped: /dev/kvm cannot be opened here");
    }
    ok
}

/// Replaces a project's application and graph.
pub fn rewrite(dir: &Path, lib_rs: &str, graph: &str) {
    std::fs::write(dir.join("src/lib.rs"), lib_rs).unwrap();
    std::fs::write(dir.join("unikernel.nym"), graph).unwrap();
}

/// Fails loudly under CI when QEMU (or KVM, which it uses) is missing;
/// elsewhere says why the test does nothing and returns false.
pub fn qemu_available() -> bool {
    let ok = kvm_available()
        && Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but qemu-system-x86_64 cannot run: scripts/install.sh installs it"
        );
        eprintln!("skipped: qemu-system-x86_64 is not installed");
    }
    ok
}

/// Fails loudly under CI when QEMU or the Xen hypervisor image is missing;
/// elsewhere says why the test does nothing and returns false. (Xen runs in
/// QEMU's software emulation: no KVM needed.)
pub fn xen_available() -> bool {
    let xen = std::env::var_os("NYM_XEN").map_or_else(
        || PathBuf::from("/var/cache/nym/xen-4.17-amd64"),
        PathBuf::from,
    );
    let ok = xen.is_file()
        && Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but Xen ({}) or QEMU is missing: scripts/install.sh installs them",
            xen.display()
        );
        eprintln!("skipped: no Xen hypervisor image or no QEMU");
    }
    ok
}
