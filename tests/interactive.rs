//! `nym repl` and `nym tui` in a real terminal: tmux runs them, keys are
//! sent with `send-keys` and the screen is read with `capture-pane`.
mod common;

use common::project;
use common::tmux::Tmux;
use std::time::{Duration, Instant};

fn nym_exe() -> &'static str {
    env!("CARGO_BIN_EXE_nym")
}

#[test]
fn the_repl_completes_evaluates_keeps_statements_open_runs_and_exits() {
    let (_tmp, dir) = project("hello", "hello");
    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));

    // Tab completes an implementation from its module.
    t.type_text("let extra = kv::me");
    t.keys(&["Tab"]);
    t.line("();");
    t.wait_for("extra: Kv", Duration::from_secs(10));

    // A command completes too.
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.type_text(":dev");
    t.keys(&["Tab", "Enter"]);
    t.wait_for("clock::mono", Duration::from_secs(10));

    // A statement stays open until its brackets close and its `;` comes.
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line("let wrapped = kv::full(");
    t.line("kv::mem());");
    t.wait_for("wrapped: Kv", Duration::from_secs(10));

    // A mistake is shown under the input, the session unchanged.
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line("let bad = kv::mme();");
    t.wait_for("did you mean `kv::mem`?", Duration::from_secs(10));

    // Ctrl-C drops the line being typed: the editor says so (the
    // terminal's own echo of ^C would not).
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.type_text("let never = ");
    t.wait_for("nym> let never =", Duration::from_secs(10));
    t.keys(&["C-c"]);
    t.wait_for("^C (Ctrl-D leaves)", Duration::from_secs(10));

    // The stack runs in-process; its console lands above the prompt.
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line(":run -- --count 2 --pause 1ms");
    t.wait_for("hello from nym #2", Duration::from_secs(300));
    t.wait_for("the jobs finished", Duration::from_secs(30));

    let s = t.leave("nym>");
    assert!(s.contains("bye"), "{s}");
    let history = std::fs::read_to_string(dir.join("history")).unwrap();
    assert!(history.contains("let wrapped = kv::full("), "{history}");
    assert!(!history.contains("let never"), "{history}");
}

#[test]
fn the_notebook_runs_all_cells_and_shows_their_outputs() {
    let (_tmp, dir) = project("hello", "hello");
    std::fs::write(
        dir.join("nb.md"),
        "# Try it\n\n```nym\nlet extra = kv::mem();\n:devices\n```\n\n```nym\n:target kvm\n```\n",
    )
    .unwrap();
    let Some(t) = Tmux::start(&dir, &format!("{} tui nb.md", nym_exe())) else {
        return;
    };
    t.wait_for("[2] nym", Duration::from_secs(30));
    t.keys(&["C-a"]);
    let s = t.wait_for("ran 3 cell(s)", Duration::from_secs(30));
    assert!(s.contains("extra: Kv"), "{s}");
    assert!(s.contains("target: kvm"), "{s}");
    assert!(s.contains("graph · kvm"), "{s}");
    assert!(
        s.contains("│ hello "),
        "the graph pane draws the job's box:\n{s}"
    );
    // Resizing redraws at the new size: the key line moves up to row 24
    // (without a redraw it would be cut off with rows 25 to 32) and no
    // line is wider than 80 columns.
    t.tmux(&["resize-window", "-x", "80", "-y", "24"]);
    t.wait_until(
        "the key line on row 24 of 24",
        Duration::from_secs(10),
        |s| {
            let lines: Vec<&str> = s.lines().collect();
            lines.len() == 24
                && lines[23].contains("^Q quit")
                && lines.iter().all(|l| l.chars().count() <= 80)
        },
    );
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
}

#[test]
fn rust_cells_run_in_the_notebook_and_in_the_repl() {
    let (_tmp, dir) = project("web", "http");
    std::fs::write(
        dir.join("nb.md"),
        "# Rust\n\n```rust\nlet page = web::INDEX.trim();\n```\n\n```rust\npage.to_uppercase()\n```\n",
    )
    .unwrap();
    let Some(t) = Tmux::start(&dir, &format!("{} tui nb.md", nym_exe())) else {
        return;
    };
    t.wait_for("[2] rust", Duration::from_secs(30));
    t.keys(&["C-a"]);
    // The first cell compiles libos and the crate: minutes on a slow machine.
    let s = t.wait_for("ran 3 cell(s)", Duration::from_secs(300));
    assert!(s.contains("\"HELLO FROM NYM!\""), "{s}");
    // cargo's progress, which evcxr writes to stderr, is in the log pane.
    assert!(s.contains("│Compiling web"), "{s}");
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
    drop(t);

    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));
    t.line(":rust");
    t.wait_prompt("rust>", Duration::from_secs(10));
    t.line("web::INDEX.len() * 2");
    let s = t.wait_for("\n32\n", Duration::from_secs(120));
    assert!(!s.contains("error"), "{s}");
    // Ctrl-C stops a cell that hangs, and nym goes on.
    t.wait_prompt("rust>", Duration::from_secs(10));
    t.line("std::thread::sleep(std::time::Duration::from_secs(600));");
    std::thread::sleep(Duration::from_secs(3));
    t.keys(&["C-c"]);
    t.wait_for("variables are lost", Duration::from_secs(30));
    t.wait_prompt("rust>", Duration::from_secs(10));
    t.line("web::INDEX.len()");
    t.wait_for("\n16\n", Duration::from_secs(120));
    t.wait_prompt("rust>", Duration::from_secs(10));
    t.line(":nym");
    t.wait_for("graph mode", Duration::from_secs(10));
    t.leave("nym>");
}

#[test]
fn the_repl_builds_and_boots_the_graph_on_kvm_and_sees_the_guest_end() {
    if !common::kvm_available() {
        return;
    }
    let (_tmp, dir) = project("hello", "hello");
    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));
    t.line(":target kvm");
    t.wait_prompt("nym[kvm]>", Duration::from_secs(10));
    t.line(":build");
    t.wait_for("target/nym/kvm/hello.elf in", Duration::from_secs(300));
    t.wait_prompt("nym[kvm]>", Duration::from_secs(10));
    t.line(":boot -- --count 2 --pause 1ms");
    t.wait_for("hello from nym #2", Duration::from_secs(300));
    // The guest's end is reported as it happens, with its status, without
    // another command typed.
    let s = t.wait_for("nym: the kvm guest exited with 0", Duration::from_secs(30));
    let console = s.find("hello from nym #2").unwrap();
    assert!(
        s.find("nym: the kvm guest exited with 0").unwrap() > console,
        "the exit comes after the guest's last line:\n{s}"
    );
    t.wait_prompt("nym[kvm]>", Duration::from_secs(10));
    t.line(":stop");
    t.wait_for("nothing is running", Duration::from_secs(10));
    t.leave("nym[kvm]>");
}

#[test]
fn ctrl_c_cancels_a_build_and_the_repl_goes_on() {
    let (_tmp, dir) = common::slow_build_project("slow");
    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));
    t.line(":run");
    // cargo's progress reaches the screen through the log.
    t.wait_for("Compiling slow", Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    t.keys(&["C-c"]);
    t.wait_prompt("nym>", Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the build was cancelled, not waited for"
    );
    let s = t.screen();
    assert!(!s.contains("running in-process"), "{s}");
    // The session goes on.
    t.line(":check");
    t.wait_for("for unix: 0 error(s)", Duration::from_secs(10));
    t.leave("nym>");
}

/// Rough edges a new user hit: a binding no job uses yet is shown, marked,
/// in `:graph` and `:devices`; a stack whose jobs have finished does not
/// block `:boot`; the notebook's log pane wraps a long line, so its end is
/// on the screen.
#[test]
fn unused_bindings_show_a_finished_stack_blocks_no_boot_and_long_log_lines_wrap() {
    let (_tmp, dir) = project("hello", "hello");
    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));
    t.line("let spare = kv::mem();");
    t.wait_for("spare: Kv", Duration::from_secs(10));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line(":graph");
    t.wait_for("╎ spare: kv::mem (unused)", Duration::from_secs(10));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line(":devices");
    t.wait_for("kv::mem  (unused)", Duration::from_secs(10));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line(":run -- --count 1 --pause 1ms");
    t.wait_for("the jobs finished", Duration::from_secs(300));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line(":target kvm");
    t.wait_prompt("nym[kvm]>", Duration::from_secs(10));
    t.line(":boot -- --count 1 --pause 1ms");
    let s = t.wait_for("booting on kvm", Duration::from_secs(30));
    assert!(
        s.contains("put the in-process stack away (its jobs had ended)"),
        "{s}"
    );
    assert!(!s.contains("something is running"), "{s}");
    t.wait_prompt("nym[kvm]>", Duration::from_secs(10));
    t.line(":stop");
    t.wait_for("stopped the guest", Duration::from_secs(30));
    t.leave("nym[kvm]>");
    drop(t);

    // A line far wider than the log pane.
    common::rewrite(
        &dir,
        "#![no_std]\npub async fn start(c: impl libos::Console) -> Result<(), libos::ConsoleError> {\n    c.log(&alloc::format!(\"long-start {} long-END\", \"x\".repeat(120))).await\n}\nextern crate alloc;\n",
        "let j = job hello::start(console::default());\nregister(\"hello\", [j]);\n",
    );
    std::fs::write(dir.join("nb.md"), "```nym\n:run\n```\n").unwrap();
    let Some(t) = Tmux::start(&dir, &format!("{} tui nb.md", nym_exe())) else {
        return;
    };
    t.wait_for("[1] nym", Duration::from_secs(30));
    t.keys(&["C-a"]);
    let s = t.wait_for("the jobs finished", Duration::from_secs(300));
    assert!(s.contains("long-start"), "{s}");
    assert!(
        s.contains("long-END"),
        "the end of the long line is shown:\n{s}"
    );
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
}

/// A device of the running stack called from the REPL (completed with
/// Tab, checked, answered) and from a notebook cell: what the REPL sets,
/// the http server serves.
#[test]
fn the_repl_and_the_notebook_call_live_devices_of_the_running_server() {
    let (_tmp, dir) = project("web", "http");
    let port = common::free_port();
    let Some(t) = Tmux::start(&dir, &format!("{} repl", nym_exe())) else {
        return;
    };
    t.wait_prompt("nym>", Duration::from_secs(30));
    t.line(&format!(":run -- --port {port}"));
    t.wait_for("running in-process", Duration::from_secs(300));
    common::wait_for_body(port, "/", "Hello from nym!\n");
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.type_text("state.se");
    t.keys(&["Tab"]);
    t.wait_for("nym> state.set(", Duration::from_secs(10));
    t.line("\"greeting\", \"typed in tmux\")");
    t.wait_prompt("nym>", Duration::from_secs(10));
    assert_eq!(common::get(port, "/kv/greeting").unwrap(), "typed in tmux");
    t.line("state.get(\"nope\")");
    t.wait_for("no value for key \"nope\"", Duration::from_secs(10));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line("state.get(\"greeting\")");
    t.wait_for("\"typed in tmux\" (13 bytes)", Duration::from_secs(10));
    t.wait_prompt("nym>", Duration::from_secs(10));
    t.line("state.get(1)");
    t.wait_for(
        "expects a string for `key`, found an int",
        Duration::from_secs(10),
    );
    t.leave("nym>");
    drop(t);

    std::fs::write(
        dir.join("nb.md"),
        format!("```nym\n:run -- --port {port}\n```\n\n```nym\nstate.set(\"from\", \"the notebook\")\nstate.get(\"from\")\n```\n"),
    )
    .unwrap();
    let Some(t) = Tmux::start(&dir, &format!("{} tui nb.md", nym_exe())) else {
        return;
    };
    t.wait_for("[2] nym", Duration::from_secs(30));
    t.keys(&["C-a"]);
    let s = t.wait_for("ran 2 cell(s)", Duration::from_secs(300));
    assert!(s.contains("\"the notebook\" (12 bytes)"), "{s}");
    assert_eq!(common::get(port, "/kv/from").unwrap(), "the notebook");
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
}
