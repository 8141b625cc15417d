//! Resuming a check: the statements of a new version of a file that are
//! the same as the last version's, at the same place, from its first
//! statement up, are not checked again; the checker's state is put back
//! as it stood after them and checking goes on from the first that
//! differs (as a proof assistant's server keeps a snapshot per command).
//!
//! The checker only appends while it goes down the file: diagnostics,
//! bindings, nodes, keys, jobs, types, calls. So the state after statement
//! `k` is the state after the whole file cut back to the lengths it had
//! there (a [`Mark`] per statement), with four exceptions undone by hand:
//! a later statement's uses of an earlier binding (popped: uses are in
//! source order), a `let` naming an earlier device or job (its old label
//! put back), a use of an earlier key that settles its type (a string key
//! used as a CIDR: the key as it was put back), and the scope's names
//! (removed with their bindings).
//!
//! What a statement finds may also depend on what comes *after* it or
//! outside the file, and then resuming stops before that statement:
//! - a name not in scope is looked up among the file's later `let`s
//!   (`first_miss`);
//! - a `job` reads the application crate, which may have changed
//!   (`first_crate`).
//!
//! The findings about the whole file (unused bindings, a missing
//! `register`, the pruned graph) are made again every time. The bindings,
//! types and calls move into each [`Checked`] and back out of it into the
//! next check (the last result is handed back; a result still shared is
//! not, and that check starts from the top).
use super::{Binding, Bound, Checked, Checker, JobNode, Memo, Node};
use crate::diagnostic::Diagnostic;
use crate::jobs::RustCrate;
use crate::syntax::{File, Span};
use crate::types::Target;
use std::collections::HashMap;

/// What one check of a file leaves for checking its next version.
#[derive(Default)]
pub(crate) struct Resume {
    pub(super) state: State,
    /// The target checked for, once a check was made.
    checked: Option<Target>,
    /// How many statements the last check took as they were.
    skipped: usize,
    /// What checking plain `let`s did, to replay.
    memo: Memo,
}

/// The checker's state between checks.
#[derive(Default)]
pub(super) struct State {
    pub(super) diags: Vec<Diagnostic>,
    pub(super) scope: HashMap<String, Bound>,
    pub(super) bindings: Vec<Binding>,
    pub(super) early_uses: HashMap<String, Vec<Span>>,
    pub(super) nodes: Vec<Node>,
    pub(super) keys: Vec<super::keys::Declared>,
    pub(super) jobs: Vec<JobNode>,
    pub(super) register: Option<(String, Vec<usize>, Span)>,
    pub(super) types: Vec<(Span, super::Type)>,
    pub(super) calls: Vec<super::DeviceCall>,
    pub(super) track: Track,
}

/// What resuming needs to know of the statements checked.
pub(super) struct Track {
    /// Per statement, where its check started.
    pub(super) marks: Vec<Mark>,
    /// Labels that a statement changed on a node or job built before it:
    /// (the statement, a job rather than a node, which, the old label).
    relabels: Vec<(usize, bool, usize, String)>,
    /// Keys that a statement changed, declared before it: (the statement,
    /// which, the key as it was).
    keys_changed: Vec<(usize, usize, super::keys::Declared)>,
    /// The first statement that looked for a name not in scope.
    pub(super) first_miss: usize,
    /// The first statement that read the application crate.
    pub(super) first_crate: usize,
    /// Whether the nodes moved into the result's graph.
    pub(super) nodes_lent: bool,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            marks: Vec::new(),
            relabels: Vec::new(),
            keys_changed: Vec::new(),
            first_miss: usize::MAX,
            first_crate: usize::MAX,
            nodes_lent: false,
        }
    }
}

/// The lengths of what the checker appends to, before one statement.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    span: Span,
    diags: usize,
    bindings: usize,
    nodes: usize,
    keys: usize,
    jobs: usize,
    types: usize,
    calls: usize,
    register: bool,
}

impl Checker<'_> {
    pub(super) fn mark(&self, span: Span) -> Mark {
        Mark {
            span,
            diags: self.diags.len(),
            bindings: self.bindings.len(),
            nodes: self.nodes.len(),
            keys: self.keys.len(),
            jobs: self.jobs.len(),
            types: self.types.len(),
            calls: self.calls.len(),
            register: self.register.is_some(),
        }
    }

    /// Records that the statement being checked relabeled node (or job)
    /// `which`, if an earlier statement built it.
    pub(super) fn relabeled(&mut self, job: bool, which: usize, old: String) {
        let Some(m) = self.track.marks.last() else {
            return;
        };
        if which < if job { m.jobs } else { m.nodes } {
            self.track.relabels.push((self.at, job, which, old));
        }
    }

    /// Records key `k` as it is before the statement being checked changes
    /// it, if an earlier statement declared it.
    pub(super) fn key_changing(&mut self, k: usize) {
        let Some(m) = self.track.marks.last() else {
            return;
        };
        if k < m.keys {
            let was = self.keys[k].clone();
            self.track.keys_changed.push((self.at, k, was));
        }
    }
}

impl Resume {
    pub(super) fn from_checker(c: Checker<'_>) -> Resume {
        Resume {
            state: State {
                diags: c.diags,
                scope: c.scope,
                bindings: c.bindings,
                early_uses: c.early_uses,
                nodes: c.nodes,
                keys: c.keys,
                jobs: c.jobs,
                register: c.register,
                types: c.types,
                calls: c.calls,
                track: c.track,
            },
            checked: None,
            skipped: 0,
            memo: Memo::default(),
        }
    }

    /// How many statements, from the top, the last check took as they
    /// were instead of checking them again.
    pub(crate) fn skipped(&self) -> usize {
        self.skipped
    }

    /// How many statements the last check replayed.
    pub(crate) fn replayed(&self) -> usize {
        self.memo.replayed()
    }

    /// Cuts the state back to where it stood before statement `k`.
    fn rewind(&mut self, k: usize) {
        let st = &mut self.state;
        let Some(&m) = st.track.marks.get(k) else {
            return;
        };
        for b in st.bindings.drain(m.bindings..) {
            st.scope.remove(&b.name.name);
        }
        for b in &mut st.bindings {
            while b.uses.last().is_some_and(|u| u.start >= m.span.start) {
                b.uses.pop();
            }
        }
        while st.track.relabels.last().is_some_and(|r| r.0 >= k) {
            let Some((_, job, which, old)) = st.track.relabels.pop() else {
                break;
            };
            let label = match job {
                true => st.jobs.get_mut(which).map(|j| &mut j.label),
                false => st.nodes.get_mut(which).map(|n| &mut n.label),
            };
            if let Some(label) = label {
                *label = old;
            }
        }
        while st.track.keys_changed.last().is_some_and(|c| c.0 >= k) {
            let Some((_, which, was)) = st.track.keys_changed.pop() else {
                break;
            };
            if let Some(key) = st.keys.get_mut(which) {
                *key = was;
            }
        }
        st.diags.truncate(m.diags);
        st.nodes.truncate(m.nodes);
        st.keys.truncate(m.keys);
        st.jobs.truncate(m.jobs);
        st.types.truncate(m.types);
        st.calls.truncate(m.calls);
        if !m.register {
            st.register = None;
        }
        // Statements before `k` found every name in scope (else `k` would
        // be no later than the first that did not).
        st.early_uses.clear();
        st.track.marks.truncate(k);
        st.track.first_miss = usize::MAX;
        st.track.first_crate = usize::MAX;
    }

    /// The first statement of `file` (parsed from `src`, whose first
    /// `same` bytes are the last text's) not known to check as it did last
    /// time; takes back what `last` borrowed.
    fn resume_point(
        &mut self,
        file: &File,
        (src, same): (&str, usize),
        target: Target,
        last: Option<Checked>,
    ) -> usize {
        let Some(was_target) = self.checked.take() else {
            return 0;
        };
        let st = &mut self.state;
        let Some(last) = last.filter(|_| was_target == target) else {
            return 0;
        };
        st.bindings = last.bindings;
        st.types = last.types;
        st.calls = last.calls;
        if std::mem::take(&mut st.track.nodes_lent) {
            match last.graph {
                Some(g) => st.nodes = g.nodes,
                None => return 0,
            }
        }
        let marks = &st.track.marks;
        let k = file
            .stmts
            .iter()
            .zip(marks)
            .position(|(s, m)| {
                let span = s.span();
                span != m.span
                    || span.end > same
                    || !src
                        .get(span.start..span.end)
                        .is_some_and(|t| t.ends_with(';'))
            })
            .unwrap_or(file.stmts.len().min(marks.len()));
        k.min(st.track.first_miss).min(st.track.first_crate)
    }
}

/// The length of the longest common prefix of `a` and `b`, compared a
/// block at a time.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// [`super::check`] of `file`, parsed from `src`, resuming after the
/// statements it shares with the version `resume` saw (`last` is that
/// version's result, handed back; `None` checks from the top) and
/// replaying the plain `let`s it kept after that. `same` is how many bytes
/// `src` begins with that the text `resume` last saw began with too
/// ([`common_prefix`] of the two): the caller keeps that text. The same
/// result as a check from scratch. `complete` false (syntax errors) leaves
/// the graph out.
pub(crate) fn check_resumable(
    file: &File,
    (src, same): (&str, usize),
    (target, krate): (Target, Option<&RustCrate>),
    complete: bool,
    resume: &mut Resume,
    last: Option<Checked>,
) -> Checked {
    let k = resume.resume_point(file, (src, same), target, last);
    let mut memo = std::mem::take(&mut resume.memo);
    let mut from = std::mem::take(resume);
    if k == 0 {
        from = Resume::default();
    } else {
        from.rewind(k);
    }
    memo.start(target);
    let mut c = Checker::new(file, target, krate, from);
    for stmt in &file.stmts[k..] {
        c.next(stmt, Some((src, &mut memo)));
    }
    memo.finish(file.stmts.len());
    let (checked, mut next) = c.finish(src.len(), complete, complete);
    next.checked = Some(target);
    next.skipped = k;
    next.memo = memo;
    *resume = next;
    checked
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_compares_across_blocks() {
        let a = vec![7u8; 10_000];
        let mut b = a.clone();
        assert_eq!(common_prefix(&a, &b), 10_000);
        b[9_000] = 1;
        assert_eq!(common_prefix(&a, &b), 9_000);
        assert_eq!(common_prefix(&a[..5], &b), 5);
        b[3] = 1;
        assert_eq!(common_prefix(&a, &b), 3);
    }
}
