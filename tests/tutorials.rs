//! Every lesson, solved as a learner would solve it, through the engine
//! `nym tutorial check` uses: each step's check FAILS on the files as the
//! step begins and PASSES once its solution is applied (files written, the
//! session's inputs typed, gdb asked), and once the lesson is done every
//! step that is meant to stay done still passes. Steps that need KVM,
//! QEMU, Xen or gdb run for real; under `CI=true` a missing need fails.
mod common;

use common::tmux::Tmux;
use common::{required, shared_target};
use nym_tutorials::engine::{Tutorial, Verdict};
use nym_tutorials::{Action, Step};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn nym() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_nym"))
}

/// Lesson `name` laid out in a fresh directory, building in the shared
/// target directory.
fn lay_out(name: &str) -> (tempfile::TempDir, Tutorial) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut t, new) = Tutorial::start(nym(), name, tmp.path()).unwrap();
    assert!(new);
    t.target_dir = Some(shared_target());
    (tmp, t)
}

fn say(lesson: &str) -> impl FnMut(&str) + '_ {
    move |what| eprintln!("[{lesson}] … {what}")
}

/// Solves lesson `name` step by step; see the module's documentation.
fn solve(name: &str) {
    let (_tmp, mut t) = lay_out(name);
    let steps = t.lesson.steps.clone();
    let mut answers = std::collections::HashMap::new();
    for step in &steps {
        let missing: Vec<_> = step.needs.iter().filter_map(|n| n.missing()).collect();
        if !required(
            missing.is_empty(),
            &format!("{name}/{}: {}", step.id, missing.join("; ")),
        ) {
            return;
        }
        let started = Instant::now();
        match t.verify(nym(), step, None, &mut say(name)) {
            Verdict::Failed { .. } => {}
            Verdict::Passed => panic!("{name}/{}: passes before it is done", step.id),
            Verdict::Skipped(m) => panic!("{name}/{}: skipped ({m:?})", step.id),
        }
        let answer = apply(&t, step);
        match t
            .check(nym(), &step.id, answer.as_deref(), &mut say(name))
            .unwrap()
        {
            Verdict::Passed => {}
            Verdict::Failed { check, failure } => {
                panic!(
                    "{name}/{}: solved, it still fails ({check}):\n{failure}",
                    step.id
                )
            }
            Verdict::Skipped(m) => panic!("{name}/{}: skipped ({m:?})", step.id),
        }
        eprintln!(
            "[{name}] {} failed, then passed solved: {:.1} s",
            step.id,
            started.elapsed().as_secs_f64()
        );
        if let Some(a) = answer {
            answers.insert(step.id.clone(), a);
        }
    }
    assert!(t.current().is_none(), "{name}: every step recorded");
    for step in steps.iter().filter(|s| s.stays) {
        let answer = answers.get(&step.id).map(String::as_str);
        if let Verdict::Failed { check, failure } = t.verify(nym(), step, answer, &mut say(name)) {
            panic!(
                "{name}/{}: no longer passes once the lesson is done ({check}):\n{failure}",
                step.id
            );
        }
    }
}

/// Applies step's solution: its files, then its actions. The answer, for
/// a step that asks for one.
fn apply(t: &Tutorial, step: &Step) -> Option<String> {
    if let Some(files) = t.lesson.solutions.get(&step.id) {
        for (path, bytes) in files {
            let p = t.dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }
    if step.actions.is_empty() {
        return None;
    }
    let port = free_port();
    let mut repl: Option<Repl> = None;
    let mut answer = None;
    for action in &step.actions {
        let fill = |s: &str| s.replace("{port}", &port.to_string());
        match action {
            Action {
                repl: Some(line), ..
            } => {
                repl.get_or_insert_with(|| Repl::start(&t.dir))
                    .line(&fill(line));
            }
            Action {
                wait: Some(text), ..
            } => {
                let r = repl.as_mut().expect("`wait` follows a `repl` action");
                r.wait_for(&fill(text), Duration::from_secs(900));
            }
            Action {
                shell: Some(cmd), ..
            } => {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(fill(cmd))
                    .current_dir(&t.dir)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "`{cmd}`: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Action {
                tui: Some(notebook),
                ..
            } => run_notebook(&t.dir, notebook),
            Action { debug: Some(d), .. } => answer = Some(debug(&t.dir, &d.args, &d.gdb)),
            _ => panic!("{}: an action that does nothing", step.id),
        }
    }
    if let Some(r) = repl {
        r.quit();
    }
    answer
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `nym repl` in a lesson folder, its input piped, its output collected.
struct Repl {
    child: std::process::Child,
    out: Arc<Mutex<String>>,
}

impl Repl {
    fn start(dir: &Path) -> Repl {
        let mut child = Command::new(nym())
            .arg("repl")
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("NO_COLOR", "1")
            .env("NYM_HISTORY", dir.join("target/history"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Repl { child, out }
    }

    fn line(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
        // Each line is answered before the next is read; give it a moment
        // so a failure shows next to its input.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn wait_for(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.out.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the session never said {text:?}; it said:\n{}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn quit(mut self) {
        let _ = writeln!(self.child.stdin.as_mut().unwrap(), ":quit");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "`:quit` did not end the session:\n{}",
                    self.out.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs every cell of `notebook` in `nym tui` in a terminal, then leaves.
fn run_notebook(dir: &Path, notebook: &str) {
    let t = Tmux::start(dir, &format!("{} tui {notebook}", nym().display())).expect("tmux");
    t.wait_for("^A all", Duration::from_secs(60));
    t.keys(&["C-a"]);
    t.wait_for("ran ", Duration::from_secs(600));
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(60));
}

/// `nym debug ARGS` with `commands` typed at gdb's prompt, each once gdb
/// asks for it: the last value gdb printed.
fn debug(dir: &Path, args: &[String], commands: &[String]) -> String {
    let mut child = Command::new(nym())
        .arg("debug")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let prompts = |out: &Arc<Mutex<String>>| out.lock().unwrap().matches("(gdb) ").count();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut stdin = child.stdin.take().unwrap();
    for (i, c) in commands.iter().enumerate() {
        // gdb asks for its (i+1)th command with its (i+1)th prompt.
        while prompts(&out) <= i {
            assert!(
                Instant::now() < deadline,
                "gdb never asked for `{c}`:\n{}",
                out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        writeln!(stdin, "{c}").unwrap();
    }
    while prompts(&out) <= commands.len() && child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "gdb did not finish:\n{}",
            out.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    // Its status is the guest's: gdb's `kill` ends it as SIGKILL would.
    common::exit_within(&mut child, Duration::from_secs(60), "nym debug");
    let text = out.lock().unwrap().clone();
    text.lines()
        .rev()
        .find_map(|l| {
            let l = l.trim_start().trim_start_matches("(gdb) ");
            l.starts_with('$')
                .then(|| l.split_once(" = ").map(|(_, v)| v.trim().to_owned()))?
        })
        .unwrap_or_else(|| panic!("gdb printed no value:\n{text}"))
}

/// Every ```nym cell of a lesson evaluates without error in a session
/// over the files as its step's solution leaves them (the introduction's
/// over the files as laid out).
#[test]
fn every_nym_cell_evaluates_over_its_steps_solution() {
    let mut seen = 0;
    for lesson in nym_tutorials::lesson::all().unwrap() {
        let (_tmp, t) = lay_out(&lesson.name);
        let start = nym_tutorials::files::tree(&t.dir);
        for (step, cell) in nym_tutorials::audit::nym_cells(&lesson) {
            let mut files = start.clone();
            if let Some(id) = &step {
                files.extend(lesson.files_after(id));
            }
            nym_tutorials::files::sync(&t.dir, &files).unwrap();
            let mut session = nym_repl::Session::open(&t.dir, None).unwrap();
            let reply = session.eval(&cell);
            let place = format!("{}/{}", lesson.name, step.as_deref().unwrap_or("intro"));
            assert!(
                !reply.error,
                "{place}: the cell\n{cell}\nanswered\n{}",
                reply.text
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} cells: the scan is broken");
}

macro_rules! lessons {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                solve($name);
            }
        )*

        #[test]
        fn every_lesson_is_solved_by_a_test() {
            let tested = [$($name),*];
            for l in nym_tutorials::lesson::all().unwrap() {
                assert!(tested.contains(&l.name.as_str()), "lesson {} has no test", l.name);
            }
        }
    };
}

lessons! {
    lesson_01_hello => "hello",
    lesson_02_checker => "checker",
    lesson_03_time => "time",
    lesson_04_storage => "storage",
    lesson_05_live => "live",
    lesson_06_reload => "reload",
    lesson_07_network => "network",
    lesson_08_tls => "tls",
    lesson_09_retarget => "retarget",
    lesson_10_debug => "debug",
    lesson_11_notebook => "notebook",
    lesson_12_simulate => "simulate",
}
