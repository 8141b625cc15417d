//! Rust cells.
use crate::Reply;
use std::path::Path;

/// The Rust cells' evaluation context.
#[derive(Default)]
pub struct Cells {}

impl Cells {
    /// Evaluates `code`.
    pub fn eval(&mut self, _code: &str, _krate: Option<(&str, &Path)>) -> Reply {
        Reply {
            text: "Rust cells are not built yet".into(),
            error: true,
            quit: false,
        }
    }
}
