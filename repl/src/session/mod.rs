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
//!
//! Each part has a file of its own: `statements.rs` (the graph as
//! statements and the rules for changing it), `commands.rs` (one handler
//! per `:command`), `supervisor.rs` (the running stack and a booted guest)
//! and `reply.rs` (what an evaluation answers). This file holds the
//! [`Session`] that ties them together.
mod commands;
mod history;
mod reply;
mod sim;
mod snapshots;
mod statements;
mod supervisor;
#[cfg(test)]
mod tests;
mod trace;

pub use commands::COMMANDS;
pub use history::{ChangeRow, StoreChanges};
pub use nym_unix::trace::{CallEnd, CallSpan, TrackActivity, Window as TraceWindow};
pub use reply::{Reply, RunState, Status};
pub use statements::{balanced, is_complete};

use crate::log::Log;
use crate::notebook::{Cell, CellKind};
use nym_driver::project::{Project, ProjectError};
use nym_driver::Error;
use nym_graph::{analyze, Analysis, Graph, RustCrate, Target};
use statements::{entries_of, is_meta, Entry};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use supervisor::{Booted, Running};

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
    /// Where evaluations are recorded, in a lesson folder of `nym tutorial`.
    journal: Option<crate::journal::Journal>,
    /// Where `:trace off` writes the trace `:trace on` started.
    trace_file: Option<PathBuf>,
    /// The store `:history NAME` named last, for a pane that follows it.
    follow: Option<history::Follow>,
    /// How many times `:history NAME` named a store to follow.
    follows: u64,
    /// The simulation `:sim` started, running or ended.
    sim: Option<sim::SimRun>,
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
        // Every store of the stacks this session runs records its changes
        // (`:history`, `:diff`, `:revert`).
        if nym_unix::runner::history_bound() == 0 {
            nym_unix::runner::record_history(history::DEFAULT_BOUND);
        }
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
            journal: None,
            trace_file: None,
            follow: None,
            follows: 0,
            sim: None,
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

    /// From now on, in a lesson folder of `nym tutorial`, every evaluation
    /// is recorded for the lesson's checks, as typed `via` (`repl`, `tui`).
    pub fn record_for_lessons(&mut self, via: &'static str) {
        let dir = self.root().unwrap_or(&self.cwd).to_owned();
        self.journal = crate::journal::Journal::find(&dir, via);
    }

    fn record(&self, input: &str, reply: &Reply) {
        if let Some(j) = &self.journal {
            if !input.trim().is_empty() {
                j.record(input.trim(), &reply.text, reply.error);
            }
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
        self.record(input, &reply);
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

    /// Evaluates Rust with evcxr, the project's crate and libos available;
    /// `inspect!(NAME)` in the code is a copy of a running device's state.
    pub fn eval_rust(&mut self, code: &str) -> Reply {
        let build_dir = self.project.as_ref().and_then(crate::rust::build_dir);
        let expanded = match self.expand_snapshots(code) {
            Ok(c) => c,
            Err(r) => {
                self.record(code, &r);
                return r;
            }
        };
        let project = self.project.as_ref();
        let krate = project.and_then(|p| Some((p.package.as_deref()?, p.root.as_path())));
        let mut out = self.rust.eval(&expanded, krate, build_dir.as_deref());
        if out.error {
            if let Some(hint) = self.device_hint(&out.text) {
                out.text = format!("{}\n{hint}", out.text);
            }
        }
        if !out.error && !code.trim().is_empty() {
            self.cells.push(Cell::new(CellKind::Rust, code.trim()));
        }
        self.record(code, &out);
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

    pub(super) fn sync_source(&self) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = self.source();
    }

    /// Stops whatever runs. Called by `:quit` and on drop.
    pub fn shutdown(&mut self) {
        let _ = self.stop();
        self.finish_trace();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}
