//! `nym run --watch`: the development loop. The composed stack runs in this
//! process; when `src/`, `Cargo.toml` or the graph changes, the application
//! is rebuilt and swapped in under the running devices.
//!
//! A reload, in order: check the graph (errors: keep running the old
//! version); build the shim (errors, printed as cargo prints them: keep
//! running); load the new library (a foreign ABI is refused here); rewire the
//! devices, keeping every node whose implementation and arguments did not
//! change; quiesce the host stacks (listeners stop handing out connections,
//! which queue in the kernel, and connections in flight get a moment to
//! finish); stop the old jobs; start the new ones on the kept devices;
//! resume. Only then is the old library unloaded.
use crate::commands::{build_shim, checked, key_values, load, load_copy, CliError};
use crate::ProjectArgs;
use notify::{RecursiveMode, Watcher};
use nym_graph::Graph;
use nym_unix::jobs::{self, Ended, Running};
use nym_unix::keys::Keys;
use nym_unix::runner::{Devices, Library};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long connections in flight may take to finish before a swap.
const DRAIN: Duration = Duration::from_millis(500);
/// Edits arriving closer together than this are one change.
const SETTLE: Duration = Duration::from_millis(80);

/// What runs now.
struct Live {
    graph: Graph,
    keys: Keys,
    devices: Devices,
    running: Running,
    // Dropped last: the jobs' code lives in it.
    library: Library,
}

/// `nym run --watch`.
pub fn run(cwd: &Path, args: &ProjectArgs, key_args: &[String]) -> Result<ExitCode, CliError> {
    let (project, graph) = load(cwd, args)?;
    let keys = key_values(&graph, key_args)?;
    let so = build_shim(&project, &graph)?;
    let library = load_copy(&project, &so)?;
    let root = project.root.clone();
    let runtime = crate::commands::runtime()?;
    runtime.block_on(async {
        let (tx, mut changes) = mpsc::unbounded_channel();
        let _watcher = watch(&project.root, &project.graph_path, tx)?;
        let devices = Devices::instantiate(&graph, &keys, &root)?;
        let running = Running::start(library.start_jobs(&graph, &devices, &keys)?);
        let mut live = Live {
            graph,
            keys,
            devices,
            running,
            library,
        };
        eprintln!("nym: watching {} and src/; Ctrl-C to stop", short(&root, &project.graph_path));
        let stop = jobs::interrupted();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => {
                    live.running.stop().await;
                    jobs::report("nym", &Ended::Interrupted);
                    return Ok(ExitCode::from(130));
                }
                ended = live.running.ended() => {
                    jobs::report("nym", &ended);
                    eprintln!("nym: the jobs ended; waiting for a change");
                }
                Some(first) = changes.recv() => {
                    let mut changed = vec![first];
                    // An editor's save is several events: wait for quiet.
                    while let Ok(Some(p)) = tokio::time::timeout(SETTLE, changes.recv()).await {
                        changed.push(p);
                    }
                    changed.sort();
                    changed.dedup();
                    let what = changed.iter().map(|p| short(&root, p)).collect::<Vec<_>>().join(", ");
                    reload(cwd, args, key_args, &mut live, &what).await;
                }
            }
        }
    })
}

/// Watches the project's sources and graph, sending each changed path.
fn watch(
    root: &Path,
    graph: &Path,
    tx: mpsc::UnboundedSender<PathBuf>,
) -> Result<notify::RecommendedWatcher, CliError> {
    let src = root.join("src");
    let manifest = root.join("Cargo.toml");
    let graph_file = graph.to_owned();
    let relevant = {
        let src = src.clone();
        move |p: &Path| {
            p == graph_file
                || p == manifest
                || (p.starts_with(&src) && p.extension().is_some_and(|e| e == "rs"))
        }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in event.paths.into_iter().filter(|p| relevant(p)) {
            let _ = tx.send(p);
        }
    })
    .map_err(|e| watch_error(root, e))?;
    // Editors save by renaming a new file over the old one: watch the
    // directories, not the files.
    let graph_dir = graph.parent().unwrap_or(root);
    watcher
        .watch(graph_dir, RecursiveMode::NonRecursive)
        .map_err(|e| watch_error(graph_dir, e))?;
    if root != graph_dir {
        watcher
            .watch(root, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(root, e))?;
    }
    if src.is_dir() {
        watcher
            .watch(&src, RecursiveMode::Recursive)
            .map_err(|e| watch_error(&src, e))?;
    }
    Ok(watcher)
}

fn watch_error(path: &Path, e: notify::Error) -> CliError {
    CliError::Io {
        what: format!("watching {}", path.display()),
        source: std::io::Error::other(e.to_string()),
    }
}

fn short(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Rebuilds and swaps; on any failure the old version keeps running.
async fn reload(cwd: &Path, args: &ProjectArgs, key_args: &[String], live: &mut Live, what: &str) {
    let keep = "the previous version keeps running";
    let started = Instant::now();
    eprintln!("nym: {what} changed; rebuilding");
    let (project, graph, errors, _) = match checked(cwd, args, false) {
        Ok(c) => c,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    let Some(graph) = graph else {
        // The checker read the job signatures with syn; when the Rust does
        // not parse, let cargo say so in its own words too (building with
        // the running graph, whose shim is known good). If that build
        // succeeds the error is in the graph alone, and nothing is swapped.
        let _ = build_shim(&project, &live.graph);
        return eprintln!(
            "nym: {} has {} error{}; {keep}",
            short(&project.root, &project.graph_path),
            errors.max(1),
            if errors == 1 { "" } else { "s" }
        );
    };
    let keys = match key_values(&graph, key_args) {
        Ok(k) => k,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    // Blocking here blocks only this thread: the jobs run on the runtime's workers.
    let so = match build_shim(&project, &graph) {
        Ok(so) => so,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    let build = started.elapsed();
    let library = match load_copy(&project, &so) {
        Ok(l) => l,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    let (devices, rewired) = match live.devices.rewire(&graph, &keys, &project.root) {
        Ok(d) => d,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    let draining = Instant::now();
    live.devices.quiesce(DRAIN).await;
    let swapping = Instant::now();
    let drained = swapping - draining;
    live.running.stop().await;
    let jobs = match library.start_jobs(&graph, &devices, &keys) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("nym: {e}; restarting the previous version");
            match live
                .library
                .start_jobs(&live.graph, &live.devices, &live.keys)
            {
                Ok(j) => live.running = Running::start(j),
                Err(e) => eprintln!("nym: the previous version cannot restart either: {e}"),
            }
            live.devices.resume();
            return;
        }
    };
    let old = std::mem::replace(
        live,
        Live {
            graph,
            keys,
            devices,
            running: Running::start(jobs),
            library,
        },
    );
    live.devices.resume();
    let swap = swapping.elapsed();
    // The old jobs are stopped: their devices and code can go.
    drop(old);
    let mut note = format!(
        "nym: reloaded: build {} ms, swap {:.2} ms",
        build.as_millis(),
        swap.as_secs_f64() * 1e3
    );
    if drained >= Duration::from_millis(1) {
        note += &format!(
            " (after {} ms for connections in flight)",
            drained.as_millis()
        );
    }
    if !rewired.made.is_empty() {
        note += &format!("; new devices: {}", rewired.made.join(", "));
    }
    eprintln!("{note}");
}
