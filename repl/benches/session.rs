//! Latency of the session's evaluations, for BENCHMARKS.md:
//! `cargo bench -p nym-repl --bench session`.
//!
//! On a graph of 1,000 lines (a project on disk, its job signature read
//! from src/lib.rs, every binding used): a statement that binds a device
//! (the whole graph is checked again each time), and `:check`; the
//! median and the worst of 30 runs each.
//!
//! Rust cells (evcxr), in a project whose crate is `app`: the first cell
//! of a session whose build directory is cold (evcxr compiles libos and
//! the crate), the first cell of a later session (warm directory), and a
//! second cell. Cells run in the binary that serves the REPL,
//! `nym-studio`: `$NYM_BIN`, else `target/release/nym-studio` (so `cargo
//! build --release` first).
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
    rust_cells();
}

fn rust_cells() {
    let nym = std::env::var_os("NYM_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/nym-studio"),
        std::path::PathBuf::from,
    );
    assert!(
        nym.exists(),
        "{} is missing: run `cargo build --release` first, or set NYM_BIN",
        nym.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache"));
    let app = "pub fn double(n: u32) -> u32 { n * 2 }\n";
    let graph = "let console = console::default();\n";
    nym_repl::write_project(dir.path(), app, graph).unwrap();
    let session = || {
        let mut s = Session::open(dir.path(), None).unwrap();
        s.set_rust_runtime(nym.clone());
        s
    };
    let cell = |s: &mut Session, code: &str, want: &str| {
        let t = Instant::now();
        let r = s.eval_rust(code);
        let took = t.elapsed();
        assert!(!r.error && r.text == want, "{code} => {}", r.text);
        took
    };
    let mut s = session();
    let cold = cell(&mut s, "app::double(21)", "42");
    drop(s);
    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    for i in 0..5u32 {
        let mut s = session();
        firsts.push(cell(&mut s, "app::double(1)", "2"));
        let want = (2 * i + 1).to_string();
        seconds.push(cell(&mut s, &format!("app::double({i}) + 1"), &want));
    }
    firsts.sort();
    seconds.sort();
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "Rust cells: first with a cold build directory {:.2} s; first of a later session: median {:.2} s, worst {:.2} s; second: median {:.2} s, worst {:.2} s",
        s(cold), s(firsts[2]), s(firsts[4]), s(seconds[2]), s(seconds[4])
    );
    mixed_cells(&mut session());
}

/// Issue 20's mixed set, after a session's first cell: expressions, `let`
/// bindings, calls into the crate, and a cell that fails to compile
/// followed by one that must not pay for it; three rounds.
fn mixed_cells(s: &mut Session) {
    let first = s.eval_rust("app::double(1)");
    assert!(!first.error, "{}", first.text);
    let mut all = Vec::new();
    let mut after_error = Vec::new();
    for round in 0..3u32 {
        let cells: [(String, Option<String>); 8] = [
            ("40 + 3".into(), Some("43".into())),
            (
                format!("let v{round} = vec![1, 2, 3]; v{round}.len()"),
                Some("3".into()),
            ),
            (
                format!("app::double({round})"),
                Some((2 * round).to_string()),
            ),
            (format!("let s{round} = String::from(\"nym\");"), None),
            (format!("s{round}.len() + v{round}.len()"), Some("6".into())),
            ("let broken: u32 = \"not a number\";".into(), None),
            ("app::double(20) + 2".into(), Some("42".into())),
            ("format!(\"{}-{}\", 1, 2)".into(), Some("\"1-2\"".into())),
        ];
        for (i, (code, want)) in cells.iter().enumerate() {
            let t = Instant::now();
            let r = s.eval_rust(code);
            let took = t.elapsed();
            match want {
                Some(w) => assert!(!r.error && r.text == *w, "{code} => {}", r.text),
                None if code.contains("broken") => assert!(r.error, "{code} => {}", r.text),
                None => assert!(!r.error, "{code} => {}", r.text),
            }
            if i == 6 {
                after_error.push(took);
            }
            println!("  cell {code:?}: {:.3} s", took.as_secs_f64());
            all.push(took);
        }
    }
    all.sort();
    after_error.sort();
    println!(
        "Rust cells, the mixed set after the first (3 rounds of 8): median {:.3} s, worst {:.3} s; the cell after a failing one: median {:.3} s",
        all[all.len() / 2].as_secs_f64(),
        all[all.len() - 1].as_secs_f64(),
        after_error[1].as_secs_f64()
    );
}
