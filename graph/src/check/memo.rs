//! Re-checking per statement: what checking a plain `let` did, kept by
//! the statement's text and what its names stood for, and done again
//! without resolving anything when both are unchanged.
//!
//! A *plain* `let` binds an application of catalog implementations whose
//! arguments are literals, names and further applications, every call
//! closed, the statement ended by its `;`: its text alone fixes its tree
//! (spans relative to its start). Checking one reads nothing but the
//! target, the catalog and, for each name it uses, the binding's type and
//! value, and whether its own name is bound already. When it is checked
//! with no diagnostic and no key, job or `register`, its effects are kept:
//! the types it recorded, the nodes it built (node arguments relative to
//! the first node it built), its binding's type and value. Replaying them
//! for the same text, the same names standing for the same things (nodes
//! at the same distance back), and its name still free, is what checking
//! it again would do. Anything else (a diagnostic, a key, a job, a name not
//! bound yet, a duplicate) is checked the ordinary way.
use super::{Binding, Bound, Checker, Eval, GArg, Node};
use crate::catalog::Implementation;
use crate::incremental::FastMap;
use crate::syntax::{Expr, ExprKind, Ident, Span, Stmt};
use crate::types::{Target, Type};
use libos::Value;

/// Per-statement results kept between checks of successive versions of a
/// file (for one target).
#[derive(Default)]
pub(super) struct Memo {
    target: Option<Target>,
    generation: u64,
    entries: FastMap<String, Vec<(u64, Replay)>>,
    replayed: usize,
}

impl Memo {
    /// Starts a check for `target`: what was kept for another target goes.
    pub(super) fn start(&mut self, target: Target) {
        if self.target != Some(target) {
            self.entries.clear();
            self.target = Some(target);
        }
        self.generation += 1;
        self.replayed = 0;
    }

    /// How many statements the last check replayed.
    pub(super) fn replayed(&self) -> usize {
        self.replayed
    }

    /// Ends a check of a file of `stmts` statements. A resumed check does
    /// not visit the statements it skipped, so what they kept stays until
    /// the memo holds more than twice the file; then only what this check
    /// used or kept stays.
    pub(super) fn finish(&mut self, stmts: usize) {
        if self.entries.len() <= 2 * stmts + 64 {
            return;
        }
        let generation = self.generation;
        self.entries.retain(|_, v| {
            v.retain(|(g, _)| *g == generation);
            !v.is_empty()
        });
    }
}

/// What a name or a binding stood for, node indices relative to the first
/// node the statement built.
#[derive(Debug, Clone, PartialEq)]
enum Rel {
    Node(isize),
    Value(Value),
}

/// The effects of checking a plain `let`.
struct Replay {
    /// The type and value of each name it used, in order.
    env: Vec<(Type, Rel)>,
    /// Recorded expression types, spans relative to the statement.
    types: Vec<(Span, Type)>,
    /// The nodes built.
    nodes: Vec<KeptNode>,
    /// The binding's type and value.
    ty: Type,
    value: Rel,
}

/// A node a plain `let` built: label, implementation, arguments (a node
/// relative to the first the statement built, or a value), span relative
/// to the statement.
type KeptNode = (
    String,
    &'static Implementation,
    Vec<Result<isize, Value>>,
    Span,
);

fn shift(span: Span, by: isize) -> Span {
    Span::new(
        span.start.wrapping_add_signed(by),
        span.end.wrapping_add_signed(by),
    )
}

/// The names a plain value uses, in the order checking resolves them;
/// `None` if the value is not plain.
fn plain_names<'e>(e: &'e Expr, out: &mut Vec<&'e Ident>) -> Option<()> {
    match &e.kind {
        ExprKind::Call { path, args, close } => {
            let builtin = matches!(path.segments.as_slice(), [one] if one.name == "key" || one.name == "register");
            if close.is_empty() || builtin {
                return None;
            }
            for a in args {
                match &a.value.kind {
                    ExprKind::Name(id) => out.push(id),
                    ExprKind::Lit(_) => {}
                    _ => plain_names(&a.value, out)?,
                }
            }
            Some(())
        }
        _ => None,
    }
}

impl Checker<'_> {
    fn rel(&self, eval: &Eval, base: usize) -> Option<Rel> {
        match eval {
            Eval::Node(n) => Some(Rel::Node(*n as isize - base as isize)),
            Eval::Value(v) => Some(Rel::Value(v.clone())),
            _ => None,
        }
    }

    /// Checks `stmt` from the memo when it is a plain `let` seen before in
    /// the same surroundings, else the ordinary way (keeping what a plain
    /// one did). Whether the memo applies at all is the caller's.
    pub(super) fn stmt_memo(&mut self, stmt: &Stmt, src: &str, memo: &mut Memo) {
        let Stmt::Let { name, value, span } = stmt else {
            return self.stmt_fresh(stmt);
        };
        let Some(text) = src.get(span.start..span.end).filter(|t| t.ends_with(';')) else {
            return self.stmt_fresh(stmt);
        };
        let mut names = Vec::new();
        if plain_names(value, &mut names).is_none() || self.scope.contains_key(&name.name) {
            return self.stmt_fresh(stmt);
        }
        let base = self.nodes.len();
        let env: Option<Vec<(Type, Rel)>> = names
            .iter()
            .map(|id| {
                let b = self.scope.get(&id.name)?;
                Some((b.ty, self.rel(&b.eval, base)?))
            })
            .collect();
        let Some(env) = env else {
            return self.stmt_fresh(stmt);
        };
        let generation = memo.generation;
        if let Some(found) = memo
            .entries
            .get_mut(text)
            .and_then(|v| v.iter_mut().find(|(_, r)| r.env == env))
        {
            found.0 = generation;
            memo.replayed += 1;
            return self.replay(&found.1, name, &names, *span);
        }
        let before = (
            self.diags.len(),
            self.types.len(),
            self.keys.len(),
            self.jobs.len(),
            self.register.is_some(),
            self.calls.len(),
            self.bindings.len(),
        );
        self.stmt_fresh(stmt);
        let unchanged = self.diags.len() == before.0
            && self.keys.len() == before.2
            && self.jobs.len() == before.3
            && self.register.is_some() == before.4
            && self.calls.len() == before.5
            && self.bindings.len() == before.6 + 1;
        if !unchanged {
            return;
        }
        if let Some(replay) = self.kept(name, base, before.1, *span, env) {
            memo.entries
                .entry(text.to_owned())
                .or_default()
                .push((generation, replay));
        }
    }

    /// What checking the `let` of `name` just did, to replay.
    fn kept(
        &self,
        name: &Ident,
        base: usize,
        types_from: usize,
        span: Span,
        env: Vec<(Type, Rel)>,
    ) -> Option<Replay> {
        let back = -(span.start as isize);
        let bound = self.scope.get(&name.name)?;
        let nodes = self.nodes[base..]
            .iter()
            .map(|n| {
                let args = n
                    .args
                    .iter()
                    .map(|a| match a {
                        GArg::Node(i) => Some(Ok(*i as isize - base as isize)),
                        GArg::Value(v) => Some(Err(v.clone())),
                        GArg::Key(_) => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((n.label.clone(), n.imp, args, shift(n.span, back)))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Replay {
            env,
            types: self.types[types_from..]
                .iter()
                .map(|(s, t)| (shift(*s, back), *t))
                .collect(),
            nodes,
            ty: bound.ty,
            value: self.rel(&bound.eval, base)?,
        })
    }

    fn replay(&mut self, r: &Replay, name: &Ident, names: &[&Ident], span: Span) {
        let at = span.start as isize;
        let base = self.nodes.len();
        let abs = |rel: isize| (base as isize + rel) as usize;
        for id in names {
            if let Some(b) = self.scope.get(&id.name) {
                self.bindings[b.index].uses.push(id.span);
            }
        }
        self.types
            .extend(r.types.iter().map(|(s, t)| (shift(*s, at), *t)));
        for (label, imp, args, node_span) in &r.nodes {
            let args = args
                .iter()
                .map(|a| match a {
                    Ok(n) => GArg::Node(abs(*n)),
                    Err(v) => GArg::Value(v.clone()),
                })
                .collect();
            self.nodes.push(Node {
                label: label.clone(),
                imp,
                args,
                span: shift(*node_span, at),
            });
        }
        let eval = match &r.value {
            Rel::Node(n) => Eval::Node(abs(*n)),
            Rel::Value(v) => Eval::Value(v.clone()),
        };
        self.scope.insert(
            name.name.clone(),
            Bound {
                ty: r.ty,
                eval,
                index: self.bindings.len(),
            },
        );
        let uses = self.early_uses.remove(&name.name).unwrap_or_default();
        self.bindings.push(Binding {
            name: name.clone(),
            ty: r.ty,
            stmt: span,
            uses,
        });
    }
}
