//! The KVM target end to end: graphs built into images and booted in nym's
//! own monitor on /dev/kvm (no mocks), compared with the in-process run;
//! crashing, hostile and malformed guests.
use std::process::Command;

mod common;
use common::{kvm_available, nym, project, rewrite, run, stderr, stdout};

#[test]
fn hello_on_kvm_prints_what_it_prints_in_process() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("kvmhello", "hello");
    let unix = run(nym(&dir).args(["run", "--", "--count", "3"]));
    assert!(unix.status.success());
    let kvm = run(nym(&dir).args(["run", "--target", "kvm", "--", "--count", "3"]));
    assert!(kvm.status.success(), "exit {:?}", kvm.status);
    assert_eq!(stdout(&kvm), stdout(&unix));
    assert_eq!(stdout(&kvm).lines().count(), 4);

    // -m sizes guest memory: sizes that cannot hold the image, or that
    // the monitor cannot map, are refused, saying why.
    for (size, why) in [
        ("1M", "past guest memory (1 MiB)"),
        (
            "5M",
            "it must be a multiple of 2 MiB between 4 MiB and 3 GiB",
        ),
    ] {
        let out = run(nym(&dir).args(["run", "--target", "kvm", "-m", size]));
        assert_eq!(out.status.code(), Some(1), "-m {size}");
        assert!(stderr(&out).contains(why), "-m {size}: {}", stderr(&out));
    }
    let big = run(nym(&dir).args(["run", "--target", "kvm", "-m", "96M", "--", "--count", "3"]));
    assert_eq!(stdout(&big), stdout(&unix));

    let image = dir.join("target/nym/kvm/kvmhello.elf");
    assert!(image.is_file());
    // Only what the graph uses is linked: no network stack, no TLS (the
    // image has its symbols: libos is named).
    assert!(common::links(&image, "libos"));
    for unused in ["smoltcp", "rustls"] {
        assert!(!common::links(&image, unused), "hello links {unused}");
    }
    let booted = run(nym(&dir)
        .arg("boot")
        .arg(&image)
        .args(["-m", "64M", "--", "--count", "1"]));
    assert_eq!(
        stdout(&booted),
        "hello from nym #1\n1 greetings; the clock agrees: ok\n"
    );

    let bad_key = run(nym(&dir)
        .arg("boot")
        .arg(&image)
        .args(["--", "--count", "many"]));
    assert_eq!(
        bad_key.status.code(),
        Some(2),
        "the guest rejects a bad key with status 2"
    );
    assert!(stdout(&bad_key).contains("`--count many`: not an integer"));
}

/// Under the monitor the guest keeps time with its TSC at the rate the
/// monitor passes at boot, without an exit, and an untraced guest does not
/// ask whether it is traced: `--stats` shows the exits, none of them
/// `MONOTIME` or `TRACE`. A wrong rate makes the guest's sleeps end early
/// (too low a rate) or late (too high) against the host's clock.
#[test]
fn the_guests_clock_keeps_the_hosts_pace_without_an_exit() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("kvmclock", "hello");
    let built = run(nym(&dir).args(["build", "--target", "kvm", "--release"]));
    assert!(built.status.success(), "{}", stderr(&built));
    let image = dir.join("target/nym/kvm/kvmclock.elf");
    let started = std::time::Instant::now();
    // Four greetings 400 ms apart: 1.2 s of the guest's own sleeping.
    let mut boot = nym(&dir)
        .arg("boot")
        .arg(&image)
        .args(["--stats", "--", "--count", "4", "--pause", "400ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::exit_within(
        &mut boot,
        std::time::Duration::from_secs(10),
        "1.2 s of the guest's sleep ended",
    );
    let took = started.elapsed();
    let booted = boot.wait_with_output().unwrap();
    assert!(status.success(), "{}", stderr(&booted));
    assert!(stdout(&booted).ends_with("4 greetings; the clock agrees: ok\n"));
    assert!(
        took >= std::time::Duration::from_millis(1200),
        "the guest slept 1.2 s of its time in {took:?} of the host's"
    );
    assert!(
        took < std::time::Duration::from_millis(1200 * 3),
        "the guest's 1.2 s of sleep took {took:?}"
    );
    // Five lines, the sleeps (three, or a few more if the host woke the
    // guest a hair early), the exit; no clock or trace question.
    let stats = stderr(&booted);
    let line = stats
        .lines()
        .find(|l| l.starts_with("nym: ") && l.contains(" exits ("))
        .unwrap_or_else(|| panic!("no --stats line in {stats:?}"));
    assert!(line.contains("EXIT 1, PUTS 5, WAIT "), "{line}");
    let waits: u32 = line
        .split("WAIT ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no WAIT count in {line}"));
    assert!((3..=6).contains(&waits), "{line}");
    assert!(
        !line.contains("MONOTIME") && !line.contains("TRACE"),
        "{line}"
    );
}

const FAILING: &str = r#"#![no_std]
extern crate alloc;
use libos::Console;

pub async fn start(console: impl Console, how: u32) -> Result<(), &'static str> {
    let _ = console.log("about to fail").await;
    match how {
        0 => Err("the disk is on fire"),
        1 => panic!("the guest gave up"),
        2 => {
            // SAFETY: not safe at all: this job dereferences null on purpose.
            let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
            let _ = console.log(&alloc::format!("read {v}")).await;
            Ok(())
        }
        3 => {
            // Lines that fit the guest console's line buffer with their
            // newline, and lines that do not.
            for (c, n) in [("a", 255), ("b", 256), ("c", 300)] {
                let _ = console.log(&c.repeat(n)).await;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
"#;

#[test]
fn errors_panics_and_crashes_are_reported_with_their_place() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("crashy", "hello");
    rewrite(&dir, FAILING, "let j = job crashy::start(console::default(), key(\"how\", 9));\nregister(\"crashy\", [j]);\n");

    let err = run(nym(&dir).args(["run", "--target", "kvm", "--", "--how", "0"]));
    assert_eq!(err.status.code(), Some(1));
    assert!(
        stdout(&err).contains("crashy: job j failed: the disk is on fire"),
        "{}",
        stdout(&err)
    );

    let image = dir.join("target/nym/kvm/crashy.elf");
    let panic = run(nym(&dir).arg("boot").arg(&image).args(["--", "--how", "1"]));
    assert_eq!(panic.status.code(), Some(101));
    assert!(
        stdout(&panic).contains("crashy/src/lib.rs:9:14: the guest gave up"),
        "{}",
        stdout(&panic)
    );
    assert!(stdout(&panic).contains("the guest gave up"));

    let crash = run(nym(&dir).arg("boot").arg(&image).args(["--", "--how", "2"]));
    assert_eq!(crash.status.code(), Some(124));
    let report = stderr(&crash);
    assert!(
        report.contains(
            "guest crashed: page fault (vector 14) reading an unmapped page at address 0x0"
        ),
        "{report}"
    );
    assert!(
        report.contains("crashy::start"),
        "the report names the function: {report}"
    );
    assert!(report.contains("backtrace:"), "{report}");
    assert!(
        !stdout(&crash).contains("read "),
        "nothing after the fault runs"
    );

    let lines = run(nym(&dir)
        .arg("boot")
        .arg(&image)
        .args(["--stats", "--", "--how", "3"]));
    assert!(lines.status.success(), "{}", stderr(&lines));
    // One console write a line with its newline up to 256 bytes, two
    // beyond: 1 + 1 + 2 + 2.
    assert!(stderr(&lines).contains("PUTS 6)"), "{}", stderr(&lines));
    assert_eq!(
        stdout(&lines),
        format!(
            "about to fail\n{}\n{}\n{}\n",
            "a".repeat(255),
            "b".repeat(256),
            "c".repeat(300)
        )
    );
}

const HOSTILE: &str = r#"#![no_std]
use libos::Console;

fn hypercall(nr: u16, arg: u32) {
    // SAFETY: a hostile guest: the arguments are wrong on purpose.
    unsafe { core::arch::asm!("out dx, eax", in("dx") 0x500u16 + nr, in("eax") arg) }
}

#[repr(C, align(8))]
struct Args([u64; 8]);

/// Breaks the hypercall ABI in the way `case` says.
pub async fn start(console: impl Console, case: u32) {
    let _ = console.log("hostile guest starting").await;
    let mut a = Args([0; 8]);
    let at = |a: &mut Args| a as *mut Args as u32;
    match case {
        0 => hypercall(3, 0xffff_fff8),                                   // PUTS: struct outside memory
        1 => { a.0[..2].copy_from_slice(&[0x10_0000, u64::MAX]); hypercall(3, at(&mut a)) } // PUTS: length overflows
        2 => { a.0[..2].copy_from_slice(&[0xffff_0000_0000, 16]); hypercall(3, at(&mut a)) } // PUTS: buffer outside memory
        3 => hypercall(3, at(&mut a) + 4),                                 // PUTS: misaligned struct
        4 => { a.0[..4].copy_from_slice(&[0, 0, 0x1ff_f000, 0x2000]); hypercall(6, at(&mut a)) } // BLOCK_READ: buffer past the end
        5 => { a.0[..2].copy_from_slice(&[0x10_0000, 1 << 20]); hypercall(8, at(&mut a)) } // RANDOM: too much
        6 => hypercall(15, at(&mut a)),                                    // no such hypercall
        7 => unsafe { core::arch::asm!("out dx, al", in("dx") 0x503u16, in("al") 1u8) }, // wrong width
        8 => unsafe { core::arch::asm!("out dx, al", in("dx") 0x3f8u16, in("al") b'x') }, // a port nobody serves
        9 => { a.0[..3].copy_from_slice(&[0, 0xffff_0000_0000, 64]); hypercall(12, at(&mut a)) } // NET_WRITE: frame outside memory
        10 => { a.0[..3].copy_from_slice(&[0, 0x1ff_f000, 0x2000]); hypercall(13, at(&mut a)) } // NET_READ: buffer past the end
        11 => { a.0[..4].copy_from_slice(&[0, 0, 0x1ff_f000, 0x2000]); hypercall(7, at(&mut a)) } // BLOCK_WRITE: buffer past the end
        12 => { a.0[..4].copy_from_slice(&[0, 0, 0x10_0000, u64::MAX]); hypercall(6, at(&mut a)) } // BLOCK_READ: length overflows
        // FAULT with every pointer wild: the monitor's report must not follow them.
        13 => { a.0[..7].copy_from_slice(&[14, 0, u64::MAX, u64::MAX - 7, 0x1ff_fff8, 0, u64::MAX]); hypercall(10, at(&mut a)) }
        // Every hypercall with its struct outside memory, then misaligned.
        100..=113 => hypercall((case - 100) as u16, 0xffff_fff8),
        200..=213 => hypercall((case - 200) as u16, at(&mut a) + 4),
        _ => {}
    }
    let _ = console.log("still running after a violation").await;
}
"#;

/// The hypercalls by number, as the monitor names them.
const HYPERCALLS: [&str; 13] = [
    "WALLTIME",
    "MONOTIME",
    "PUTS",
    "WAIT",
    "BLOCK_INFO",
    "BLOCK_READ",
    "BLOCK_WRITE",
    "RANDOM",
    "EXIT",
    "FAULT",
    "NET_INFO",
    "NET_WRITE",
    "NET_READ",
];

#[test]
fn a_hostile_guest_is_stopped_at_every_violation_and_the_monitor_survives() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("hostile", "hello");
    rewrite(&dir, HOSTILE, "let j = job hostile::start(console::default(), key(\"case\", 99));\nregister(\"hostile\", [j]);\n");
    let clean = run(nym(&dir).args(["run", "--target", "kvm"]));
    assert!(clean.status.success(), "case 99 breaks nothing");
    assert!(stdout(&clean).contains("still running"));

    let image = dir.join("target/nym/kvm/hostile.elf");
    let mut expect: Vec<(u32, String)> = [
        "hypercall PUTS: 16 bytes at guest address 0xfffffff8 reach past the end of guest memory (0x2000000)",
        "hypercall PUTS: 18446744073709551615 bytes at guest address 0x100000 reach past the end",
        "hypercall PUTS: 16 bytes at guest address 0xffff00000000 reach past the end",
        "is not 8-byte aligned",
        "hypercall BLOCK_READ: 8192 bytes at guest address 0x1fff000 reach past the end",
        "hypercall RANDOM: asked for 1048576 bytes; at most 4096",
        "there is no hypercall number 15",
        "the argument must be a 4-byte guest address, got 1 byte(s)",
        "hypercall on port 0x3f8: the guest used an I/O port nym's monitor does not serve",
        "hypercall NET_WRITE: 64 bytes at guest address 0xffff00000000 reach past the end",
        "hypercall NET_READ: 8192 bytes at guest address 0x1fff000 reach past the end",
        "hypercall BLOCK_WRITE: 8192 bytes at guest address 0x1fff000 reach past the end",
        "hypercall BLOCK_READ: 18446744073709551615 bytes at guest address 0x100000 reach past the end",
    ]
    .iter()
    .enumerate()
    .map(|(case, m)| (case as u32, m.to_string()))
    .collect();
    for (i, name) in HYPERCALLS.iter().enumerate() {
        let nr = i as u32 + 1;
        expect.push((
            100 + nr,
            format!("hypercall {name}: ") + "bytes at guest address 0xfffffff8 reach past the end",
        ));
        expect.push((
            200 + nr,
            format!("hypercall {name}: ") + "is not 8-byte aligned",
        ));
    }
    for (case, message) in &expect {
        let out = run(nym(&dir)
            .arg("boot")
            .arg(&image)
            .args(["--", "--case", &case.to_string()]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "case {case}: {err}");
        // The call's name first, then what was wrong with it.
        let (head, tail) = message.split_once(": ").unwrap_or(("", message));
        let line = err.lines().find(|l| l.contains(tail)).unwrap_or_default();
        assert!(
            line.contains(head),
            "case {case}: want {message:?} in:\n{err}"
        );
        assert!(err.contains("the guest broke the hypercall ABI and was stopped"));
        assert!(
            !stdout(&out).contains("still running"),
            "case {case}: the guest went on"
        );
    }

    // A fault report whose every pointer is wild is still a report: the
    // monitor reads nothing outside guest memory to write it.
    let out = run(nym(&dir)
        .arg("boot")
        .arg(&image)
        .args(["--", "--case", "13"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(124), "{err}");
    assert!(
        err.contains("guest crashed: page fault (vector 14)"),
        "{err}"
    );
    assert!(err.contains("backtrace:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_images_get_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.elf");
    std::fs::write(&empty, b"").unwrap();
    let text = tmp.path().join("text.elf");
    std::fs::write(&text, b"#!/bin/sh\necho hi\n").unwrap();
    let truncated = tmp.path().join("truncated.elf");
    let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
    header.resize(40, 0);
    std::fs::write(&truncated, &header).unwrap();
    // A well-formed 64-bit header for AArch64 (machine 183).
    let foreign = tmp.path().join("aarch64.elf");
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.resize(64, 0);
    std::fs::write(&foreign, &elf).unwrap();
    let cases = [
        (
            foreign.as_path(),
            "built for machine 183 (AArch64), not x86_64",
        ),
        (empty.as_path(), "empty file"),
        (text.as_path(), "not an ELF file (bad magic)"),
        (truncated.as_path(), "truncated"),
        (std::path::Path::new("/bin/true"), "not an executable"),
        (
            std::path::Path::new("/nonexistent.elf"),
            "cannot read /nonexistent.elf",
        ),
    ];
    for (path, message) in cases {
        let out = run(nym(tmp.path()).arg("boot").arg(path));
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn an_image_that_needs_a_block_file_is_refused_without_one() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("needy", "hello");
    rewrite(
        &dir,
        "#![no_std]\nuse libos::{Block, Console};\npub async fn start(c: impl Console, b: impl Block) {\n    let _ = c.log(if b.info().sectors > 0 { \"has a disk\" } else { \"no disk\" }).await;\n}\n",
        "let j = job needy::start(console::default(), block::file(\"disk.img\", size = 64KiB));\nregister(\"needy\", [j]);\n",
    );
    let ok = run(nym(&dir).args(["run", "--target", "kvm"]));
    assert!(ok.status.success());
    assert_eq!(stdout(&ok), "has a disk\n");
    assert_eq!(
        std::fs::metadata(dir.join("disk.img")).unwrap().len(),
        64 * 1024
    );

    let out = run(nym(&dir)
        .arg("boot")
        .arg(dir.join("target/nym/kvm/needy.elf")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the image uses a block device (block::file): give it a file"),
        "{}",
        stderr(&out)
    );

    let foreign = run(Command::new(env!("CARGO_BIN_EXE_nym"))
        .arg("boot")
        .arg(dir.join("target/nym/unix/needy"))
        .current_dir(&dir));
    assert_eq!(
        foreign.status.code(),
        Some(1),
        "a host program is not an image"
    );
}

#[test]
fn kv_on_kvm_persists_on_the_block_file_across_boots() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("kvmstore", "kv");
    let unix = run(nym(&dir).arg("run"));
    assert!(unix.status.success());
    let first = run(nym(&dir).args(["run", "--target", "kvm"]));
    assert!(first.status.success(), "exit {:?}", first.status);
    assert_eq!(
        stdout(&first),
        stdout(&unix),
        "a first run prints the same on kvm as on unix"
    );
    assert_eq!(
        stdout(&first),
        "run #1\ngreeting = hello, store\nkeys: greeting, runs\n"
    );
    assert_eq!(
        std::fs::metadata(dir.join("kv.img")).unwrap().len(),
        64 * 1024
    );
    let second = run(nym(&dir).args(["run", "--target", "kvm"]));
    assert!(second.status.success());
    assert!(
        stdout(&second).starts_with("run #2\n"),
        "{}",
        stdout(&second)
    );
    let third = run(nym(&dir)
        .arg("boot")
        .arg(dir.join("target/nym/kvm/kvmstore.elf"))
        .arg("--block")
        .arg(dir.join("kv.img")));
    assert!(stdout(&third).starts_with("run #3\n"), "{}", stdout(&third));
}

#[test]
fn the_monitor_runs_the_guest_under_a_seccomp_filter() {
    if !kvm_available() {
        return;
    }
    let (_tmp, dir) = project("filtered", "hello");
    assert!(run(nym(&dir).args(["build", "--target", "kvm"]))
        .status
        .success());
    let mut child = nym(&dir)
        .arg("boot")
        .arg(dir.join("target/nym/kvm/filtered.elf"))
        .args(["--", "--count", "40"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    let mut mode = String::new();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        mode = std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_owned()))
            .unwrap_or_default();
        if mode == "2" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        mode, "2",
        "the monitor's process is in seccomp filter mode while the guest runs"
    );
}
