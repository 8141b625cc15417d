//! The block contract (`libos::conformance::block`) on every block
//! backend a guest can have, and persistence across two boots: nym's
//! monitor serving a host file (kvm), virtio-blk over virtio-mmio (QEMU's
//! microvm) and over virtio-pci (QEMU's q35, what libvirt gives), and
//! `block::file` in-process. (`block::mem` and `block::file` are checked
//! by the unit tests of libos and nym-unix.) Then what a bad block file
//! gets: one clear line, a non-zero status, nothing left running.
mod common;

use common::{nym, project, run, stderr, stdout};
use std::path::Path;

/// A project whose job checks its `block::file` (tests/fixtures/blockcheck).
fn blockcheck() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, dir) = project("blockcheck", "hello");
    common::rewrite(
        &dir,
        include_str!("fixtures/blockcheck/lib.rs"),
        include_str!("fixtures/blockcheck/unikernel.nym"),
    );
    (tmp, dir)
}

/// Boots twice on `args` with the disk `disk` (the graph's own if none):
/// the contract and the mark, then the mark again.
fn check_and_reopen(dir: &Path, args: &[&str], disk: Option<&str>) {
    let block: Vec<&str> = disk.map_or(vec![], |d| vec!["--block", d]);
    let first = run(nym(dir)
        .arg("run")
        .args(args)
        .args(&block)
        .args(["--", "--phase", "check"]));
    let out = stdout(&first);
    assert!(
        first.status.success() && out.contains("block contract: 8 checks passed; marked"),
        "{args:?}: {}\n{out}\n{}",
        first.status,
        stderr(&first)
    );
    let second = run(nym(dir)
        .arg("run")
        .args(args)
        .args(&block)
        .args(["--", "--phase", "reopen"]));
    assert!(
        second.status.success() && stdout(&second).contains("the mark survived"),
        "{args:?}: {}\n{}\n{}",
        second.status,
        stdout(&second),
        stderr(&second)
    );
}

#[test]
fn in_process_the_host_file_keeps_the_contract_and_the_mark() {
    let (_tmp, dir) = blockcheck();
    check_and_reopen(&dir, &[], None);
    assert!(dir.join("disk.img").exists(), "the graph's file");
    // --block is a guest's disk; in-process the graph names the file.
    let out = run(nym(&dir).args(["run", "--block", "other.img"]));
    assert!(
        stderr(&out).contains("--block gives a guest its disk"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn nyms_monitor_keeps_the_block_contract_and_the_mark() {
    if !common::kvm_available() {
        return;
    }
    let (_tmp, dir) = blockcheck();
    check_and_reopen(&dir, &["--target", "kvm"], Some("kvm.img"));
}

#[test]
fn virtio_blk_over_mmio_and_pci_keeps_the_block_contract_and_the_mark() {
    if !common::qemu_available() {
        return;
    }
    let (_tmp, dir) = blockcheck();
    check_and_reopen(&dir, &["--target", "qemu"], Some("microvm.img"));
    check_and_reopen(
        &dir,
        &["--target", "qemu", "--machine", "q35"],
        Some("q35.img"),
    );
    // One disk, one format: what microvm wrote, q35 reads.
    let reopen = run(nym(&dir).args([
        "run",
        "--target",
        "qemu",
        "--machine",
        "q35",
        "--block",
        "microvm.img",
        "--",
        "--phase",
        "reopen",
    ]));
    assert!(reopen.status.success(), "{}", stderr(&reopen));
}

#[test]
fn a_bad_block_file_gets_one_clear_line_and_nothing_runs() {
    if !common::qemu_available() {
        return;
    }
    let (tmp, dir) = blockcheck();
    // A directory where the file should be.
    std::fs::create_dir(dir.join("dir.img")).unwrap();
    // A file of the wrong size.
    std::fs::write(dir.join("odd.img"), [0u8; 1000]).unwrap();
    // A file nym may not read (root reads anything: a file in a directory
    // that does not exist stands for it).
    let missing_dir = tmp.path().join("no/such/dir/disk.img");
    for (target, file, want) in [
        ("qemu", "dir.img", "it is not a regular file"),
        ("libvirt", "dir.img", "it is not a regular file"),
        (
            "qemu",
            "odd.img",
            "1000 bytes, is not a positive multiple of 512",
        ),
        (
            "kvm",
            "odd.img",
            "1000 bytes, is not a positive multiple of 512",
        ),
        (
            "qemu",
            missing_dir.to_str().unwrap(),
            "No such file or directory",
        ),
    ] {
        let out = run(nym(&dir).args(["run", "--target", target, "--block", file]));
        assert_eq!(out.status.code(), Some(1), "{target} {file}");
        let err = stderr(&out);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("nym: error"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(want), "{target} {file}: {err}");
        assert!(
            !err.contains("Compiling"),
            "refused before the build: {err}"
        );
    }
    // --block for a graph with no block device.
    let (_tmp2, hello) = project("noblock", "hello");
    let out = run(nym(&hello).args(["run", "--target", "qemu", "--block", "x.img"]));
    assert!(
        stderr(&out).contains("the graph has no block::file for it"),
        "{}",
        stderr(&out)
    );
    assert!(!hello.join("x.img").exists());
}
