//! The `:commands`: their table (for `:help` and completion) and one
//! handler each.
use super::statements::{entries_of, interactive_noise};
use super::supervisor::{
    guest_ended, rewired_text, supervise, Booted, Request, Running, Supervised,
};
use super::{Reply, RunState, Session, Status};
use crate::log::Console;
use crate::notebook::{self, CellKind};
use nym_driver::build::{build_program, key_values};
use nym_driver::live::Live;
use nym_driver::project::{Project, GRAPH_FILE};
use nym_driver::Error;
use nym_graph::check::GArg;
use nym_graph::diagnostic;
use nym_graph::{analyze, print, Graph, Target};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
    (
        ":sim",
        "`:sim TOPOLOGY.toml [--seed N] [--until 10m]`: many graphs on one simulated network (`nym sim`); `:inspect NODE.DEVICE` once it ends",
    ),
    (
        ":logs",
        "the last lines of the log: `:logs 50`; a simulated node's alone: `:logs NODE 50`",
    ),
    (":devices", "the graph's devices and jobs"),
    (
        ":inspect",
        "`:inspect NAME`: a device's live state (KV contents, sockets, clock)",
    ),
    (
        ":history",
        "`:history NAME [KEY]`: a store's recorded changes, numbered (`:history` alone: the stores; `--bound N`)",
    ),
    (
        ":diff",
        "`:diff NAME N M`: what differs in a store between the versions after changes N and M",
    ),
    (
        ":revert",
        "`:revert NAME N`: put a store back as it was before change N (written through the live store)",
    ),
    (
        ":trace",
        "`:trace on [FILE]`: record the jobs' polls, wake-ups and device calls; `:trace off` writes them for Perfetto",
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
pub(super) fn command_named(word: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .find(|c| *c == word)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == word).map(|(_, c)| *c))
}

impl Session {
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
            ":sim" => self.simulate(rest),
            ":logs" => {
                let mut words = rest.split_whitespace();
                let first = words.next().unwrap_or("");
                match first.parse() {
                    Ok(n) => Reply::ok(self.log.tail(n).join("\n")),
                    Err(_) if first.is_empty() => Reply::ok(self.log.tail(20).join("\n")),
                    Err(_) => {
                        let n = words.next().and_then(|w| w.parse().ok()).unwrap_or(20);
                        self.node_logs(first, n).unwrap_or_else(|| {
                            Reply::err(format!("`:logs {first}`: no simulated node `{first}` (`:logs N` for the last N lines)"))
                        })
                    }
                }
            }
            ":devices" => self.devices(),
            ":inspect" => self.inspect(rest),
            ":history" => self.history(rest),
            ":diff" => self.diff(rest),
            ":revert" => self.revert(rest),
            ":trace" => self.trace(rest),
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

    pub(super) fn stop(&mut self) -> Reply {
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
        if let Some(mut b) = self.booted.take() {
            if b.finished() {
                // It had ended: nothing to stop, only to forget.
            } else if b.stop(Duration::from_secs(5)) {
                said.push("stopped the guest");
            } else {
                said.push("asked the guest to stop (its build finishes first)");
            }
        }
        if self.stop_sim() {
            said.push("put the simulation away");
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

    /// Builds the graph's image and boots it on the chosen target, on a
    /// thread of the driver's: its console and nym's messages go to the
    /// log; `:stop` stops it.
    fn boot(&mut self, rest: &str) -> Reply {
        let project = match self.project() {
            Ok(p) => p.clone(),
            Err(r) => return r,
        };
        let options = match nym_driver::guest::Options::parse(rest) {
            Ok(o) => o,
            Err(e) => return Reply::err(e),
        };
        self.poll();
        let finished = self.put_away_finished_stack();
        if self.running.is_some() || self.booted.is_some() {
            return Reply::err("something is running; `:stop` it first");
        }
        let graph = match self.runnable(self.target) {
            Ok(g) => g,
            Err(r) => return r,
        };
        if graph.target == Target::Unix {
            return Reply::err("the unix target runs in-process: `:run`; `:target kvm` (or qemu, xen) first to boot an image");
        }
        let target = graph.target;
        let log = self.log.clone();
        let console = Box::new(Console::new(log.clone()));
        self.booted = Some(Booted::spawn(
            project,
            graph,
            options,
            console,
            log.out(),
            guest_ended(target, log, self.status.clone()),
        ));
        self.set_state(RunState::Booted(target));
        Reply::ok(format!(
            "{finished}booting on {target} (building first); its console is in the log; `:stop` stops it"
        ))
    }

    /// Stops the in-process stack if its jobs have all ended (finished,
    /// failed or interrupted): a stack with nothing running blocks no
    /// `:boot`. Says so, or nothing when there was none.
    fn put_away_finished_stack(&mut self) -> String {
        let ended = matches!(self.status().state, RunState::Ended(_));
        if !(ended && self.running.is_some() && self.booted.is_none()) {
            return String::new();
        }
        self.stop();
        "put the in-process stack away (its jobs had ended); ".into()
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
        for u in &g.unused {
            let what = u.what.strip_prefix("job ").unwrap_or(&u.what);
            rows.push((
                u.label.clone(),
                u.ty.to_string(),
                format!("{what}  (unused)"),
            ));
        }
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (label, kind, what) in rows {
            out += &format!("{label:w0$}  {kind:w1$}  {what}\n");
        }
        if !g.unused.is_empty() {
            out += "(unused: no registered job reaches it yet)\n";
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
        if let Some(reply) = self.inspect_sim(name) {
            return reply;
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
