//! `:sim TOPOLOGY`: a simulation (`nym sim`) run from the session, on a
//! thread of its own: its nodes' consoles in the log (`:logs NODE` shows
//! one node's), and once it has ended, its devices as the run left them
//! (`:inspect NODE.DEVICE`).
use super::{Reply, Session};
use crate::log::Log;
use nym_sim::topology::{duration, Topology};
use nym_sim::{Query, RunOptions, Serve};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A simulation the session started.
pub(super) struct SimRun {
    queries: tokio::sync::mpsc::UnboundedSender<Query>,
    ended: Arc<AtomicBool>,
    nodes: Vec<String>,
}

impl SimRun {
    /// Whether a label is one of its nodes' devices (`NODE.DEVICE`).
    pub(super) fn names(&self, name: &str) -> bool {
        name.split_once('.')
            .is_some_and(|(n, _)| self.nodes.iter().any(|m| m == n))
    }

    /// Whether its run has ended.
    pub(super) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// `FILE [--seed N] [--until T]`.
fn parse(rest: &str) -> Result<(String, Option<u64>, Option<Duration>), String> {
    let usage = "`:sim TOPOLOGY.toml [--seed N] [--until 10m]`";
    let mut words = rest.split_whitespace();
    let (mut file, mut seed, mut until) = (None, None, None);
    while let Some(w) = words.next() {
        match w {
            "--seed" => {
                let n = words.next().and_then(|n| n.parse().ok());
                seed = Some(n.ok_or_else(|| format!("--seed takes a number: {usage}"))?);
            }
            "--until" => {
                let t = words
                    .next()
                    .ok_or_else(|| format!("--until takes a time: {usage}"))?;
                until = Some(duration(t).map_err(|e| format!("--until: {e}"))?);
            }
            f if file.is_none() && !f.starts_with("--") => file = Some(f.to_owned()),
            other => return Err(format!("`{other}` is not understood: {usage}")),
        }
    }
    Ok((
        file.ok_or_else(|| format!("which topology? {usage}"))?,
        seed,
        until,
    ))
}

impl Session {
    /// `:sim`: starts a simulation; says where its output goes.
    pub(super) fn simulate(&mut self, rest: &str) -> Reply {
        let (file, seed, until) = match parse(rest) {
            Ok(p) => p,
            Err(e) => return Reply::err(e),
        };
        if self.sim.as_ref().is_some_and(|s| !s.ended()) {
            return Reply::err("a simulation is running; `:stop` it first");
        }
        let path = self.cwd.join(&file);
        let topology = match Topology::load(&path) {
            Ok(t) => t,
            Err(e) => return Reply::err(e.to_string()),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let ended = Arc::new(AtomicBool::new(false));
        let nodes: Vec<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
        let stem = path
            .file_stem()
            .map_or("sim".into(), |s| s.to_string_lossy().into_owned());
        let options = RunOptions {
            seed: seed.unwrap_or(topology.seed),
            until: until.unwrap_or(topology.until),
            pcaps: Vec::new(),
            state: path
                .parent()
                .unwrap_or(&self.cwd)
                .join("target/nym/sim")
                .join(stem),
            trace: false,
            stuck: Some({
                let log = self.log.clone();
                Arc::new(move |message: &str| log.push(message))
            }),
        };
        let (log, done) = (self.log.clone(), ended.clone());
        let shown = format!(":sim {file}");
        std::thread::spawn(move || simulate(topology, options, log, rx, done, shown));
        self.sim = Some(SimRun {
            queries: tx,
            ended,
            nodes: nodes.clone(),
        });
        Reply::ok(format!(
            "simulating {} node(s): {} (building first); their consoles are in the log (`:logs NODE`); when it ends, `:inspect NODE.DEVICE`",
            nodes.len(),
            nodes.join(", ")
        ))
    }

    /// `:inspect NODE.DEVICE` of the simulation.
    pub(super) fn inspect_sim(&self, name: &str) -> Option<Reply> {
        let sim = self.sim.as_ref().filter(|s| s.names(name))?;
        if !sim.ended() {
            return Some(Reply::err(
                "the simulation is still running: its devices can be inspected once it ends",
            ));
        }
        let (node, device) = name.split_once('.')?;
        let (reply, answer) = std::sync::mpsc::channel();
        let query = Query {
            node: node.to_owned(),
            device: device.to_owned(),
            reply,
        };
        if sim.queries.send(query).is_err() {
            return Some(Reply::err("the simulation has gone (`:sim` runs another)"));
        }
        Some(match answer.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(lines)) => {
                let mut out = format!("{name} (as the simulation left it):");
                for l in lines {
                    out += &format!("\n  {l}");
                }
                Reply::ok(out)
            }
            Ok(Err(e)) => Reply::err(e),
            Err(_) => Reply::err("the simulation did not answer"),
        })
    }

    /// `:logs NODE [N]`: the last lines of one simulated node's console.
    pub(super) fn node_logs(&self, node: &str, n: usize) -> Option<Reply> {
        let sim = self.sim.as_ref()?;
        if !sim.nodes.iter().any(|m| m == node) {
            return None;
        }
        let marker = format!("] {node} | ");
        let lines: Vec<String> = self
            .log
            .tail(usize::MAX)
            .into_iter()
            .filter(|l| l.contains(&marker))
            .collect();
        let skip = lines.len().saturating_sub(n);
        Some(Reply::ok(lines[skip..].join("\n")))
    }

    /// Forgets the simulation (its thread ends once its run has).
    pub(super) fn stop_sim(&mut self) -> bool {
        self.sim.take().is_some()
    }
}

/// The simulation's thread: builds, runs, then answers `:inspect` until
/// the session lets go.
fn simulate(
    topology: Topology,
    options: RunOptions,
    log: Log,
    queries: tokio::sync::mpsc::UnboundedReceiver<Query>,
    ended: Arc<AtomicBool>,
    shown: String,
) {
    let fail = |e: String| {
        log.push(&format!("sim: {e}"));
        ended.store(true, Ordering::Release);
    };
    let programs = match nym_sim::prepare(&topology, &log.out()) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let wall = Instant::now();
    let (summary_log, done) = (log.clone(), ended.clone());
    let serve = Serve {
        ended: Box::new(move |o| {
            summary_log.push(&o.summary(wall.elapsed(), &shown));
            done.store(true, Ordering::Release);
        }),
        queries,
    };
    let lines = log.clone();
    let run = nym_sim::run(
        &topology,
        &programs,
        &options,
        move |l| lines.push(l),
        Some(serve),
    );
    if let Err(e) = run {
        fail(e.to_string());
    }
}
