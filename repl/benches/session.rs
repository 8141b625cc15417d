//! Latency of the session's evaluations, for BENCHMARKS.md:
//! `cargo bench -p nym-repl --bench session`.
//!
//! On a graph of 1,000 lines (a project on disk, its job signature read
//! from src/lib.rs, every binding used): a statement that binds a device
//! (the whole graph is checked again each time), and `:check`; the
//! median and the worst of 30 runs each.
use nym_repl::Session;
use std::time::{Duration, Instant};

fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[runs - 1])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // A chain of 996 wrappers over one store: every binding used once.
    let mut graph = String::from("let console = console::default();\nlet kv0 = kv::mem();\n");
    for i in 1..997 {
        graph += &format!("let kv{i} = kv::full(kv{});\n", i - 1);
    }
    graph += "let app = job app::start(console, kv996);\nregister(\"app\", [app]);\n";
    assert_eq!(graph.lines().count(), 1000);
    let app = "pub async fn start(c: impl libos::Console, kv: impl libos::Kv) {}\n";
    nym_repl::write_project(dir.path(), app, &graph).unwrap();
    let mut s = Session::open(dir.path(), None).unwrap();

    let mut n = 0;
    let (median, worst) = measure(30, || {
        n += 1;
        // Each new binding is unused (a warning, not shown while typing).
        let r = s.eval(&format!("let extra{n} = kv::mem();"));
        assert!(!r.error, "{}", r.text);
    });
    println!(
        "statement on a 1,000-line graph: median {:.2} ms, worst {:.2} ms",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    let (median, worst) = measure(30, || {
        let r = s.eval(":check");
        assert!(r.text.contains(" 0 error(s)"), "{}", r.text);
    });
    println!(
        ":check on a 1,000-line graph: median {:.2} ms, worst {:.2} ms",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
}
