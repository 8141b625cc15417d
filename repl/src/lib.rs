//! # nym-repl: the interactive session and `nym repl`
//!
//! One [`Session`](session::Session) holds the project, the graph's
//! statements, the chosen target, the stack running in-process, a guest
//! booted on a target, the log and the cells evaluated so far. `nym repl`
//! ([`repl`]) and `nym tui` (the `nym-tui` crate) both drive it through
//! [`Session::eval`](session::Session::eval) and never judge the graph
//! themselves: every diagnostic comes from `nym-graph`.
//!
//! Notebooks ([`notebook`]) are Markdown with fenced `nym` and `rust`
//! cells, written by `:save` and read by `:load` and `nym tui`.
pub mod journal;
pub mod log;
pub mod notebook;
pub mod repl;
pub mod rust;
pub mod session;

pub use notebook::{Cell, CellKind};
pub use session::{Reply, RunState, Session, Status};

/// Writes a project of the crate `app` into `dir`: its `src/lib.rs` and its
/// graph. Nothing builds it; the session reads the job signatures from the
/// source. For the tests and benchmarks of the session and its front ends.
#[doc(hidden)]
pub fn write_project(dir: &std::path::Path, lib_rs: &str, graph: &str) -> std::io::Result<()> {
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
    )?;
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("src/lib.rs"), lib_rs)?;
    std::fs::write(dir.join(nym_driver::project::GRAPH_FILE), graph)
}
