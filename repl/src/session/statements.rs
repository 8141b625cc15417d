//! The graph as statements: the session's entries, when an input is
//! complete, and checking an input against the whole graph with the
//! diagnostics rebased onto it.
use super::commands::command_named;
use super::{Reply, Session};
use nym_graph::diagnostic::{self, Diagnostic};
use nym_graph::syntax::{Span, Stmt};
use nym_graph::{analyze, Severity};

/// One graph statement of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) text: String,
    /// The binding it makes, for `let`.
    name: Option<String>,
    register: bool,
}

impl Entry {
    /// The entry for statement `s`, whose text is `text`.
    fn of(s: &Stmt, text: &str) -> Entry {
        Entry {
            text: text.to_owned(),
            name: match s {
                Stmt::Let { name, .. } => Some(name.name.clone()),
                Stmt::Expr { .. } => None,
            },
            register: matches!(s, Stmt::Expr { expr, .. } if is_register(expr)),
        }
    }
}

impl Session {
    /// Graph statements and expressions.
    pub(super) fn eval_graph(&mut self, input: &str) -> Reply {
        let mut text = end_calls(input.trim_end());
        if !text.ends_with(';') && !text.ends_with('}') {
            text.push(';');
        }
        let (file, errors) = nym_graph::parser::parse(&text);
        if !errors.is_empty() {
            return Reply::err(diagnostic::render(&errors, "input", &text, false));
        }
        // The new statements in place, each with where its text starts in
        // the input; expressions go after the graph and are not kept.
        let mut work: Vec<(Entry, Option<usize>)> =
            self.entries.iter().cloned().map(|e| (e, None)).collect();
        let mut shown = Vec::new();
        let mut expressions = Vec::new();
        for stmt in &file.stmts {
            let span = stmt.span();
            let stmt_text = &text[span.start..span.end];
            match stmt {
                Stmt::Let { name, .. } => {
                    let e = Entry::of(stmt, stmt_text);
                    let same = work
                        .iter()
                        .position(|(x, _)| x.name.as_deref() == Some(&name.name));
                    match same {
                        Some(i) => work[i] = (e, Some(span.start)),
                        None => {
                            let at = work.iter().position(|(x, _)| x.register);
                            work.insert(at.unwrap_or(work.len()), (e, Some(span.start)));
                        }
                    }
                    shown.push(name.name.clone());
                }
                Stmt::Expr { expr, .. } if is_register(expr) => {
                    work.retain(|(x, _)| !x.register);
                    work.push((Entry::of(stmt, stmt_text), Some(span.start)));
                }
                Stmt::Expr { expr, .. } => {
                    expressions.push((stmt_text.to_owned(), expr.span, span.start))
                }
            }
        }
        let mut source = String::new();
        // (span in `source`, where it starts in the input)
        let mut placed: Vec<(Span, usize)> = Vec::new();
        for (e, from) in &work {
            if let Some(from) = from {
                placed.push((Span::new(source.len(), source.len() + e.text.len()), *from));
            }
            source.push_str(&e.text);
            source.push('\n');
        }
        // Each expression's own span in `source`.
        let mut expr_at = Vec::new();
        for (t, expr, from) in &expressions {
            let base = source.len();
            placed.push((Span::new(base, base + t.len()), *from));
            expr_at.push((base + expr.start - from, base + expr.end - from));
            source.push_str(t);
            source.push('\n');
        }
        let entries: Vec<Entry> = work.into_iter().map(|(e, _)| e).collect();
        let krate = self.krate();
        let analysis = analyze(&source, self.target, krate.as_ref());
        let mut in_input = Vec::new();
        let mut elsewhere = Vec::new();
        for d in analysis.diagnostics() {
            if interactive_noise(d, &source) {
                continue;
            }
            match placed
                .iter()
                .find(|(s, _)| s.start <= d.span.start && d.span.end <= s.end)
            {
                Some((s, input_start)) => in_input.push(rebase(d, s.start, *input_start)),
                None if d.severity == Severity::Error => elsewhere.push(d.clone()),
                None => {}
            }
        }
        let errors = in_input.iter().chain(&elsewhere).any(Diagnostic::is_error);
        let mut out = String::new();
        if !in_input.is_empty() {
            out += &diagnostic::render(&in_input, "input", &text, false);
        }
        if !elsewhere.is_empty() {
            out += "this change breaks the rest of the graph:\n";
            out += &diagnostic::render(&elsewhere, "graph", &source, false);
        }
        if errors {
            return Reply::err(out);
        }
        let types = &analysis.checked.types;
        let type_at = |start: usize, end: usize| {
            types
                .iter()
                .find(|(s, _)| s.start == start && s.end == end)
                .map(|(_, t)| t.to_string())
        };
        for name in &shown {
            let b = analysis
                .checked
                .bindings
                .iter()
                .find(|b| &b.name.name == name);
            if let Some(b) = b {
                out += &format!("{name}: {}\n", b.ty);
            }
        }
        // Device calls, in order, once the graph is changed (a cell may
        // re-wire a device, then call it).
        let mut calls = Vec::new();
        for (a, b) in &expr_at {
            match analysis.checked.calls.iter().find(|c| c.span.start == *a) {
                Some(call) => calls.push((call.clone(), source[*a..*b].trim().to_owned())),
                None => {
                    if let Some(t) = type_at(*a, *b) {
                        out += &format!("{}: {t}\n", source[*a..*b].trim());
                    }
                }
            }
        }
        let mut reply = Reply::ok(out.trim_end().to_owned());
        if entries != self.entries {
            self.entries = entries;
            self.sync_source();
            if self.running.is_some() {
                reply = Reply::ok(out).then(self.rewire());
            }
        }
        for (call, text) in &calls {
            reply = reply.then(self.device_call(call, text));
            if reply.error {
                break;
            }
        }
        reply
    }
}

/// `input` with a `;` after each line that is a whole device call
/// (`store.get("k")`): in a cell, calls are written a line each, as
/// commands are.
fn end_calls(input: &str) -> String {
    let is_call = |line: &str| {
        let line = without_comment(line).trim();
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(0);
        name_end > 0
            && line[name_end..].starts_with('.')
            && line.ends_with(')')
            && balanced(line)
            && !line.starts_with("let ")
    };
    let lines: Vec<String> = input
        .lines()
        .map(|l| {
            if is_call(l) {
                format!("{};", l.trim_end())
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.join("\n")
}

/// Whether `input` is only commands that look or leave (not kept as a
/// cell by itself).
pub(super) fn is_meta(input: &str) -> bool {
    const META: &[&str] = &[
        ":help", ":logs", ":devices", ":inspect", ":graph", ":check", ":save", ":quit", ":stop",
        ":reset", ":load", ":rust", ":history", ":diff",
    ];
    input.lines().all(|l| {
        let word = l.split_whitespace().next();
        word.is_none_or(|w| command_named(w).is_some_and(|c| META.contains(&c)))
    })
}

/// Whether brackets balance in `text` (strings and comments aside).
pub fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_str = !in_str,
            '\\' if in_str => {
                chars.next();
            }
            '/' if !in_str && chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' if !in_str => depth += 1,
            ')' | ']' | '}' if !in_str => depth -= 1,
            _ => {}
        }
    }
    depth <= 0 && !in_str
}

/// Whether the REPL should evaluate `input` now, or keep reading lines: a
/// command is one line; graph text needs balanced brackets, and a `let`
/// or `register` statement its `;`.
pub fn is_complete(input: &str) -> bool {
    let t = input.trim();
    if t.is_empty() || t.starts_with(':') {
        return true;
    }
    if !balanced(t) {
        return false;
    }
    let last = t.lines().last().map_or("", without_comment).trim();
    let statement = t.starts_with("let ") || t.starts_with("register");
    !statement || last.ends_with(';') || last.ends_with('}')
}

/// `line` without its `//` comment.
fn without_comment(line: &str) -> &str {
    let mut in_str = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn is_register(e: &nym_graph::syntax::Expr) -> bool {
    matches!(&e.kind, nym_graph::syntax::ExprKind::Call { path, .. } if path.text() == "register")
}

/// The statements of a graph file, one entry each (comments dropped).
pub(super) fn entries_of(text: &str) -> Vec<Entry> {
    let (file, _) = nym_graph::parser::parse(text);
    file.stmts
        .iter()
        .map(|s| Entry::of(s, &text[s.span().start..s.span().end]))
        .collect()
}

/// Findings that say the graph is not finished, which it rarely is while
/// it is being typed (unused bindings and values, a missing `register`),
/// and that a device call is no part of a graph file.
pub(super) fn interactive_noise(d: &Diagnostic, source: &str) -> bool {
    // A device call is refused in a file, and what a session is for.
    matches!(
        d.code,
        "nym::unused" | "nym::unused-value" | "nym::device-call"
    ) || (d.code == "nym::register" && d.span.start >= source.trim_end().len())
}

/// `d` moved from `source` coordinates (a statement starting at `from`)
/// to the input's (where it starts at `to`).
fn rebase(d: &Diagnostic, from: usize, to: usize) -> Diagnostic {
    let mv = |s: Span| Span::new(s.start - from + to, s.end - from + to);
    let mut d = d.clone();
    d.span = mv(d.span);
    d.related.retain(|(s, _)| s.start >= from);
    for (s, _) in &mut d.related {
        *s = mv(*s);
    }
    d.fix = None;
    d
}
