//! The composed stack running in this process, and its hot reload.
//!
//! A reload, in order: build the shim (a failure leaves everything as it
//! was); load the new library (a foreign ABI is refused here); rewire the
//! devices, keeping every node whose implementation and arguments did not
//! change; quiesce the host stacks (listeners stop handing out connections,
//! which queue in the kernel, and connections in flight get a moment to
//! finish); stop the old jobs; start the new ones on the kept devices;
//! resume. Only then is the old library unloaded.
use crate::build::{build_shim, load_copy};
use crate::project::Project;
use crate::{Error, Out};
use nym_graph::Graph;
use nym_unix::jobs::{Ended, Running};
use nym_unix::keys::Keys;
use nym_unix::runner::{Devices, Library, Rewired};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connections in flight may take to finish before a swap.
pub const DRAIN: Duration = Duration::from_millis(500);

/// A graph running in-process: its devices, its jobs and their code.
pub struct Live {
    graph: Graph,
    keys: Keys,
    devices: Devices,
    running: Running,
    // Dropped last: the jobs' code lives in it.
    library: Library,
}

/// What a reload did and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Building the new library.
    pub build: Duration,
    /// Waiting for connections in flight.
    pub drained: Duration,
    /// From stopping the old jobs to the new ones running.
    pub swap: Duration,
    /// Which devices were kept and which were made.
    pub rewired: Rewired,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reloaded: build {} ms, swap {:.2} ms",
            self.build.as_millis(),
            self.swap.as_secs_f64() * 1e3
        )?;
        if self.drained >= Duration::from_millis(1) {
            write!(
                f,
                " (after {} ms for connections in flight)",
                self.drained.as_millis()
            )?;
        }
        if !self.rewired.made.is_empty() {
            write!(f, "; new devices: {}", self.rewired.made.join(", "))?;
        }
        Ok(())
    }
}

impl Live {
    /// Builds the application library for `graph`, makes the devices (with
    /// `console` as `console::default()` when given) and starts the jobs.
    /// Call it inside the tokio runtime the jobs are to run on.
    pub async fn start(
        project: &Project,
        graph: Graph,
        keys: Keys,
        console: Option<Arc<dyn libos::Console>>,
        out: &Out,
    ) -> Result<Live, Error> {
        let so = build_shim(project, &graph, out)?;
        let library = load_copy(project, &so)?;
        let devices = Devices::none(console)
            .rewire(&graph, &keys, &project.root)?
            .0;
        let running = Running::start(library.start_jobs(&graph, &devices, &keys)?);
        Ok(Live {
            graph,
            keys,
            devices,
            running,
            library,
        })
    }

    /// The graph running.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Its devices.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Completes when the jobs have all finished or one failed (see
    /// [`Running::ended`]; cancel-safe).
    pub async fn ended(&mut self) -> Ended {
        self.running.ended().await
    }

    /// Stops the jobs; the devices and code go when `self` is dropped.
    pub async fn stop(&mut self) {
        self.running.stop().await;
    }

    /// Swaps in `graph` (a new version, or the same with new code): on any
    /// error the running version is left running, or restarted.
    pub async fn reload(
        &mut self,
        project: &Project,
        graph: Graph,
        keys: Keys,
        out: &Out,
    ) -> Result<Reloaded, Error> {
        let started = Instant::now();
        // Blocking here blocks only this task's thread: the jobs run on
        // the runtime's other workers.
        let so = build_shim(project, &graph, out)?;
        let build = started.elapsed();
        let library = load_copy(project, &so)?;
        let (devices, rewired) = self.devices.rewire(&graph, &keys, &project.root)?;
        let draining = Instant::now();
        self.devices.quiesce(DRAIN).await;
        let swapping = Instant::now();
        let drained = swapping - draining;
        self.running.stop().await;
        let jobs = match library.start_jobs(&graph, &devices, &keys) {
            Ok(j) => j,
            Err(e) => {
                let restarted = self
                    .library
                    .start_jobs(&self.graph, &self.devices, &self.keys);
                match restarted {
                    Ok(j) => self.running = Running::start(j),
                    Err(again) => out.line(&format!(
                        "nym: the previous version cannot restart either: {again}"
                    )),
                }
                self.devices.resume();
                return Err(e.into());
            }
        };
        let old = std::mem::replace(
            self,
            Live {
                graph,
                keys,
                devices,
                running: Running::start(jobs),
                library,
            },
        );
        self.devices.resume();
        let swap = swapping.elapsed();
        // The old jobs are stopped: their devices and code can go.
        drop(old);
        Ok(Reloaded {
            build,
            drained,
            swap,
            rewired,
        })
    }
}
