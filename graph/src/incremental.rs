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
//!   looks at past a statement). The pieces before the first byte the
//!   edit changed stay where they are, statements and all; after it,
//!   pieces are known by their text: an unchanged piece's statements are
//!   moved out of the last analysis (when nothing else holds it any more,
//!   else copied) and shifted into place.
//! - Checking, per statement: [`crate::check::check_resumable`] takes
//!   the statements before the first one the edit touched as they were
//!   (the checker's state is cut back to where it stood after them, see
//!   `check/resume.rs`), then replays each plain `let` (an application of
//!   implementations over names and literals) whose text and whose names'
//!   bindings are unchanged, and checks everything else as usual (see
//!   `check/memo.rs`). What depends on the whole file (unused bindings, a
//!   missing `register`, the graph) is worked out each time.
//!
//! The result is always [`crate::analyze`]'s; `graph/tests/incremental.rs`
//! compares the two over random edits of the example graphs.
use crate::check::{self, Resume};
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
    /// The last version's text.
    src: String,
    /// Its pieces, in order.
    pieces: Vec<Piece>,
    resume: Resume,
    reused: usize,
}

/// A parsed piece of the last version.
struct Piece {
    /// Where it started, and where the text it parsed ended.
    start: usize,
    end: usize,
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
        // The last analysis, taken apart when nothing else holds it: its
        // statements move into the new tree, its bindings and types back
        // into the checker. Freed here, not on a thread: freeing from
        // another thread made the allocator slower for the next analysis.
        let (old, last) = match self.last.take().map(Arc::try_unwrap) {
            Some(Ok(Analysis { file, checked })) => (file, Some(checked)),
            Some(Err(shared)) => (shared.file.clone(), None),
            None => Default::default(),
        };
        // How far the text is the last version's: the parse and the check
        // both keep what lies before.
        let old_src = std::mem::replace(&mut self.src, src.to_owned());
        let same = check::common_prefix(old_src.as_bytes(), src.as_bytes());
        let (file, mut syntax_errors) = self.parse(src, (&old_src, same), old);
        let complete = syntax_errors.is_empty();
        let mut checked = check::check_resumable(
            &file,
            (src, same),
            (target, krate),
            complete,
            &mut self.resume,
            last,
        );
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
    /// taken as they were (from the top), statements replayed.
    pub fn reused(&self) -> (usize, usize, usize) {
        (self.reused, self.resume.skipped(), self.resume.replayed())
    }

    /// [`parser::parse`], piece by piece, taking the pieces `old` (the last
    /// version's tree, parsed from `old_src`, whose first `same` bytes
    /// `src` begins with) has.
    fn parse(
        &mut self,
        src: &str,
        (old_src, same): (&str, usize),
        old: File,
    ) -> (File, Vec<Diagnostic>) {
        let File {
            stmts: mut old_stmts,
            comments: mut old_comments,
        } = old;
        let cuts = cuts(src);
        let starts = std::iter::once(0).chain(cuts.iter().map(|c| c.0));
        let ends = cuts
            .iter()
            .map(|&(next, let_end)| (let_end, next))
            .chain([(src.len(), usize::MAX)]);
        let windows: Vec<(usize, usize, usize)> = starts
            .zip(ends)
            .map(|(start, (end, stop))| (start, end, stop.saturating_sub(start)))
            .collect();
        // The pieces before the first changed byte parsed the same text at
        // the same place: they stay, with their statements (always in
        // range: the ranges were made with them; checked all the same).
        let kept = windows
            .iter()
            .zip(&self.pieces)
            .take_while(|((start, end, _), p)| {
                p.start == *start
                    && p.end == *end
                    && *end <= same
                    && p.stmts.end <= old_stmts.len()
                    && p.comments.end <= old_comments.len()
            })
            .count();
        let (stmts_kept, comments_kept) = match kept {
            0 => (0, 0),
            n => (
                self.pieces[n - 1].stmts.end,
                self.pieces[n - 1].comments.end,
            ),
        };
        let mut tail_stmts = old_stmts.split_off(stmts_kept);
        let tail_comments = old_comments.split_off(comments_kept);
        let mut old_pieces = self.pieces.split_off(kept);
        for p in &mut old_pieces {
            p.stmts = p.stmts.start - stmts_kept..p.stmts.end - stmts_kept;
            p.comments = p.comments.start - comments_kept..p.comments.end - comments_kept;
        }
        let mut errors: Vec<Diagnostic> = Vec::new();
        for p in &self.pieces {
            errors.extend(placed(&p.errors, p.start));
        }
        self.reused = kept;
        let mut file = File {
            stmts: old_stmts,
            comments: old_comments,
        };
        // The rest of the last version's pieces are found by the text
        // they parsed (the piece and the `let` after it, if any).
        let mut found_at: FastMap<&str, usize> = FastMap::default();
        for (i, p) in old_pieces.iter().enumerate() {
            if let Some(text) = old_src.get(p.start..p.end) {
                found_at.insert(text, i);
            }
        }
        for &(start, end, stop) in &windows[kept..] {
            let window = &src[start..end];
            let stmts_from = file.stmts.len();
            let comments_from = file.comments.len();
            let found = found_at
                .remove(window)
                .map(|i| &mut old_pieces[i])
                .filter(|old| {
                    old.stmts.end <= tail_stmts.len() && old.comments.end <= tail_comments.len()
                });
            let piece_errors = match found {
                Some(old) => {
                    self.reused += 1;
                    for s in &mut tail_stmts[old.stmts.clone()] {
                        let mut s = std::mem::replace(s, hole());
                        if start != old.start {
                            shift_stmt(&mut s, old.start, start);
                        }
                        file.stmts.push(s);
                    }
                    file.comments.extend(
                        tail_comments[old.comments.clone()]
                            .iter()
                            .map(|c| at(*c, old.start, start)),
                    );
                    std::mem::take(&mut old.errors)
                }
                None => {
                    let (parsed, piece_errors) = parser::parse_until(window, stop);
                    for mut s in parsed.stmts {
                        shift_stmt(&mut s, 0, start);
                        file.stmts.push(s);
                    }
                    file.comments
                        .extend(parsed.comments.iter().map(|c| at(*c, 0, start)));
                    piece_errors
                }
            };
            errors.extend(placed(&piece_errors, start));
            self.pieces.push(Piece {
                start,
                end,
                stmts: stmts_from..file.stmts.len(),
                comments: comments_from..file.comments.len(),
                errors: piece_errors,
            });
        }
        (file, errors)
    }
}

/// `span` moved from a piece starting at `from` to one starting at `to`.
fn at(span: Span, from: usize, to: usize) -> Span {
    Span::new(span.start - from + to, span.end - from + to)
}

/// A piece's syntax errors (relative to the piece), placed in the file at
/// the piece's `start`.
fn placed(errors: &[Diagnostic], start: usize) -> impl Iterator<Item = Diagnostic> + '_ {
    errors.iter().map(move |d| {
        let mut d = d.clone();
        shift_diagnostic(&mut d, 0, start);
        d
    })
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
