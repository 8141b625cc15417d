//! Editor features over an [`Analysis`], as plain data: what the language
//! server (and its tests) turn into LSP messages. Positions are byte
//! offsets; the server converts them.
use crate::catalog::{self, ParamType};
use crate::check::{a_value, valid_key_name, Binding};
use crate::jobs::{JobSig, RustCrate};
use crate::methods::{self, Method};
use crate::parser::is_keyword;
use crate::syntax::{Arg, Expr, ExprKind, File, Ident, Path, Span, Stmt};
use crate::types::{Kind, Type};
use crate::Analysis;
use libos::{Value, ValueType};
use std::ops::Range;

/// What the cursor is on.
enum Found<'a> {
    Impl(&'a Path),
    Job(&'a Path),
    Name(&'a str, Span),
    /// A method called on the named device.
    Method(&'a Ident, &'a Ident),
    None,
}

fn find_in_expr<'a>(e: &'a Expr, offset: usize) -> Found<'a> {
    if !e.span.contains(offset) {
        return Found::None;
    }
    match &e.kind {
        ExprKind::Call { path, args, .. } | ExprKind::Job { path, args, .. } => {
            if path.span.contains(offset) {
                return if matches!(e.kind, ExprKind::Job { .. }) {
                    Found::Job(path)
                } else {
                    Found::Impl(path)
                };
            }
            args.iter()
                .map(|a| find_in_expr(&a.value, offset))
                .find(|f| !matches!(f, Found::None))
                .unwrap_or(Found::None)
        }
        ExprKind::Method {
            receiver,
            method,
            args,
            ..
        } => {
            if receiver.span.contains(offset) {
                Found::Name(&receiver.name, receiver.span)
            } else if method.span.contains(offset) {
                Found::Method(receiver, method)
            } else {
                args.iter()
                    .map(|a| find_in_expr(&a.value, offset))
                    .find(|f| !matches!(f, Found::None))
                    .unwrap_or(Found::None)
            }
        }
        ExprKind::Name(id) => Found::Name(&id.name, id.span),
        ExprKind::List(items) => items
            .iter()
            .map(|i| find_in_expr(i, offset))
            .find(|f| !matches!(f, Found::None))
            .unwrap_or(Found::None),
        ExprKind::Match(arms) => arms
            .iter()
            .map(|a| find_in_expr(&a.value, offset))
            .find(|f| !matches!(f, Found::None))
            .unwrap_or(Found::None),
        _ => Found::None,
    }
}

fn find(a: &Analysis, offset: usize) -> Found<'_> {
    for stmt in &a.file.stmts {
        match stmt {
            Stmt::Let { name, value, .. } => {
                if name.span.contains(offset) {
                    return Found::Name(&name.name, name.span);
                }
                let f = find_in_expr(value, offset);
                if !matches!(f, Found::None) {
                    return f;
                }
            }
            Stmt::Expr { expr, .. } => {
                let f = find_in_expr(expr, offset);
                if !matches!(f, Found::None) {
                    return f;
                }
            }
        }
    }
    Found::None
}

/// The binding the name at `span` stands for: its `let` or one of its
/// uses. By place, not by name: a `let` refused as a duplicate shares the
/// name of the binding its uses resolve to.
fn binding_at(a: &Analysis, span: Span) -> Option<&Binding> {
    a.checked
        .bindings
        .iter()
        .find(|b| b.name.span == span || b.uses.contains(&span))
}

/// Whether `span` is the name of a `let`, bound or not (a duplicate).
fn is_let_name(a: &Analysis, span: Span) -> bool {
    a.file
        .stmts
        .iter()
        .any(|s| matches!(s, Stmt::Let { name, .. } if name.span == span))
}

/// The type of the name at `span`: its binding's, or for a `let` that was
/// not bound (a duplicate), the type the checker found for it.
fn type_at(a: &Analysis, span: Span) -> Option<Type> {
    binding_at(a, span).map(|b| b.ty).or_else(|| {
        a.checked
            .types
            .iter()
            .find(|(s, _)| *s == span)
            .map(|(_, t)| *t)
            .filter(|_| is_let_name(a, span))
    })
}

/// The kind of the device bound to `name` before `offset`.
fn kind_of(a: &Analysis, name: &str, offset: usize) -> Option<Kind> {
    a.checked
        .bindings
        .iter()
        .rev()
        .find(|b| b.name.name == name && b.stmt.end <= offset)
        .and_then(|b| match b.ty {
            Type::Device(k) => Some(k),
            _ => None,
        })
}

/// The method `method` called on `receiver`, when the receiver's kind has it.
fn method_at(a: &Analysis, receiver: &Ident, method: &str) -> Option<&'static Method> {
    methods::lookup(kind_of(a, &receiver.name, receiver.span.start)?, method)
}

fn job_sig(krate: Option<&RustCrate>, path: &Path) -> Option<JobSig> {
    let segments: Vec<String> = path.segments.iter().map(|s| s.name.clone()).collect();
    krate?.job(&segments).ok()
}

/// Hover text (Markdown) for what is at `offset`, and the span it covers.
pub fn hover(a: &Analysis, krate: Option<&RustCrate>, offset: usize) -> Option<(Span, String)> {
    match find(a, offset) {
        Found::Impl(path) => {
            let imp = catalog::lookup(&path.text())?;
            let targets: Vec<&str> = imp.targets.iter().map(|t| t.name()).collect();
            Some((
                path.span,
                format!(
                    "```nym\n{}\n```\n{}\n\ntargets: {}",
                    imp.signature(),
                    imp.doc,
                    targets.join(", ")
                ),
            ))
        }
        Found::Job(path) => {
            let sig = job_sig(krate, path)?;
            Some((
                path.span,
                format!(
                    "```rust\n{}\n```\njob in {}:{}",
                    sig.rust,
                    sig.file.display(),
                    sig.line
                ),
            ))
        }
        Found::Name(name, span) => {
            let ty = type_at(a, span)?;
            Some((span, format!("```nym\nlet {name}: {ty}\n```")))
        }
        Found::Method(receiver, method) => {
            let m = method_at(a, receiver, &method.name)?;
            let mut text = format!("```nym\n{}\n```\n{}", m.signature(), m.doc);
            match m.not_callable {
                Some(why) => text += &format!("\n\nnot callable from a session: {why}"),
                None => text += "\n\ncalled on the running stack's device in a session",
            }
            Some((method.span, text))
        }
        Found::None => None,
    }
}

/// Where a definition lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    /// A `let` in this file.
    Here(Span),
    /// A job's Rust function: file (relative to the project) and 1-based line.
    Rust(std::path::PathBuf, usize),
    /// An implementation's entry in the catalog's source, 1-based line.
    Catalog(usize),
}

/// The catalog's source, to point at an implementation's entry.
const CATALOG_SOURCE: &str = include_str!("catalog.rs");

/// The path of the catalog's source file.
pub fn catalog_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog.rs")
}

/// Go to definition from `offset`.
pub fn definition(a: &Analysis, krate: Option<&RustCrate>, offset: usize) -> Option<Definition> {
    match find(a, offset) {
        Found::Name(_, span) => match binding_at(a, span) {
            Some(b) => Some(Definition::Here(b.name.span)),
            None => is_let_name(a, span).then_some(Definition::Here(span)),
        },
        Found::Job(path) => job_sig(krate, path).map(|s| Definition::Rust(s.file, s.line)),
        Found::Impl(path) => {
            // An entry opens `"kv::full" -> Kv,` (imp!) or `name: "kv::baked",`.
            let name = format!("{:?}", path.text());
            let at = CATALOG_SOURCE
                .find(&format!("{name} ->"))
                .or_else(|| CATALOG_SOURCE.find(&format!("name: {name},")))?;
            Some(Definition::Catalog(
                CATALOG_SOURCE[..at].matches('\n').count() + 1,
            ))
        }
        Found::Method(..) | Found::None => None,
    }
}

/// The kind of a completion item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    /// An implementation from the catalog.
    Implementation,
    /// A `let` binding.
    Binding,
    /// A key.
    Key,
    /// A keyword or builtin.
    Keyword,
    /// A method of a device.
    Method,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// What is inserted.
    pub label: String,
    /// Its signature or type.
    pub detail: String,
    /// What it is.
    pub kind: CompletionKind,
}

/// What is applied or called.
#[derive(Clone, Copy)]
enum Callee<'a> {
    Impl(&'a Path),
    Job(&'a Path),
    /// A method called on a device.
    Method(&'a Ident, &'a Ident),
}

impl Callee<'_> {
    /// Where the callee is written.
    fn start(self) -> usize {
        match self {
            Callee::Impl(p) | Callee::Job(p) => p.span.start,
            Callee::Method(r, _) => r.span.start,
        }
    }
}

/// The innermost application whose argument list holds `offset`.
struct CallSite<'a> {
    callee: Callee<'a>,
    args: &'a [Arg],
    /// The argument at `offset`: how many arguments end before it.
    index: usize,
    /// The argument `offset` is in (its name or its value), if any.
    arg: Option<&'a Arg>,
}

impl CallSite<'_> {
    /// The index into `params` of the parameter being given at the cursor:
    /// a named argument's own; else the next positional one, or, after
    /// named arguments, the first parameter not given yet. `params.len()`
    /// when there is none (an unknown name, past the last parameter).
    fn active<T>(&self, params: &[(String, T)]) -> usize {
        if let Some(n) = self.arg.and_then(|arg| arg.name.as_ref()) {
            return params
                .iter()
                .position(|(p, _)| *p == n.name)
                .unwrap_or(params.len());
        }
        let before = &self.args[..self.index.min(self.args.len())];
        if !before.iter().any(|arg| arg.name.is_some()) {
            return self.index;
        }
        let positional = self.args.iter().filter(|arg| arg.name.is_none()).count();
        let named = |p: &str| {
            self.args
                .iter()
                .any(|arg| arg.name.as_ref().is_some_and(|n| n.name == p))
        };
        (positional..params.len())
            .find(|&i| !named(&params[i].0))
            .unwrap_or(params.len())
    }
}

fn call_at(a: &Analysis, offset: usize) -> Option<CallSite<'_>> {
    fn in_expr(e: &Expr, offset: usize) -> Option<CallSite<'_>> {
        let (callee, args, close) = match &e.kind {
            ExprKind::Call { path, args, close } => (Callee::Impl(path), args, close),
            ExprKind::Job { path, args, close } => (Callee::Job(path), args, close),
            ExprKind::Method {
                receiver,
                method,
                args,
                close,
            } => (Callee::Method(receiver, method), args, close),
            ExprKind::List(items) => return items.iter().find_map(|i| in_expr(i, offset)),
            ExprKind::Match(arms) => {
                return arms.iter().find_map(|arm| in_expr(&arm.value, offset))
            }
            _ => return None,
        };
        let callee_end = match callee {
            Callee::Impl(p) | Callee::Job(p) => p.span.end,
            Callee::Method(_, m) => m.span.end,
        };
        if !(callee_end < offset && offset <= close.start) {
            return None;
        }
        args.iter()
            .find_map(|arg| in_expr(&arg.value, offset))
            .or_else(|| {
                let index = args
                    .iter()
                    .filter(|arg| arg.value.span.end < offset)
                    .count();
                let arg = args.iter().find(|arg| {
                    let start = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
                    start.start <= offset && offset <= arg.value.span.end
                });
                Some(CallSite {
                    callee,
                    args,
                    index,
                    arg,
                })
            })
    }
    a.file.stmts.iter().find_map(|s| match s {
        Stmt::Let { value, .. } => in_expr(value, offset),
        Stmt::Expr { expr, .. } => in_expr(expr, offset),
    })
}

/// The parameters of the application at `site`, as (name, type).
fn params_of(
    a: &Analysis,
    site: &CallSite,
    krate: Option<&RustCrate>,
) -> Option<Vec<(String, ParamType)>> {
    Some(match site.callee {
        Callee::Job(path) => job_sig(krate, path)?
            .params
            .into_iter()
            .map(|p| (p.name, p.ty))
            .collect(),
        Callee::Impl(path) => catalog::lookup(&path.text())?
            .params
            .iter()
            .map(|p| (p.name.to_owned(), p.ty))
            .collect(),
        Callee::Method(receiver, method) => method_at(a, receiver, &method.name)?
            .params
            .iter()
            .map(|p| (p.name.to_owned(), p.ty))
            .collect(),
    })
}

/// The argument slot around `offset`: the parameter type expected there.
fn expected_at(a: &Analysis, krate: Option<&RustCrate>, offset: usize) -> Option<ParamType> {
    let site = call_at(a, offset)?;
    let params = params_of(a, &site, krate)?;
    params.get(site.active(&params)).map(|(_, t)| *t)
}

/// The parameters of the implementation applied around `offset` that are
/// not given yet, for `name = ` completions.
fn params_around(a: &Analysis, offset: usize) -> Vec<(String, ParamType)> {
    let Some(site) = call_at(a, offset) else {
        return Vec::new();
    };
    let params = match site.callee {
        Callee::Impl(path) => catalog::lookup(&path.text()).map(|imp| imp.params),
        Callee::Method(receiver, method) => method_at(a, receiver, &method.name).map(|m| m.params),
        Callee::Job(_) => None,
    };
    let Some(params) = params else {
        return Vec::new();
    };
    let positional = site.args.iter().filter(|arg| arg.name.is_none()).count();
    params
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            *i >= positional
                && !site
                    .args
                    .iter()
                    .any(|arg| arg.name.as_ref().is_some_and(|n| n.name == p.name))
        })
        .map(|(_, p)| (p.name.to_owned(), p.ty))
        .collect()
}

/// Semantic token kinds, in the legend's order.
pub const TOKEN_TYPES: &[&str] = &[
    "keyword",
    "function",
    "variable",
    "string",
    "number",
    "comment",
    "namespace",
    "parameter",
];

/// Semantic tokens: (start, length, index into [`TOKEN_TYPES`]), in order.
pub fn semantic_tokens(a: &Analysis) -> Vec<(usize, usize, u32)> {
    let mut out = Vec::new();
    for c in &a.file.comments {
        out.push((c.start, c.end - c.start, 5));
    }
    fn expr(e: &Expr, out: &mut Vec<(usize, usize, u32)>) {
        match &e.kind {
            ExprKind::Call { path, args, .. } | ExprKind::Job { path, args, .. } => {
                if matches!(e.kind, ExprKind::Job { .. }) {
                    out.push((e.span.start, 3, 0));
                }
                let (last, modules) = path
                    .segments
                    .split_last()
                    .map_or((None, &[][..]), |(l, m)| (Some(l), m));
                for m in modules {
                    out.push((m.span.start, m.span.end - m.span.start, 6));
                }
                if let Some(l) = last {
                    out.push((l.span.start, l.span.end - l.span.start, 1));
                }
                for arg in args {
                    if let Some(n) = &arg.name {
                        out.push((n.span.start, n.span.end - n.span.start, 7));
                    }
                    expr(&arg.value, out);
                }
            }
            ExprKind::Name(id) => out.push((id.span.start, id.span.end - id.span.start, 2)),
            ExprKind::Method {
                receiver,
                method,
                args,
                ..
            } => {
                out.push((
                    receiver.span.start,
                    receiver.span.end - receiver.span.start,
                    2,
                ));
                out.push((method.span.start, method.span.end - method.span.start, 1));
                for arg in args {
                    if let Some(n) = &arg.name {
                        out.push((n.span.start, n.span.end - n.span.start, 7));
                    }
                    expr(&arg.value, out);
                }
            }
            ExprKind::Lit(v) => {
                let kind = if matches!(v, libos::Value::Str(_)) {
                    3
                } else {
                    4
                };
                out.push((e.span.start, e.span.end - e.span.start, kind));
            }
            ExprKind::BadCidr(_) => out.push((e.span.start, e.span.end - e.span.start, 4)),
            ExprKind::List(items) => items.iter().for_each(|i| expr(i, out)),
            ExprKind::Match(arms) => {
                out.push((e.span.start, 5, 0));
                for arm in arms {
                    arm.targets
                        .iter()
                        .for_each(|t| out.push((t.span.start, t.span.end - t.span.start, 6)));
                    expr(&arm.value, out);
                }
            }
            ExprKind::Error => {}
        }
    }
    for stmt in &a.file.stmts {
        match stmt {
            Stmt::Let { name, value, span } => {
                out.push((span.start, 3, 0));
                out.push((name.span.start, name.span.end - name.span.start, 2));
                expr(value, &mut out);
            }
            Stmt::Expr { expr: e, .. } => expr(e, &mut out),
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|t| t.0);
    out
}

/// The name or path being typed at `offset`: what completion matches.
pub fn word_before(src: &str, offset: usize) -> &str {
    let before = &src[..src.floor_char_boundary(offset.min(src.len()))];
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .map_or(0, |i| i + 1);
    &before[start..]
}

/// At most `limit` of `items`, for `word` typed: all of them when they
/// are that few; else those that begin with the word, bindings nearest
/// the cursor first (they come in file order), and `true`: the list is
/// incomplete, to be asked for again as the word grows (a graph of 50,000
/// bindings offers them all in an argument).
pub fn limit(items: Vec<Completion>, word: &str, limit: usize) -> (Vec<Completion>, bool) {
    if items.len() <= limit {
        return (items, false);
    }
    let (bindings, mut out): (Vec<Completion>, Vec<Completion>) = items
        .into_iter()
        .filter(|c| c.label.starts_with(word))
        .partition(|c| matches!(c.kind, CompletionKind::Binding));
    out.truncate(limit);
    let room = limit - out.len();
    out.extend(bindings.into_iter().rev().take(room));
    (out, true)
}

/// Completions at `offset` in `src`: after `module::` the module's
/// implementations; in an argument, what fits the parameter (implementations
/// providing a fitting kind, bindings of that type); elsewhere everything.
pub fn completions(
    src: &str,
    a: &Analysis,
    krate: Option<&RustCrate>,
    offset: usize,
) -> Vec<Completion> {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let word = word_before(src, offset);
    let word_start = before.len() - word.len();
    // After `device.`: the methods of the device's kind.
    if let Some(receiver) = before[..word_start].strip_suffix('.') {
        let name_start = receiver
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let kind = kind_of(a, &receiver[name_start..], offset);
        return kind
            .into_iter()
            .flat_map(methods::of)
            .filter(|m| m.not_callable.is_none())
            .map(|m| Completion {
                label: format!("{}(", m.name),
                detail: m.signature(),
                kind: CompletionKind::Method,
            })
            .collect();
    }
    let expected = expected_at(a, krate, offset);
    let fits = |t: Type| match (expected, t) {
        (None, _) => true,
        (Some(ParamType::Device(want)), Type::Device(have)) => have.fits(want),
        (Some(ParamType::Value(want)), Type::Value(have)) => have == want,
        _ => false,
    };
    let mut out: Vec<Completion> = catalog::CATALOG
        .iter()
        .filter(|imp| imp.name.starts_with(word) || !word.contains("::"))
        .filter(|imp| fits(Type::Device(imp.provides)))
        .map(|imp| Completion {
            label: imp.name.to_owned(),
            detail: imp.signature(),
            kind: CompletionKind::Implementation,
        })
        .collect();
    if word.contains("::") {
        return out;
    }
    // The binding whose statement holds the call being completed is not
    // one of its arguments (`let w = kv::full(` cannot take `w`).
    let call = call_at(a, offset).map(|site| site.callee.start());
    for b in &a.checked.bindings {
        let own = call.is_some_and(|at| b.stmt.start <= at && at < b.stmt.end);
        if b.stmt.end <= offset && !own && fits(b.ty) {
            out.push(Completion {
                label: b.name.name.clone(),
                detail: b.ty.to_string(),
                kind: CompletionKind::Binding,
            });
        }
    }
    // Named parameters of the implementation being applied.
    for (name, ty) in params_around(a, offset) {
        out.push(Completion {
            label: format!("{name} = "),
            detail: ty.to_string(),
            kind: CompletionKind::Key,
        });
    }
    // Keys already declared, and a literal of the expected value type.
    if let Some(ParamType::Value(want)) = expected {
        let sample = match want {
            libos::ValueType::Str => "\"text\"",
            libos::ValueType::Int => "42",
            libos::ValueType::Bool => "true",
            libos::ValueType::Duration => "100ms",
            libos::ValueType::Cidr => "10.0.0.2/24",
        };
        out.push(Completion {
            label: sample.into(),
            detail: a_value(want).into(),
            kind: CompletionKind::Keyword,
        });
        for (name, default) in declared_keys(&a.file) {
            let is_cidr =
                |v: &Value| matches!(v, Value::Str(s) if s.parse::<libos::Ipv4Cidr>().is_ok());
            if default.ty() == want || (want == ValueType::Cidr && is_cidr(&default)) {
                out.push(Completion {
                    label: format!("key({name:?}, {default})"),
                    detail: format!("the key --{name}"),
                    kind: CompletionKind::Key,
                });
            }
        }
    }
    if expected.is_none() {
        for kw in ["let", "job", "key", "register", "match target"] {
            out.push(Completion {
                label: kw.into(),
                detail: "keyword".into(),
                kind: CompletionKind::Keyword,
            });
        }
    } else if matches!(expected, Some(ParamType::Value(_))) {
        out.push(Completion {
            label: "key".into(),
            detail: "key(\"name\", default): a boot-time argument".into(),
            kind: CompletionKind::Key,
        });
    }
    out
}

/// Every key written well-formed in `file` (`key("name", literal)`), once
/// each, the first default written for it: from the syntax, so a file with
/// errors (the call being completed is usually one) still has its keys,
/// wherever they are and whatever reaches them.
fn declared_keys(file: &File) -> Vec<(String, Value)> {
    fn walk(e: &Expr, out: &mut Vec<(String, Value)>) {
        match &e.kind {
            ExprKind::Call { path, args, .. } if path.text() == "key" => {
                if let [Arg {
                    name: None,
                    value:
                        Expr {
                            kind: ExprKind::Lit(Value::Str(name)),
                            ..
                        },
                }, Arg {
                    name: None,
                    value:
                        Expr {
                            kind: ExprKind::Lit(default),
                            ..
                        },
                }] = args.as_slice()
                {
                    if valid_key_name(name) && !out.iter().any(|(n, _)| n == name) {
                        out.push((name.clone(), default.clone()));
                    }
                }
            }
            ExprKind::Call { args, .. }
            | ExprKind::Job { args, .. }
            | ExprKind::Method { args, .. } => args.iter().for_each(|arg| walk(&arg.value, out)),
            ExprKind::List(items) => items.iter().for_each(|i| walk(i, out)),
            ExprKind::Match(arms) => arms.iter().for_each(|arm| walk(&arm.value, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for stmt in &file.stmts {
        match stmt {
            Stmt::Let { value: e, .. } | Stmt::Expr { expr: e, .. } => walk(e, &mut out),
        }
    }
    out
}

/// One entry of the outline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The binding or statement.
    pub name: String,
    /// Its type.
    pub detail: String,
    /// The whole statement.
    pub span: Span,
    /// The name's span.
    pub selection: Span,
}

/// The outline: every `let` and the `register`.
pub fn symbols(a: &Analysis) -> Vec<Symbol> {
    a.file
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Let { name, span, .. } => Some(Symbol {
                name: name.name.clone(),
                detail: type_at(a, name.span).map_or_else(String::new, |t| t.to_string()),
                span: *span,
                selection: name.span,
            }),
            Stmt::Expr {
                expr:
                    Expr {
                        kind: ExprKind::Call { path, .. },
                        ..
                    },
                span,
            } if path.text() == "register" => Some(Symbol {
                name: "register".into(),
                detail: "the jobs that run".into(),
                span: *span,
                selection: path.span,
            }),
            _ => None,
        })
        .collect()
}

/// The binding at `offset` (its `let` or a use) and every place it occurs,
/// its `let` first: references, and the ranges a rename rewrites.
pub fn occurrences(a: &Analysis, offset: usize) -> Option<Vec<Span>> {
    let Found::Name(_, span) = find(a, offset) else {
        return None;
    };
    match binding_at(a, span) {
        Some(b) => Some(
            std::iter::once(b.name.span)
                .chain(b.uses.iter().copied())
                .collect(),
        ),
        // A duplicate `let`: nothing refers to it (its name's uses are the
        // first binding's), so renaming it touches it alone.
        None => is_let_name(a, span).then(|| vec![span]),
    }
}

/// Why a rename cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameError {
    /// Nothing renameable at the cursor.
    NotABinding,
    /// The new name is not a name.
    BadName(String),
    /// Another binding already has it.
    Taken(String),
}

impl std::fmt::Display for RenameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenameError::NotABinding => f.write_str("only `let` bindings can be renamed"),
            RenameError::BadName(n) if is_keyword(n) => {
                write!(f, "`{n}` is not a name: it is a keyword")
            }
            RenameError::BadName(n) => write!(
                f,
                "`{n}` is not a name: ASCII letters, digits and `_`, not starting with a digit"
            ),
            RenameError::Taken(n) => write!(f, "`{n}` is already bound"),
        }
    }
}

/// The edits that rename the binding at `offset` to `new`.
pub fn rename(a: &Analysis, offset: usize, new: &str) -> Result<Vec<(Span, String)>, RenameError> {
    let spans = occurrences(a, offset).ok_or(RenameError::NotABinding)?;
    // What the lexer reads as one name (ASCII only) and the parser takes.
    let valid = new
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && new.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !is_keyword(new);
    if !valid {
        return Err(RenameError::BadName(new.into()));
    }
    if a.checked.bindings.iter().any(|b| b.name.name == new) {
        return Err(RenameError::Taken(new.into()));
    }
    Ok(spans.into_iter().map(|s| (s, new.to_owned())).collect())
}

/// Inlay hints: the type of each `let`, after its name.
pub fn inlay_hints(a: &Analysis) -> Vec<(usize, String)> {
    a.checked
        .bindings
        .iter()
        .map(|b| (b.name.span.end, format!(": {}", b.ty)))
        .collect()
}

/// Signature help: the signature of the application around the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The callee's signature: the catalog's, or a job's Rust declaration.
    pub label: String,
    /// Where each parameter is written in `label`, as byte ranges, in order.
    pub params: Vec<Range<usize>>,
    /// The index of the parameter being given; `params.len()` when there is
    /// none (an unknown name, past the last parameter).
    pub active: usize,
}

/// Signature help inside an application at `offset`.
pub fn signature_help(a: &Analysis, krate: Option<&RustCrate>, offset: usize) -> Option<Signature> {
    let site = call_at(a, offset)?;
    let (label, params): (String, Vec<(String, Range<usize>)>) = match site.callee {
        Callee::Job(path) => {
            let sig = job_sig(krate, path)?;
            let params = sig
                .params
                .into_iter()
                .map(|p| (p.name, p.in_rust))
                .collect();
            (sig.rust, params)
        }
        Callee::Impl(path) => {
            let imp = catalog::lookup(&path.text())?;
            let (label, places) = imp.signature_with_params();
            let names = imp.params.iter().map(|p| p.name.to_owned());
            (label, names.zip(places).collect())
        }
        Callee::Method(receiver, method) => {
            let m = method_at(a, receiver, &method.name)?;
            let (label, places) = m.signature_with_params();
            let names = m.params.iter().map(|p| p.name.to_owned());
            (label, names.zip(places).collect())
        }
    };
    let active = site.active(&params);
    Some(Signature {
        label,
        params: params.into_iter().map(|(_, place)| place).collect(),
        active,
    })
}
