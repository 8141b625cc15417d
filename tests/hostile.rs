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
use common::{exit_within, free_port, kvm_available, nym, run, stderr, stdout};

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

/// An image of `count` program headers, each sound on its own, with a nym
/// manifest: a note, the code (`hlt`s at 1 MiB), and one-byte segments 256
/// bytes apart from 2 MiB. A monitor that took it would set each of ~4,600
/// pages' permissions by looking through every segment.
fn many_segments(count: usize) -> Vec<u8> {
    let put = |out: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let mut out = vec![0u8; 64 + 56 * count];
    let note_at = out.len();
    let note: Vec<u8> = [
        &4u32.to_le_bytes()[..],
        &8u32.to_le_bytes(),
        &0x6e79_6d01u32.to_le_bytes(),
        b"nym\0",
        &1u32.to_le_bytes(),
        &0u32.to_le_bytes(),
    ]
    .concat();
    out.extend(&note);
    let code_at = out.len();
    out.extend([0xf4; 16]);
    put(&mut out, 0, b"\x7fELF\x02\x01\x01");
    put(&mut out, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut out, 18, &62u16.to_le_bytes()); // x86_64
    put(&mut out, 20, &1u32.to_le_bytes());
    put(&mut out, 24, &0x10_0000u64.to_le_bytes()); // entry
    put(&mut out, 32, &64u64.to_le_bytes()); // phoff
    put(&mut out, 52, &64u16.to_le_bytes());
    put(&mut out, 54, &56u16.to_le_bytes());
    put(&mut out, 56, &(count as u16).to_le_bytes());
    put(&mut out, 58, &64u16.to_le_bytes());
    // (type, flags, offset, address, size in the file, size in memory)
    let mut headers = vec![
        (
            4u32,
            4u32,
            note_at,
            0u64,
            note.len() as u64,
            note.len() as u64,
        ),
        (1, 5, code_at, 0x10_0000, 16, 0x1000),
    ];
    headers.extend((0..count as u64 - 2).map(|i| (1, 4, 0, 0x20_0000 + 256 * i, 0, 1)));
    for (i, (ty, flags, offset, addr, file_size, mem_size)) in headers.into_iter().enumerate() {
        let at = 64 + 56 * i;
        put(&mut out, at, &ty.to_le_bytes());
        put(&mut out, at + 4, &flags.to_le_bytes());
        put(&mut out, at + 8, &(offset as u64).to_le_bytes());
        put(&mut out, at + 16, &addr.to_le_bytes());
        put(&mut out, at + 24, &addr.to_le_bytes());
        put(&mut out, at + 32, &file_size.to_le_bytes());
        put(&mut out, at + 40, &mem_size.to_le_bytes());
        put(&mut out, at + 48, &4u64.to_le_bytes());
    }
    out
}

#[test]
fn crafted_images_are_refused_at_once_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let many = tmp.path().join("many.elf");
    std::fs::write(&many, many_segments(60_000)).unwrap();
    // Sparse: 257 MiB on paper, never read.
    let big = tmp.path().join("big.elf");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(257 << 20)
        .unwrap();
    for (image, message) in [
        (
            &many,
            "60000 program headers; an image may have at most 1024",
        ),
        (
            &big,
            "the image is 269484032 bytes; images larger than 256 MiB are refused",
        ),
    ] {
        let mut child = nym(tmp.path())
            .arg("boot")
            .arg(image)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = exit_within(
            &mut child,
            Duration::from_secs(20),
            "a crafted image is refused",
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("{}: {message}", image.display())),
            "{err}"
        );
    }
    // A sound image of as many headers as allowed still gets to the guest
    // (here a `hlt`, reported as such), and quickly.
    if kvm_available() {
        let most = tmp.path().join("most.elf");
        std::fs::write(&most, many_segments(1024)).unwrap();
        let started = Instant::now();
        let out = run(nym(tmp.path()).arg("boot").arg(&most));
        assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("the guest halted"),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

/// `case` ends in a violation whose report has `message`.
fn stopped_with(case: u32, message: &str) {
    let disk = disk(&format!("violation-{case}"));
    let out = run(&mut boot(&disk, case));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "case {case}: {err}");
    assert!(
        err.contains(message),
        "case {case}: want {message:?} in:\n{err}"
    );
    assert!(err.contains("the guest broke the hypercall ABI and was stopped"));
    assert!(
        !stdout(&out).contains("still running"),
        "case {case}: the guest went on"
    );
}

#[test]
fn an_in_and_a_load_past_memory_stop_the_guest_with_a_clear_report() {
    if !kvm_available() {
        return;
    }
    stopped_with(
        2,
        "hypercall on port 0x3f8: the guest used an I/O port nym's monitor does not serve",
    );
    stopped_with(
        3,
        "hypercall on port 0x509: the guest used an I/O port nym's monitor does not serve",
    );
    stopped_with(
        4,
        "hypercall memory access: guest-physical address 0x10000000 is outside guest memory \
         (0x2000000 bytes)",
    );
}

/// `case` runs to its end; what the guest printed between its first and
/// last lines.
fn answered(disk: &Path, case: u32) -> String {
    let out = run(&mut boot(disk, case));
    assert!(out.status.success(), "case {case}: {}", stderr(&out));
    let printed = stdout(&out);
    printed
        .strip_prefix("hostile guest starting\n")
        .and_then(|p| p.strip_suffix("still running\n"))
        .unwrap_or_else(|| panic!("case {case}: {printed}"))
        .to_owned()
}

#[test]
fn requests_out_of_range_or_over_their_own_struct_are_answered_not_obeyed() {
    if !kvm_available() {
        return;
    }
    // `ret` 2 is OutOfRange: no sector is touched, no frame sent.
    let disk = disk("ranges");
    for case in [5, 6] {
        assert_eq!(
            answered(&disk, case),
            "block at sector u64::MAX: ret 2\nblock at sector u64::MAX / 512: ret 2\n",
            "case {case}"
        );
    }
    assert!(
        std::fs::read(&disk).unwrap().iter().all(|&b| b == 0),
        "the disk is as it was"
    );
    assert_eq!(
        answered(&disk, 7),
        "frame of 1515 bytes: ret 2\nframe of 1048576 bytes: ret 2\n"
    );
    // The result is written last, so the guest reads it, not the data.
    assert_eq!(
        answered(&disk, 8),
        "RANDOM over itself: ret 0\nBLOCK_READ over itself: ret 0\n\
         NET_READ over itself: ret 0 len 0\nNET_WRITE over itself: ret 0\n"
    );
}

#[test]
fn a_wait_without_end_is_bounded_and_a_guest_in_one_still_stops() {
    if !kvm_available() {
        return;
    }
    // One WAIT of u64::MAX ns comes back (after at most a second).
    let disk = disk("wait");
    let mut once = boot(&disk, 9)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(
        &mut once,
        Duration::from_secs(20),
        "a WAIT of u64::MAX ns returns",
    );
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut once.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(status.success(), "{printed}");
    assert!(
        printed.contains("woke from WAIT u64::MAX\nstill running"),
        "{printed}"
    );

    // A guest waiting for ever, a WAIT at a time, ends when `nym run` is
    // interrupted: stopped by the monitor's Stopper where the front end
    // turns SIGINT into a stop (status 130), or with the process.
    let mut forever = nym(hostile())
        .args(["run", "--target", "kvm", "--block"])
        .arg(&disk)
        .args(["-p", &format!("{}:80", free_port())])
        .args(["--", "--case", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(forever.stdout.take().unwrap()));
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("waiting for ever"))),
        "the guest started waiting"
    );
    let interrupted = Command::new("kill")
        .args(["-INT", &forever.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = exit_within(
        &mut forever,
        Duration::from_secs(20),
        "an interrupted guest in WAIT ends",
    );
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.code() == Some(130) || status.signal() == Some(2),
        "{status:?}"
    );
}
