//! The checker: a parsed [`File`] plus a target and the application crate
//! become a resolved [`Graph`], or diagnostics saying why not.
//!
//! It evaluates the statements in order, building one node per
//! implementation application, and checks kinds, arity, named arguments,
//! values (CIDRs, integer ranges), keys, targets, jobs against their Rust
//! signatures, `register`, and unused bindings. Errors never cascade: an
//! expression that already failed has type [`Type::Error`], which fits
//! everything.
//!
//! This file holds the public types and the driver (statements, expressions,
//! the findings made once the whole file is seen); each concern has its own
//! file:
//!
//! - `resolve`: names to bindings, paths to catalog implementations.
//! - `args`: arguments against parameters, for implementations and jobs.
//! - `keys`: `key(name, default)` and the values keys carry.
//! - `targets`: `match target` and implementations a target lacks.
//! - `jobs`: `job path(...)` against the application crate, and `register`.
//! - `prune`: the [`Graph`], only what the registered jobs reach.
use crate::catalog::Implementation;
use crate::diagnostic::Diagnostic;
use crate::jobs::{JobSig, RustCrate};
use crate::syntax::{Expr, ExprKind, File, Ident, Span, Stmt};
use crate::types::{Kind, Target, Type, ValueType};
use libos::Value;
use std::collections::HashMap;

mod args;
mod calls;
#[cfg(test)]
mod fixture;
mod jobs;
mod keys;
mod memo;
mod prune;
mod resolve;
mod resume;
mod targets;

pub(crate) use args::a_value;
pub use calls::DeviceCall;
pub use keys::valid_key_name;
use memo::Memo;
pub use resolve::closest;
pub(crate) use resume::{check_resumable, common_prefix, Resume};

/// A graph that passed the checker: what the runners and code generation take.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The unikernel's name, from `register`.
    pub name: String,
    /// The target it was checked for.
    pub target: Target,
    /// The device nodes in dependency order: a node's arguments come before it.
    pub nodes: Vec<Node>,
    /// The boot-time keys.
    pub keys: Vec<Key>,
    /// Every job built, in order; `registered` says which run.
    pub jobs: Vec<JobNode>,
    /// The jobs `register` runs, by index into `jobs`.
    pub registered: Vec<usize>,
    /// Device and job bindings that no registered job reaches (yet): left
    /// out of what runs, shown by the interactive views while the user is
    /// still wiring.
    pub unused: Vec<Unused>,
}

/// A device or job binding that no registered job reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Unused {
    /// The binding's name.
    pub label: String,
    /// Its type (a device kind, `Job` for a job).
    pub ty: Type,
    /// What it applies: `kv::mem`, `job app::start`.
    pub what: String,
    /// The `let` statement.
    pub span: Span,
}

/// A device instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The binding's name, or the implementation's for an inline application.
    pub label: String,
    /// What builds it.
    pub imp: &'static Implementation,
    /// One argument per catalog parameter, defaults filled in.
    pub args: Vec<GArg>,
    /// The application in the source.
    pub span: Span,
}

/// An argument in the resolved graph.
#[derive(Debug, Clone, PartialEq)]
pub enum GArg {
    /// Another node's device.
    Node(usize),
    /// A literal.
    Value(Value),
    /// A key's value at boot.
    Key(usize),
}

/// A boot-time argument: `key("count", 3)`, set with `--count 5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ValueType,
    /// The value used when none is given.
    pub default: Value,
    /// The first `key(...)` naming it.
    pub span: Span,
}

/// A job with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct JobNode {
    /// The binding's name, or the function's path.
    pub label: String,
    /// The Rust function's signature.
    pub sig: JobSig,
    /// One argument per parameter.
    pub args: Vec<GArg>,
    /// The `job ...` expression.
    pub span: Span,
}

/// A `let` binding, for the editor features.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Its name and place.
    pub name: Ident,
    /// Its type.
    pub ty: Type,
    /// The whole `let` statement.
    pub stmt: Span,
    /// The places it is used, in source order: in every arm of a `match
    /// target`, not only in the arm for the target checked.
    pub uses: Vec<Span>,
}

/// Everything known about a file after checking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checked {
    /// Parser and checker diagnostics, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The graph, when there are no errors.
    pub graph: Option<Graph>,
    /// The `let` bindings in order.
    pub bindings: Vec<Binding>,
    /// The type of each expression that has one, for hover and inlay hints.
    pub types: Vec<(Span, Type)>,
    /// The device calls that checked (statements of their own, in order):
    /// what a session runs on the live devices.
    pub calls: Vec<DeviceCall>,
}

#[derive(Debug, Clone, PartialEq)]
enum Eval {
    Node(usize),
    Job(usize),
    Value(Value),
    Key(usize),
    List(Vec<(Eval, Span)>),
    Error,
}

struct Bound {
    ty: Type,
    eval: Eval,
    index: usize,
}

struct Checker<'a> {
    target: Target,
    krate: Option<&'a RustCrate>,
    file: &'a File,
    /// The statement being checked, by index into `file.stmts`.
    at: usize,
    /// Where each `let` of the file binds its name: made the first time a
    /// name is not in scope (a file with no mistake never needs it).
    later: Option<HashMap<&'a str, Span>>,
    diags: Vec<Diagnostic>,
    scope: HashMap<String, Bound>,
    bindings: Vec<Binding>,
    early_uses: HashMap<String, Vec<Span>>,
    nodes: Vec<Node>,
    keys: Vec<keys::Declared>,
    jobs: Vec<JobNode>,
    register: Option<(String, Vec<usize>, Span)>,
    types: Vec<(Span, Type)>,
    calls: Vec<DeviceCall>,
    /// What the next check needs to resume after this one.
    track: resume::Track,
}

/// Checks `file` (parsed from a source of `src_len` bytes) for `target`
/// against the application crate. `complete` is false when statements were
/// lost to syntax errors: findings about what is *missing* are then left out,
/// since the missing piece may be in a broken statement.
pub fn check(
    file: &File,
    src_len: usize,
    target: Target,
    krate: Option<&RustCrate>,
    complete: bool,
) -> Checked {
    let mut c = Checker::new(file, target, krate, Resume::default());
    for stmt in &file.stmts {
        c.next(stmt, None);
    }
    c.finish(src_len, complete, true).0
}

impl<'a> Checker<'a> {
    /// A checker for `file` holding the state `from` left (what the
    /// statements before `from`'s resume point did; empty for a new check).
    fn new(file: &'a File, target: Target, krate: Option<&'a RustCrate>, from: Resume) -> Self {
        let n = file.stmts.len();
        let r = from.state;
        let mut c = Checker {
            target,
            krate,
            file,
            at: 0,
            later: None,
            diags: r.diags,
            scope: r.scope,
            bindings: r.bindings,
            early_uses: r.early_uses,
            nodes: r.nodes,
            keys: r.keys,
            jobs: r.jobs,
            register: r.register,
            types: r.types,
            calls: r.calls,
            track: r.track,
        };
        // Sized for the file up front: a long file's state is not copied
        // over and over while it grows.
        c.scope.reserve(n.saturating_sub(c.scope.len()));
        c.bindings.reserve(n.saturating_sub(c.bindings.len()));
        c.nodes.reserve(n.saturating_sub(c.nodes.len()));
        c.types.reserve((3 * n).saturating_sub(c.types.len()));
        c.at = c.track.marks.len();
        c
    }

    /// Checks the next statement, from `memo` when it has it.
    fn next(&mut self, stmt: &Stmt, memo: Option<(&str, &mut Memo)>) {
        self.track.marks.push(self.mark(stmt.span()));
        match memo {
            Some((src, memo)) => self.stmt_memo(stmt, src, memo),
            None => self.stmt_fresh(stmt),
        }
        self.at += 1;
    }

    /// Where `name`'s `let` is, for a name not in scope (which makes the
    /// statements from this one on depend on the rest of the file).
    fn later(&mut self, name: &str) -> Option<Span> {
        self.track.first_miss = self.track.first_miss.min(self.at);
        let file = self.file;
        self.later
            .get_or_insert_with(|| {
                file.stmts
                    .iter()
                    .filter_map(|s| match s {
                        Stmt::Let { name, .. } => Some((name.name.as_str(), name.span)),
                        _ => None,
                    })
                    .collect()
            })
            .get(name)
            .copied()
    }
}

impl Checker<'_> {
    fn stmt_fresh(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Let { name, value, span } => {
                if let ExprKind::Call { path, args, close } = &value.kind {
                    if path.text() == "register" {
                        self.diags.push(
                            Diagnostic::error(
                                "nym::register",
                                value.span,
                                "`register(...)` is a statement; it has no value to bind",
                            )
                            .label("not a device")
                            .help("write it on its own: `register(\"name\", [jobs]);`")
                            .fix(
                                format!("remove `let {} =`", name.name),
                                Span::new(span.start, value.span.start),
                                "",
                            ),
                        );
                        // It is still the graph's `register` (the mistake is
                        // the `let`): its jobs are used, and the graph is not
                        // said to lack one.
                        self.register(value.span, args, *close);
                        return;
                    }
                }
                if let ExprKind::Method { receiver, args, .. } = &value.kind {
                    return self.call_in_place(value, receiver, args, true);
                }
                let (ty, eval) = self.expr(value);
                // Recorded for a refused duplicate too: the editor shows
                // each `let` its own type.
                self.types.push((name.span, ty));
                if let Some(prev) = self.scope.get(&name.name).map(|b| &self.bindings[b.index]) {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::duplicate",
                            name.span,
                            format!("`{}` is already bound", name.name),
                        )
                        .label("bound again here")
                        .related(prev.name.span, "first bound here")
                        .help("pick another name: each device in a graph has one"),
                    );
                    return;
                }
                if let Eval::Node(n) = eval {
                    let old = std::mem::replace(&mut self.nodes[n].label, name.name.clone());
                    self.relabeled(false, n, old);
                }
                if let Eval::Job(j) = eval {
                    let old = std::mem::replace(&mut self.jobs[j].label, name.name.clone());
                    self.relabeled(true, j, old);
                }
                self.scope.insert(
                    name.name.clone(),
                    Bound {
                        ty,
                        eval,
                        index: self.bindings.len(),
                    },
                );
                let uses = self.early_uses.remove(&name.name).unwrap_or_default();
                self.bindings.push(Binding {
                    name: name.clone(),
                    ty,
                    stmt: *span,
                    uses,
                });
            }
            Stmt::Expr { expr, .. } => match &expr.kind {
                ExprKind::Call { path, args, close } if path.text() == "register" => {
                    self.register(expr.span, args, *close)
                }
                ExprKind::Error => {}
                ExprKind::Method {
                    receiver,
                    method,
                    args,
                    close,
                } => self.device_call(expr, receiver, method, args, *close),
                _ => {
                    let (ty, _) = self.expr(expr);
                    if ty != Type::Error {
                        self.diags.push(
                            Diagnostic::warning(
                                "nym::unused-value",
                                expr.span,
                                "this value is built and never used",
                            )
                            .label(format!("{} that nothing uses", args::a_type(ty)))
                            .help("bind it with `let name = ...;` and pass it to a job"),
                        );
                    }
                }
            },
        }
    }

    fn expr(&mut self, e: &Expr) -> (Type, Eval) {
        let (ty, eval) = self.expr_inner(e);
        if ty != Type::Error && !matches!(e.kind, ExprKind::Lit(_)) {
            self.types.push((e.span, ty));
        }
        (ty, eval)
    }

    fn expr_inner(&mut self, e: &Expr) -> (Type, Eval) {
        match &e.kind {
            ExprKind::Error => (Type::Error, Eval::Error),
            ExprKind::Lit(v) => (Type::Value(v.ty()), Eval::Value(v.clone())),
            ExprKind::BadCidr(text) => {
                let why = text
                    .parse::<libos::Ipv4Cidr>()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                self.diags.push(
                    Diagnostic::error(
                        "nym::bad-value",
                        e.span,
                        format!("`{text}` is not an IPv4 CIDR"),
                    )
                    .label(why)
                    .help("write an address and a prefix length, like 10.0.0.2/24"),
                );
                (Type::Error, Eval::Error)
            }
            ExprKind::Name(id) => self.name(id),
            ExprKind::Method { receiver, args, .. } => {
                self.call_in_place(e, receiver, args, false);
                (Type::Error, Eval::Error)
            }
            ExprKind::List(items) => {
                let evals = items.iter().map(|i| (self.expr(i).1, i.span)).collect();
                (Type::List, Eval::List(evals))
            }
            ExprKind::Job { path, args, close } => self.job(e.span, path, args, *close),
            ExprKind::Match(arms) => self.match_target(e.span, arms),
            ExprKind::Call { path, args, close } => match path.text().as_str() {
                "key" => self.key(e.span, args, *close),
                "register" => {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::register",
                            e.span,
                            "`register(...)` must be a statement of its own",
                        )
                        .label("not a device"),
                    );
                    self.unchecked(args);
                    (Type::Error, Eval::Error)
                }
                _ => self.apply(e.span, path, args, *close),
            },
        }
    }

    /// Evaluates the arguments of an application that was refused as a
    /// whole (an unknown implementation or job, a `register` of the wrong
    /// shape): their own mistakes are still reported, and the bindings
    /// they name still count as used (never "unused, remove it").
    fn unchecked(&mut self, args: &[crate::syntax::Arg]) {
        for a in args {
            self.expr(&a.value);
        }
    }

    /// The findings made once the whole file is seen, and the result: the
    /// bindings, types and calls move into it (and the nodes, when the
    /// graph keeps every one as it is), the rest stays to resume from.
    /// `want_graph` false leaves the graph out (a file with syntax errors
    /// has none).
    fn finish(mut self, src_len: usize, complete: bool, want_graph: bool) -> (Checked, Resume) {
        let mut diags = self.diags.clone();
        for b in &self.bindings {
            if b.uses.is_empty() && b.ty != Type::Error && complete {
                diags.push(
                    Diagnostic::warning(
                        "nym::unused",
                        b.name.span,
                        format!("unused binding `{}`", b.name.name),
                    )
                    .label(format!("this {} is never used", b.ty))
                    .help(if b.ty == Type::Device(Kind::Job) {
                        "add it to `register(...)` to run it"
                    } else {
                        "pass it to a job, or remove it"
                    })
                    .fix(format!("remove `{}`", b.name.name), b.stmt, ""),
                );
            }
        }
        if self.register.is_none() && complete {
            let jobs: Vec<&str> = self
                .bindings
                .iter()
                .filter(|b| b.ty == Type::Device(Kind::Job))
                .map(|b| b.name.name.as_str())
                .collect();
            let krate = self.krate.map_or("app", |k| k.name());
            let name = krate.replace('_', "-");
            let d = Diagnostic::error(
                "nym::register",
                Span::new(src_len, src_len),
                "no `register(...)`: the graph runs nothing",
            )
            .label("the graph ends here");
            // With no job to list, a `register` would be an error of its
            // own: say what to write, offer no edit.
            diags.push(if jobs.is_empty() {
                d.help(format!(
                    "make a job with `let j = job {krate}::function(devices...);` and end the graph with `register(\"{name}\", [j]);`"
                ))
            } else {
                let text = format!("register(\"{name}\", [{}]);", jobs.join(", "));
                d.help(format!("end the graph with `{text}`")).fix(
                    "add `register`",
                    Span::new(src_len, src_len),
                    format!("\n{text}\n"),
                )
            });
        }
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        let graph = (want_graph && !diags.iter().any(Diagnostic::is_error))
            .then(|| self.graph())
            .flatten();
        let checked = Checked {
            diagnostics: diags,
            graph,
            bindings: std::mem::take(&mut self.bindings),
            types: std::mem::take(&mut self.types),
            calls: std::mem::take(&mut self.calls),
        };
        (checked, Resume::from_checker(self))
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{check, place};
    use crate::{analyze, Target};
    use expect_test::{expect, Expect};
    use std::fmt::Write;

    /// The bindings (type, uses) and the recorded expression types.
    fn check_types(src: &str, expect: Expect) {
        let a = analyze(src, Target::Unix, None);
        let mut out = String::new();
        for b in &a.checked.bindings {
            let uses: Vec<String> = b.uses.iter().map(|u| place(src, *u)).collect();
            let _ = writeln!(
                out,
                "let {}: {} used at [{}]",
                b.name.name,
                b.ty,
                uses.join(", ")
            );
        }
        for (span, ty) in &a.checked.types {
            let _ = writeln!(out, "{}: {ty}", place(src, *span));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn a_name_bound_twice_is_refused_and_the_first_binding_kept() {
        check(
            r#"let c = console::default();
let c = kv::mem();
let j = job hello::start(c, time::default(), 1);
register("hello", [j]);
"#,
            expect![[r#"
                error nym::duplicate at 2:5 "c": `c` is already bound
                  label: bound again here
                  related at 1:5 "c": first bound here
                  help: pick another name: each device in a graph has one
            "#]],
        );
    }

    #[test]
    fn a_value_built_and_never_bound_warns_unless_it_failed() {
        check(
            r#"kv::mem();
"text";
nothing;
register("hello", [job hello::store(console::default(), kv::mem())]);
"#,
            expect![[r#"
                warning nym::unused-value at 1:1 "kv::mem()": this value is built and never used
                  label: a `Kv` device that nothing uses
                  help: bind it with `let name = ...;` and pass it to a job
                warning nym::unused-value at 2:1 "\"text\"": this value is built and never used
                  label: a string that nothing uses
                  help: bind it with `let name = ...;` and pass it to a job
                error nym::unknown-name at 3:1 "nothing": unknown binding `nothing`
                  label: not bound by any `let` above
            "#]],
        );
    }

    #[test]
    fn register_is_a_statement_not_a_value() {
        // The bound `register` is still the graph's: its job is used, and
        // there is no "no `register`" besides.
        check(
            r#"let j = job hello::store(console::default(), kv::mem());
let r = register("hello", [j]);
let w = kv::full(register("x", []));
"#,
            expect![[r#"
                error nym::register at 2:9 "register(\"hello\", [j])": `register(...)` is a statement; it has no value to bind
                  label: not a device
                  help: write it on its own: `register("name", [jobs]);`
                  fix "remove `let r =`": 2:1 "let r = " -> ""
                warning nym::unused at 3:5 "w": unused binding `w`
                  label: this Kv is never used
                  help: pass it to a job, or remove it
                  fix "remove `w`": 3:1 "let w = kv::full(register(\"x\", []));" -> ""
                error nym::register at 3:18 "register(\"x\", [])": `register(...)` must be a statement of its own
                  label: not a device
            "#]],
        );
    }

    #[test]
    fn a_missing_register_with_no_job_to_list_says_what_to_write_and_offers_no_edit() {
        // `register("hello", []);` would be an error of its own.
        check(
            r#"let c = console::default();
c;
"#,
            expect![[r#"
                warning nym::unused-value at 2:1 "c": this value is built and never used
                  label: a `Console` device that nothing uses
                  help: bind it with `let name = ...;` and pass it to a job
                error nym::register at 3:1 "": no `register(...)`: the graph runs nothing
                  label: the graph ends here
                  help: make a job with `let j = job hello::function(devices...);` and end the graph with `register("hello", [j]);`
            "#]],
        );
    }

    #[test]
    fn unused_bindings_and_a_missing_register_are_found_once_the_file_is_seen() {
        check(
            r#"let c = console::default();
let spare = kv::mem();
let j = job hello::store(c, kv::mem());
"#,
            expect![[r#"
                warning nym::unused at 2:5 "spare": unused binding `spare`
                  label: this Kv is never used
                  help: pass it to a job, or remove it
                  fix "remove `spare`": 2:1 "let spare = kv::mem();" -> ""
                warning nym::unused at 3:5 "j": unused binding `j`
                  label: this Job is never used
                  help: add it to `register(...)` to run it
                  fix "remove `j`": 3:1 "let j = job hello::store(c, kv::mem());" -> ""
                error nym::register at 4:1 "": no `register(...)`: the graph runs nothing
                  label: the graph ends here
                  help: end the graph with `register("hello", [j]);`
                  fix "add `register`": 4:1 "" -> "\nregister(\"hello\", [j]);\n"
            "#]],
        );
    }

    #[test]
    fn findings_about_what_is_missing_wait_for_a_file_that_parses() {
        // The statement lost to the syntax error may be the one using
        // `spare`, or the `register`.
        check(
            r#"let spare = kv::mem();
let j = job hello::store(console::default() spare);
"#,
            expect![[r#"
                error nym::syntax at 2:45 "spare": expected `,` or `)`, found `spare`
                  label: expected `,` or `)`
                error nym::arity at 2:50 ")": missing argument `kv: Kv` of `hello::store`
                  label: `kv` goes here
                  help: the parameters are: console: Console, kv: Kv
            "#]],
        );
    }

    #[test]
    fn a_bad_cidr_literal_is_reported_with_the_reason() {
        check(
            r#"let s = stack::direct(netif::pair("a"), 10.0.0.300/24);
"#,
            expect![[r#"
                warning nym::unused at 1:5 "s": unused binding `s`
                  label: this Stack is never used
                  help: pass it to a job, or remove it
                  fix "remove `s`": 1:1 "let s = stack::direct(netif::pair(\"a\"), 10.0.0.300/24);" -> ""
                error nym::bad-value at 1:41 "10.0.0.300/24": `10.0.0.300/24` is not an IPv4 CIDR
                  label: the address is not a dotted-quad IPv4 address
                  help: write an address and a prefix length, like 10.0.0.2/24
                error nym::register at 2:1 "": no `register(...)`: the graph runs nothing
                  label: the graph ends here
                  help: make a job with `let j = job hello::function(devices...);` and end the graph with `register("hello", [j]);`
            "#]],
        );
    }

    #[test]
    fn bindings_record_their_uses_and_expressions_their_types() {
        // Literals have no recorded type, nor has an expression that failed
        // (`nothing`); its binding is recorded as unknown.
        check_types(
            r#"let c = console::default();
let s = kv::full(kv::mem());
let x = nothing;
c; s; c;
"#,
            expect![[r#"
                let c: Console used at [4:1 "c", 4:7 "c"]
                let s: Kv used at [4:4 "s"]
                let x: {unknown} used at []
                1:9 "console::default()": Console
                1:5 "c": Console
                2:18 "kv::mem()": Kv
                2:9 "kv::full(kv::mem())": Kv
                2:5 "s": Kv
                3:5 "x": {unknown}
                4:1 "c": Console
                4:4 "s": Kv
                4:7 "c": Console
            "#]],
        );
    }

    #[test]
    fn there_is_no_graph_while_there_are_errors() {
        check(
            r#"let j = job hello::store(console::default(), kv::mem());
register("hello", [j]);
let broken = kv::nope();
"#,
            expect![[r#"
                error nym::unknown-impl at 3:14 "kv::nope": unknown implementation `kv::nope`
                  label: `kv` has: mem, baked, full, history, dir, block
            "#]],
        );
    }
}
