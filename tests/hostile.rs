//! Hostile inputs to nym's monitor, through the real `nym` binary: images
//! crafted to make boot slow, block files that are not the monitor's to
//! take, a host without entropy, and a guest that breaks the hypercall ABI
//! in the ways `tests/kvm.rs`'s hostile guest does not (an `in`, a load
//! past its memory, sectors and frames out of range, buffers over their
//! own argument struct, a wait without end). Every one ends in a clear
//! report or a clear answer to the guest, never a hung or crashed monitor.
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{free_port, kvm_available, nym, run, stderr, stdout};

/// The guest: hypercalls written by hand, as in `tests/kvm.rs`, beside the
/// devices of a well-behaved one (a disk, entropy, a network).
const HOSTILE: &str = r#"#![no_std]
extern crate alloc;
use alloc::format;
use core::ptr::{read_volatile, write_volatile};
use libos::{Block, Console, Netif, Random};

fn hypercall(nr: u16, arg: u64) {
    // SAFETY: a hostile guest: the arguments are wrong on purpose.
    unsafe { core::arch::asm!("out dx, eax", in("dx") 0x500u16 + nr, in("eax") arg as u32) }
}

/// An argument struct with a sector's room behind it.
#[repr(C, align(8))]
struct Args([u64; 64]);

impl Args {
    fn at(&self) -> u64 {
        self as *const Args as u64
    }
    /// Writes the first words (volatile: only the monitor reads them).
    fn set(&mut self, words: &[u64]) {
        for (slot, w) in self.0.iter_mut().zip(words) {
            // SAFETY: writing our own array.
            unsafe { write_volatile(slot, *w) }
        }
    }
    fn word(&self, i: usize) -> u64 {
        // SAFETY: reading our own array, which the monitor may have written.
        unsafe { read_volatile(&self.0[i]) }
    }
}

/// Breaks the ABI as `case` says, then says it is still running.
pub async fn start(console: impl Console, _disk: impl Block, random: impl Random, _net: impl Netif, case: u32) {
    let _ = console.log("hostile guest starting").await;
    let mut a = Args([0; 64]);
    let buf = Args([0; 64]);
    let (at, buf) = (a.at(), buf.at());
    match case {
        // Entropy, twice: each answer as the guest sees it.
        1 => {
            for i in 1..=2 {
                let mut bytes = [0u8; 16];
                let line = match random.fill(&mut bytes) {
                    Ok(()) => format!("random {i}: ok"),
                    Err(e) => format!("random {i}: failed: {e}"),
                };
                let _ = console.log(&line).await;
            }
        }
        // `in` from a port nobody serves, then from a hypercall's port.
        2 => {
            let _v: u8;
            // SAFETY: port input has no effect on memory.
            unsafe { core::arch::asm!("in al, dx", in("dx") 0x3f8u16, out("al") _v) }
        }
        3 => {
            let _v: u32;
            // SAFETY: as above.
            unsafe { core::arch::asm!("in eax, dx", in("dx") 0x509u16, out("eax") _v) }
        }
        // A load from past guest memory, through a 2 MiB page the guest
        // maps itself in its own page tables.
        4 => {
            let far = 0x1000_0000u64;
            let frame = 0x000f_ffff_ffff_f000u64;
            // SAFETY: not safe at all: this guest edits its page tables.
            let v = unsafe {
                let cr3: u64;
                core::arch::asm!("mov {}, cr3", out(reg) cr3);
                let pdpt = read_volatile((cr3 & frame) as *const u64) & frame;
                let pd = read_volatile(pdpt as *const u64) & frame;
                write_volatile((pd as *mut u64).add((far >> 21) as usize), far | 0x83);
                core::arch::asm!("invlpg [{}]", in(reg) far);
                read_volatile(far as *const u64)
            };
            let _ = console.log(&format!("read {v} past memory")).await;
        }
        // BLOCK_READ and BLOCK_WRITE at the last sector there could be.
        5 | 6 => {
            a.set(&[9, u64::MAX, buf, 512]);
            hypercall(if case == 5 { 6 } else { 7 }, at);
            let _ = console.log(&format!("block at sector u64::MAX: ret {}", a.word(0))).await;
            a.set(&[9, u64::MAX / 512, buf, 1024]);
            hypercall(if case == 5 { 6 } else { 7 }, at);
            let _ = console.log(&format!("block at sector u64::MAX / 512: ret {}", a.word(0))).await;
        }
        // NET_WRITE of a frame a byte over the MTU, then of a megabyte.
        7 => {
            for len in [1515, 1 << 20] {
                a.set(&[9, 0x10_0000, len]);
                hypercall(12, at);
                let _ = console.log(&format!("frame of {len} bytes: ret {}", a.word(0))).await;
            }
        }
        // Buffers laid over their own argument struct: the monitor writes
        // the result last, so it is what the guest reads.
        8 => {
            a.set(&[at, 24, 9]);
            hypercall(8, at);
            let _ = console.log(&format!("RANDOM over itself: ret {}", a.word(2))).await;
            a.set(&[9, 0, at, 512]);
            hypercall(6, at);
            let _ = console.log(&format!("BLOCK_READ over itself: ret {}", a.word(0))).await;
            a.set(&[9, at, 64]);
            hypercall(13, at);
            let _ = console.log(&format!("NET_READ over itself: ret {} len {}", a.word(0), a.word(2))).await;
            a.set(&[9, at, 24]);
            hypercall(12, at);
            let _ = console.log(&format!("NET_WRITE over itself: ret {}", a.word(0))).await;
        }
        // One WAIT for as long as there is: the monitor bounds it.
        9 => {
            a.set(&[u64::MAX]);
            hypercall(4, at);
            let _ = console.log("woke from WAIT u64::MAX").await;
        }
        // WAIT u64::MAX for ever: only a stop ends it.
        10 => {
            let _ = console.log("waiting for ever").await;
            loop {
                a.set(&[u64::MAX]);
                hypercall(4, at);
            }
        }
        _ => {}
    }
    let _ = console.log("still running").await;
}
"#;

const GRAPH: &str = "let j = job hostile::start(console::default(), block::file(\"disk.img\", size = 64KiB), random::default(), netif::default(), key(\"case\", 99));\nregister(\"hostile\", [j]);\n";

/// The hostile guest's project, built once for every test of this file
/// (under the shared target directory, made afresh by the first test).
fn hostile() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = common::shared_target().join("hostile-guest");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let out = run(nym(&root).args(["new", "hostile", "--template", "hello"]));
        assert!(out.status.success(), "nym new failed");
        let dir = root.join("hostile");
        common::rewrite(&dir, HOSTILE, GRAPH);
        let built = run(nym(&dir).args(["build", "--target", "kvm"]));
        assert!(built.status.success(), "{}", stderr(&built));
        dir
    })
}

/// `nym boot` of the hostile image on `disk`, with its network, for `case`.
fn boot(disk: &Path, case: u32) -> Command {
    let dir = hostile();
    let mut cmd = nym(dir);
    cmd.arg("boot")
        .arg(dir.join("target/nym/kvm/hostile.elf"))
        .arg("--block")
        .arg(disk)
        .args(["--block-size", "64K", "-p", &format!("{}:80", free_port())])
        .args(["--", "--case", &case.to_string()]);
    cmd
}

/// A fresh block file of 64 KiB for one test.
fn disk(name: &str) -> PathBuf {
    let path = hostile().join(format!("{name}.img"));
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, vec![0u8; 64 << 10]).unwrap();
    path
}

#[test]
fn no_guest_boots_without_entropy_and_a_failing_source_is_the_guests_to_hear() {
    if !kvm_available() {
        return;
    }
    let disk = disk("entropy");
    let ok = run(&mut boot(&disk, 1));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        stdout(&ok),
        "hostile guest starting\nrandom 1: ok\nrandom 2: ok\nstill running\n"
    );

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-source");
    for (source, why) in [
        (missing.as_path(), "No such file or directory"),
        (tmp.path(), "Is a directory"),
    ] {
        let out = run(boot(&disk, 1).env("NYM_ENTROPY", source));
        assert_eq!(out.status.code(), Some(1), "{}", source.display());
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot read the entropy source {}: {why}",
                source.display()
            )),
            "{err}"
        );
        assert!(stdout(&out).is_empty(), "nothing boots: {}", stdout(&out));
    }

    // A source that runs dry after the monitor's check and one answer: the
    // guest hears of the failure instead of using a buffer never filled.
    let dry = tmp.path().join("dry");
    std::fs::write(&dry, [1u8; 1 + 16]).unwrap();
    let out = run(boot(&disk, 1).env("NYM_ENTROPY", &dry));
    assert_eq!(
        stdout(&out),
        "hostile guest starting\nrandom 1: ok\nrandom 2: failed: entropy source unavailable: \
         the monitor could not read the host's entropy\nstill running\n"
    );
}

#[test]
fn a_block_file_that_is_a_link_locked_or_empty_is_refused_and_left_alone() {
    if !kvm_available() {
        return;
    }
    let dir = hostile();
    let refused = |out: &Output, file: &Path, why: &str| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("block file {}: {why}", file.display())),
            "{err}"
        );
        assert!(!stdout(out).contains("hostile guest starting"), "it booted");
    };

    // A second guest on a running guest's disk.
    let disk = disk("shared");
    let mut first = boot(&disk, 10)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stdout.take().unwrap()));
    let started = Instant::now();
    while !lines.next().unwrap().unwrap().contains("waiting for ever") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first guest never started"
        );
    }
    let second = run(&mut boot(&disk, 99));
    refused(&second, &disk, "another monitor is using it");
    first.kill().unwrap();
    first.wait().unwrap();

    // Any process's flock holds it, and `nym run` says so before building.
    let held = std::fs::File::open(&disk).unwrap();
    held.try_lock().unwrap();
    refused(
        &run(&mut boot(&disk, 99)),
        &disk,
        "another monitor is using it",
    );
    let out = run(nym(dir)
        .args(["run", "--target", "kvm", "--block"])
        .arg(&disk)
        .args(["-p", &format!("{}:80", free_port())]));
    refused(&out, &disk, "another monitor is using it");
    assert!(
        !stderr(&out).contains("Compiling"),
        "refused before the build"
    );
    drop(held);
    let free = run(&mut boot(&disk, 99));
    assert!(free.status.success(), "{}", stderr(&free));

    // A link is refused, not followed.
    let link = dir.join("link.img");
    let _ = std::fs::remove_file(&link);
    symlink(&disk, &link).unwrap();
    refused(&run(&mut boot(&link, 99)), &link, "it is a symbolic link");

    // An empty file is not grown to the size a new one would get.
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    refused(
        &run(&mut boot(&empty, 99)),
        &empty,
        "its size, 0 bytes, is not a positive multiple of 512",
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "left alone");
}
