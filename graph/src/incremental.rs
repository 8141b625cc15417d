//! Incremental analysis, for the language server: the same [`Analysis`]
//! as [`crate::analyze`], re-using what was found for the previous version
//! of the document, so an edit costs about what the statements it touched
//! cost, not the whole file.
//!
//! - Parsing, per *piece*: the file is cut before every line that begins
//!   with `let`. Every line start is a token boundary (no token spans a
//!   line, but the `\` of an escape it ends), and the parser only ever
//!   takes a `let` as the start of a statement, so each piece parses on its
//!   own into exactly the statements, comments and syntax errors the whole
//!   file gives there ([`crate::parser`]'s `parse_until`: the piece is
//!   parsed with the next piece's `let` after it, which is all the parser
//!   looks at past a statement). Pieces are known by their text: an
//!   unchanged piece's statements are moved out of the last analysis (when
//!   nothing else holds it any more, else copied) and shifted into place.
//! - Checking, per statement: [`crate::check::check_incremental`] replays
//!   a plain `let` (an application of implementations over names and
//!   literals) whose text and whose names' bindings are unchanged, and
//!   checks everything else as usual (see `check/memo.rs`). What depends
//!   on the whole file (unused bindings, a missing `register`, the graph)
//!   is worked out each time.
//!
//! The result is always [`crate::analyze`]'s; `graph/tests/incremental.rs`
//! compares the two over random edits of the example graphs.
use crate::check::{self, Memo};
use crate::diagnostic::Diagnostic;
use crate::jobs::RustCrate;
use crate::parser;
use crate::syntax::{Expr, ExprKind, File, Span, Stmt};
use crate::types::Target;
use crate::Analysis;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;

/// Analyzes successive versions of one document.
#[derive(Default)]
pub struct Incremental {
    /// The last analysis: its statements are moved into the next one when
    /// nothing else holds it any more, else copied.
    last: Option<Arc<Analysis>>,
    /// Where the pieces of the last version are in `last`, by the text
    /// parsed (the piece and the `let` after it, if any).
    pieces: FastMap<String, Piece>,
    memo: Memo,
    reused: usize,
}

/// A parsed piece of the last version.
struct Piece {
    /// Where it started.
    start: usize,
    /// Its statements and comments in the last analysis.
    stmts: Range<usize>,
    comments: Range<usize>,
    /// Its syntax errors, spans relative to its start.
    errors: Vec<Diagnostic>,
}

/// A map keyed by text hashed with FNV-1a: the keys are statements, short
/// and numerous, where SipHash's strength costs more than it buys.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// The FNV-1a hash.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Where the pieces of `src` start, after the first at 0: every line that
/// begins (after blanks) with the keyword `let`; with where that `let` ends.
fn cuts(src: &str) -> Vec<(usize, usize)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut line = 0;
    loop {
        let word = bytes[line..]
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r'))
            .map_or(bytes.len(), |i| line + i);
        let is_let = bytes[word..].starts_with(b"let")
            && !bytes
                .get(word + 3)
                .is_some_and(|b| *b == b'_' || b.is_ascii_alphanumeric());
        if line > 0 && is_let {
            out.push((line, word + 3));
        }
        match bytes[line..].iter().position(|b| *b == b'\n') {
            Some(i) => line += i + 1,
            None => break,
        }
    }
    out
}

/// A statement that holds nothing, left where one was moved out.
fn hole() -> Stmt {
    Stmt::Expr {
        expr: Expr {
            kind: ExprKind::Error,
            span: Span::default(),
        },
        span: Span::default(),
    }
}

impl Incremental {
    /// The analysis of `src`, equal to [`crate::analyze`]`(src, target, krate)`.
    pub fn analyze(
        &mut self,
        src: &str,
        target: Target,
        krate: Option<&RustCrate>,
    ) -> Arc<Analysis> {
        let (file, mut syntax_errors) = self.parse(src);
        let complete = syntax_errors.is_empty();
        let mut checked =
            check::check_incremental(&file, src, target, krate, complete, &mut self.memo);
        if !complete {
            syntax_errors.append(&mut checked.diagnostics);
            syntax_errors.sort_by_key(|d| (d.span.start, d.span.end));
            checked.diagnostics = syntax_errors;
            checked.graph = None;
        }
        let analysis = Arc::new(Analysis { file, checked });
        self.last = Some(analysis.clone());
        analysis
    }

    /// What the last analysis re-used: pieces not parsed again, statements
    /// not checked again.
    pub fn reused(&self) -> (usize, usize) {
        (self.reused, self.memo.replayed())
    }

    /// [`parser::parse`], piece by piece.
    fn parse(&mut self, src: &str) -> (File, Vec<Diagnostic>) {
        let (mut old_stmts, old_comments) = match self.last.take().map(Arc::try_unwrap) {
            Some(Ok(last)) => {
                // Freed here, not on a thread: freeing from another thread
                // made the allocator slower for the next analysis.
                let Analysis { file, .. } = last;
                (file.stmts, file.comments)
            }
            Some(Err(shared)) => (shared.file.stmts.clone(), shared.file.comments.clone()),
            None => Default::default(),
        };
        let mut old_pieces = std::mem::take(&mut self.pieces);
        self.pieces.reserve(old_pieces.len());
        self.reused = 0;
        let cuts = cuts(src);
        let starts = std::iter::once(0).chain(cuts.iter().map(|c| c.0));
        let ends = cuts.iter().map(|&(next, let_end)| Some((next, let_end)));
        let mut file = File {
            stmts: Vec::with_capacity(old_stmts.len()),
            comments: Vec::with_capacity(old_comments.len()),
        };
        let mut errors = Vec::new();
        for (start, end) in starts.zip(ends.chain([None])) {
            let (window, stop) = match end {
                Some((next, let_end)) => (&src[start..let_end], next - start),
                None => (&src[start..], usize::MAX),
            };
            let stmts_from = file.stmts.len();
            let comments_from = file.comments.len();
            // Where the last analysis has the piece (always in range: the
            // ranges were made with it; checked all the same, not trusted).
            let found = old_pieces.remove_entry(window).filter(|(_, old)| {
                old.stmts.end <= old_stmts.len() && old.comments.end <= old_comments.len()
            });
            let (key, piece_errors) = match found {
                Some((key, old)) => {
                    self.reused += 1;
                    for s in &mut old_stmts[old.stmts] {
                        let mut s = std::mem::replace(s, hole());
                        if start != old.start {
                            shift_stmt(&mut s, old.start, start);
                        }
                        file.stmts.push(s);
                    }
                    file.comments
                        .extend(old_comments[old.comments].iter().map(|c| {
                            Span::new(c.start - old.start + start, c.end - old.start + start)
                        }));
                    (key, old.errors)
                }
                None => {
                    let (parsed, errors) = parser::parse_until(window, stop);
                    for mut s in parsed.stmts {
                        shift_stmt(&mut s, 0, start);
                        file.stmts.push(s);
                    }
                    file.comments.extend(
                        parsed
                            .comments
                            .iter()
                            .map(|c| Span::new(c.start + start, c.end + start)),
                    );
                    (window.to_owned(), errors)
                }
            };
            errors.extend(piece_errors.iter().map(|d| {
                let mut d = d.clone();
                shift_diagnostic(&mut d, 0, start);
                d
            }));
            self.pieces.insert(
                key,
                Piece {
                    start,
                    stmts: stmts_from..file.stmts.len(),
                    comments: comments_from..file.comments.len(),
                    errors: piece_errors,
                },
            );
        }
        (file, errors)
    }
}

/// `span` moved from a piece starting at `from` to one starting at `to`.
fn at(span: Span, from: usize, to: usize) -> Span {
    Span::new(span.start - from + to, span.end - from + to)
}

fn shift_diagnostic(d: &mut Diagnostic, from: usize, to: usize) {
    d.span = at(d.span, from, to);
    for (s, _) in &mut d.related {
        *s = at(*s, from, to);
    }
    if let Some(fix) = &mut d.fix {
        fix.span = at(fix.span, from, to);
    }
}

fn shift_stmt(s: &mut Stmt, from: usize, to: usize) {
    let (Stmt::Let { value: e, span, .. } | Stmt::Expr { expr: e, span }) = s;
    *span = at(*span, from, to);
    shift_expr(e, from, to);
    if let Stmt::Let { name, .. } = s {
        name.span = at(name.span, from, to);
    }
}

fn shift_expr(e: &mut Expr, from: usize, to: usize) {
    let at = |s: Span| at(s, from, to);
    e.span = at(e.span);
    match &mut e.kind {
        ExprKind::Call { path, args, close } | ExprKind::Job { path, args, close } => {
            path.span = at(path.span);
            for s in &mut path.segments {
                s.span = at(s.span);
            }
            for a in args {
                if let Some(n) = &mut a.name {
                    n.span = at(n.span);
                }
                shift_expr(&mut a.value, from, to);
            }
            *close = at(*close);
        }
        ExprKind::Method {
            receiver,
            method,
            args,
            close,
        } => {
            receiver.span = at(receiver.span);
            method.span = at(method.span);
            for a in args {
                if let Some(n) = &mut a.name {
                    n.span = at(n.span);
                }
                shift_expr(&mut a.value, from, to);
            }
            *close = at(*close);
        }
        ExprKind::Name(id) => id.span = at(id.span),
        ExprKind::List(items) => items.iter_mut().for_each(|i| shift_expr(i, from, to)),
        ExprKind::Match(arms) => {
            for arm in arms {
                for t in &mut arm.targets {
                    t.span = at(t.span);
                }
                shift_expr(&mut arm.value, from, to);
            }
        }
        ExprKind::Lit(_) | ExprKind::BadCidr(_) | ExprKind::Error => {}
    }
}

#[cfg(test)]
mod tests {
    use super::cuts;

    #[test]
    fn pieces_start_at_lines_that_begin_with_let() {
        let src = "// c\nlet a = 1;\n  let b = x(\nlet_c = 2;\nlet\n\"let\"; let d";
        let starts: Vec<usize> = cuts(src).iter().map(|c| c.0).collect();
        let lines: Vec<&str> = starts
            .iter()
            .map(|&s| src[s..].lines().next().unwrap_or(""))
            .collect();
        assert_eq!(lines, ["let a = 1;", "  let b = x(", "let"]);
    }
}
