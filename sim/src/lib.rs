//! # nym-sim: many graphs on one virtual network
//!
//! `nym sim TOPOLOGY` runs every node of a [`topology`] (each an existing
//! nym project, its graph checked as its unikernel's) in one process, over
//! `stack::direct` on a simulated network ([`net`]), on virtual time: a
//! node's clocks and sleeps are tokio's paused clock, which jumps to the
//! next timer whenever every node waits, so ten simulated minutes take
//! seconds. Everything random (the nodes' entropy, the links' losses and
//! delays) comes from the run's seed, and the whole run is one thread, so
//! the same seed gives the same run: the same console lines in the same
//! order, the same frames at the same simulated times ([`pcap`]).
//!
//! A run applies the topology's events (partitions, links down, crashes
//! and restarts, clock skews) and checks its properties ([`run`]); the
//! first property violated ends it and is reported with the seed that
//! reproduces it.
pub mod net;
pub mod node;
pub mod pcap;
pub mod run;
pub mod topology;

use node::Program;
use nym_driver::project::Project;
use nym_driver::Out;
use nym_graph::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use topology::Topology;

pub use run::{run, Outcome, Query, RunOptions, Serve, Violation};

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The topology file.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// A node's project: its graph has errors, its keys are wrong, its
    /// code does not build.
    #[error("node `{node}` ({}): {message}", project.display())]
    Node {
        /// The node.
        node: String,
        /// Its project.
        project: PathBuf,
        /// What is wrong (a graph's diagnostics, rendered).
        message: String,
    },
    /// The host failed (a file, the runtime).
    #[error("{0}")]
    Io(String),
}

/// Opens, checks and builds every node's project (each project once, its
/// code shared by the nodes that run it): the programs in node order.
pub fn prepare(topology: &Topology, out: &Out) -> Result<Vec<Rc<Program>>, SimError> {
    let mut built: BTreeMap<(PathBuf, Vec<String>), (Project, Arc<nym_unix::runner::Library>)> =
        BTreeMap::new();
    let mut programs = Vec::new();
    for node in &topology.nodes {
        let fail = |message: String| SimError::Node {
            node: node.name.clone(),
            project: node.project.clone(),
            message,
        };
        let file = if node.project.is_dir() {
            node.project.join(nym_driver::project::GRAPH_FILE)
        } else {
            node.project.clone()
        };
        let cwd = file.parent().unwrap_or(Path::new(".")).to_owned();
        let project = Project::open_in(&cwd, Some(&file), None).map_err(|e| fail(e.to_string()))?;
        let krate = project.krate();
        let analysis = nym_graph::analyze(&project.source, Target::Kvm, krate.as_ref());
        let Some(graph) = analysis.graph().cloned() else {
            let name = file.display().to_string();
            let text = nym_graph::diagnostic::render(
                analysis.diagnostics(),
                &name,
                &project.source,
                false,
            );
            return Err(fail(format!(
                "its graph has errors (checked for kvm, as its unikernel)\n{text}"
            )));
        };
        let keys =
            nym_driver::build::key_values(&graph, &node.keys).map_err(|e| fail(e.to_string()))?;
        // A shim holds the jobs its graph registers: one per project and
        // set of jobs (a project may hold a server's graph and a client's).
        let mut jobs: Vec<String> = graph
            .registered
            .iter()
            .map(|&j| graph.jobs[j].sig.path.to_string())
            .collect();
        jobs.sort();
        let key = (project.root.clone(), jobs);
        if !built.contains_key(&key) {
            let so = nym_driver::build::build_shim(&project, &graph, out)
                .map_err(|e| fail(e.to_string()))?;
            let library =
                nym_driver::build::load_copy(&project, &so).map_err(|e| fail(e.to_string()))?;
            built.insert(key.clone(), (project, Arc::new(library)));
        }
        let (project, library) = &built[&key];
        programs.push(Rc::new(Program {
            graph,
            keys,
            library: library.clone(),
            root: project.root.clone(),
        }));
    }
    Ok(programs)
}
