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
pub mod log;
pub mod notebook;
pub mod repl;
pub mod rust;
pub mod session;

pub use session::{Reply, Session, Status};
