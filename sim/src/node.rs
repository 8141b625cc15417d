//! One simulated machine: the platform its devices are built on (clocks
//! on simulated time, a seeded random source, its port on the network, its
//! files in a folder of its own), and its life: boot, crash, restart.
use crate::net::Network;
use libos::abi::Arg;
use libos::platform::{DynPlatform, MakeError, Platform, Unsupported};
use libos::{Block, WallClock};
use libos::{BoxFuture, Console, ConsoleError, Kv, MonoClock, Netif, Random, Stack, Time};
use nym_graph::Graph;
use nym_unix::devices::{block_file, kv_dir};
use nym_unix::jobs::{Ended, Running};
use nym_unix::keys::Keys;
use nym_unix::runner::{Devices, Library};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// The wall clock's reading at the start of every run: 2030-01-01 UTC.
pub const WALL_EPOCH_NS: u64 = crate::pcap::EPOCH_SECS * 1_000_000_000;

/// Every console line of a run, in order, and where they are shown.
pub struct Log {
    lines: Mutex<Vec<Line>>,
    sink: Box<dyn Fn(&str) + Send + Sync>,
}

/// One console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When, in simulated time.
    pub at: Duration,
    /// The node.
    pub node: usize,
    /// The text, without its newline.
    pub text: String,
}

impl Log {
    /// A log showing each line through `sink`.
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Arc<Log> {
        Arc::new(Log {
            lines: Mutex::new(Vec::new()),
            sink: Box::new(sink),
        })
    }

    /// Adds a line of node `node`, named `name`, shown as
    /// `[  12.000250] name | text`.
    pub fn push(&self, at: Duration, node: usize, name: &str, text: &str) {
        (self.sink)(&format!("[{:>11.6}] {name} | {text}", at.as_secs_f64()));
        self.lock().push(Line {
            at,
            node,
            text: text.to_owned(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Line>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether node `node` printed a line holding `text` between `from`
    /// and `to`; the time of the first.
    pub fn find(&self, node: usize, text: &str, from: Duration, to: Duration) -> Option<Duration> {
        self.lock()
            .iter()
            .find(|l| l.node == node && l.at >= from && l.at <= to && l.text.contains(text))
            .map(|l| l.at)
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A node's `console::default()`: whole lines into the run's log.
struct NodeConsole {
    node: usize,
    name: String,
    log: Arc<Log>,
    net: Arc<Network>,
    /// A line begun but not ended.
    partial: Mutex<String>,
}

impl Console for NodeConsole {
    fn write<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
        Box::pin(async move {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            partial.push_str(text);
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                self.log.push(self.net.now(), self.node, &self.name, line);
            }
            Ok(())
        })
    }
}

/// Nanoseconds since the run started, on simulated time.
struct SimMono(Arc<Network>);

impl MonoClock for SimMono {
    fn elapsed_ns(&self) -> u64 {
        self.0.now().as_nanos() as u64
    }
}

/// The wall clock: the run's epoch, plus simulated time, plus the node's skew.
struct SimWall {
    net: Arc<Network>,
    skew: Arc<AtomicI64>,
}

impl WallClock for SimWall {
    fn now_unix_ns(&self) -> u64 {
        let now = WALL_EPOCH_NS + self.net.now().as_nanos() as u64;
        now.saturating_add_signed(self.skew.load(Ordering::Relaxed))
    }
}

/// Sleeps on simulated time (tokio's paused clock).
struct SimTime;

impl Time for SimTime {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// FNV-1a: the same number for the same text, on every machine.
pub fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The platform one node's devices are built on.
struct SimPlatform {
    shared: Arc<Shared>,
    /// The device being built, whose random source is seeded by its name.
    label: String,
}

/// What a node's platform and its life share.
pub struct Shared {
    /// Its index.
    pub node: usize,
    /// Its name.
    pub name: String,
    /// The network.
    pub net: Arc<Network>,
    /// The run's log.
    pub log: Arc<Log>,
    /// How far its wall clock is off, in nanoseconds.
    pub skew: Arc<AtomicI64>,
    /// The run's seed mixed with the node's name and boot count.
    pub seed: u64,
    /// Its project (for `kv::baked`).
    pub root: PathBuf,
    /// Its own folder (for `kv::dir` and `block::file`), kept across a crash.
    pub dir: PathBuf,
    /// Its background tasks (stack drivers), aborted when it crashes.
    pub tasks: Mutex<Vec<AbortHandle>>,
}

impl SimPlatform {
    fn path(&self, p: &str) -> Result<String, MakeError> {
        if Path::new(p).is_absolute() || p.split('/').any(|c| c == "..") {
            return Err(MakeError::from(format!(
                "`{p}` leaves the node's folder: a simulated node's files are relative paths"
            )));
        }
        Ok(self.shared.dir.join(p).to_string_lossy().into_owned())
    }
}

impl Platform for SimPlatform {
    type Console = Arc<dyn Console>;
    type MonoClock = Arc<dyn MonoClock>;
    type WallClock = Arc<dyn WallClock>;
    type Time = Arc<dyn Time>;
    type Random = Arc<dyn Random>;
    type BlockFile = Arc<dyn Block>;
    type KvDir = Arc<dyn Kv>;
    type Netif = Arc<dyn Netif>;
    type Tap = Arc<dyn Netif>;
    type SocketStack = Arc<dyn Stack>;

    fn console(&self) -> Result<Self::Console, MakeError> {
        let s = &self.shared;
        Ok(Arc::new(NodeConsole {
            node: s.node,
            name: s.name.clone(),
            log: s.log.clone(),
            net: s.net.clone(),
            partial: Mutex::new(String::new()),
        }))
    }
    fn mono_clock(&self) -> Result<Self::MonoClock, MakeError> {
        Ok(Arc::new(SimMono(self.shared.net.clone())))
    }
    fn wall_clock(&self) -> Result<Self::WallClock, MakeError> {
        Ok(Arc::new(SimWall {
            net: self.shared.net.clone(),
            skew: self.shared.skew.clone(),
        }))
    }
    fn time(&self) -> Result<Self::Time, MakeError> {
        Ok(Arc::new(SimTime))
    }
    fn random(&self) -> Result<Self::Random, MakeError> {
        let seed = self.shared.seed ^ fnv(&self.label);
        Ok(Arc::new(libos::random::Seeded::new(seed)))
    }
    fn block_file(&self, path: &str, size: u64) -> Result<Self::BlockFile, MakeError> {
        Ok(Arc::new(block_file::File::open(self.path(path)?, size)?))
    }
    fn kv_dir(&self, path: &str) -> Result<Self::KvDir, MakeError> {
        Ok(Arc::new(kv_dir::Dir::open(self.path(path)?)?))
    }
    fn netif_default(&self) -> Result<Self::Netif, MakeError> {
        Ok(self.shared.net.port(self.shared.node))
    }
    fn tap(&self, _: &str) -> Result<Self::Tap, MakeError> {
        Err(Unsupported::error(
            "netif::tap",
            "a simulation (a node's network is netif::default)",
        ))
    }
    fn socket_stack(&self) -> Result<Self::SocketStack, MakeError> {
        Err(Unsupported::error(
            "stack::socket",
            "a simulation (use stack::direct over netif::default)",
        ))
    }
    fn bake(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, MakeError> {
        let mut entries = Vec::new();
        for (key, file) in nym_graph::codegen::baked_files(&self.shared.root.join(dir))? {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            entries.push((key, bytes));
        }
        Ok(entries)
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let handle = if nym_unix::trace::installed() {
            let track = format!("task: {}.{}", self.shared.name, self.label);
            tokio::spawn(nym_unix::trace::Traced::new(&track, task))
        } else {
            tokio::spawn(task)
        }
        .abort_handle();
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }
}

/// A node's program: its checked graph, keys and loaded code.
pub struct Program {
    /// The graph, checked for `kvm`: the node runs as its unikernel would.
    pub graph: Graph,
    /// The keys' values.
    pub keys: Keys,
    /// The application's code, shared by the nodes of one project.
    pub library: Arc<Library>,
    /// The project's folder.
    pub root: PathBuf,
}

/// A node as it runs: its devices and the task watching its jobs.
pub struct Machine {
    /// What it shares with its platform.
    pub shared: Arc<Shared>,
    devices: Option<Devices>,
    watch: Option<AbortHandle>,
    boots: u64,
    run_seed: u64,
}

impl Machine {
    /// Node `node` named `name`, not yet booted.
    pub fn new(
        node: usize,
        name: &str,
        net: Arc<Network>,
        log: Arc<Log>,
        seed: u64,
        root: PathBuf,
        dir: PathBuf,
    ) -> Machine {
        Machine {
            shared: Arc::new(Shared {
                node,
                name: name.to_owned(),
                net,
                log,
                skew: Arc::new(AtomicI64::new(0)),
                seed,
                root,
                dir,
                tasks: Mutex::new(Vec::new()),
            }),
            devices: None,
            watch: None,
            boots: 0,
            run_seed: seed,
        }
    }

    /// Whether it is running.
    pub fn is_up(&self) -> bool {
        self.devices.is_some()
    }

    fn say(&self, text: &str) {
        let s = &self.shared;
        s.log.push(s.net.now(), s.node, &s.name, text);
    }

    /// Builds its devices from `program` and starts its jobs; a failure is
    /// said on its console and leaves it down.
    pub fn boot(&mut self, program: &Program) {
        if self.is_up() {
            return;
        }
        self.boots += 1;
        let boots = self.boots;
        // A new seed for each boot, as a machine's entropy differs.
        let shared = Arc::new(Shared {
            node: self.shared.node,
            name: self.shared.name.clone(),
            net: self.shared.net.clone(),
            log: self.shared.log.clone(),
            skew: self.shared.skew.clone(),
            seed: self.run_seed ^ fnv(&self.shared.name) ^ boots.wrapping_mul(0x9e37_79b9),
            root: self.shared.root.clone(),
            dir: self.shared.dir.clone(),
            tasks: Mutex::new(Vec::new()),
        });
        self.shared = shared.clone();
        self.shared.net.set_port(self.shared.node, true);
        let host: nym_unix::runner::Host = Arc::new(move |label: &str| {
            Box::new(SimPlatform {
                shared: shared.clone(),
                label: label.to_owned(),
            }) as Box<DynPlatform>
        });
        let started = Devices::on(host)
            .rewire(&program.graph, &program.keys, &program.root)
            .map_err(|e| e.to_string())
            .and_then(|(devices, _)| {
                let jobs = program
                    .library
                    .start_jobs(&program.graph, &devices, &program.keys)
                    .map_err(|e| e.to_string())?;
                Ok((devices, jobs))
            });
        let (devices, jobs) = match started {
            Ok(d) => d,
            Err(e) => {
                self.say(&format!("nym: cannot start: {e}"));
                self.abort_tasks();
                return;
            }
        };
        // Each job's track in a trace says whose it is.
        let name = &self.shared.name;
        let jobs = jobs
            .into_iter()
            .map(|(job, f)| (format!("{name}: {job}"), f))
            .collect();
        let mut running = Running::start(jobs);
        let s = self.shared.clone();
        let watch = tokio::spawn(async move {
            let said = match running.ended().await {
                Ended::Finished => "nym: every job finished".to_owned(),
                Ended::Failed { job, error } => format!("nym: job {job} failed: {error}"),
                Ended::Interrupted => "nym: interrupted".to_owned(),
            };
            s.log.push(s.net.now(), s.node, &s.name, &said);
            // Finished jobs leave the devices to answer (a stack's peers).
            std::future::pending::<()>().await;
            drop(running);
        });
        self.watch = Some(watch.abort_handle());
        self.devices = Some(devices);
    }

    /// Stops it at once: jobs and background tasks dropped, devices with
    /// them (memory lost; files stay), its port deaf.
    pub fn crash(&mut self) {
        if !self.is_up() {
            return;
        }
        if let Some(w) = self.watch.take() {
            w.abort();
        }
        self.abort_tasks();
        self.devices = None;
        self.shared.net.set_port(self.shared.node, false);
        self.say("nym: crashed");
    }

    /// Stops its jobs and background tasks but keeps its devices, as
    /// they were: the state a finished run is inspected in.
    pub fn halt(&mut self) {
        if let Some(w) = self.watch.take() {
            w.abort();
        }
        self.abort_tasks();
    }

    fn abort_tasks(&self) {
        for t in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// The device labelled `label` in its graph, while it runs.
    pub fn device(&self, program: &Program, label: &str) -> Result<Arg, String> {
        let Some(devices) = &self.devices else {
            return Err(format!("{} is down", self.shared.name));
        };
        let index = program
            .graph
            .nodes
            .iter()
            .position(|n| n.label == label)
            .ok_or_else(|| {
                let labels: Vec<&str> = program
                    .graph
                    .nodes
                    .iter()
                    .map(|n| n.label.as_str())
                    .collect();
                format!(
                    "{} has no device `{label}` (its devices: {})",
                    self.shared.name,
                    labels.join(", ")
                )
            })?;
        devices
            .node(index)
            .cloned()
            .ok_or_else(|| format!("{}.{label} is not built", self.shared.name))
    }

    /// Moves its wall clock by `ns` nanoseconds.
    pub fn skew(&self, ns: i64) {
        self.shared.skew.fetch_add(ns, Ordering::Relaxed);
        let sign = if ns < 0 { "-" } else { "+" };
        self.say(&format!(
            "nym: wall clock skewed by {sign}{:?}",
            Duration::from_nanos(ns.unsigned_abs())
        ));
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(w) = self.watch.take() {
            w.abort();
        }
        self.abort_tasks();
    }
}
