//! The incremental analyzer alone, without the language server around it:
//! `cargo bench -p nym-graph --bench incremental`.
//!
//! The graph `scripts/bench_lsp.py` sends (a chain of `time::scaled`
//! ending in a job), at 5,000 and 50,000 lines; 100 one-character edits
//! of the job's `key("count", 3)` near the end, then 100 of a factor near
//! the top (everything after it shifts); the median and p95 of
//! [`Incremental::analyze`] after each.
use nym_graph::incremental::Incremental;
use nym_graph::{RustCrate, Target};
use std::time::Instant;

fn graph(size: usize) -> String {
    let last = size - 11;
    let mut s = String::from(
        "let console = console::default();\nlet clock = clock::mono();\nlet t0 = time::default();\n",
    );
    for i in 1..=last {
        s += &format!("let t{i} = time::scaled(t{}, factor = 2);\n", i - 1);
    }
    s += &format!("let j = job big::start(console, clock, t{last}, key(\"count\", 3), key(\"pause\", 100ms));\n");
    s += "register(\"big\", [j]);\n";
    s
}

fn edits(inc: &mut Incremental, text: &mut String, at: usize, krate: &RustCrate) -> Vec<f64> {
    let mut times = Vec::new();
    for i in 0..100 {
        let new = if i % 2 == 0 { "4" } else { "3" };
        text.replace_range(at..at + 1, new);
        let t = Instant::now();
        let a = inc.analyze(text, Target::Unix, Some(krate));
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!a.has_errors(), "{:?}", a.diagnostics().first());
    }
    times.sort_by(f64::total_cmp);
    times
}

fn main() {
    // The hello template's job, as `nym new big` makes it for the script.
    let lib = include_str!("../../examples/hello/src/lib.rs");
    let krate = RustCrate::in_memory("big", [("src/lib.rs".into(), lib.into())].into());
    for size in [5_000, 50_000] {
        let mut text = graph(size);
        let mut inc = Incremental::default();
        let t = Instant::now();
        inc.analyze(&text, Target::Unix, Some(&krate));
        let first = t.elapsed().as_secs_f64() * 1e3;
        let near_end = text.find("\", 3)").unwrap() + 3;
        let end = edits(&mut inc, &mut text, near_end, &krate);
        let near_top = text.find("factor = 2").unwrap() + 9;
        let top = edits(&mut inc, &mut text, near_top, &krate);
        let p = |t: &[f64], q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        println!(
            "{} lines: first analysis {first:.1} ms; an edit near the end: p50 {:.2} ms, p95 {:.2} ms; near the top: p50 {:.2} ms, p95 {:.2} ms",
            text.lines().count(),
            p(&end, 0.5),
            p(&end, 0.95),
            p(&top, 0.5),
            p(&top, 0.95)
        );
    }
}
