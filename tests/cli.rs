//! End-to-end tests of the `nym` binary, run as a user would: `nym new`,
//! `check`, `graph`, `run`, `build`, with real cargo builds and real peers
//! (Graphviz's `dot`). Generated builds share one target directory so the
//! dependencies compile once for the whole suite.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{nym, project, run, stderr, stdout};

#[test]
fn new_check_run_prints_the_greetings() {
    let (_tmp, dir) = project("greeter", "hello");
    for f in ["Cargo.toml", "unikernel.nym", "src/lib.rs"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
    assert!(
        graph.contains("job greeter::start"),
        "the template's job is renamed:\n{graph}"
    );

    let check = run(nym(&dir).arg("check"));
    assert!(check.status.success());
    assert!(stderr(&check).contains("checked unikernel.nym for unix: 0 error(s), 0 warning(s)"));

    let out = run(nym(&dir).args(["run", "--", "--count", "2"]));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "hello from nym #1\nhello from nym #2\n2 greetings; the clock agrees: ok\n"
    );
}

#[test]
fn build_for_unix_runs_the_same_as_run() {
    let (_tmp, dir) = project("twin", "hello");
    let inproc = run(nym(&dir).args(["run", "--", "--count", "4"]));
    assert!(inproc.status.success());

    let build = run(nym(&dir).args(["build", "--target", "unix"]));
    assert!(build.status.success());
    let exe = PathBuf::from(stdout(&build).trim());
    assert_eq!(exe, dir.join("target/nym/unix/twin"));
    let main_rs = std::fs::read_to_string(dir.join("target/nym/unix/main/main.rs")).unwrap();
    assert!(
        main_rs.contains("twin::start("),
        "generated code calls the job:\n{main_rs}"
    );

    let standalone = run(Command::new(&exe).args(["--count", "4"]));
    assert!(standalone.status.success());
    assert_eq!(stdout(&standalone), stdout(&inproc));
    assert_eq!(stdout(&standalone).lines().count(), 5);

    let bad = run(Command::new(&exe).args(["--count", "lots"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("`--count lots`: not an integer"));
}

#[test]
fn graph_dot_is_accepted_by_graphviz() {
    let (_tmp, dir) = project("pictured", "kv");
    let text = run(nym(&dir).arg("graph"));
    assert!(text.status.success());
    assert!(
        stdout(&text).contains("  #1  store    kv::dir(\"data\")     : Kv\n"),
        "{}",
        stdout(&text)
    );

    let dot = run(nym(&dir).args(["graph", "--dot"]));
    assert!(dot.status.success());
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz's `dot` is installed (scripts/install.sh installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &dot.stdout).unwrap();
    let svg = child.wait_with_output().unwrap();
    assert!(
        svg.status.success(),
        "dot rejected the graph: {}",
        String::from_utf8_lossy(&svg.stderr)
    );
    let svg = String::from_utf8_lossy(&svg.stdout);
    assert!(svg.contains("<svg") && svg.contains("kv::dir"), "{svg}");
}

#[test]
fn check_reports_every_error_with_its_place_and_a_hint() {
    let (_tmp, dir) = project("broken", "hello");
    std::fs::write(
        dir.join("unikernel.nym"),
        "let console = console::defualt();\nlet time = time::default()\nlet j = job broken::start(console, clock::mono(), time, key(\"count\", 3));\nregister(\"broken\", [j]);\n",
    )
    .unwrap();
    let out = run(nym(&dir).arg("check"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("unknown implementation `console::defualt`"),
        "{err}"
    );
    assert!(err.contains("[unikernel.nym:1:15]"), "{err}");
    assert!(
        err.contains("help: did you mean `console::default`?"),
        "{err}"
    );
    assert!(err.contains("expected `;`"), "{err}");
    assert!(err.contains("[unikernel.nym:2:27]"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");

    let short = run(nym(&dir).args(["check", "--short"]));
    assert_eq!(
        stderr(&short).lines().take(2).collect::<Vec<_>>(),
        [
            "unikernel.nym:1:15: error[nym::unknown-impl]: unknown implementation `console::defualt`",
            "unikernel.nym:2:27: error[nym::syntax]: expected `;`, found `let`"
        ]
    );

    let run_it = run(nym(&dir).arg("run"));
    assert_eq!(run_it.status.code(), Some(1));
    assert!(stderr(&run_it).contains("has 2 error(s); nothing was run"));
}

#[test]
fn check_for_kvm_names_the_implementation_to_use_instead() {
    let (_tmp, dir) = project("retarget", "kv");
    assert!(
        run(nym(&dir).args(["check", "--target", "kvm"]))
            .status
            .success(),
        "the template matches on the target"
    );
    let graph = "let store = kv::dir(\"data\");\nlet app = job retarget::start(console::default(), store);\nregister(\"retarget\", [app]);\n";
    std::fs::write(dir.join("unikernel.nym"), graph).unwrap();
    let out = run(nym(&dir).args(["check", "--target", "kvm"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("`kv::dir` is not available on target kvm"),
        "{err}"
    );
    assert!(err.contains("on kvm use `kv::mem` instead"), "{err}");
    assert!(run(nym(&dir).args(["check", "--target", "unix"]))
        .status
        .success());
}

#[test]
fn check_names_the_devices_a_target_lacks_and_what_to_use() {
    let (_tmp, dir) = project("onqemu", "kv");
    for target in ["qemu", "libvirt", "xen", "kvm"] {
        assert!(
            run(nym(&dir).args(["check", "--target", target]))
                .status
                .success(),
            "the template matches on the target: {target}"
        );
    }
    // A directory store and the host's sockets are the host's alone; a
    // block file is every guest's (on Xen, blkfront).
    let graph = "let store = kv::block(block::file(\"kv.img\"));\nlet dir = kv::dir(\"data\");\nlet net = stack::socket();\nlet app = job onqemu::start(console::default(), store);\nregister(\"onqemu\", [app]);\n";
    std::fs::write(dir.join("unikernel.nym"), graph).unwrap();
    let out = run(nym(&dir).args(["check", "--target", "qemu"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for want in [
        "`kv::dir` is not available on target qemu",
        "on qemu use `kv::mem` instead",
        "`stack::socket` is not available on target qemu",
        "on qemu use `stack::direct` instead",
    ] {
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    assert!(!err.contains("`block::file` is not available"), "{err}");
    let xen = stderr(&run(nym(&dir).args(["check", "--target", "xen"])));
    assert!(
        xen.contains("`kv::dir` is not available on target xen"),
        "{xen}"
    );
    assert!(!xen.contains("`block::file` is not available"), "{xen}");
}

#[test]
fn kv_dir_values_survive_a_restart() {
    let (_tmp, dir) = project("counter", "kv");
    let first = run(nym(&dir).arg("run"));
    assert!(first.status.success());
    assert_eq!(
        stdout(&first),
        "run #1\ngreeting = hello, store\nkeys: greeting, runs\n"
    );
    let second = run(nym(&dir).arg("run"));
    assert!(second.status.success());
    assert!(
        stdout(&second).starts_with("run #2\n"),
        "{}",
        stdout(&second)
    );
    assert_eq!(std::fs::read_to_string(dir.join("data/runs")).unwrap(), "2");
}

#[test]
fn ctrl_c_stops_a_running_graph_cleanly() {
    let (_tmp, dir) = project("sleeper", "hello");
    // Build first so the timed part below is only the run.
    assert!(run(nym(&dir).args(["run", "--", "--count", "1"]))
        .status
        .success());
    let mut child = nym(&dir)
        .args(["run", "--", "--count", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "hello from nym #1");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = common::exit_within(
        &mut child,
        Duration::from_secs(10),
        "nym stops after Ctrl-C",
    );
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted; jobs stopped"), "{err}");
}

#[test]
fn ctrl_c_during_the_build_is_an_interruption() {
    use std::os::unix::process::CommandExt;
    let (_tmp, dir) = common::slow_build_project("slowbuild");
    // Its own process group, which Ctrl-C at a terminal signals whole:
    // nym, cargo and the build script.
    let mut child = nym(&dir)
        .arg("run")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Compiling slowbuild") {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "no build: {seen}");
        seen += &line;
    }
    std::thread::sleep(Duration::from_millis(500));
    let group = format!("-{}", child.id());
    assert!(Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap()
        .success());
    let status = common::exit_within(
        &mut child,
        Duration::from_secs(30),
        "nym stops after Ctrl-C during the build",
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("nym: interrupted; jobs stopped"), "{rest}");
}

#[test]
fn bad_keys_targets_and_projects_get_clear_errors() {
    let (tmp, dir) = project("careful", "hello");
    let out = run(nym(&dir).args(["run", "--", "--cuont", "2"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown key `--cuont`; the keys are: --count"));

    let out = run(nym(&dir).args(["run", "--target", "kvm", "--", "--count=1 2"]));
    assert_eq!(out.status.code(), Some(2), "checked before any build");
    assert!(stderr(&out).contains("key values for a guest cannot contain white space"));

    let out = run(nym(tmp.path()).arg("check"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no unikernel.nym in"));

    let out = run(nym(tmp.path()).args(["new", "careful"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
    let out = run(nym(tmp.path()).args(["new", "Bad Name"]));
    assert!(stderr(&out).contains("not a valid project name"));
}

#[test]
fn a_failing_job_and_a_broken_build_are_reported() {
    let (_tmp, dir) = project("faulty", "kv");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/runs"), "not a number").unwrap();
    let out = run(nym(&dir).arg("run"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("job app failed: the counter holds \"not a number\", not a number"),
        "{}",
        stderr(&out)
    );

    // A Rust syntax error: the checker cannot read the job and says where.
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace("pub async fn start(", "pub async fn start(,"),
    )
    .unwrap();
    let out = run(nym(&dir).arg("run"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("src/lib.rs:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not parse as Rust"),
        "{}",
        stderr(&out)
    );

    // A type error: only rustc sees it, and cargo's report reaches the user.
    std::fs::write(&lib, text.replace("    Ok(())\n}\n", "    Ok(42)\n}\n")).unwrap();
    let out = run(nym(&dir).arg("run"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error[E0308]") && err.contains("src/lib.rs"),
        "cargo's error is shown: {err}"
    );
    assert!(err.contains("the build failed"), "{err}");
}

#[test]
fn fmt_formats_in_place_checks_and_refuses_broken_files() {
    let (_tmp, dir) = project("tidy", "hello");
    let out = run(nym(&dir).args(["fmt", "--check"]));
    assert_eq!(out.status.code(), Some(0), "a new project is formatted");
    std::fs::write(dir.join("unikernel.nym"), "let c=console::default();\nlet j = job tidy::start(c,clock::mono(),time::default(),3,100ms);\nregister(\"tidy\",[j]);\n").unwrap();
    let out = run(nym(&dir).args(["fmt", "--check"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not formatted"));
    assert!(run(nym(&dir).arg("fmt")).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("unikernel.nym")).unwrap(),
        "let c = console::default();\nlet j = job tidy::start(c, clock::mono(), time::default(), 3, 100ms);\nregister(\"tidy\", [j]);\n"
    );
    assert!(
        run(nym(&dir).args(["fmt", "--check"])).status.success(),
        "idempotent"
    );
    std::fs::write(dir.join("unikernel.nym"), "let c = ;\n").unwrap();
    let out = run(nym(&dir).arg("fmt"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(dir.join("unikernel.nym")).unwrap(),
        "let c = ;\n",
        "a broken file is left as it was"
    );
}

/// `nym` runs the commands that build, run and boot itself, without the
/// REPL's, notebook's and language server's crates; it hands those
/// commands to `nym-studio` beside it, with their arguments, exit status
/// and terminal. A `nym` copied alone says what is missing.
#[test]
fn interactive_commands_are_handed_to_nym_studio_beside_nym() {
    let nym_exe = env!("CARGO_BIN_EXE_nym");
    let studio = std::path::Path::new(nym_exe).with_file_name("nym-studio");
    assert!(studio.is_file(), "{} is built with nym", studio.display());
    // What only the studio links is not in nym (its symbols are kept).
    let names = |exe: &std::path::Path| {
        let out = Command::new("nm").arg("-C").arg(exe).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (lean, full) = (names(std::path::Path::new(nym_exe)), names(&studio));
    for krate in ["evcxr::", "ratatui::", "tower_lsp_server::"] {
        assert!(full.contains(krate), "nym-studio links {krate}");
        assert!(!lean.contains(krate), "nym links {krate}");
    }

    let tmp = tempfile::tempdir().unwrap();
    // Served by the studio (clap in nym answers only `--help`): the
    // session's banner, then its goodbye at the end of its input.
    let repl = run(nym(tmp.path()).arg("repl"));
    assert!(repl.status.success(), "{}", stderr(&repl));
    assert!(
        stdout(&repl).starts_with("nym repl — no project"),
        "{}",
        stdout(&repl)
    );
    assert!(stdout(&repl).ends_with("bye\n"), "{}", stdout(&repl));
    let bad = run(nym(tmp.path()).args(["tutorial", "start", "no-such-lesson"]));
    assert_ne!(bad.status.code(), Some(0));
    assert!(stderr(&bad).contains("no-such-lesson"), "{}", stderr(&bad));

    let alone = tmp.path().join("nym");
    std::fs::copy(nym_exe, &alone).unwrap();
    let out = run(Command::new(&alone).args(["lsp"]).current_dir(tmp.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "this command is run by nym-studio, which should be beside nym at {}",
            tmp.path().join("nym-studio").display()
        )),
        "{}",
        stderr(&out)
    );
}
