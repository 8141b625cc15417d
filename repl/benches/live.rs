//! The live IDE's costs, for BENCHMARKS.md:
//! `cargo bench -p nym-repl --bench live`.
//!
//! - A device call typed in the session (`state.get("k")`,
//!   `state.set("k", "v")`) on a stack running in-process: from `eval` to
//!   its reply, median and 95th percentile of 400 calls. This is what the
//!   REPL and the notebook add to the store's own work: parsing and
//!   checking the call, the trip to the stack's runtime and back.
//! - A store's history, per write: 200,000 writes of 1,000 keys through
//!   `kv::mem()` alone and through `kv::history(kv::mem(), 1000)`, in the
//!   same run, alternating five rounds of each; the median round.
use libos::kv::{History, Mem};
use nym_repl::Session;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
    )
}

fn main() {
    device_calls();
    history_writes();
}

fn device_calls() {
    let dir = tempfile::tempdir().unwrap();
    let app = "pub async fn start(state: impl libos::Kv, time: impl libos::Time) -> Result<(), String> {\n    loop { time.sleep(std::time::Duration::from_secs(1)).await; let _ = state.get(\"k\").await; }\n}\n";
    let graph = "let state = kv::mem();\nlet t = time::default();\nlet app = job app::start(state, t);\nregister(\"app\", [app]);\n";
    nym_repl::write_project(dir.path(), app, graph).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nlibos = {{ path = {:?} }}\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../libos")
        ),
    )
    .unwrap();
    let mut s = Session::open(dir.path(), None).unwrap();
    let r = s.eval(":run");
    assert!(!r.error, "{}\n{}", r.text, s.log().tail(30).join("\n"));
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let r = s.eval(&format!("state.set(\"k\", \"v{i}\")"));
        sets.push(t.elapsed());
        assert!(!r.error, "{}", r.text);
        let t = Instant::now();
        let r = s.eval("state.get(\"k\")");
        gets.push(t.elapsed());
        assert!(r.text.contains(&format!("v{i}")), "{}", r.text);
    }
    let (m, p) = percentiles(sets);
    println!("device call state.set(\"k\", …) from the session: median {m:.3} ms, p95 {p:.3} ms");
    let (m, p) = percentiles(gets);
    println!("device call state.get(\"k\") from the session: median {m:.3} ms, p95 {p:.3} ms");
    s.eval(":stop");
}

struct Clock;
impl libos::WallClock for Clock {
    fn now_unix_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

fn history_writes() {
    const WRITES: usize = 200_000;
    let value = [7u8; 16];
    let keys: Vec<String> = (0..1000).map(|i| format!("key{i}")).collect();
    let round = |kv: &dyn libos::Kv| {
        let t = Instant::now();
        libos::task::block_on(async {
            for i in 0..WRITES {
                kv.set(&keys[i % keys.len()], &value).await.unwrap();
            }
        });
        t.elapsed().as_secs_f64() * 1e9 / WRITES as f64
    };
    let (mut plain, mut recorded) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        plain.push(round(&Mem::new()));
        let h = History::new(
            Mem::new(),
            1000,
            Arc::new(Clock) as Arc<dyn libos::WallClock>,
        );
        recorded.push(round(&h));
    }
    plain.sort_by(f64::total_cmp);
    recorded.sort_by(f64::total_cmp);
    let (p, r) = (plain[2], recorded[2]);
    println!(
        "a write to kv::mem(): {p:.0} ns; through kv::history(kv::mem(), 1000): {r:.0} ns; the history adds {:.0} ns per write",
        r - p
    );
}
