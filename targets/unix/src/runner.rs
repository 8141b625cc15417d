//! The in-process runner: a checked graph instantiated live inside `nym`.
//!
//! Each node's device is built by its catalog entry's in-process
//! constructor ([`Implementation::build`]: the same `libos::make` function a
//! generated program calls) on [`InProcess`], the host as a platform of
//! trait objects; devices are made in the graph's dependency order and
//! lent, as `Arc<dyn Trait>`, to jobs that live in the application library
//! ([`Library`]). The library is refused unless its ABI fingerprint equals
//! ours.
#![allow(unsafe_code)] // dlopen of the application library
use crate::devices;
use crate::keys::Keys;
use crate::platform::Unix;
use libos::abi::{self, Arg, Args, JobFuture, JobTable};
use libos::platform::{DynPlatform, MakeError, Platform};
use libos::{BoxFuture, Console};
use nym_graph::check::{GArg, Graph};
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

/// A store's recorded changes (`libos::kv::History` over the store as the
/// runner made it).
pub type StoreHistory = libos::kv::History<Arc<dyn libos::Kv>, Arc<dyn libos::WallClock>>;

/// A device's recorded changes: a store's ([`StoreHistory`]), or a
/// stack's neighbours and sockets (`stack::direct`).
pub type Recorded = Arc<dyn libos::kv::Versioned>;

/// Makes the platform a node is built on, given the node's label, in place
/// of the host's own ([`InProcess`]): a simulated machine's (`nym sim`).
pub type Host = Arc<dyn Fn(&str) -> Box<DynPlatform> + Send + Sync>;

/// How many changes each store made from now on records (0: none).
static HISTORY_BOUND: AtomicUsize = AtomicUsize::new(0);

/// From now on every read-write store the runner makes records its changes,
/// the newest `bound` kept (0: none, as for `nym run`): what a session
/// reads with `:history` and rolls back with `:revert`. Process-wide, as a
/// process runs one stack.
pub fn record_history(bound: usize) {
    HISTORY_BOUND.store(bound, Ordering::Relaxed);
}

/// The bound [`record_history`] set.
pub fn history_bound() -> usize {
    HISTORY_BOUND.load(Ordering::Relaxed)
}

/// Why the graph could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A device failed to initialise.
    #[error("device `{node}` ({imp}): {message}")]
    Init {
        /// The node's label.
        node: String,
        /// Its implementation.
        imp: &'static str,
        /// Why.
        message: String,
    },
    /// The application library cannot be loaded.
    #[error("cannot load the application library {}: {reason}", path.display())]
    Load {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The library was built by another compiler or against another libos.
    #[error("refusing {}: it was built against another nym ABI\n  library: {theirs}\n  nym:     {ours}\nrebuild it with this nym (`nym run` does) or use the nym that built it", path.display())]
    AbiMismatch {
        /// The library.
        path: PathBuf,
        /// Its fingerprint.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The graph registers a job the library does not have.
    #[error("the application library has no job `{0}`; it has: {1}")]
    MissingJob(String, String),
    /// The graph has a key the key values lack (a nym bug).
    #[error("no value for key `{0}`")]
    MissingKey(String),
    /// A job's arguments do not fit its entry point.
    #[error("job `{job}`: {source}")]
    Args {
        /// The job.
        job: String,
        /// Why.
        source: abi::ArgError,
    },
}

/// A loaded application library. Dropping it unloads the code, so keep it
/// alive while any job from it runs.
pub struct Library {
    lib: libloading::Library,
    path: PathBuf,
}

impl Library {
    /// Loads the shim library at `path`, checking its fingerprint first.
    /// `path` should be a fresh copy: `dlopen` caches libraries by path.
    pub fn load(path: &Path) -> Result<Library, RunError> {
        let load_err = |reason: String| RunError::Load {
            path: path.to_owned(),
            reason,
        };
        // SAFETY: loading runs the library's initialisers. The library is the
        // shim nym generated and built; foreign libraries are refused by the
        // fingerprint check below before any of their Rust code is called.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| load_err(e.to_string()))?;
        // SAFETY: the symbol is declared by the shim as
        // `extern "C" fn() -> *const c_char`; the C ABI is stable across compilers.
        let fingerprint: libloading::Symbol<extern "C" fn() -> *const c_char> = unsafe {
            lib.get(abi::FINGERPRINT_SYMBOL)
        }
        .map_err(|_| load_err("it is not a nym application library (no ABI fingerprint)".into()))?;
        let ptr = fingerprint();
        if ptr.is_null() {
            return Err(load_err("its ABI fingerprint is null".into()));
        }
        // SAFETY: the shim returns a pointer to a NUL-terminated static string.
        let theirs = unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned();
        let ours = abi::FINGERPRINT.trim_end_matches('\0');
        if theirs != ours {
            return Err(RunError::AbiMismatch {
                path: path.to_owned(),
                theirs,
                ours: ours.to_owned(),
            });
        }
        Ok(Library {
            lib,
            path: path.to_owned(),
        })
    }

    fn table(&self) -> Result<&JobTable, RunError> {
        // SAFETY: the fingerprint matched, so the library was built by this
        // compiler against this libos: its `JobTable` has our layout.
        let table: libloading::Symbol<*const JobTable> = unsafe { self.lib.get(abi::TABLE_SYMBOL) }
            .map_err(|_| RunError::Load {
                path: self.path.clone(),
                reason: "no job table".into(),
            })?;
        // SAFETY: the symbol is a `static` in the library, valid while it is loaded.
        Ok(unsafe { &**table })
    }

    /// Starts the graph's registered jobs with their arguments taken from
    /// `devices` and `keys`.
    pub fn start_jobs(
        &self,
        graph: &Graph,
        devices: &Devices,
        keys: &Keys,
    ) -> Result<Vec<(String, JobFuture)>, RunError> {
        let table = self.table()?;
        let mut out = Vec::new();
        for &j in &graph.registered {
            let job = &graph.jobs[j];
            let spec = table
                .jobs
                .iter()
                .find(|s| s.path == job.sig.path)
                .ok_or_else(|| {
                    RunError::MissingJob(
                        job.sig.path.clone(),
                        table
                            .jobs
                            .iter()
                            .map(|s| s.path)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                })?;
            let args = job
                .args
                .iter()
                .map(|a| {
                    let arg = devices.arg(graph, a, keys)?;
                    // Its calls traced while tracing is on (`--trace`).
                    Ok(match a {
                        GArg::Node(n) if crate::trace::installed() => {
                            crate::traced::lend(arg, &graph.nodes[*n].label)
                        }
                        _ => arg,
                    })
                })
                .collect::<Result<_, RunError>>()?;
            let fut = (spec.entry)(Args::new(args)).map_err(|source| RunError::Args {
                job: job.label.clone(),
                source,
            })?;
            out.push((job.label.clone(), fut));
        }
        Ok(out)
    }
}

/// The live devices of a graph, one per node.
pub struct Devices {
    nodes: Vec<Arg>,
    /// Each node's identity: its implementation and resolved arguments,
    /// with the identities of the nodes it takes in place of them. Equal
    /// identities across two versions of a graph mean the same device.
    ids: Vec<String>,
    /// Each node's label in its graph.
    labels: Vec<String>,
    /// The host stacks among the nodes, by node index: paused around a reload.
    sockets: Vec<(usize, devices::socket::Socket)>,
    /// Each node's recorded changes, for the stores made while
    /// [`record_history`] asked for them.
    histories: Vec<Option<Recorded>>,
    /// What `console::default()` is, when not standard output (a session's log).
    console: Option<Arc<dyn Console>>,
    /// The platform nodes are built on, when not the host's.
    host: Option<Host>,
}

/// What [`Devices::rewire`] did, by node label.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewired {
    /// Nodes whose device was kept, state and all.
    pub kept: Vec<String>,
    /// Nodes built anew: changed, new, or depending on one that changed.
    pub made: Vec<String>,
}

impl Devices {
    /// Builds every node of `graph` in order. Relative paths are taken from `root`.
    pub fn instantiate(graph: &Graph, keys: &Keys, root: &Path) -> Result<Devices, RunError> {
        Ok(Devices::none(None).rewire(graph, keys, root)?.0)
    }

    /// No devices yet; `console::default()` will be `console` if given
    /// (rather than standard output), here and in every rewired version.
    pub fn none(console: Option<Arc<dyn libos::Console>>) -> Devices {
        Devices {
            nodes: Vec::new(),
            ids: Vec::new(),
            labels: Vec::new(),
            sockets: Vec::new(),
            histories: Vec::new(),
            console,
            host: None,
        }
    }

    /// No devices yet; every node will be built on the platform `host`
    /// makes for it rather than on the host's own.
    pub fn on(host: Host) -> Devices {
        Devices {
            host: Some(host),
            ..Devices::none(None)
        }
    }

    /// The device of node `index` of the graph these devices were made for.
    pub fn node(&self, index: usize) -> Option<&Arg> {
        self.nodes.get(index)
    }

    /// The recorded changes of node `index`, a store or a stack made while
    /// [`record_history`] asked for them.
    pub fn history(&self, index: usize) -> Option<&Recorded> {
        self.histories.get(index)?.as_ref()
    }

    /// The devices of `graph`, a new version of the graph these devices
    /// were made for: a node whose implementation and arguments are
    /// unchanged (its dependencies included) keeps its device; the others
    /// are built. Nothing of `self` changes, so on an error it can go on.
    pub fn rewire(
        &self,
        graph: &Graph,
        keys: &Keys,
        root: &Path,
    ) -> Result<(Devices, Rewired), RunError> {
        // Each new node's identity: its implementation and arguments, with
        // the identities of the nodes it takes in their place.
        let mut ids: Vec<String> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let args: Vec<String> = node
                .args
                .iter()
                .map(|g| match g {
                    GArg::Node(n) => ids[*n].clone(),
                    GArg::Value(v) => format!("{v:?}"),
                    GArg::Key(k) => format!("{:?}", keys.get(&graph.keys[*k].name)),
                })
                .collect();
            ids.push(format!("{}({})", node.imp.name, args.join(", ")));
        }
        // Which old device each node keeps: one of the same identity and
        // the same name first (two `kv::mem()` keep their own contents),
        // then one of the same identity under another name (a rename).
        let mut taken = vec![false; self.ids.len()];
        let mut reuse: Vec<Option<usize>> = vec![None; graph.nodes.len()];
        for same_name in [true, false] {
            for (j, node) in graph.nodes.iter().enumerate() {
                if reuse[j].is_some() {
                    continue;
                }
                let found = (0..self.ids.len()).find(|&i| {
                    !taken[i]
                        && self.ids[i] == ids[j]
                        && (!same_name || self.labels[i] == node.label)
                });
                if let Some(i) = found {
                    taken[i] = true;
                    reuse[j] = Some(i);
                }
            }
        }
        let mut devices = Devices {
            nodes: Vec::with_capacity(graph.nodes.len()),
            ids: Vec::with_capacity(graph.nodes.len()),
            labels: graph.nodes.iter().map(|n| n.label.clone()).collect(),
            sockets: Vec::new(),
            histories: Vec::with_capacity(graph.nodes.len()),
            console: self.console.clone(),
            host: self.host.clone(),
        };
        let mut rewired = Rewired::default();
        // The nodes a `kv::history` of the graph wraps.
        let mut by_history = vec![false; graph.nodes.len()];
        for n in graph.nodes.iter().filter(|n| n.imp.name == "kv::history") {
            if let Some(GArg::Node(i)) = n.args.first() {
                by_history[*i] = true;
            }
        }
        for ((node, id), reused) in graph.nodes.iter().zip(ids).zip(reuse) {
            let args = node
                .args
                .iter()
                .map(|a| devices.arg(graph, a, keys))
                .collect::<Result<Vec<_>, _>>()?;
            let made = match reused {
                Some(i) => {
                    rewired.kept.push(node.label.clone());
                    if let Some((_, s)) = self.sockets.iter().find(|(n, _)| *n == i) {
                        devices.sockets.push((devices.nodes.len(), s.clone()));
                    }
                    devices
                        .histories
                        .push(self.histories.get(i).cloned().flatten());
                    self.nodes[i].clone()
                }
                None => {
                    rewired.made.push(node.label.clone());
                    let mut in_process = InProcess::new(root, self.console.clone());
                    in_process.label = node.label.clone();
                    let hosted = self.host.as_ref().map(|h| h(&node.label));
                    let platform: &DynPlatform = match &hosted {
                        Some(p) => &**p,
                        None => &in_process,
                    };
                    let init = |message: String| RunError::Init {
                        node: node.label.clone(),
                        imp: node.imp.name,
                        message,
                    };
                    // A `kv::history` of the graph is the store's history:
                    // made here, so the session reads it, and the store it
                    // wraps is not recorded twice.
                    let (made, history) = if node.imp.name == "kv::history" {
                        let (made, history) = history_node(args, platform).map_err(init)?;
                        (made, Some(history))
                    } else {
                        let made = (node.imp.build)(platform, &mut Args::new(args))
                            .map_err(|e| init(e.message().to_owned()))?;
                        if let Some(socket) = in_process.take_socket() {
                            devices.sockets.push((devices.nodes.len(), socket));
                        }
                        match by_history[devices.nodes.len()] {
                            true => (made, None),
                            false => recorded(made, platform)?,
                        }
                    };
                    devices.histories.push(history);
                    made
                }
            };
            devices.nodes.push(made);
            devices.ids.push(id);
        }
        Ok((devices, rewired))
    }

    /// Readies the devices for their jobs to be stopped: host stacks stop
    /// handing out connections (they wait in the kernel's queue), then up
    /// to `grace` passes for the connections in flight to finish.
    pub async fn quiesce(&self, grace: std::time::Duration) {
        for (_, s) in &self.sockets {
            s.pause(true);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.sockets.iter().any(|(_, s)| s.open_flows() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Lets host stacks hand out connections again.
    pub fn resume(&self) {
        for (_, s) in &self.sockets {
            s.pause(false);
        }
    }

    fn arg(&self, graph: &Graph, a: &GArg, keys: &Keys) -> Result<Arg, RunError> {
        Ok(match a {
            GArg::Node(n) => self.nodes[*n].clone(),
            GArg::Value(v) => v.clone().into(),
            GArg::Key(k) => {
                let name = &graph.keys[*k].name;
                keys.get(name)
                    .ok_or_else(|| RunError::MissingKey(name.clone()))?
                    .clone()
                    .into()
            }
        })
    }
}

/// A device's state, a line per fact: a store's keys and values, a
/// stack's sockets and neighbours, a clock's reading (what `:inspect`
/// shows, in a session and of a simulation's node).
pub async fn describe(dev: &Arg) -> Vec<String> {
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
        Arg::Console(_) => vec!["writes to the log (`:logs`)".into()],
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

/// `kv::history(kv, bound)` in-process: the store and its history.
fn history_node(args: Vec<Arg>, platform: &DynPlatform) -> Result<(Arg, Recorded), String> {
    let mut args = Args::new(args);
    let kv = args.kv().map_err(|e| e.to_string())?;
    let bound = args.int::<usize>("usize").map_err(|e| e.to_string())?;
    args.finish().map_err(|e| e.to_string())?;
    let clock = platform.wall_clock().map_err(|e| e.message().to_owned())?;
    let history = Arc::new(StoreHistory::new(kv, bound, clock));
    Ok((Arg::Kv(history.clone()), history))
}

/// `made` with its changes recorded, if it is a read-write store or a
/// stack that records its own and [`record_history`] asks for it.
fn recorded(made: Arg, platform: &DynPlatform) -> Result<(Arg, Option<Recorded>), RunError> {
    let bound = history_bound();
    if bound == 0 || !matches!(made, Arg::Kv(_) | Arg::Stack(_)) {
        return Ok((made, None));
    }
    let clock = platform.wall_clock().map_err(|e| RunError::Init {
        node: "history".into(),
        imp: "kv::history",
        message: e.message().to_owned(),
    })?;
    Ok(match made {
        Arg::Kv(kv) => {
            let history = Arc::new(StoreHistory::new(kv, bound, clock));
            (Arg::Kv(history.clone()), Some(history as Recorded))
        }
        Arg::Stack(stack) => {
            let history = stack.record_changes(clock, bound);
            (Arg::Stack(stack), history)
        }
        other => (other, None),
    })
}

/// The host as a platform of trait objects, for one node's constructor:
/// relative paths from the project's root, `console::default()` the
/// session's log when it has one, and the host stack it makes kept, so the
/// runner can pause it around a reload.
pub struct InProcess {
    /// The node being built: the name its background tasks are traced under.
    label: String,
    root: PathBuf,
    console: Option<Arc<dyn Console>>,
    socket: Mutex<Option<devices::socket::Socket>>,
}

impl InProcess {
    /// The platform for a project at `root`, with `console` (if any) as
    /// `console::default()`.
    pub fn new(root: &Path, console: Option<Arc<dyn Console>>) -> InProcess {
        InProcess {
            label: String::new(),
            root: root.to_owned(),
            console,
            socket: Mutex::new(None),
        }
    }

    /// The host stack made through this platform, if one was.
    fn take_socket(&self) -> Option<devices::socket::Socket> {
        self.socket.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn path(&self, p: &str) -> String {
        self.root.join(p).to_string_lossy().into_owned()
    }
}

impl Platform for InProcess {
    type Console = Arc<dyn Console>;
    type MonoClock = Arc<dyn libos::MonoClock>;
    type WallClock = Arc<dyn libos::WallClock>;
    type Time = Arc<dyn libos::Time>;
    type Random = Arc<dyn libos::Random>;
    type BlockFile = Arc<dyn libos::Block>;
    type KvDir = Arc<dyn libos::Kv>;
    type Netif = Arc<dyn libos::Netif>;
    type Tap = Arc<dyn libos::Netif>;
    type SocketStack = Arc<dyn libos::Stack>;

    fn console(&self) -> Result<Self::Console, MakeError> {
        match &self.console {
            Some(c) => Ok(c.clone()),
            None => Ok(Arc::new(Unix.console()?)),
        }
    }
    fn mono_clock(&self) -> Result<Self::MonoClock, MakeError> {
        Ok(Arc::new(Unix.mono_clock()?))
    }
    fn wall_clock(&self) -> Result<Self::WallClock, MakeError> {
        Ok(Arc::new(Unix.wall_clock()?))
    }
    fn time(&self) -> Result<Self::Time, MakeError> {
        Ok(Arc::new(Unix.time()?))
    }
    fn random(&self) -> Result<Self::Random, MakeError> {
        Ok(Arc::new(Unix.random()?))
    }
    fn block_file(&self, path: &str, size: u64) -> Result<Self::BlockFile, MakeError> {
        Ok(Arc::new(Unix.block_file(&self.path(path), size)?))
    }
    fn kv_dir(&self, path: &str) -> Result<Self::KvDir, MakeError> {
        Ok(Arc::new(Unix.kv_dir(&self.path(path))?))
    }
    fn netif_default(&self) -> Result<Self::Netif, MakeError> {
        Err(libos::platform::Unsupported::error(
            "netif::default",
            "unix (use netif::tap)",
        ))
    }
    fn tap(&self, name: &str) -> Result<Self::Tap, MakeError> {
        Ok(Arc::new(Unix.tap(name)?))
    }
    fn socket_stack(&self) -> Result<Self::SocketStack, MakeError> {
        let socket = Unix.socket_stack()?;
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(socket.clone());
        Ok(Arc::new(socket))
    }
    fn bake(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, MakeError> {
        let mut entries = Vec::new();
        for (key, file) in nym_graph::codegen::baked_files(&self.root.join(dir))? {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            entries.push((key, bytes));
        }
        Ok(entries)
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        if crate::trace::installed() {
            tokio::spawn(crate::trace::Traced::new(
                &format!("task: {}", self.label),
                task,
            ));
        } else {
            tokio::spawn(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nym_graph::catalog::CATALOG;
    use nym_graph::types::Target;

    /// The catalog is the one list of implementations: every entry that
    /// claims `unix` builds in-process, a device of the kind it provides.
    #[test]
    fn every_unix_implementation_in_the_catalog_has_a_constructor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/index.html"), "hi").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        for imp in CATALOG.iter().filter(|i| i.supports(Target::Unix)) {
            let args: Vec<Arg> = imp
                .params
                .iter()
                .map(|p| match p.ty {
                    nym_graph::catalog::ParamType::Device(k) => sample_device(k),
                    nym_graph::catalog::ParamType::Value(libos::ValueType::Str) => {
                        Arg::Str(if imp.name == "kv::baked" {
                            "www".into()
                        } else {
                            format!("x-{}", imp.name.replace("::", "-"))
                        })
                    }
                    nym_graph::catalog::ParamType::Value(libos::ValueType::Cidr) => {
                        Arg::Cidr(libos::Ipv4Cidr {
                            addr: std::net::Ipv4Addr::new(10, 9, 9, 2),
                            prefix: 24,
                        })
                    }
                    nym_graph::catalog::ParamType::Value(_) => {
                        Arg::Int(p.default.map_or(4, |_| 4096))
                    }
                })
                .collect();
            let platform = InProcess::new(dir.path(), None);
            match (imp.build)(&platform, &mut Args::new(args)) {
                Ok(made) => assert_eq!(
                    made.kind_name().to_lowercase().replace(' ', ""),
                    imp.provides.name().to_lowercase(),
                    "{}",
                    imp.name
                ),
                Err(e) => panic!("{} failed: {}", imp.name, e.message()),
            }
        }
    }

    #[test]
    fn a_library_that_is_not_a_nym_shim_is_refused_before_any_call() {
        let libm = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
            "/lib64/libm.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a libm to try");
        match Library::load(libm) {
            Err(RunError::Load { reason, .. }) => {
                assert!(reason.contains("not a nym application library"), "{reason}")
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("libm was accepted as an application"),
        }
        let truncated = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(truncated.path(), b"\x7fELF\x02\x01").unwrap();
        assert!(matches!(
            Library::load(truncated.path()),
            Err(RunError::Load { .. })
        ));
    }

    #[test]
    fn a_library_built_against_another_abi_is_refused_naming_both_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("other.c");
        std::fs::write(
            &c,
            "const char *nym_abi_fingerprint(void) { return \"libos-0.0.1-0badc0de-rustc-elsewhere\"; }\n\
             const void *nym_job_table = 0;\n",
        )
        .unwrap();
        let so = dir.path().join("libother.so");
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&c)
            .status()
            .expect("a C compiler (cc) to build the foreign library");
        assert!(built.success());
        match Library::load(&so) {
            Err(e @ RunError::AbiMismatch { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("libos-0.0.1-0badc0de-rustc-elsewhere"),
                    "{text}"
                );
                assert!(
                    text.contains(abi::FINGERPRINT.trim_end_matches('\0')),
                    "{text}"
                );
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a library with another fingerprint was loaded"),
        }
    }

    fn graph(src: &str) -> Graph {
        let app = nym_graph::RustCrate::in_memory(
            "app",
            std::collections::HashMap::from([(
                PathBuf::from("src/lib.rs"),
                "pub async fn start(a: impl libos::Kv, b: impl libos::Kv, s: impl libos::Stack) {}"
                    .to_owned(),
            )]),
        );
        let analysis = nym_graph::analyze(src, Target::Unix, Some(&app));
        let diags = format!("{:?}", analysis.diagnostics());
        analysis.checked.graph.unwrap_or_else(|| panic!("{diags}"))
    }

    #[test]
    fn rewiring_keeps_unchanged_devices_and_rebuilds_changed_ones_and_their_dependents() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let keys = |g: &Graph| {
            Keys::parse(
                g.keys
                    .iter()
                    .map(|k| (k.name.as_str(), k.default.clone()))
                    .collect(),
                &[] as &[String],
            )
            .unwrap()
        };
        let v1 = graph(
            "let a = kv::mem(); let b = kv::full(kv::mem()); let s = stack::socket();\n\
             let j = job app::start(a, b, s); register(\"x\", [j]);",
        );
        let devices = Devices::instantiate(&v1, &keys(&v1), dir.path()).unwrap();
        let Arg::Kv(a) = devices.nodes[0].clone() else {
            panic!()
        };
        rt.block_on(a.set("k", b"kept")).unwrap();

        // Renamed bindings and reordered statements change nothing.
        let same = graph(
            "let s = stack::socket(); let first = kv::mem(); let second = kv::full(kv::mem());\n\
             let j = job app::start(first, second, s); register(\"x\", [j]);",
        );
        let (_, rewired) = devices.rewire(&same, &keys(&same), dir.path()).unwrap();
        assert!(rewired.made.is_empty(), "{rewired:?}");

        // A changed inner device rebuilds it and the wrapper over it, nothing else.
        let v2 = graph(
            "let a = kv::mem(); let b = kv::full(kv::block(block::mem())); let s = stack::socket();\n\
             let j = job app::start(a, b, s); register(\"x\", [j]);",
        );
        let (new, rewired) = devices.rewire(&v2, &keys(&v2), dir.path()).unwrap();
        assert_eq!(rewired.kept, ["a", "s"], "{rewired:?}");
        assert_eq!(rewired.made.len(), 3, "{rewired:?}");
        let Arg::Kv(a2) = new.nodes[0].clone() else {
            panic!()
        };
        assert_eq!(rt.block_on(a2.get("k")).unwrap(), b"kept");
        assert_eq!(
            new.sockets.len(),
            1,
            "the kept host stack is still paused and resumed"
        );

        // A new device like an old one, bound before it, does not take its
        // place: each keeps the device of its own name.
        let v3 = graph(
            "let x = kv::mem(); let a = kv::mem(); let s = stack::socket();\n\
             let j = job app::start(x, a, s); register(\"x\", [j]);",
        );
        let (new, rewired) = devices.rewire(&v3, &keys(&v3), dir.path()).unwrap();
        assert!(rewired.kept.contains(&"a".to_owned()), "{rewired:?}");
        let Arg::Kv(a3) = new.nodes[1].clone() else {
            panic!()
        };
        assert_eq!(rt.block_on(a3.get("k")).unwrap(), b"kept");
    }

    /// What a session asks for: each store records its changes, kept with
    /// the store across a re-wire; other devices are left as they are.
    #[test]
    fn stores_record_their_changes_when_asked_and_keep_them_across_a_rewire() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let keys = |g: &Graph| {
            Keys::parse(
                g.keys
                    .iter()
                    .map(|k| (k.name.as_str(), k.default.clone()))
                    .collect(),
                &[] as &[String],
            )
            .unwrap()
        };
        record_history(3);
        let v1 = graph(
            "let a = kv::mem(); let b = kv::full(kv::mem()); let s = stack::socket();\n\
             let j = job app::start(a, b, s); register(\"x\", [j]);",
        );
        let devices = Devices::instantiate(&v1, &keys(&v1), dir.path()).unwrap();
        let Arg::Kv(a) = devices.nodes[0].clone() else {
            panic!()
        };
        for v in ["1", "2", "3", "4"] {
            rt.block_on(a.set("k", v.as_bytes())).unwrap();
        }
        let h = devices.history(0).expect("a store records its changes");
        assert_eq!(h.kept(), (3, 2), "the newest three");
        let stack = v1.nodes.iter().position(|n| n.label == "s").unwrap();
        assert!(devices.history(stack).is_none(), "a stack has no history");
        let v2 = graph(
            "let a = kv::mem(); let b = kv::mem(); let s = stack::socket();\n\
             let j = job app::start(a, b, s); register(\"x\", [j]);",
        );
        let (new, _) = devices.rewire(&v2, &keys(&v2), dir.path()).unwrap();
        let kept = new.history(0).expect("kept with its store");
        assert!(Arc::ptr_eq(kept, h));
        assert_eq!(rt.block_on(kept.revert(4)), Ok(1));
        assert_eq!(rt.block_on(a.get("k")).unwrap(), b"3");
    }

    fn sample_device(k: nym_graph::Kind) -> Arg {
        use nym_graph::Kind::*;
        match k {
            MonoClock => Arg::MonoClock(Arc::new(Unix.mono_clock().unwrap())),
            Time => Arg::Time(Arc::new(Unix.time().unwrap())),
            Kv | KvRo => Arg::Kv(Arc::new(libos::kv::Mem::new())),
            Block => Arg::Block(Arc::new(libos::block::Mem::new(8, 512))),
            Netif => Arg::Netif(Arc::new(libos::netif::pair().0)),
            Stack => Arg::Stack(Arc::new(Unix.socket_stack().unwrap())),
            other => panic!("no sample for {other}"),
        }
    }
}
