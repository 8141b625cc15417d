//! A run: every node booted on one current-thread runtime whose clock is
//! paused (tokio advances it to the next timer whenever every task waits,
//! so idle time costs nothing), the topology's events applied on time, and
//! its properties checked until one fails or the run's time is up.
use crate::net::{Counts, Network};
use crate::node::{Log, Machine, Program};
use crate::pcap::Pcap;
use crate::topology::{Action, Check, Property, Topology};
use crate::SimError;
use libos::abi::Arg;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Told when simulated time stands still (a message saying so).
pub type Stuck = Arc<dyn Fn(&str) + Send + Sync>;

/// How long simulated time may stand still, in wall time, before
/// [`RunOptions::stuck`] is told: 30 s, or `NYM_SIM_STUCK_SECS`.
pub fn stuck_after() -> Duration {
    let secs = std::env::var("NYM_SIM_STUCK_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

/// How one run goes.
#[derive(Clone)]
pub struct RunOptions {
    /// The seed of every random choice.
    pub seed: u64,
    /// How long, in simulated time.
    pub until: Duration,
    /// Captures to write: the node's index and the file.
    pub pcaps: Vec<(usize, PathBuf)>,
    /// Where each node keeps its files, in a folder per node (emptied first).
    pub state: PathBuf,
    /// Record the scheduler's log (jobs' polls, wake-ups and device calls)
    /// on simulated time.
    pub trace: bool,
    /// Told if simulated time stands still for [`stuck_after`] of wall
    /// time: a node that never waits holds the one thread (a busy loop),
    /// and the run cannot go on.
    pub stuck: Option<Stuck>,
}

/// A property that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property's name.
    pub property: String,
    /// When it was found, in simulated time.
    pub at: Duration,
    /// What was seen instead.
    pub why: String,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its seed.
    pub seed: u64,
    /// The first property violated, if one was.
    pub violation: Option<Violation>,
    /// The properties that held.
    pub held: usize,
    /// Simulated time when it ended.
    pub simulated: Duration,
    /// Console lines printed.
    pub lines: usize,
    /// What the network did.
    pub counts: Counts,
    /// The scheduler's log, when asked for.
    pub trace: Option<nym_unix::trace::Trace>,
}

/// A question about a finished run's devices: `:inspect NODE.DEVICE`.
pub struct Query {
    /// The node's name.
    pub node: String,
    /// The device's label in its graph.
    pub device: String,
    /// Where the answer goes: the device's state, a line per fact.
    pub reply: std::sync::mpsc::Sender<Result<Vec<String>, String>>,
}

/// After a run: what to tell of its end, and the questions to answer about
/// its devices, frozen as they were, until the asker hangs up.
pub struct Serve {
    /// Called once the run has ended, with how.
    pub ended: Box<dyn FnOnce(&Outcome)>,
    /// The questions.
    pub queries: tokio::sync::mpsc::UnboundedReceiver<Query>,
}

/// Runs `topology`'s nodes (their `programs`, in the topology's node
/// order) once, each console line shown through `sink`; then, with
/// `serve`, answers questions about the nodes' devices as the run left
/// them (their jobs and tasks stopped).
pub fn run(
    topology: &Topology,
    programs: &[Rc<Program>],
    options: &RunOptions,
    sink: impl Fn(&str) + Send + Sync + 'static,
    serve: Option<Serve>,
) -> Result<Outcome, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Io(format!("starting the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let start = Instant::now();
        if options.trace {
            nym_unix::trace::start();
        }
        let net = Network::new(topology, options.seed);
        for (node, path) in &options.pcaps {
            let pcap = Pcap::create(path)
                .map_err(|e| SimError::Io(format!("cannot write {}: {e}", path.display())))?;
            net.capture(*node, pcap);
        }
        let log = Log::new(sink);
        let mut machines = Vec::new();
        for (i, node) in topology.nodes.iter().enumerate() {
            let dir = options.state.join(&node.name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| SimError::Io(format!("cannot empty {}: {e}", dir.display())))?;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| SimError::Io(format!("cannot create {}: {e}", dir.display())))?;
            let root = programs[i].root.clone();
            machines.push(Machine::new(
                i,
                &node.name,
                net.clone(),
                log.clone(),
                options.seed,
                root,
                dir,
            ));
        }
        let machines = Rc::new(RefCell::new(machines));
        for (i, m) in machines.borrow_mut().iter_mut().enumerate() {
            m.boot(&programs[i]);
        }
        let watch = options.stuck.clone().map(Watchdog::start);
        // The events, in order, on one task.
        let events = {
            let (machines, programs, net) = (machines.clone(), programs.to_vec(), net.clone());
            let events = topology.events.clone();
            tokio::task::spawn_local(async move {
                for e in events {
                    tokio::time::sleep_until(start + e.at).await;
                    apply(&e.action, &mut machines.borrow_mut(), &programs, &net);
                }
            })
        };
        // Each property on a task of its own; the first violation ends the run.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut checks = Vec::new();
        for p in &topology.properties {
            let (p, tx) = (p.clone(), tx.clone());
            let (machines, programs, log) = (machines.clone(), programs.to_vec(), log.clone());
            checks.push(tokio::task::spawn_local(async move {
                let verdict = check(&p, start, &machines, &programs, &log).await;
                let _ = tx.send((p.name.clone(), verdict));
            }));
        }
        drop(tx);
        let end = start + options.until;
        let mut held = Vec::new();
        let mut violation = None;
        loop {
            tokio::select! {
                biased;
                got = rx.recv() => match got {
                    Some((name, Ok(()))) => held.push(name),
                    Some((name, Err((at, why)))) => {
                        violation = Some(Violation { property: name, at, why });
                        break;
                    }
                    // Every property decided: run on to the end.
                    None => {
                        tokio::time::sleep_until(end).await;
                        break;
                    }
                },
                () = tokio::time::sleep_until(end) => break,
            }
        }
        let simulated = Instant::now() - start;
        if violation.is_none() && held.len() < topology.properties.len() {
            // A property whose deadline lies past the end was never decided.
            let undecided = topology
                .properties
                .iter()
                .find(|p| !held.contains(&p.name))
                .map_or_else(String::new, |p| {
                    debug_assert!(deadline(p) >= options.until);
                    p.name.clone()
                });
            violation = Some(Violation {
                property: undecided,
                at: simulated,
                why: format!(
                    "the run ended at {} before it could be decided (raise --until)",
                    secs(simulated)
                ),
            });
        }
        events.abort();
        for c in checks {
            c.abort();
        }
        drop(watch);
        net.finish_captures()
            .map_err(|e| SimError::Io(format!("writing a capture: {e}")))?;
        let outcome = Outcome {
            seed: options.seed,
            violation,
            held: held.len(),
            simulated,
            lines: log.len(),
            counts: net.counts(),
            trace: if options.trace {
                nym_unix::trace::stop()
            } else {
                None
            },
        };
        if let Some(mut serve) = serve {
            machines.borrow_mut().iter_mut().for_each(Machine::halt);
            (serve.ended)(&outcome);
            while let Some(q) = serve.queries.recv().await {
                let answer = answer(&q, topology, &machines.borrow(), programs);
                let answer = match answer {
                    Ok(dev) => Ok(nym_unix::runner::describe(&dev).await),
                    Err(e) => Err(e),
                };
                let _ = q.reply.send(answer);
            }
        }
        machines.borrow_mut().clear();
        Ok(outcome)
    })
}

/// The device a query names.
fn answer(
    q: &Query,
    topology: &Topology,
    machines: &[Machine],
    programs: &[Rc<Program>],
) -> Result<Arg, String> {
    let Some(n) = topology.nodes.iter().position(|n| n.name == q.node) else {
        let names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(format!(
            "no node `{}` (nodes: {})",
            q.node,
            names.join(", ")
        ));
    };
    machines[n].device(&programs[n], &q.device)
}

impl Outcome {
    /// How the run ended, for a person: what held and what the network
    /// did, or the property violated and how to run it again
    /// (`reproduce`, the command without its seed).
    pub fn summary(&self, wall: Duration, reproduce: &str) -> String {
        let time = secs(self.simulated);
        match &self.violation {
            None => {
                let c = self.counts;
                format!(
                    "sim: {time} simulated in {:.2} s (seed {}): {} properties held; frames: {} sent, {} delivered, {} lost, {} cut, {} reordered, {} duplicated",
                    wall.as_secs_f64(), self.seed, self.held, c.sent, c.delivered, c.lost, c.cut, c.reordered, c.duplicated
                )
            }
            Some(v) => format!(
                "sim: property `{}` violated at {}: {}\n  reproduce: {reproduce} --seed {}",
                v.property,
                secs(v.at),
                v.why,
                self.seed
            ),
        }
    }
}

/// Seconds, as the log prints times.
pub fn secs(d: Duration) -> String {
    format!("{:.6}s", d.as_secs_f64())
}

/// When a property is decided at the latest.
fn deadline(p: &Property) -> Duration {
    match &p.check {
        Check::Console { after, within, .. } => *after + *within,
        Check::Request { at, within, .. } => *at + *within,
        Check::Same { at, .. } => *at,
    }
}

fn apply(action: &Action, machines: &mut [Machine], programs: &[Rc<Program>], net: &Network) {
    match action {
        Action::Partition(groups) => net.partition(groups),
        Action::Heal => net.heal(),
        Action::LinkDown(a, b) => net.set_link(*a, *b, false),
        Action::LinkUp(a, b) => net.set_link(*a, *b, true),
        Action::Crash(n) => machines[*n].crash(),
        Action::Restart(n) => {
            machines[*n].crash();
            machines[*n].boot(&programs[*n]);
        }
        Action::Skew(n, ns) => machines[*n].skew(*ns),
    }
}

type Verdict = Result<(), (Duration, String)>;

async fn check(
    p: &Property,
    start: Instant,
    machines: &RefCell<Vec<Machine>>,
    programs: &[Rc<Program>],
    log: &Log,
) -> Verdict {
    let now = || Instant::now() - start;
    match &p.check {
        Check::Console {
            node,
            text,
            after,
            within,
        } => {
            let to = *after + *within;
            // Looked for as lines come, so a success is known early.
            loop {
                if log.find(*node, text, *after, to).is_some() {
                    return Ok(());
                }
                if now() >= to {
                    return Err((to, format!("no line holding {text:?} by {}", secs(to))));
                }
                tokio::time::sleep(Duration::from_millis(100).min(to - now())).await;
            }
        }
        Check::Request {
            node,
            device,
            to,
            send,
            expect,
            at,
            within,
        } => {
            tokio::time::sleep_until(start + *at).await;
            let deadline = start + *at + *within;
            let mut last = String::from("no attempt finished");
            loop {
                let stack = machines.borrow()[*node].device(&programs[*node], device);
                let attempt = async {
                    let stack = match stack? {
                        Arg::Stack(s) => s,
                        other => {
                            return Err(format!(
                                "`{device}` is a {}, not a Stack",
                                other.kind_name()
                            ))
                        }
                    };
                    request(&*stack, *to, send, expect).await
                };
                match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => last = e,
                    Err(_) => {}
                }
                if Instant::now() >= deadline {
                    return Err((
                        deadline - start,
                        format!(
                            "no answer holding {expect:?} from {to} by {} (last: {last})",
                            secs(deadline - start)
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Check::Same { key, stores, at } => {
            tokio::time::sleep_until(start + *at).await;
            let mut values = Vec::new();
            for (n, label) in stores {
                let name = &machines.borrow()[*n].shared.name.clone();
                let device = machines.borrow()[*n].device(&programs[*n], label);
                let value = match device {
                    Ok(Arg::Kv(kv)) => kv.get(key).await.map_err(|e| e.to_string()),
                    Ok(Arg::KvRo(kv)) => kv.get(key).await.map_err(|e| e.to_string()),
                    Ok(other) => Err(format!("`{label}` is a {}, not a store", other.kind_name())),
                    Err(e) => Err(e),
                };
                values.push((format!("{name}.{label}"), value));
            }
            let show = |v: &Result<Vec<u8>, String>| match v {
                Ok(b) => format!("{:?}", String::from_utf8_lossy(b)),
                Err(e) => format!("({e})"),
            };
            if values.iter().all(|(_, v)| v.is_ok() && *v == values[0].1) {
                return Ok(());
            }
            let seen: Vec<String> = values
                .iter()
                .map(|(s, v)| format!("{s} = {}", show(v)))
                .collect();
            Err((*at, seen.join(", ")))
        }
    }
}

/// One TCP exchange: connect, send, read until `expect` is seen.
async fn request(
    stack: &dyn libos::Stack,
    to: std::net::SocketAddrV4,
    send: &str,
    expect: &str,
) -> Result<(), String> {
    let mut flow = stack
        .connect(to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    flow.write_all(send.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        if String::from_utf8_lossy(&got).contains(expect) {
            let _ = flow.close().await;
            return Ok(());
        }
        match flow.read(&mut buf).await {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Simulated time's progress, counted by a task that wakes every 100 ms of
/// it, and a thread that says so when the count stops moving.
struct Watchdog {
    ticker: tokio::task::JoinHandle<()>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(stuck: Stuck) -> Watchdog {
        let ticks = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let counted = ticks.clone();
        let ticker = tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let finished = done.clone();
        let after = stuck_after();
        std::thread::spawn(move || {
            let (mut last, mut since) = (0, std::time::Instant::now());
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = ticks.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, std::time::Instant::now());
                } else if since.elapsed() >= after {
                    stuck(&format!(
                        "sim: simulated time has stood still at about {}.{}s for {} s of wall time: a node runs without ever waiting (a busy loop?), and the run cannot go on",
                        now / 10,
                        now % 10,
                        after.as_secs()
                    ));
                    return;
                }
            }
        });
        Watchdog { ticker, done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.ticker.abort();
        self.done.store(true, Ordering::Relaxed);
    }
}
