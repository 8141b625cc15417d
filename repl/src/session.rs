//! The session: one project, the graph's statements as the user has typed
//! them, the chosen target, the stack running in-process (if any), a guest
//! booted on the chosen target (if any), the log, and the cells evaluated
//! so far. `nym repl` and `nym tui` both drive it through [`Session::eval`];
//! neither knows anything about the graph itself.
//!
//! The graph lives in memory as a list of statements. `let x = ...;`
//! replaces an earlier binding of `x` where it stood (so later statements
//! keep seeing it) or is added before `register`; `register(...)` replaces
//! the previous one. After every change the whole graph is checked by
//! `nym-graph` as `nym check` would: an input that would introduce an error
//! is refused with the checker's diagnostics, and the session is unchanged.
//! While the stack runs, each accepted change re-wires it: unchanged
//! devices keep their state.
use crate::log::{Console, Log};
use crate::notebook::{self, Cell, CellKind};
use nym_driver::build::{build_program, key_values};
use nym_driver::live::{Live, Reloaded};
use nym_driver::project::{Project, ProjectError, GRAPH_FILE};
use nym_driver::Error;
use nym_graph::check::GArg;
use nym_graph::diagnostic::{self, Diagnostic};
use nym_graph::syntax::{Span, Stmt};
use nym_graph::{analyze, print, Analysis, Graph, RustCrate, Severity, Target};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What an evaluation answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// What to show, possibly several lines; may be empty.
    pub text: String,
    /// Whether it is an error (shown as one; the session did not change).
    pub error: bool,
    /// `:quit`.
    pub quit: bool,
}

impl Reply {
    pub(crate) fn ok(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ..Reply::default()
        }
    }
    pub(crate) fn err(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            error: true,
            quit: false,
        }
    }
    /// Joins `next` under `self`; an error in either makes an error.
    fn then(mut self, next: Reply) -> Reply {
        if !next.text.is_empty() {
            if !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push('\n');
            }
            self.text.push_str(&next.text);
        }
        self.error |= next.error;
        self.quit |= next.quit;
        self
    }
}

/// Whether the stack or a guest is running.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunState {
    /// Nothing runs.
    #[default]
    Stopped,
    /// The stack runs in-process (`:run`).
    Running,
    /// A guest is booted on a target (`:boot`).
    Booted(Target),
    /// It ended, and how.
    Ended(String),
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunState::Stopped => f.write_str("stopped"),
            RunState::Running => f.write_str("running"),
            RunState::Booted(t) => write!(f, "booted on {t}"),
            RunState::Ended(how) => write!(f, "ended: {how}"),
        }
    }
}

/// What the status bar shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Run state.
    pub state: RunState,
    /// Reloads since `:run`.
    pub reloads: u32,
    /// The last build's duration.
    pub last_build: Option<Duration>,
    /// The last reload's swap: from stopping the old jobs to the new ones running.
    pub last_swap: Option<Duration>,
    /// The last reload's report.
    pub last_reload: Option<String>,
}

/// One graph statement of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    text: String,
    /// The binding it makes, for `let`.
    name: Option<String>,
    register: bool,
}

impl Entry {
    /// The entry for statement `s`, whose text is `text`.
    fn of(s: &Stmt, text: &str) -> Entry {
        Entry {
            text: text.to_owned(),
            name: match s {
                Stmt::Let { name, .. } => Some(name.name.clone()),
                Stmt::Expr { .. } => None,
            },
            register: matches!(s, Stmt::Expr { expr, .. } if is_register(expr)),
        }
    }
}

/// Requests to the task that owns the running stack.
enum Request {
    Reload(
        Graph,
        nym_unix::keys::Keys,
        oneshot::Sender<Result<Reloaded, Error>>,
    ),
    Inspect(usize, oneshot::Sender<Vec<String>>),
    Stop(oneshot::Sender<()>),
}

/// The running stack, owned by its own task.
struct Running {
    requests: mpsc::UnboundedSender<Request>,
    task: tokio::task::JoinHandle<()>,
}

/// A guest booted on a target, as a child `nym run`.
struct Booted {
    /// The child; taken by `:stop`, or by its watcher when it ends.
    child: Arc<Mutex<Option<std::process::Child>>>,
}

/// The interactive session.
pub struct Session {
    cwd: PathBuf,
    project: Option<Project>,
    entries: Vec<Entry>,
    target: Target,
    key_args: Vec<String>,
    runtime: tokio::runtime::Runtime,
    log: Log,
    status: Arc<Mutex<Status>>,
    /// The session's graph text, for reloads the running task makes on its own.
    source: Arc<Mutex<String>>,
    running: Option<Running>,
    booted: Option<Booted>,
    cells: Vec<Cell>,
    rust: crate::rust::Cells,
    /// Whether Ctrl-C (SIGINT) cancels a long evaluation: set by the REPL.
    interruptible: bool,
}

/// Commands, with their one-line help, for `:help` and completion.
pub const COMMANDS: &[(&str, &str)] = &[
    (":help", "this list"),
    (":graph", "the resolved graph (or what is bound so far)"),
    (
        ":check",
        "check the whole graph for the target, as `nym check` does",
    ),
    (
        ":target",
        "`:target kvm|qemu|xen|unix`: the target to check, build and boot for",
    ),
    (
        ":run",
        "run the stack in-process, hot-reloading src/ edits; `:run -- --key value`",
    ),
    (":stop", "stop the running stack or booted guest"),
    (":build", "build the program for the target"),
    (
        ":boot",
        "build and run on the target (kvm, qemu, xen or unix)",
    ),
    (":logs", "the last lines of the log: `:logs 50`"),
    (":devices", "the graph's devices and jobs"),
    (
        ":inspect",
        "`:inspect NAME`: a device's live state (KV contents, sockets, clock)",
    ),
    (
        ":rust",
        "`:rust CODE` evaluates Rust (evcxr) with libos and the project's crate; `:rust` alone switches modes; evcxr's `:dep`, `:vars` work there",
    ),
    (
        ":save",
        "`:save FILE.md` writes the session as a notebook (`.nym`: the graph)",
    ),
    (
        ":load",
        "`:load FILE.md` runs a notebook's cells (`.nym`: takes its graph)",
    ),
    (
        ":reset",
        "stop, and start again from the project's graph on disk",
    ),
    (":quit", "stop everything and leave (Ctrl-D)"),
];

/// Other spellings of some commands.
const ALIASES: &[(&str, &str)] = &[
    (":h", ":help"),
    (":?", ":help"),
    (":q", ":quit"),
    (":exit", ":quit"),
];

/// The command `word` names (an alias gives its command), if any.
fn command_named(word: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .find(|c| *c == word)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == word).map(|(_, c)| *c))
}

impl Session {
    /// A session in the project at or above `cwd` (or the graph `file`),
    /// starting from its graph. Without a project it starts empty.
    pub fn open(cwd: &Path, file: Option<&Path>) -> Result<Session, Error> {
        let project = match Project::open(cwd, file) {
            Ok(p) => Some(p),
            Err(ProjectError::NotFound(_)) if file.is_none() => None,
            Err(e) => return Err(e.into()),
        };
        let runtime = nym_driver::build::runtime()?;
        let mut s = Session {
            cwd: cwd.to_owned(),
            project,
            entries: Vec::new(),
            target: Target::Unix,
            key_args: Vec::new(),
            runtime,
            log: Log::default(),
            status: Arc::default(),
            source: Arc::default(),
            running: None,
            booted: None,
            cells: Vec::new(),
            rust: crate::rust::Cells::default(),
            interruptible: false,
        };
        let text = s.project.as_ref().map(|p| p.source.clone());
        if let Some(text) = text {
            s.entries = entries_of(&text);
        }
        s.sync_source();
        Ok(s)
    }

    /// From now on Ctrl-C (SIGINT) no longer ends this process: it stops
    /// what runs in the foreground (cargo, a wait the session is in) and
    /// the session goes on. The REPL and the notebook call it.
    pub fn survive_interrupts(&mut self) {
        self.interruptible = true;
        let _guard = self.runtime.enter();
        if let Ok(mut sigint) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        {
            let rust = self.rust.interrupt();
            self.runtime.spawn(async move {
                while sigint.recv().await.is_some() {
                    rust.fire();
                }
            });
        }
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The status, for a status bar.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The chosen target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The project's directory, if there is a project.
    pub fn root(&self) -> Option<&Path> {
        self.project.as_ref().map(|p| p.root.as_path())
    }

    /// The graph as text, statement per line.
    pub fn source(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The application crate, for job signatures.
    pub fn krate(&self) -> Option<RustCrate> {
        self.project.as_ref().and_then(Project::krate)
    }

    /// The current graph checked for the target.
    pub fn analysis(&self) -> Analysis {
        analyze(&self.source(), self.target, self.krate().as_ref())
    }

    /// The resolved graph, when it checks.
    pub fn graph(&self) -> Option<Graph> {
        self.analysis().checked.graph
    }

    /// The cells evaluated so far, in order (what `:save` writes).
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Evaluates a line or block of the REPL: a `:command`, or graph
    /// statements and expressions.
    pub fn eval(&mut self, input: &str) -> Reply {
        let reply = self.eval_nym(input);
        if !reply.error && !input.trim().is_empty() && !is_meta(input) {
            self.cells.push(Cell::new(CellKind::Nym, input.trim()));
        }
        reply
    }

    /// Evaluates a notebook cell of any kind.
    pub fn eval_cell(&mut self, cell: &Cell) -> Reply {
        match cell.kind {
            CellKind::Nym => self.eval(&cell.source),
            CellKind::Rust => self.eval_rust(&cell.source),
            CellKind::Markdown => Reply::default(),
        }
    }

    /// Runs Rust cells in `program` (a `nym` binary) instead of this
    /// program: for tests, whose own binary cannot be evcxr's runtime.
    #[doc(hidden)]
    pub fn set_rust_runtime(&mut self, program: PathBuf) {
        self.rust.set_runtime(program);
    }

    /// Stops the Rust cell being evaluated, from another thread; Ctrl-C
    /// does it once [`Session::survive_interrupts`] was called.
    pub fn rust_interrupt(&self) -> crate::rust::Interrupt {
        self.rust.interrupt()
    }

    /// Evaluates Rust with evcxr, the project's crate and libos available.
    pub fn eval_rust(&mut self, code: &str) -> Reply {
        let project = self.project.as_ref();
        let krate = project.and_then(|p| Some((p.package.as_deref()?, p.root.as_path())));
        let build_dir = project.and_then(crate::rust::build_dir);
        let out = self.rust.eval(code, krate, build_dir.as_deref());
        if !out.error && !code.trim().is_empty() {
            self.cells.push(Cell::new(CellKind::Rust, code.trim()));
        }
        out
    }

    /// A cell's lines: each `:command` line on its own, the lines between
    /// them as one block of graph text.
    fn eval_nym(&mut self, input: &str) -> Reply {
        let mut reply = Reply::default();
        let mut block = String::new();
        for line in input.lines() {
            if line.trim_start().starts_with(':') && balanced(&block) {
                if !block.trim().is_empty() {
                    reply = reply.then(self.eval_graph(&std::mem::take(&mut block)));
                    if reply.error {
                        return reply;
                    }
                }
                block.clear();
                reply = reply.then(self.command(line.trim()));
                if reply.error || reply.quit {
                    return reply;
                }
            } else {
                block.push_str(line);
                block.push('\n');
            }
        }
        if !block.trim().is_empty() {
            reply = reply.then(self.eval_graph(&block));
        }
        reply
    }

    fn sync_source(&self) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = self.source();
    }

    /// Graph statements and expressions.
    fn eval_graph(&mut self, input: &str) -> Reply {
        let mut text = input.trim_end().to_owned();
        if !text.ends_with(';') && !text.ends_with('}') {
            text.push(';');
        }
        let (file, errors) = nym_graph::parser::parse(&text);
        if !errors.is_empty() {
            return Reply::err(diagnostic::render(&errors, "input", &text, false));
        }
        // The new statements in place, each with where its text starts in
        // the input; expressions go after the graph and are not kept.
        let mut work: Vec<(Entry, Option<usize>)> =
            self.entries.iter().cloned().map(|e| (e, None)).collect();
        let mut shown = Vec::new();
        let mut expressions = Vec::new();
        for stmt in &file.stmts {
            let span = stmt.span();
            let stmt_text = &text[span.start..span.end];
            match stmt {
                Stmt::Let { name, .. } => {
                    let e = Entry::of(stmt, stmt_text);
                    let same = work
                        .iter()
                        .position(|(x, _)| x.name.as_deref() == Some(&name.name));
                    match same {
                        Some(i) => work[i] = (e, Some(span.start)),
                        None => {
                            let at = work.iter().position(|(x, _)| x.register);
                            work.insert(at.unwrap_or(work.len()), (e, Some(span.start)));
                        }
                    }
                    shown.push(name.name.clone());
                }
                Stmt::Expr { expr, .. } if is_register(expr) => {
                    work.retain(|(x, _)| !x.register);
                    work.push((Entry::of(stmt, stmt_text), Some(span.start)));
                }
                Stmt::Expr { expr, .. } => {
                    expressions.push((stmt_text.to_owned(), expr.span, span.start))
                }
            }
        }
        let mut source = String::new();
        // (span in `source`, where it starts in the input)
        let mut placed: Vec<(Span, usize)> = Vec::new();
        for (e, from) in &work {
            if let Some(from) = from {
                placed.push((Span::new(source.len(), source.len() + e.text.len()), *from));
            }
            source.push_str(&e.text);
            source.push('\n');
        }
        // Each expression's own span in `source`.
        let mut expr_at = Vec::new();
        for (t, expr, from) in &expressions {
            let base = source.len();
            placed.push((Span::new(base, base + t.len()), *from));
            expr_at.push((base + expr.start - from, base + expr.end - from));
            source.push_str(t);
            source.push('\n');
        }
        let entries: Vec<Entry> = work.into_iter().map(|(e, _)| e).collect();
        let krate = self.krate();
        let analysis = analyze(&source, self.target, krate.as_ref());
        let mut in_input = Vec::new();
        let mut elsewhere = Vec::new();
        for d in analysis.diagnostics() {
            if interactive_noise(d, &source) {
                continue;
            }
            match placed
                .iter()
                .find(|(s, _)| s.start <= d.span.start && d.span.end <= s.end)
            {
                Some((s, input_start)) => in_input.push(rebase(d, s.start, *input_start)),
                None if d.severity == Severity::Error => elsewhere.push(d.clone()),
                None => {}
            }
        }
        let errors = in_input.iter().chain(&elsewhere).any(Diagnostic::is_error);
        let mut out = String::new();
        if !in_input.is_empty() {
            out += &diagnostic::render(&in_input, "input", &text, false);
        }
        if !elsewhere.is_empty() {
            out += "this change breaks the rest of the graph:\n";
            out += &diagnostic::render(&elsewhere, "graph", &source, false);
        }
        if errors {
            return Reply::err(out);
        }
        let types = &analysis.checked.types;
        let type_at = |start: usize, end: usize| {
            types
                .iter()
                .find(|(s, _)| s.start == start && s.end == end)
                .map(|(_, t)| t.to_string())
        };
        for name in &shown {
            let b = analysis
                .checked
                .bindings
                .iter()
                .find(|b| &b.name.name == name);
            if let Some(b) = b {
                out += &format!("{name}: {}\n", b.ty);
            }
        }
        for (a, b) in &expr_at {
            if let Some(t) = type_at(*a, *b) {
                out += &format!("{}: {t}\n", source[*a..*b].trim());
            }
        }
        if entries != self.entries {
            self.entries = entries;
            self.sync_source();
            if self.running.is_some() {
                let r = self.rewire();
                return Reply::ok(out).then(r);
            }
        }
        Reply::ok(out.trim_end().to_owned())
    }

    /// Re-wires the running stack to the current graph.
    fn rewire(&mut self) -> Reply {
        let analysis = analyze(&self.source(), Target::Unix, self.krate().as_ref());
        let Some(graph) = analysis.checked.graph else {
            let first = analysis
                .diagnostics()
                .iter()
                .find(|d| d.is_error())
                .map_or_else(String::new, |d| format!(": {}", d.message));
            return Reply::ok(format!(
                "the stack keeps running the previous graph (this one does not run yet{first})"
            ));
        };
        match self.reload(graph) {
            Ok(done) => Reply::ok(format!("re-wired: {}", rewired_text(&done))),
            Err(e) => Reply::err(format!("{e}; the previous graph keeps running")),
        }
    }

    fn reload(&mut self, graph: Graph) -> Result<Reloaded, Error> {
        let keys = key_values(&graph, &self.key_args)?;
        let running = self.running.as_ref().ok_or_else(|| Error::Io {
            what: "re-wiring".into(),
            source: std::io::Error::other("the stack is not running"),
        })?;
        let (tx, rx) = oneshot::channel();
        let _ = running.requests.send(Request::Reload(graph, keys, tx));
        self.wait(rx)?
    }

    /// Blocks on `rx`, or until Ctrl-C when interruptible.
    fn wait<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, Error> {
        let gone = || Error::Io {
            what: "the running stack".into(),
            source: std::io::Error::other("it stopped"),
        };
        let interruptible = self.interruptible;
        self.runtime.block_on(async move {
            if interruptible {
                tokio::select! {
                    r = rx => r.map_err(|_| gone()),
                    _ = tokio::signal::ctrl_c() => Err(Error::Io {
                        what: "waiting".into(),
                        source: std::io::Error::other("interrupted"),
                    }),
                }
            } else {
                rx.await.map_err(|_| gone())
            }
        })
    }

    /// Forgets a booted guest whose watcher saw it end.
    fn poll(&mut self) {
        if let Some(b) = &self.booted {
            if lock(&b.child).is_none() {
                self.booted = None;
            }
        }
    }

    fn set_state(&self, state: RunState) {
        set_state(&self.status, state);
    }

    /// Whether `line` starts with one of the session's `:commands` (in Rust
    /// mode the REPL sends other `:` lines, evcxr's own commands such as
    /// `:dep` and `:vars`, to the Rust cell).
    pub fn is_command(line: &str) -> bool {
        let word = line.split_whitespace().next().unwrap_or("");
        word == ":nym" || command_named(word).is_some()
    }

    /// Runs one `:command`.
    pub fn command(&mut self, line: &str) -> Reply {
        self.poll();
        let line = line.trim();
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match command_named(cmd).unwrap_or(cmd) {
            ":help" => Reply::ok(help()),
            ":graph" => self.show_graph(rest),
            ":check" => self.check(),
            ":target" => self.set_target(rest),
            ":run" => self.run(rest),
            ":stop" => self.stop(),
            ":build" => self.build(),
            ":boot" => self.boot(rest),
            ":logs" => {
                let n = rest.parse().unwrap_or(20);
                Reply::ok(self.log.tail(n).join("\n"))
            }
            ":devices" => self.devices(),
            ":inspect" => self.inspect(rest),
            ":rust" if !rest.is_empty() => self.eval_rust(rest),
            ":save" => self.save(rest),
            ":load" => self.load(rest),
            ":reset" => self.reset(),
            ":quit" => {
                self.shutdown();
                Reply {
                    quit: true,
                    ..Reply::default()
                }
            }
            _ => {
                let names = COMMANDS.iter().map(|(c, _)| *c);
                let hint = nym_graph::check::closest(cmd, names)
                    .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
                Reply::err(format!(
                    "unknown command `{cmd}`{hint} (`:help` lists them)"
                ))
            }
        }
    }

    fn show_graph(&self, rest: &str) -> Reply {
        let analysis = self.analysis();
        match analysis.checked.graph {
            Some(g) if rest == "--dot" => Reply::ok(print::dot(&g)),
            Some(g) => Reply::ok(print::boxes(&g, true)),
            None if self.entries.is_empty() => {
                Reply::ok("the graph is empty: bind a device, `let kv = kv::mem();`")
            }
            None => {
                let mut out =
                    String::from("not a runnable graph yet (`:check` says why); bound so far:\n");
                for b in &analysis.checked.bindings {
                    out += &format!("  {}: {}\n", b.name.name, b.ty);
                }
                Reply::ok(out.trim_end().to_owned())
            }
        }
    }

    fn check(&self) -> Reply {
        let analysis = self.analysis();
        let d = analysis.diagnostics();
        let errors = d.iter().filter(|d| d.is_error()).count();
        let mut out = diagnostic::render(d, "session", &self.source(), false);
        out += &format!(
            "checked the session's graph for {}: {errors} error(s), {} warning(s)",
            self.target,
            d.len() - errors
        );
        Reply {
            text: out,
            error: errors > 0,
            quit: false,
        }
    }

    fn set_target(&mut self, rest: &str) -> Reply {
        let Some(t) = Target::from_name(rest) else {
            return Reply::err(format!("`{rest}` is not a target: unix, kvm, qemu or xen"));
        };
        self.target = t;
        let analysis = self.analysis();
        let errors: Vec<_> = analysis
            .diagnostics()
            .iter()
            .filter(|d| d.is_error() && !interactive_noise(d, &self.source()))
            .cloned()
            .collect();
        let mut out = format!("target: {t}");
        if !errors.is_empty() {
            out += &format!(" ({} error(s) for it; `:check` shows them)", errors.len());
        }
        Reply::ok(out)
    }

    fn project(&self) -> Result<&Project, Reply> {
        self.project.as_ref().ok_or_else(|| {
            Reply::err(format!("no project here: there is no {GRAPH_FILE} in {} or above (`nym new NAME` makes one)", self.cwd.display()))
        })
    }

    /// The session's graph checked for `target`, or the diagnostics.
    fn runnable(&self, target: Target) -> Result<Graph, Reply> {
        let src = self.source();
        let analysis = analyze(&src, target, self.krate().as_ref());
        let d: Vec<_> = analysis
            .diagnostics()
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        analysis.checked.graph.ok_or_else(|| {
            Reply::err(format!(
                "{}the graph does not run on {target} yet",
                diagnostic::render(&d, "session", &src, false)
            ))
        })
    }

    fn run(&mut self, rest: &str) -> Reply {
        let project = match self.project() {
            Ok(p) => p.clone(),
            Err(r) => return r,
        };
        let keys_given: Vec<String> = rest
            .trim_start_matches("--")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !rest.is_empty() {
            self.key_args = keys_given;
        }
        let graph = match self.runnable(Target::Unix) {
            Ok(g) => g,
            Err(r) => return r,
        };
        if self.running.is_some() {
            return match self.reload(graph) {
                Ok(done) => Reply::ok(format!("rebuilt and swapped: {}", rewired_text(&done))),
                Err(e) => Reply::err(format!("{e}; the previous version keeps running")),
            };
        }
        if self.booted.is_some() {
            return Reply::err("a guest is booted; `:stop` it first");
        }
        let keys = match key_values(&graph, &self.key_args) {
            Ok(k) => k,
            Err(e) => return Reply::err(e.to_string()),
        };
        let out = self.log.out();
        let console: Arc<dyn libos::Console> = Arc::new(Console::new(self.log.clone()));
        let started = std::time::Instant::now();
        let live = self
            .runtime
            .block_on(Live::start(&project, graph, keys, Some(console), &out));
        let live = match live {
            Ok(l) => l,
            Err(e) => {
                return Reply::err(format!(
                    "{e}{}",
                    if matches!(e, Error::Build(_)) {
                        " (`:logs` shows cargo's output)"
                    } else {
                        ""
                    }
                ))
            }
        };
        let build = started.elapsed();
        {
            let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
            *st = Status {
                state: RunState::Running,
                last_build: Some(build),
                ..Status::default()
            };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = self.runtime.spawn(supervise(Supervised {
            live,
            requests: rx,
            project,
            source: self.source.clone(),
            key_args: self.key_args.clone(),
            log: self.log.clone(),
            status: self.status.clone(),
        }));
        self.running = Some(Running { requests: tx, task });
        Reply::ok(format!(
            "running in-process (built in {} ms); src/ edits reload it; `:stop` stops it",
            build.as_millis()
        ))
    }

    fn stop(&mut self) -> Reply {
        let mut said = Vec::new();
        if let Some(r) = self.running.take() {
            let (tx, rx) = oneshot::channel();
            let _ = r.requests.send(Request::Stop(tx));
            let _ = self.runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
                r.task.await
            });
            said.push("stopped the stack");
        }
        if let Some(b) = self.booted.take() {
            if let Some(mut child) = lock(&b.child).take() {
                let _ = child.kill();
                let _ = child.wait();
                said.push("stopped the guest");
            }
        }
        if said.is_empty() {
            return Reply::ok("nothing is running");
        }
        self.set_state(RunState::Stopped);
        Reply::ok(said.join("; "))
    }

    fn build(&mut self) -> Reply {
        let project = match self.project() {
            Ok(p) => p.clone(),
            Err(r) => return r,
        };
        let graph = match self.runnable(self.target) {
            Ok(g) => g,
            Err(r) => return r,
        };
        let started = std::time::Instant::now();
        match build_program(&self.cwd, &project, &graph, false, &self.log.out()) {
            Ok(path) => {
                let took = started.elapsed();
                self.status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_build = Some(took);
                Reply::ok(format!(
                    "built {} in {} ms",
                    path.display(),
                    took.as_millis()
                ))
            }
            Err(e) => Reply::err(format!("{e} (`:logs` shows cargo's output)")),
        }
    }

    /// Runs the graph on the chosen target in a child `nym run`, its
    /// output streaming into the log.
    fn boot(&mut self, rest: &str) -> Reply {
        let project = match self.project() {
            Ok(p) => p.clone(),
            Err(r) => return r,
        };
        if self.running.is_some() || self.booted.is_some() {
            return Reply::err("something is running; `:stop` it first");
        }
        if let Err(r) = self.runnable(self.target) {
            return r;
        }
        let dir = project.nym_dir(self.target).join("session");
        let graph_file = dir.join(GRAPH_FILE);
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&graph_file, self.source()))
        {
            return Reply::err(format!("cannot write {}: {e}", graph_file.display()));
        }
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return Reply::err(format!("cannot find nym's own executable: {e}")),
        };
        let mut cmd = std::process::Command::new(exe);
        cmd.current_dir(&project.root)
            .arg("run")
            .arg("--target")
            .arg(self.target.name())
            .arg("--file")
            .arg(&graph_file)
            .arg("--root")
            .arg(&project.root)
            .args(rest.split_whitespace())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Reply::err(format!("cannot start nym run: {e}")),
        };
        let forwards: Vec<_> = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|pipe| {
            let log = self.log.clone();
            nym_driver::forward_lines(pipe, move |line| log.push(line))
        })
        .collect();
        let child = Arc::new(Mutex::new(Some(child)));
        watch_guest(
            child.clone(),
            forwards,
            self.target,
            self.log.clone(),
            self.status.clone(),
        );
        self.booted = Some(Booted { child });
        self.set_state(RunState::Booted(self.target));
        Reply::ok(format!(
            "booting on {} (building first); its console is in the log; `:stop` stops it",
            self.target
        ))
    }

    fn devices(&self) -> Reply {
        let analysis = self.analysis();
        let Some(g) = analysis.checked.graph else {
            return self.show_graph("");
        };
        let mut out = String::new();
        let mut rows: Vec<(String, String, String)> = g
            .nodes
            .iter()
            .map(|n| {
                (
                    n.label.clone(),
                    n.imp.provides.to_string(),
                    n.imp.name.to_owned(),
                )
            })
            .collect();
        for &j in &g.registered {
            let job = &g.jobs[j];
            rows.push((job.label.clone(), "Job".into(), job.sig.path.to_string()));
        }
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (label, kind, what) in rows {
            out += &format!("{label:w0$}  {kind:w1$}  {what}\n");
        }
        if self.running.is_some() {
            out += "(running: `:inspect NAME` shows a device's state)";
        }
        Reply::ok(out.trim_end().to_owned())
    }

    fn inspect(&mut self, name: &str) -> Reply {
        if name.is_empty() {
            return Reply::err("`:inspect NAME`: which device? (`:devices` lists them)");
        }
        let analysis = analyze(&self.source(), Target::Unix, self.krate().as_ref());
        let found = (analysis.checked.graph)
            .and_then(|g| Some((g.nodes.iter().position(|n| n.label == name)?, g)));
        let Some((index, g)) = found else {
            let known = analysis
                .checked
                .bindings
                .iter()
                .map(|b| b.name.name.as_str());
            let hint = nym_graph::check::closest(name, known)
                .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
            return Reply::err(format!("no device `{name}` in the graph{hint}"));
        };
        let n = &g.nodes[index];
        let mut out = format!(
            "{name}: {} = {}\n",
            n.imp.provides,
            describe_node(&g, index)
        );
        let Some(running) = &self.running else {
            out += "not running (`:run` starts the stack; then its state shows here)";
            return Reply::ok(out);
        };
        // The running graph may be an older version: find the node there.
        let (tx, rx) = oneshot::channel();
        let _ = running.requests.send(Request::Inspect(index, tx));
        match self.wait(rx) {
            Ok(lines) => {
                for l in lines {
                    out += &format!("  {l}\n");
                }
                Reply::ok(out.trim_end().to_owned())
            }
            Err(e) => Reply::err(e.to_string()),
        }
    }

    fn save(&self, file: &str) -> Reply {
        if file.is_empty() {
            return Reply::err("`:save FILE.md` (a notebook) or `:save FILE.nym` (the graph)");
        }
        let path = self.cwd.join(file);
        let text = if file.ends_with(".nym") {
            let src = self.source() + "\n";
            nym_graph::format::format(&src).unwrap_or(src)
        } else {
            notebook::write(&self.cells)
        };
        match std::fs::write(&path, text) {
            Ok(()) => Reply::ok(format!("wrote {file}")),
            Err(e) => Reply::err(format!("cannot write {}: {e}", path.display())),
        }
    }

    fn load(&mut self, file: &str) -> Reply {
        if file.is_empty() {
            return Reply::err("`:load FILE.md` (a notebook) or `:load FILE.nym` (a graph)");
        }
        let path = self.cwd.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return Reply::err(format!("cannot read {}: {e}", path.display())),
        };
        if file.ends_with(".nym") {
            let (_, errors) = nym_graph::parser::parse(&text);
            if !errors.is_empty() {
                return Reply::err(diagnostic::render(&errors, file, &text, false));
            }
            self.entries = entries_of(&text);
            self.sync_source();
            let mut r = Reply::ok(format!(
                "took the graph of {file}: {} statement(s)",
                self.entries.len()
            ));
            if self.running.is_some() {
                r = r.then(self.rewire());
            }
            return r;
        }
        let mut reply = Reply::default();
        for cell in notebook::parse(&text) {
            if cell.kind == CellKind::Markdown {
                self.cells.push(cell);
                continue;
            }
            let r = self.eval_cell(&cell);
            let failed = r.error;
            reply = reply.then(r);
            if failed {
                return reply.then(Reply::err(format!(
                    "{file}: stopped at the cell that failed"
                )));
            }
        }
        reply.then(Reply::ok(format!("ran {file}")))
    }

    fn reset(&mut self) -> Reply {
        let stopped = (self.running.is_some() || self.booted.is_some()).then(|| self.stop());
        let fresh = match &self.project {
            Some(p) => Project::open(&self.cwd, Some(&p.graph_path)),
            None => return Reply::ok("reset: the graph is empty"),
        };
        match fresh {
            Ok(p) => {
                self.entries = entries_of(&p.source);
                self.project = Some(p);
            }
            Err(e) => return Reply::err(e.to_string()),
        }
        self.sync_source();
        self.cells.clear();
        self.rust.reset();
        self.key_args.clear();
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Status::default();
        let mut r = Reply::ok(format!(
            "reset to the project's graph ({} statement(s))",
            self.entries.len()
        ));
        if let Some(stopped) = stopped {
            r = stopped.then(r);
        }
        r
    }

    /// Stops whatever runs. Called by `:quit` and on drop.
    pub fn shutdown(&mut self) {
        let _ = self.stop();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether `input` is only commands that look or leave (not kept as a
/// cell by itself).
fn is_meta(input: &str) -> bool {
    const META: &[&str] = &[
        ":help", ":logs", ":devices", ":inspect", ":graph", ":check", ":save", ":quit", ":stop",
        ":reset", ":load", ":rust",
    ];
    input.lines().all(|l| {
        let word = l.split_whitespace().next();
        word.is_none_or(|w| command_named(w).is_some_and(|c| META.contains(&c)))
    })
}

/// Whether brackets balance in `text` (strings and comments aside).
pub fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_str = !in_str,
            '\\' if in_str => {
                chars.next();
            }
            '/' if !in_str && chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' if !in_str => depth += 1,
            ')' | ']' | '}' if !in_str => depth -= 1,
            _ => {}
        }
    }
    depth <= 0 && !in_str
}

/// Whether the REPL should evaluate `input` now, or keep reading lines: a
/// command is one line; graph text needs balanced brackets, and a `let`
/// or `register` statement its `;`.
pub fn is_complete(input: &str) -> bool {
    let t = input.trim();
    if t.is_empty() || t.starts_with(':') {
        return true;
    }
    if !balanced(t) {
        return false;
    }
    let last = t.lines().last().map_or("", without_comment).trim();
    let statement = t.starts_with("let ") || t.starts_with("register");
    !statement || last.ends_with(';') || last.ends_with('}')
}

/// `line` without its `//` comment.
fn without_comment(line: &str) -> &str {
    let mut in_str = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn is_register(e: &nym_graph::syntax::Expr) -> bool {
    matches!(&e.kind, nym_graph::syntax::ExprKind::Call { path, .. } if path.text() == "register")
}

/// The statements of a graph file, one entry each (comments dropped).
fn entries_of(text: &str) -> Vec<Entry> {
    let (file, _) = nym_graph::parser::parse(text);
    file.stmts
        .iter()
        .map(|s| Entry::of(s, &text[s.span().start..s.span().end]))
        .collect()
}

/// Findings that say the graph is not finished, which it rarely is while
/// it is being typed: unused bindings and values, and a missing `register`.
fn interactive_noise(d: &Diagnostic, source: &str) -> bool {
    matches!(d.code, "nym::unused" | "nym::unused-value")
        || (d.code == "nym::register" && d.span.start >= source.trim_end().len())
}

/// `d` moved from `source` coordinates (a statement starting at `from`)
/// to the input's (where it starts at `to`).
fn rebase(d: &Diagnostic, from: usize, to: usize) -> Diagnostic {
    let mv = |s: Span| Span::new(s.start - from + to, s.end - from + to);
    let mut d = d.clone();
    d.span = mv(d.span);
    d.related.retain(|(s, _)| s.start >= from);
    for (s, _) in &mut d.related {
        *s = mv(*s);
    }
    d.fix = None;
    d
}

fn rewired_text(done: &Reloaded) -> String {
    let mut t = String::new();
    if !done.rewired.kept.is_empty() {
        t += &format!("kept {}", done.rewired.kept.join(", "));
    }
    if !done.rewired.made.is_empty() {
        if !t.is_empty() {
            t += "; ";
        }
        t += &format!("new {}", done.rewired.made.join(", "));
    }
    format!(
        "{t} (build {} ms, swap {:.2} ms)",
        done.build.as_millis(),
        done.swap.as_secs_f64() * 1e3
    )
}

/// `imp(arg, ...)` for node `index`, arguments by label or value.
fn describe_node(g: &Graph, index: usize) -> String {
    let n = &g.nodes[index];
    let args: Vec<String> = n
        .args
        .iter()
        .map(|a| match a {
            GArg::Node(i) => g.nodes[*i].label.clone(),
            GArg::Value(v) => v.to_string(),
            GArg::Key(k) => format!("key({:?})", g.keys[*k].name),
        })
        .collect();
    format!("{}({})", n.imp.name, args.join(", "))
}

fn help() -> String {
    let mut out = String::from(
        "Type graph statements to bind devices (`let kv = kv::mem();`), an expression to see its kind,\n\
         or a command:\n",
    );
    for (c, h) in COMMANDS {
        out += &format!("  {c:<9} {h}\n");
    }
    out += "Tab completes implementations, bindings, keys and commands; Ctrl-C cancels; Ctrl-D leaves.";
    out
}

/// What the task owning the running stack holds.
struct Supervised {
    live: Live,
    requests: mpsc::UnboundedReceiver<Request>,
    project: Project,
    source: Arc<Mutex<String>>,
    key_args: Vec<String>,
    log: Log,
    status: Arc<Mutex<Status>>,
}

/// Owns the running stack: serves the session's requests, reports how the
/// jobs end, and hot-reloads when the application's sources change.
async fn supervise(mut s: Supervised) {
    let out = s.log.out();
    let (tx, mut changes) = mpsc::unbounded_channel();
    let watcher = nym_driver::watch::watch(&s.project.root, &s.project.graph_path, tx);
    if let Err(e) = &watcher {
        s.log.push(&format!("nym: {e}; edits will not reload"));
    }
    loop {
        tokio::select! {
            req = s.requests.recv() => match req {
                None => break,
                Some(Request::Stop(done)) => {
                    s.live.stop().await;
                    drop(s.live);
                    let _ = done.send(());
                    return;
                }
                Some(Request::Reload(graph, keys, done)) => {
                    let r = s.live.reload(&s.project, graph, keys, &out).await;
                    if let Ok(d) = &r {
                        reloaded(&s, d);
                    }
                    let _ = done.send(r);
                }
                Some(Request::Inspect(node, done)) => {
                    let _ = done.send(inspect(&s.live, node).await);
                }
            },
            ended = s.live.ended() => {
                let how = match &ended {
                    nym_unix::jobs::Ended::Finished => "the jobs finished".to_owned(),
                    nym_unix::jobs::Ended::Failed { job, error } => format!("job {job} failed: {error}"),
                    nym_unix::jobs::Ended::Interrupted => "interrupted".to_owned(),
                };
                s.log.push(&format!("nym: {how}"));
                set_state(&s.status, RunState::Ended(how));
            }
            Some(changed) = nym_driver::watch::next_change(&mut changes, &s.project.root) => {
                let graph_file = nym_driver::watch::short(&s.project.root, &s.project.graph_path);
                if changed.iter().all(|c| *c == graph_file) {
                    s.log.push(&format!("nym: {graph_file} changed on disk; the session's graph is in memory (`:load {graph_file}` takes the file's)"));
                    continue;
                }
                s.log.push(&format!("nym: {} changed; rebuilding", changed.join(", ")));
                let src = s.source.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let krate = s.project.krate();
                let analysis = analyze(&src, Target::Unix, krate.as_ref());
                let Some(graph) = analysis.checked.graph else {
                    let errors: Vec<_> = analysis.diagnostics().iter().filter(|d| d.is_error()).cloned().collect();
                    s.log.push(&diagnostic::render_short(&errors, "session", &src));
                    s.log.push("nym: the previous version keeps running");
                    continue;
                };
                let keys = match key_values(&graph, &s.key_args) {
                    Ok(k) => k,
                    Err(e) => { s.log.push(&format!("nym: {e}")); continue; }
                };
                match s.live.reload(&s.project, graph, keys, &out).await {
                    Ok(d) => reloaded(&s, &d),
                    Err(e) => s.log.push(&format!("nym: {e}; the previous version keeps running")),
                }
            }
        }
    }
    s.live.stop().await;
}

/// Locks `m`, whoever panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Watches a booted guest's `nym run` on a thread of its own: when it
/// ends (and not by `:stop`, which takes the child first), its last lines
/// are let into the log, then its exit status, and the run state becomes
/// `Ended` at once, not at the next command.
fn watch_guest(
    child: Arc<Mutex<Option<std::process::Child>>>,
    forwards: Vec<std::thread::JoinHandle<()>>,
    target: Target,
    log: Log,
    status: Arc<Mutex<Status>>,
) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(50));
        let mut slot = lock(&child);
        let Some(c) = slot.as_mut() else {
            return;
        };
        let Ok(Some(exit)) = c.try_wait() else {
            continue;
        };
        drop(slot);
        // The pipes end with the child, unless something it started keeps
        // them open: wait for the forwarders a little, not for ever.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while forwards.iter().any(|f| !f.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let how = format!(
            "the {target} guest exited with {}",
            exit.code().map_or("a signal".into(), |c| c.to_string())
        );
        log.push(&format!("nym: {how}"));
        set_state(&status, RunState::Ended(how));
        // Only now is the guest gone for the session (`:boot` may start
        // another; `:stop` has nothing to stop).
        *lock(&child) = None;
        return;
    });
}

fn set_state(status: &Mutex<Status>, state: RunState) {
    status.lock().unwrap_or_else(|p| p.into_inner()).state = state;
}

/// Reports a reload in the log and the status, whoever asked for it.
fn reloaded(s: &Supervised, d: &Reloaded) {
    s.log.push(&format!("nym: {d}"));
    let mut st = s.status.lock().unwrap_or_else(|p| p.into_inner());
    st.reloads += 1;
    st.last_build = Some(d.build);
    st.last_swap = Some(d.swap);
    st.last_reload = Some(d.to_string());
    st.state = RunState::Running;
}

/// A device's live state, a line per fact.
async fn inspect(live: &Live, node: usize) -> Vec<String> {
    use libos::abi::Arg;
    let Some(dev) = live.devices().node(node) else {
        return vec!["(not in the running graph: it is re-wired on the next change)".into()];
    };
    match dev {
        Arg::Kv(kv) => kv_contents(&**kv).await,
        Arg::KvRo(kv) => kv_contents(&**kv).await,
        Arg::Stack(s) => s.describe(),
        Arg::MonoClock(c) => vec![format!(
            "now: {:.3} s since it started",
            c.elapsed_ns() as f64 / 1e9
        )],
        Arg::WallClock(c) => vec![format!("now: {} ns since 1970", c.now_unix_ns())],
        Arg::Block(b) => {
            let i = b.info();
            vec![format!("{} sectors of {} bytes", i.sectors, i.sector_size)]
        }
        Arg::Console(_) => vec!["writes to the session's log (`:logs`)".into()],
        _ => vec!["(no state to show)".into()],
    }
}

/// Up to 50 keys of a KV store with their values.
async fn kv_contents(kv: &dyn libos::KvRo) -> Vec<String> {
    let keys = match kv.list("").await {
        Ok(k) => k,
        Err(e) => return vec![format!("cannot list it: {e}")],
    };
    let mut out = vec![format!("{} key(s)", keys.len())];
    for k in keys.iter().take(50) {
        let v = match kv.get(k).await {
            Ok(v) => {
                let text = String::from_utf8_lossy(&v);
                let mut t: String = text.chars().take(60).collect();
                if text.chars().count() > 60 {
                    t.push('…');
                }
                format!("{t:?} ({} bytes)", v.len())
            }
            Err(e) => format!("<{e}>"),
        };
        out.push(format!("{k} = {v}"));
    }
    if keys.len() > 50 {
        out.push(format!("… and {} more", keys.len() - 50));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "pub async fn start(c: impl libos::Console, kv: impl libos::Kv, n: u32) -> Result<(), libos::ConsoleError> { Ok(()) }\n";
    const GRAPH: &str = "// a test graph\nlet console = console::default();\nlet store = kv::mem();\nlet app = job app::start(console, store, key(\"n\", 3));\nregister(\"app\", [app]);\n";

    /// A project on disk whose graph checks (nothing here builds it).
    fn project() -> (tempfile::TempDir, Session) {
        let dir = tempfile::tempdir().unwrap();
        crate::write_project(dir.path(), APP, GRAPH).unwrap();
        let s = Session::open(dir.path(), None).unwrap();
        (dir, s)
    }

    fn ok(s: &mut Session, input: &str) -> String {
        let r = s.eval(input);
        assert!(!r.error, "{input:?} failed:\n{}", r.text);
        r.text
    }

    fn err(s: &mut Session, input: &str) -> String {
        let r = s.eval(input);
        assert!(r.error, "{input:?} should fail, said:\n{}", r.text);
        r.text
    }

    #[test]
    fn rust_mode_tells_the_sessions_commands_from_evcxrs() {
        for line in [
            ":run -- --port 1",
            ":quit",
            ":q",
            ":nym",
            ":help",
            ":inspect kv",
        ] {
            assert!(Session::is_command(line), "{line}");
        }
        for line in [":dep rand = \"0.8\"", ":vars", ":explain", "let x = 1;", ""] {
            assert!(!Session::is_command(line), "{line}");
        }
        // Aliases answer as their command.
        let (_d, mut s) = project();
        let help = s.eval(":help").text;
        assert!(help.contains(":inspect"), "{help}");
        assert_eq!(s.eval(":?").text, help);
        assert_eq!(s.eval(":h").text, help);
        assert!(s.eval(":exit").quit);
    }

    #[test]
    fn starts_from_the_projects_graph() {
        let (_d, s) = project();
        assert_eq!(s.source().lines().count(), 4, "{}", s.source());
        assert_eq!(s.graph().unwrap().name, "app");
        assert_eq!(s.target(), Target::Unix);
    }

    #[test]
    fn a_binding_shows_its_kind_and_an_expression_its_kind_without_being_kept() {
        let (_d, mut s) = project();
        assert_eq!(ok(&mut s, "let extra = kv::mem();"), "extra: Kv");
        assert_eq!(ok(&mut s, "clock::mono()"), "clock::mono(): MonoClock");
        assert_eq!(ok(&mut s, "key(\"port\", 80)"), "key(\"port\", 80): int");
        assert!(s.source().contains("let extra = kv::mem();"));
        assert!(!s.source().contains("clock::mono"));
        // Added before `register`, so the graph still ends with it.
        assert!(s.source().trim_end().ends_with("register(\"app\", [app]);"));
    }

    #[test]
    fn rebinding_replaces_the_statement_in_place() {
        let (_d, mut s) = project();
        ok(&mut s, "let store = kv::full(kv::mem());");
        let src = s.source();
        assert_eq!(src.matches("let store").count(), 1, "{src}");
        assert!(
            src.find("let store").unwrap() < src.find("let app").unwrap(),
            "{src}"
        );
        let g = s.graph().unwrap();
        assert!(g.nodes.iter().any(|n| n.imp.name == "kv::full"));
    }

    #[test]
    fn a_bad_input_is_refused_with_the_checkers_words_and_changes_nothing() {
        let (_d, mut s) = project();
        let before = s.source();
        let e = err(&mut s, "let x = kv::mme();");
        assert!(e.contains("unknown implementation `kv::mme`"), "{e}");
        assert!(e.contains("did you mean `kv::mem`"), "{e}");
        assert!(e.contains("input:1:9"), "the span is the input's: {e}");
        let e = err(&mut s, "let y = kv::mem(");
        assert!(e.contains("nym::syntax") || e.contains("expected"), "{e}");
        // A new binding of another kind breaks the job that takes it.
        let e = err(&mut s, "let store = clock::mono();");
        assert!(e.contains("breaks the rest of the graph"), "{e}");
        assert!(e.contains("MonoClock"), "{e}");
        assert_eq!(s.source(), before);
    }

    #[test]
    fn register_replaces_the_previous_one() {
        let (_d, mut s) = project();
        ok(&mut s, "register(\"renamed\", [app]);");
        assert_eq!(s.source().matches("register").count(), 1);
        assert_eq!(s.graph().unwrap().name, "renamed");
    }

    #[test]
    fn completeness_waits_for_brackets_and_semicolons() {
        assert!(is_complete(":help"));
        assert!(is_complete("kv::mem()"));
        assert!(is_complete("let a = kv::mem();"));
        assert!(!is_complete("let a = kv::mem()"));
        assert!(!is_complete("let a = match target {\n  unix => kv::mem(),"));
        assert!(is_complete(
            "let a = match target {\n  unix => kv::mem(),\n  _ => kv::mem(),\n};"
        ));
        assert!(!is_complete("let s = \"(\" ; let t = kv::dir(\"x\""));
        assert!(is_complete("let s = kv::dir(\")\"); // (\n"));
    }

    #[test]
    fn every_command_answers() {
        let (d, mut s) = project();
        let help = ok(&mut s, ":help");
        for (c, _) in COMMANDS {
            assert!(help.contains(c), "{c} missing from :help");
        }
        let e = err(&mut s, ":chek");
        assert!(e.contains("did you mean `:check`"), "{e}");

        let g = ok(&mut s, ":graph");
        assert!(g.contains("│ store: kv::mem"), "{g}");
        assert!(g.contains("◀"), "{g}");
        assert!(ok(&mut s, ":graph --dot").starts_with("digraph"));

        ok(&mut s, "let spare = kv::mem();");
        let c = ok(&mut s, ":check");
        assert!(c.contains("unused binding `spare`"), "{c}");
        assert!(c.contains("0 error(s), 1 warning(s)"), "{c}");

        // kv::dir exists only on unix: on kvm the check says so.
        ok(&mut s, "let store = kv::dir(\"data\");");
        let t = ok(&mut s, ":target kvm");
        assert!(t.contains("target: kvm") && t.contains("1 error(s)"), "{t}");
        let c = s.eval(":check");
        assert!(c.error && c.text.contains("kv::dir"), "{}", c.text);
        assert!(err(&mut s, ":target vax").contains("not a target"));
        ok(&mut s, ":target unix");

        let dev = ok(&mut s, ":devices");
        assert!(
            dev.contains("store") && dev.contains("kv::dir") && dev.contains("app::start"),
            "{dev}"
        );
        let i = ok(&mut s, ":inspect store");
        assert!(
            i.contains("kv::dir(\"data\")") && i.contains("not running"),
            "{i}"
        );
        assert!(err(&mut s, ":inspect stor").contains("did you mean `store`"));
        assert!(err(&mut s, ":inspect").contains("which device"));

        assert_eq!(ok(&mut s, ":stop"), "nothing is running");
        assert!(ok(&mut s, ":logs").is_empty());
        s.log().push("a line");
        assert_eq!(ok(&mut s, ":logs 5"), "a line");

        // :save writes the cells as a notebook and the graph as .nym.
        ok(&mut s, ":save nb.md");
        let nb = std::fs::read_to_string(d.path().join("nb.md")).unwrap();
        assert!(nb.contains("```nym\nlet spare = kv::mem();\n```"), "{nb}");
        assert!(
            !nb.contains(":check"),
            "commands that only look are not cells: {nb}"
        );
        ok(&mut s, ":save g.nym");
        let g = std::fs::read_to_string(d.path().join("g.nym")).unwrap();
        assert!(g.contains("kv::dir(\"data\");"), "{g}");
        assert!(nym_graph::analyze(&g, Target::Unix, s.krate().as_ref())
            .graph()
            .is_some());

        // :reset goes back to the file; :load runs the notebook again.
        let r = ok(&mut s, ":reset");
        assert!(r.contains("4 statement(s)"), "{r}");
        assert!(!s.source().contains("spare"));
        let l = ok(&mut s, ":load nb.md");
        assert!(l.contains("ran nb.md"), "{l}");
        assert!(s.source().contains("spare") && s.source().contains("kv::dir"));
        ok(&mut s, ":reset");
        let l = ok(&mut s, ":load g.nym");
        assert!(l.contains("took the graph"), "{l}");
        assert!(s.source().contains("kv::dir"));
        assert!(err(&mut s, ":load missing.md").contains("cannot read"));
        std::fs::write(d.path().join("bad.nym"), "let = ;").unwrap();
        assert!(err(&mut s, ":load bad.nym").contains("bad.nym"));

        let q = s.eval(":quit");
        assert!(q.quit && !q.error);
    }

    #[test]
    fn a_cell_mixes_statements_and_commands_and_stops_at_the_first_error() {
        let (_d, mut s) = project();
        let r = s.eval("let a = kv::mem();\n:devices\nlet b = kv::nope();\nlet c = kv::mem();");
        assert!(r.error);
        assert!(
            r.text.contains("a: Kv") && r.text.contains("app::start"),
            "{}",
            r.text
        );
        assert!(s.source().contains("let a"), "{}", s.source());
        assert!(!s.source().contains("let c ="), "{}", s.source());
    }

    #[test]
    fn without_a_project_the_graph_starts_empty_and_running_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(dir.path(), None).unwrap();
        assert!(ok(&mut s, ":graph").contains("empty"));
        assert_eq!(ok(&mut s, "let kv = kv::mem();"), "kv: Kv");
        for cmd in [":run", ":build", ":boot"] {
            assert!(err(&mut s, cmd).contains("no project here"), "{cmd}");
        }
    }
}
