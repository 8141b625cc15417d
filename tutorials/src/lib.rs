//! # nym-tutorials: the guided lessons and the engine that checks them
//!
//! Each lesson is a directory of `lessons/` built into the crate (so a
//! `nym` binary carries exactly the lessons its CI solved):
//!
//! - `lesson.toml`: the title, the `nym new` template it starts from, and
//!   its steps — each with an id (what progress is keyed by), what it
//!   needs of the machine, its hints and its checks;
//! - `lesson.md`: the notebook the learner reads (and `nym tutorial open`
//!   shows in `nym tui`): an introduction, then a `## Title {#id}` section
//!   per step, with ```nym and ```rust cells;
//! - `start/`: files laid over the template;
//! - `steps/<id>/`: the files as they are once step `id` is done.
//!
//! ## Layers
//!
//! - [`lesson`]: reading a lesson from the embedded files.
//! - [`check`]: checks as data, and [`Failure`] (expected, seen, and
//!   `nym check`'s own diagnostics first when the graph is involved).
//!   The checks that read live in `checks.rs`, those that run the
//!   learner's program (on a copy, through `nym`) in `runs.rs`.
//! - [`engine`]: a lesson folder — laying it out, its progress, checking
//!   a step, hints, reset.
//!
//! ## Invariants
//!
//! Checks look at outcomes, never at line numbers. A step whose needs the
//! machine lacks is skipped (and said so), never passed. Nothing a check
//! runs touches the learner's folder: runs happen on a copy under
//! `target/nym-tutorial/`.
#![warn(missing_docs)]

pub mod audit;
pub mod check;
mod checks;
mod diff;
pub mod engine;
pub mod files;
pub mod lesson;
mod runs;

pub use check::{Check, Failure};
pub use checks::answer_hash;
pub use engine::{Context, Error, Progress, State, Tutorial, Verdict};
pub use lesson::{Action, Lesson, Need, Step};

include!(concat!(env!("OUT_DIR"), "/lessons.rs"));
