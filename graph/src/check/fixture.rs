//! What the checker's unit tests share: an application crate with jobs, and
//! a compact rendering of what a check found (each diagnostic with its
//! places as line:col and source text, then the resolved graph as raw
//! indices), so a snapshot shows exactly what one part produced.
use crate::diagnostic::{line_col, Diagnostic};
use crate::jobs::RustCrate;
use crate::syntax::Span;
use crate::{analyze, Target};
use expect_test::Expect;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

const APP: &str = r#"
use libos::{Console, Ipv4Cidr, Kv, KvRo, Stack, Time};
use core::time::Duration;

pub async fn start(console: impl Console, time: impl Time, count: u32) {}
pub async fn store(console: impl Console, kv: impl Kv) {}
pub async fn serve(files: impl KvRo, ip: Ipv4Cidr, every: Duration, verbose: bool) {}
pub async fn level(console: impl Console, level: u8) {}
pub async fn net(console: impl Console, stack: impl Stack) {}
pub fn not_async(console: impl Console) {}
async fn private(console: impl Console) {}
"#;

/// The crate `hello`, its `src/lib.rs` in memory.
pub(super) fn app() -> &'static RustCrate {
    static APP_CRATE: OnceLock<RustCrate> = OnceLock::new();
    APP_CRATE.get_or_init(|| {
        let files = HashMap::from([(PathBuf::from("src/lib.rs"), APP.to_owned())]);
        RustCrate::in_memory("hello", files)
    })
}

/// Checks `src` for unix against [`app`].
pub(super) fn check(src: &str, expect: Expect) {
    render(Target::Unix, Some(app()), None, src, expect)
}

/// Checks `src` for `target` against [`app`].
pub(super) fn check_for(target: Target, src: &str, expect: Expect) {
    render(target, Some(app()), None, src, expect)
}

/// Checks `src` for unix against [`app`], showing only the diagnostics
/// with one of `codes` (and the graph, if there is one).
pub(super) fn check_codes(codes: &[&str], src: &str, expect: Expect) {
    render(Target::Unix, Some(app()), Some(codes), src, expect)
}

/// Checks `src` for unix without an application crate.
pub(super) fn check_without_crate(src: &str, expect: Expect) {
    render(Target::Unix, None, None, src, expect)
}

fn render(
    target: Target,
    krate: Option<&RustCrate>,
    codes: Option<&[&str]>,
    src: &str,
    expect: Expect,
) {
    let a = analyze(src, target, krate);
    let mut out = String::new();
    for d in a.diagnostics() {
        if codes.is_none_or(|codes| codes.contains(&d.code)) {
            out.push_str(&diagnostic(src, d));
        }
    }
    if let Some(g) = a.graph() {
        let _ = writeln!(out, "graph {:?} for {}", g.name, g.target);
        for (i, n) in g.nodes.iter().enumerate() {
            let args = args(&n.args);
            let _ = writeln!(out, "  node #{i} {} = {}({args})", n.label, n.imp.name);
        }
        for (i, k) in g.keys.iter().enumerate() {
            let (ty, default) = (k.ty.name(), &k.default);
            let _ = writeln!(out, "  key #{i} --{}: {ty} = {default}", k.name);
        }
        for &i in &g.registered {
            let j = &g.jobs[i];
            let args = args(&j.args);
            let _ = writeln!(out, "  job #{i} {} = {}({args})", j.label, j.sig.path);
        }
        for u in &g.unused {
            let _ = writeln!(out, "  unused {}: {} = {}", u.label, u.ty, u.what);
        }
    }
    expect.assert_eq(&out);
}

fn args(args: &[super::GArg]) -> String {
    args.iter()
        .map(|a| match a {
            super::GArg::Node(n) => format!("#{n}"),
            super::GArg::Key(k) => format!("key #{k}"),
            super::GArg::Value(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `3:9 "kv::mme"`: where a span starts and the text it covers.
pub(super) fn place(src: &str, span: Span) -> String {
    let (line, col) = line_col(src, span.start);
    format!("{line}:{col} {:?}", &src[span.start..span.end])
}

fn diagnostic(src: &str, d: &Diagnostic) -> String {
    let severity = if d.is_error() { "error" } else { "warning" };
    let mut out = format!(
        "{severity} {} at {}: {}\n",
        d.code,
        place(src, d.span),
        d.message
    );
    if !d.label.is_empty() {
        let _ = writeln!(out, "  label: {}", d.label);
    }
    for (span, label) in &d.related {
        let _ = writeln!(out, "  related at {}: {label}", place(src, *span));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "  help: {help}");
    }
    if let Some(fix) = &d.fix {
        let _ = writeln!(
            out,
            "  fix {:?}: {} -> {:?}",
            fix.title,
            place(src, fix.span),
            fix.text
        );
    }
    out
}
