//! The checker: a parsed [`File`] plus a target and the application crate
//! become a resolved [`Graph`], or diagnostics saying why not.
//!
//! It evaluates the statements in order, building one node per
//! implementation application, and checks kinds, arity, named arguments,
//! values (CIDRs, integer ranges), keys, targets, jobs against their Rust
//! signatures, `register`, and unused bindings. Errors never cascade: an
//! expression that already failed has type [`Type::Error`], which fits
//! everything.
use crate::catalog::{self, Implementation, ParamType};
use crate::diagnostic::Diagnostic;
use crate::jobs::{JobError, JobParam, JobSig, RustCrate};
use crate::syntax::{Arg, Expr, ExprKind, File, Ident, MatchArm, Path, Span, Stmt};
use crate::types::{Kind, Target, Type, ValueType};
use libos::Value;
use std::collections::HashMap;

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
    /// The places it is used.
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
}

/// A parameter as the argument matcher sees it, for implementations and
/// jobs alike: name, type, default, allowed integer range.
type ParamSpec = (String, ParamType, Option<Value>, Option<(i64, i64)>);

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
    diags: Vec<Diagnostic>,
    scope: HashMap<String, Bound>,
    bindings: Vec<Binding>,
    later: HashMap<String, Span>,
    early_uses: HashMap<String, Vec<Span>>,
    nodes: Vec<Node>,
    keys: Vec<Key>,
    jobs: Vec<JobNode>,
    register: Option<(String, Vec<usize>, Span)>,
    types: Vec<(Span, Type)>,
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
    let later = file
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Let { name, .. } => Some((name.name.clone(), name.span)),
            _ => None,
        })
        .collect();
    let mut c = Checker {
        target,
        krate,
        diags: Vec::new(),
        scope: HashMap::new(),
        bindings: Vec::new(),
        later,
        early_uses: HashMap::new(),
        nodes: Vec::new(),
        keys: Vec::new(),
        jobs: Vec::new(),
        register: None,
        types: Vec::new(),
    };
    for stmt in &file.stmts {
        c.stmt(stmt);
    }
    c.finish(src_len, complete)
}

impl Checker<'_> {
    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Let { name, value, span } => {
                if let ExprKind::Call { path, .. } = &value.kind {
                    if path.text() == "register" {
                        self.diags.push(
                            Diagnostic::error(
                                "nym::register",
                                value.span,
                                "`register(...)` is a statement; it has no value to bind",
                            )
                            .label("not a device")
                            .help(format!(
                                "write it on its own: `{}`",
                                "register(\"name\", [jobs]);"
                            )),
                        );
                        return;
                    }
                }
                let (ty, eval) = self.expr(value);
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
                    self.nodes[n].label = name.name.clone();
                }
                if let Eval::Job(j) = eval {
                    self.jobs[j].label = name.name.clone();
                }
                self.types.push((name.span, ty));
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
                _ => {
                    let (ty, _) = self.expr(expr);
                    if ty != Type::Error {
                        self.diags.push(
                            Diagnostic::warning(
                                "nym::unused-value",
                                expr.span,
                                "this value is built and never used",
                            )
                            .label(format!("a {ty} that nothing uses"))
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
                    (Type::Error, Eval::Error)
                }
                _ => self.apply(e.span, path, args, *close),
            },
        }
    }

    /// Evaluates the arm for the target being checked; the other arms are
    /// checked when the graph is checked for their targets.
    fn match_target(&mut self, span: Span, arms: &[MatchArm]) -> (Type, Eval) {
        let mut chosen = None;
        for arm in arms {
            for t in &arm.targets {
                if Target::from_name(&t.name).is_none() {
                    let mut d = Diagnostic::error(
                        "nym::unknown-target",
                        t.span,
                        format!("unknown target `{}`", t.name),
                    )
                    .label("not a target")
                    .help(format!(
                        "the targets are: {}",
                        Target::ALL
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    if let Some(best) = closest(&t.name, Target::ALL.iter().map(|t| t.name())) {
                        d = d.fix(format!("use `{best}`"), t.span, best);
                    }
                    self.diags.push(d);
                }
            }
            let matches =
                arm.targets.is_empty() || arm.targets.iter().any(|t| t.name == self.target.name());
            if matches && chosen.is_none() {
                chosen = Some(arm);
            }
        }
        match chosen {
            Some(arm) => self.expr(&arm.value),
            None => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::match",
                        span,
                        format!("no arm of this `match target` is for {}", self.target),
                    )
                    .label(format!("nothing for {}", self.target))
                    .help(format!("add `{} => ...` or `_ => ...`", self.target)),
                );
                (Type::Error, Eval::Error)
            }
        }
    }

    fn name(&mut self, id: &Ident) -> (Type, Eval) {
        if let Some(b) = self.scope.get(&id.name) {
            let (ty, eval, index) = (b.ty, b.eval.clone(), b.index);
            self.bindings[index].uses.push(id.span);
            return (ty, eval);
        }
        let mut d = Diagnostic::error(
            "nym::unknown-name",
            id.span,
            format!("unknown binding `{}`", id.name),
        );
        if let Some(at) = self.later.get(&id.name) {
            // Counted as a use, so the later `let` is not also called unused.
            self.early_uses
                .entry(id.name.clone())
                .or_default()
                .push(id.span);
            d = d
                .label("used before its `let`")
                .related(*at, "bound here, later")
                .help("move the `let` above its first use");
        } else {
            d = d.label("not bound by any `let` above");
            let names: Vec<&str> = self.scope.keys().map(String::as_str).collect();
            if let Some(best) = closest(&id.name, names.iter().copied()) {
                d = d.help(format!("did you mean `{best}`?")).fix(
                    format!("use `{best}`"),
                    id.span,
                    best,
                );
            } else if catalog::CATALOG
                .iter()
                .any(|i| i.name.starts_with(&format!("{}::", id.name)))
            {
                d = d.help(format!(
                    "`{}` is a module of implementations: apply one, like `{}`",
                    id.name,
                    example_in(&id.name)
                ));
            }
        }
        self.diags.push(d);
        (Type::Error, Eval::Error)
    }

    fn apply(&mut self, span: Span, path: &Path, args: &[Arg], close: Span) -> (Type, Eval) {
        let name = path.text();
        let Some(imp) = catalog::lookup(&name) else {
            self.unknown_impl(path);
            // Still check the arguments, for their own mistakes.
            for a in args {
                self.expr(&a.value);
            }
            return (Type::Error, Eval::Error);
        };
        let params: Vec<ParamSpec> = imp
            .params
            .iter()
            .map(|p| {
                (
                    p.name.to_owned(),
                    p.ty,
                    p.default.map(|d| d.value()),
                    p.range,
                )
            })
            .collect();
        let resolved = self.arguments(&name, &params, args, close);
        if !imp.supports(self.target) {
            let available: Vec<&str> = imp.targets.iter().map(|t| t.name()).collect();
            let mut d = Diagnostic::error(
                "nym::target",
                path.span,
                format!("`{name}` is not available on target {}", self.target),
            )
            .label(format!("available on: {}", available.join(", ")));
            if let Some(alt) = imp.instead.and_then(catalog::lookup) {
                let needs_args = alt.params.iter().any(|p| p.default.is_none());
                d = d.help(format!(
                    "on {} use `{}` instead: {}",
                    self.target,
                    alt.name,
                    alt.summary()
                ));
                d = if needs_args {
                    d.fix(format!("replace with `{}`", alt.name), path.span, alt.name)
                } else {
                    d.fix(
                        format!("replace with `{}()`", alt.name),
                        span,
                        format!("{}()", alt.name),
                    )
                };
            }
            self.diags.push(d);
            return (Type::Error, Eval::Error);
        }
        let Some(args) = resolved else {
            return (Type::Device(imp.provides), Eval::Error);
        };
        self.nodes.push(Node {
            label: name,
            imp,
            args,
            span,
        });
        (Type::Device(imp.provides), Eval::Node(self.nodes.len() - 1))
    }

    fn unknown_impl(&mut self, path: &Path) {
        let name = path.text();
        let module = path
            .segments
            .first()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let in_module: Vec<&str> = catalog::CATALOG
            .iter()
            .filter_map(|i| i.name.strip_prefix(&format!("{module}::")))
            .collect();
        let mut d = Diagnostic::error(
            "nym::unknown-impl",
            path.span,
            format!("unknown implementation `{name}`"),
        );
        if path.segments.len() == 1 {
            d = d.label("not an implementation");
            if let Some(k) = Kind::from_trait_name(&name) {
                d = d.help(format!(
                    "`{name}` is a device kind; pick an implementation of it: {}",
                    catalog::providing(k)
                        .map(|i| i.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        } else if in_module.is_empty() {
            d = d.label(format!("no module `{module}`"));
        } else {
            d = d.label(format!("`{module}` has: {}", in_module.join(", ")));
        }
        if let Some(best) = closest(&name, catalog::CATALOG.iter().map(|i| i.name)) {
            d = d.help(format!("did you mean `{best}`?")).fix(
                format!("use `{best}`"),
                path.span,
                best,
            );
        }
        self.diags.push(d);
    }

    /// Matches `args` to `params` (positional, then named), checks each, and
    /// fills defaults. `None` if anything failed (already reported).
    fn arguments(
        &mut self,
        callee: &str,
        params: &[ParamSpec],
        args: &[Arg],
        close: Span,
    ) -> Option<Vec<GArg>> {
        let mut slots: Vec<Option<GArg>> = vec![None; params.len()];
        let mut ok = true;
        let mut seen_named = false;
        let mut position = 0;
        for arg in args {
            let index = match &arg.name {
                None if seen_named => {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::arity",
                            arg.value.span,
                            "positional argument after a named one",
                        )
                        .label("give this one a name too, or move it before the named ones"),
                    );
                    ok = false;
                    self.expr(&arg.value);
                    continue;
                }
                None => {
                    position += 1;
                    if position > params.len() {
                        let takes = plural(params.len(), "argument");
                        let given = args.iter().filter(|a| a.name.is_none()).count();
                        self.diags.push(
                            Diagnostic::error(
                                "nym::arity",
                                arg.value.span,
                                format!("`{callee}` takes {takes} but {given} were given"),
                            )
                            .label("unexpected argument")
                            .help(format!("the parameters are: {}", describe_params(params))),
                        );
                        ok = false;
                        self.expr(&arg.value);
                        continue;
                    }
                    position - 1
                }
                Some(n) => {
                    seen_named = true;
                    match params.iter().position(|p| p.0 == n.name) {
                        Some(i) if slots[i].is_some() => {
                            self.diags.push(
                                Diagnostic::error(
                                    "nym::arity",
                                    n.span,
                                    format!("`{}` is given twice", n.name),
                                )
                                .label("given again here"),
                            );
                            ok = false;
                            continue;
                        }
                        Some(i) => i,
                        None => {
                            let mut d = Diagnostic::error(
                                "nym::arity",
                                n.span,
                                format!("`{callee}` has no parameter `{}`", n.name),
                            )
                            .label("unknown parameter");
                            if let Some(best) =
                                closest(&n.name, params.iter().map(|p| p.0.as_str()))
                            {
                                d = d.help(format!("did you mean `{best}`?")).fix(
                                    format!("use `{best}`"),
                                    n.span,
                                    best,
                                );
                            } else {
                                d = d.help(format!(
                                    "the parameters are: {}",
                                    describe_params(params)
                                ));
                            }
                            self.diags.push(d);
                            ok = false;
                            self.expr(&arg.value);
                            continue;
                        }
                    }
                }
            };
            let (_, ty, _, range) = &params[index];
            match self.argument(callee, &params[index].0, *ty, *range, &arg.value) {
                Some(g) => slots[index] = Some(g),
                None => ok = false,
            }
        }
        let mut out = Vec::with_capacity(params.len());
        for (slot, (name, ty, default, _)) in slots.into_iter().zip(params) {
            match slot.or_else(|| default.clone().map(GArg::Value)) {
                Some(g) => out.push(g),
                // An unclosed call (empty `close`): its missing `)` is the
                // error; the arguments may be still to come.
                None if close.is_empty() => ok = false,
                None if ok => {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::arity",
                            close,
                            format!("missing argument `{name}: {ty}` of `{callee}`"),
                        )
                        .label(format!("`{name}` goes here"))
                        .help(format!("the parameters are: {}", describe_params(params))),
                    );
                    ok = false;
                }
                None => {}
            }
        }
        ok.then_some(out)
    }

    /// Checks one argument against its parameter, coercing strings to CIDRs.
    fn argument(
        &mut self,
        callee: &str,
        pname: &str,
        expected: ParamType,
        range: Option<(i64, i64)>,
        e: &Expr,
    ) -> Option<GArg> {
        let (ty, eval) = self.expr(e);
        if ty == Type::Error {
            return None;
        }
        let mismatch = |c: &mut Self, found: Type| {
            let mut d = Diagnostic::error(
                "nym::kind",
                e.span,
                format!(
                    "`{callee}` expects {} for `{pname}`, found {}",
                    a(expected),
                    a_type(found)
                ),
            )
            .label(format!("this is {}", a_type(found)));
            if let ParamType::Device(k) = expected {
                let options: Vec<&str> = catalog::providing(k)
                    .filter(|i| i.supports(c.target))
                    .map(|i| i.name)
                    .collect();
                if !options.is_empty() {
                    d = d.help(format!(
                        "implementations providing {k} on {}: {}",
                        c.target,
                        options.join(", ")
                    ));
                }
            }
            c.diags.push(d);
            None
        };
        match (expected, ty, eval) {
            (ParamType::Device(k), Type::Device(found), Eval::Node(n)) if found.fits(k) => {
                Some(GArg::Node(n))
            }
            (ParamType::Device(_), Type::Device(_), Eval::Error) => None,
            (ParamType::Value(want), Type::Value(have), eval) => {
                let value = match eval {
                    Eval::Value(v) => GArg::Value(v),
                    Eval::Key(k) => GArg::Key(k),
                    _ => return None,
                };
                let value = if want == have {
                    value
                } else if want == ValueType::Cidr && have == ValueType::Str {
                    self.cidr_from_string(value, e.span)?
                } else {
                    return mismatch(self, ty);
                };
                self.check_range(&value, range, e.span, pname)?;
                Some(value)
            }
            _ => mismatch(self, ty),
        }
    }

    fn cidr_from_string(&mut self, value: GArg, span: Span) -> Option<GArg> {
        let text = match &value {
            GArg::Value(Value::Str(s)) => s.clone(),
            GArg::Key(k) => match &self.keys[*k].default {
                Value::Str(s) => s.clone(),
                _ => return Some(value),
            },
            _ => return Some(value),
        };
        match text.parse::<libos::Ipv4Cidr>() {
            Ok(c) => Some(match value {
                GArg::Key(k) => {
                    self.keys[k].ty = ValueType::Cidr;
                    self.keys[k].default = Value::Cidr(c);
                    GArg::Key(k)
                }
                _ => GArg::Value(Value::Cidr(c)),
            }),
            Err(why) => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::bad-value",
                        span,
                        format!("{text:?} is not an IPv4 CIDR"),
                    )
                    .label(why.to_string())
                    .help("write an address and a prefix length, like \"10.0.0.2/24\""),
                );
                None
            }
        }
    }

    fn check_range(
        &mut self,
        value: &GArg,
        range: Option<(i64, i64)>,
        span: Span,
        pname: &str,
    ) -> Option<()> {
        let (Some((lo, hi)), Some(v)) = (
            range,
            match value {
                GArg::Value(Value::Int(v)) => Some(*v),
                GArg::Key(k) => match self.keys[*k].default {
                    Value::Int(v) => Some(v),
                    _ => None,
                },
                _ => None,
            },
        ) else {
            return Some(());
        };
        if (lo..=hi).contains(&v) {
            return Some(());
        }
        self.diags.push(
            Diagnostic::error(
                "nym::bad-value",
                span,
                format!("{v} is out of range for `{pname}`"),
            )
            .label(format!("must be between {lo} and {hi}")),
        );
        None
    }

    fn key(&mut self, span: Span, args: &[Arg], close: Span) -> (Type, Eval) {
        let usage = "write `key(\"name\", default)`, like `key(\"count\", 3)`";
        if close.is_empty() && args.len() < 2 {
            // Unclosed (its `)` is the error): the rest may be still to come.
            return (Type::Error, Eval::Error);
        }
        if args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
            let at = if args.len() > 2 {
                args[2].value.span
            } else {
                close
            };
            self.diags.push(
                Diagnostic::error(
                    "nym::key",
                    at,
                    format!("`key` takes a name and a default, {} given", args.len()),
                )
                .label("here")
                .help(usage),
            );
            return (Type::Error, Eval::Error);
        }
        let name = match &args[0].value.kind {
            ExprKind::Lit(Value::Str(s)) if valid_key_name(s) => s.clone(),
            ExprKind::Lit(Value::Str(s)) => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::key",
                        args[0].value.span,
                        format!("{s:?} is not a key name"),
                    )
                    .label(
                        "a key name is lowercase letters, digits and `-`, starting with a letter",
                    )
                    .help("it becomes a command-line flag: `nym run -- --NAME VALUE`"),
                );
                return (Type::Error, Eval::Error);
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::key",
                        args[0].value.span,
                        "a key's name must be a string literal",
                    )
                    .label("not a string")
                    .help(usage),
                );
                return (Type::Error, Eval::Error);
            }
        };
        let default = match &args[1].value.kind {
            ExprKind::Lit(v) => v.clone(),
            ExprKind::Error => return (Type::Error, Eval::Error),
            _ => {
                let (ty, _) = self.expr(&args[1].value);
                if ty != Type::Error {
                    self.diags.push(
                        Diagnostic::error("nym::key", args[1].value.span, "a key's default must be a literal value")
                            .label(format!("this is {}", a_type(ty)))
                            .help("keys carry values (strings, integers, booleans, durations, CIDRs), not devices"),
                    );
                }
                return (Type::Error, Eval::Error);
            }
        };
        if let Some(i) = self.keys.iter().position(|k| k.name == name) {
            if self.keys[i].default != default {
                self.diags.push(
                    Diagnostic::error("nym::key", args[1].value.span, format!("key `{name}` is declared twice with different defaults"))
                        .label(format!("default {default} here"))
                        .related(self.keys[i].span, format!("default {} here", self.keys[i].default))
                        .help("a key is one boot argument: give every use the same default, or bind it once with `let`"),
                );
                return (Type::Error, Eval::Error);
            }
            return (Type::Value(self.keys[i].ty), Eval::Key(i));
        }
        let ty = default.ty();
        self.keys.push(Key {
            name,
            ty,
            default,
            span,
        });
        (Type::Value(ty), Eval::Key(self.keys.len() - 1))
    }

    fn job(&mut self, span: Span, path: &Path, args: &[Arg], close: Span) -> (Type, Eval) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.name.clone()).collect();
        let Some(krate) = self.krate else {
            self.diags.push(
                Diagnostic::error(
                    "nym::job",
                    path.span,
                    "jobs need the application crate, and there is none here",
                )
                .label("no Cargo.toml next to the graph")
                .help("run nym in a project made with `nym new`"),
            );
            return (Type::Error, Eval::Error);
        };
        let sig = match krate.job(&segments) {
            Ok(sig) => sig,
            Err(err) => {
                let mut d =
                    Diagnostic::error("nym::job", path.span, err.to_string()).label("not a job");
                match &err {
                    JobError::NotFound {
                        name, candidates, ..
                    } => {
                        if let Some(best) = closest(name, candidates.iter().map(String::as_str)) {
                            let fixed =
                                format!("{}::{best}", segments[..segments.len() - 1].join("::"));
                            d = d.help(format!("did you mean `{fixed}`?")).fix(
                                format!("use `{fixed}`"),
                                path.span,
                                fixed,
                            );
                        } else if !candidates.is_empty() {
                            d = d.help(format!(
                                "public async functions there: {}",
                                candidates.join(", ")
                            ));
                        } else {
                            d = d.help("write the job in src/lib.rs as `pub async fn NAME(console: impl Console, ...)`");
                        }
                    }
                    JobError::UnknownCrate { expected, .. } => {
                        let mut fixed = segments.clone();
                        fixed[0] = expected.clone();
                        let fixed = fixed.join("::");
                        d = d.help(format!("write `{fixed}`")).fix(
                            format!("use `{fixed}`"),
                            path.span,
                            fixed,
                        );
                    }
                    JobError::NotAsync(_) | JobError::NotPublic(_) => {
                        d = d.help("declare it as `pub async fn` in the application crate");
                    }
                    _ => {}
                }
                self.diags.push(d);
                for a in args {
                    self.expr(&a.value);
                }
                return (Type::Error, Eval::Error);
            }
        };
        let params: Vec<_> = sig
            .params
            .iter()
            .map(|p: &JobParam| (p.name.clone(), p.ty, None, p.int_ty.map(int_range)))
            .collect();
        let Some(args) = self.arguments(&sig.path, &params, args, close) else {
            return (Type::Device(Kind::Job), Eval::Error);
        };
        self.jobs.push(JobNode {
            label: sig.path.clone(),
            sig,
            args,
            span,
        });
        (Type::Device(Kind::Job), Eval::Job(self.jobs.len() - 1))
    }

    fn register(&mut self, span: Span, args: &[Arg], close: Span) {
        let usage = "write `register(\"name\", [job1, job2]);`";
        if let Some((_, _, first)) = &self.register {
            self.diags.push(
                Diagnostic::error(
                    "nym::register",
                    span,
                    "a second `register`: a graph registers one unikernel",
                )
                .label("second")
                .related(*first, "first"),
            );
            return;
        }
        if close.is_empty() && args.len() < 2 {
            // Unclosed (its `)` is the error): the rest may be still to come.
            self.register = Some((String::new(), Vec::new(), span));
            return;
        }
        if args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
            self.diags.push(
                Diagnostic::error(
                    "nym::register",
                    if args.len() > 2 {
                        args[2].value.span
                    } else {
                        close
                    },
                    format!(
                        "`register` takes a name and a list of jobs, {} given",
                        args.len()
                    ),
                )
                .label("here")
                .help(usage),
            );
            self.register = Some((String::new(), Vec::new(), span));
            return;
        }
        let name = match &args[0].value.kind {
            ExprKind::Lit(Value::Str(s)) if valid_key_name(s) => s.clone(),
            ExprKind::Error => String::new(),
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::register",
                        args[0].value.span,
                        "the unikernel's name must be a string like \"hello\"",
                    )
                    .label("lowercase letters, digits and `-`, starting with a letter")
                    .help(usage),
                );
                String::new()
            }
        };
        let (ty, eval) = self.expr(&args[1].value);
        let mut jobs = Vec::new();
        match eval {
            Eval::List(items) => {
                if items.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::register",
                            args[1].value.span,
                            "no jobs to register",
                        )
                        .label("an empty list")
                        .help(usage),
                    );
                }
                for (item, item_span) in items {
                    match item {
                        Eval::Job(j) if jobs.contains(&j) => self.diags.push(
                            Diagnostic::error("nym::register", item_span, "this job is registered twice").label("again"),
                        ),
                        Eval::Job(j) => jobs.push(j),
                        Eval::Error => {}
                        Eval::Node(n) => self.diags.push(
                            Diagnostic::error("nym::kind", item_span, format!("`register` runs jobs, found a {} device", self.nodes[n].imp.provides))
                                .label("not a job")
                                .help("make a job with `job crate::function(devices...)` and register that"),
                        ),
                        _ => self.diags.push(
                            Diagnostic::error("nym::kind", item_span, "`register` runs jobs, found a value").label("not a job"),
                        ),
                    }
                }
            }
            Eval::Error => {}
            _ => self.diags.push(
                Diagnostic::error(
                    "nym::kind",
                    args[1].value.span,
                    format!("`register` takes a list of jobs, found {}", a_type(ty)),
                )
                .label("not a list")
                .help(usage),
            ),
        }
        self.register = Some((name, jobs, span));
    }

    fn finish(mut self, src_len: usize, complete: bool) -> Checked {
        for b in &self.bindings {
            if b.uses.is_empty() && b.ty != Type::Error && complete {
                self.diags.push(
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
            let name = self.krate.map_or("app", |k| k.name()).replace('_', "-");
            let text = format!("register(\"{name}\", [{}]);", jobs.join(", "));
            self.diags.push(
                Diagnostic::error(
                    "nym::register",
                    Span::new(src_len, src_len),
                    "no `register(...)`: the graph runs nothing",
                )
                .label("the graph ends here")
                .help(format!("end the graph with `{text}`"))
                .fix(
                    "add `register`",
                    Span::new(src_len, src_len),
                    format!("\n{text}\n"),
                ),
            );
        }
        self.diags.sort_by_key(|d| (d.span.start, d.span.end));
        let graph = (!self.diags.iter().any(Diagnostic::is_error))
            .then(|| self.graph())
            .flatten();
        Checked {
            diagnostics: self.diags,
            graph,
            bindings: self.bindings,
            types: self.types,
        }
    }

    /// Keeps only what the registered jobs reach, renumbered.
    fn graph(&self) -> Option<Graph> {
        let (name, registered, _) = self.register.clone()?;
        let mut node_live = vec![false; self.nodes.len()];
        let mut key_live = vec![false; self.keys.len()];
        fn mark(args: &[GArg], node_live: &mut [bool], key_live: &mut [bool]) {
            for a in args {
                match a {
                    GArg::Node(n) => node_live[*n] = true,
                    GArg::Key(k) => key_live[*k] = true,
                    GArg::Value(_) => {}
                }
            }
        }
        for &j in &registered {
            mark(&self.jobs[j].args, &mut node_live, &mut key_live);
        }
        // A node's arguments are nodes built before it, so one pass from
        // the last node back reaches everything, without recursing down a
        // long chain of devices.
        for n in (0..self.nodes.len()).rev() {
            if node_live[n] {
                mark(&self.nodes[n].args, &mut node_live, &mut key_live);
            }
        }
        let renumber = |live: &[bool]| {
            let mut next = 0;
            live.iter()
                .map(|&l| {
                    if l {
                        next += 1;
                        Some(next - 1)
                    } else {
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let (node_map, key_map) = (renumber(&node_live), renumber(&key_live));
        let remap = |args: &[GArg]| -> Vec<GArg> {
            args.iter()
                .map(|a| match a {
                    GArg::Node(n) => GArg::Node(node_map[*n].unwrap_or(usize::MAX)),
                    GArg::Key(k) => GArg::Key(key_map[*k].unwrap_or(usize::MAX)),
                    v => v.clone(),
                })
                .collect()
        };
        let nodes = self
            .nodes
            .iter()
            .zip(&node_live)
            .filter(|(_, l)| **l)
            .map(|(n, _)| Node {
                args: remap(&n.args),
                ..n.clone()
            })
            .collect();
        let keys = self
            .keys
            .iter()
            .zip(&key_live)
            .filter(|(_, l)| **l)
            .map(|(k, _)| k.clone())
            .collect();
        let jobs: Vec<JobNode> = registered
            .iter()
            .map(|&j| JobNode {
                args: remap(&self.jobs[j].args),
                ..self.jobs[j].clone()
            })
            .collect();
        Some(Graph {
            name,
            target: self.target,
            nodes,
            keys,
            registered: (0..jobs.len()).collect(),
            jobs,
        })
    }
}

fn int_range(ty: &str) -> (i64, i64) {
    match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "u64" | "usize" => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    }
}

/// A key or unikernel name: `[a-z][a-z0-9-]*`.
pub fn valid_key_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn a(p: ParamType) -> String {
    match p {
        ParamType::Device(k) => format!("a `{k}` device"),
        ParamType::Value(v) => format!("a {}", v.name()),
    }
}

fn a_type(t: Type) -> String {
    match t {
        Type::Device(Kind::Job) => "a job".into(),
        Type::Device(k) => format!("a `{k}` device"),
        Type::Value(v) => format!("a {}", v.name()),
        Type::List => "a list".into(),
        Type::Error => "an unknown value".into(),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn describe_params(params: &[ParamSpec]) -> String {
    if params.is_empty() {
        return "none".into();
    }
    params
        .iter()
        .map(|(n, t, d, _)| match d {
            Some(d) => format!("{n}: {t} = {d}"),
            None => format!("{n}: {t}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn example_in(module: &str) -> String {
    catalog::CATALOG
        .iter()
        .find(|i| i.name.starts_with(&format!("{module}::")))
        .map_or_else(String::new, |i| format!("{}()", i.name))
}

/// The candidate closest to `word` by edit distance, if close enough to be
/// a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= word.len().max(c.len()).div_ceil(3))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
