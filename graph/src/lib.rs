//! # nym-graph: the graph language
//!
//! A `.nym` file says which implementation backs each device of an
//! application and how implementations are wired (MirageOS's `config.ml`):
//!
//! ```text
//! let console = console::default();
//! let time    = time::default();
//! let hello   = job hello::start(console, time, key("count", 3));
//! register("hello", [hello]);
//! ```
//!
//! ## Layers, in the order a file goes through them
//!
//! - [`lexer`] and [`parser`]: text to a [`syntax::File`] with spans, with
//!   error recovery (independent mistakes each get their own diagnostic).
//! - [`catalog`]: the implementations as data — the kind each provides, its
//!   parameters, the targets that have it, the Rust that builds it.
//! - [`jobs`]: job signatures read from the application's Rust source.
//! - [`check`]: resolves names, kinds, values, keys, targets and jobs into a
//!   [`check::Graph`], or [`diagnostic::Diagnostic`]s.
//! - Views of a graph: [`print`] (text, DOT) and [`codegen`] (the compiled
//!   mode's `main.rs`, the in-process runner's shim).
//!
//! ## Invariants
//!
//! This crate knows nothing of how a graph is run: no tokio, no KVM, no
//! dynamic loading. The CLI, REPL, TUI and language server all call
//! [`analyze`], so they report the same diagnostics from one checker.
#![warn(missing_docs)]

pub mod catalog;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod format;
pub mod ide;
pub mod incremental;
pub mod jobs;
pub mod lexer;
pub mod methods;
pub mod parser;
pub mod print;
pub mod syntax;
pub mod types;

pub use check::{Checked, Graph};
pub use diagnostic::{Diagnostic, Severity};
pub use jobs::RustCrate;
pub use types::{Kind, Target, Type};

/// A file's syntax tree and everything the checker found.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The syntax tree.
    pub file: syntax::File,
    /// Parse and check results; `checked.diagnostics` holds both.
    pub checked: Checked,
}

impl Analysis {
    /// All diagnostics, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.checked.diagnostics
    }
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.checked.diagnostics.iter().any(Diagnostic::is_error)
    }
    /// The resolved graph, when there are no errors.
    pub fn graph(&self) -> Option<&Graph> {
        self.checked.graph.as_ref()
    }
}

/// Parses and checks `src` for `target`, with job signatures from `krate`.
pub fn analyze(src: &str, target: Target, krate: Option<&RustCrate>) -> Analysis {
    let (file, mut syntax_errors) = parser::parse(src);
    let complete = syntax_errors.is_empty();
    let mut checked = check::check(&file, src.len(), target, krate, complete);
    if !complete {
        // A statement that failed to parse is missing from the tree, so the
        // checker's view is partial: keep its findings but never a graph.
        syntax_errors.append(&mut checked.diagnostics);
        syntax_errors.sort_by_key(|d| (d.span.start, d.span.end));
        checked.diagnostics = syntax_errors;
        checked.graph = None;
    }
    Analysis { file, checked }
}
