//! `nym sim`: nodes made with `nym new`, on one simulated network, as a
//! user runs them: the same seed gives the same run, idle time is free,
//! each scheduled fault is seen by a property, and a violated property
//! names the seed that reproduces it.
mod common;

use common::{nym, project, run, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Two echo servers, `a` (10.0.0.1) and `b` (10.0.0.2), from one project,
/// with `rest` appended to the topology.
fn echo_pair(rest: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, _) = project("echo", "echo");
    let topo = tmp.path().join("pair.toml");
    std::fs::write(
        &topo,
        format!(
            r#"until = "1min"
[nodes.a]
project = "echo"
keys = {{ ipv4 = "10.0.0.1/24" }}
[nodes.b]
project = "echo"
keys = {{ ipv4 = "10.0.0.2/24" }}
{rest}"#
        ),
    )
    .unwrap();
    (tmp, topo)
}

fn sim(topo: &Path, args: &[&str]) -> Output {
    let dir = topo.parent().unwrap();
    run(nym(dir)
        .arg("sim")
        .arg(topo.file_name().unwrap())
        .args(args))
}

/// A request from b to a's echo server, from `at`, answered within `within`.
fn b_reaches_a(name: &str, at: &str, within: &str) -> String {
    format!(
        "[[properties]]\nname = \"{name}\"\nrequest = {{ from = \"b.stack\", to = \"10.0.0.1:7\", send = \"ping\\n\", expect = \"ping\", at = \"{at}\", within = \"{within}\" }}\n"
    )
}

const LOSSY: &str =
    "[network]\nlatency = \"5ms\"\njitter = \"4ms\"\nloss = 20\nreorder = 10\nduplicate = 10\n";

#[test]
fn the_same_seed_gives_the_same_run_byte_for_byte_and_another_seed_another() {
    let (tmp, topo) = echo_pair(&format!("{LOSSY}{}", b_reaches_a("echo", "1s", "30s")));
    let mut runs = Vec::new();
    for (seed, pcap) in [("7", "one.pcap"), ("7", "two.pcap"), ("8", "three.pcap")] {
        let out = sim(&topo, &["--seed", seed, "--pcap", &format!("a={pcap}")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let frames = std::fs::read(tmp.path().join(pcap)).unwrap();
        runs.push((stdout(&out), frames));
    }
    assert!(
        runs[0]
            .0
            .contains("[   0.000000] a | echo: listening on port 7"),
        "{}",
        runs[0].0
    );
    assert!(runs[0].1.len() > 24 + 10 * 60, "frames were captured");
    assert_eq!(
        runs[0], runs[1],
        "seed 7 twice: the same consoles and frames"
    );
    assert_ne!(runs[0].1, runs[2].1, "seed 8 loses other frames");
    // tshark reads the capture: ARP, then b's connection to a's port 7.
    if common::required(common::runs("tshark"), "tshark is not installed") {
        let shown = run(std::process::Command::new("tshark")
            .args([
                "-r",
                "one.pcap",
                "-T",
                "fields",
                "-e",
                "frame.protocols",
                "-e",
                "tcp.dstport",
            ])
            .current_dir(tmp.path()));
        assert!(shown.status.success(), "{}", stderr(&shown));
        let text = stdout(&shown);
        assert!(
            text.lines().any(|l| l.starts_with("eth:ethertype:arp")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains(":tcp") && l.ends_with("\t7")),
            "{text}"
        );
    }
}

#[test]
fn ten_simulated_minutes_of_an_idle_network_take_seconds() {
    let (_tmp, topo) = echo_pair(&b_reaches_a("echo", "9min", "30s"));
    let wall = Instant::now();
    let out = sim(&topo, &["--until", "10m"]);
    let wall = wall.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("sim: 600.000000s simulated"), "{err}");
    assert!(err.contains("1 properties held"), "{err}");
    // The build is cached by the first `nym sim` of the binary's tests; a
    // generous bound that only a run on wall-clock time would break.
    assert!(wall < Duration::from_secs(120), "took {wall:?}");
}

#[test]
fn a_partition_breaks_a_property_and_the_failure_names_its_seed() {
    let events = "[[events]]\nat = \"20s\"\npartition = [[\"a\"], [\"b\"]]\n[[events]]\nat = \"40s\"\nheal = true\n";
    let props = [
        b_reaches_a("before", "1s", "5s"),
        b_reaches_a("after the heal", "41s", "10s"),
        b_reaches_a("across the partition", "21s", "10s"),
    ]
    .concat();
    let (_tmp, topo) = echo_pair(&format!("{events}{props}"));
    let out = sim(&topo, &["--seed", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("property `across the partition` violated at 31.000000s: no answer holding \"ping\" from 10.0.0.1:7"),
        "{err}"
    );
    assert!(
        err.contains("reproduce: nym sim pair.toml --seed 3"),
        "{err}"
    );
    // Without the partition, the same property holds, and so does the one
    // after the heal.
    let (_tmp, topo) = echo_pair(&format!(
        "[[events]]\nat = \"20s\"\nlink_down = [\"a\", \"b\"]\n[[events]]\nat = \"40s\"\nlink_up = [\"a\", \"b\"]\n{}{}",
        b_reaches_a("after the link is up", "41s", "10s"),
        b_reaches_a("while the link is down", "21s", "10s"),
    ));
    let out = sim(&topo, &[]);
    let err = stderr(&out);
    assert!(
        err.contains("property `while the link is down` violated at 31.000000s"),
        "{err}"
    );
    let (_tmp, topo) = echo_pair(&b_reaches_a("no fault", "21s", "10s"));
    let out = sim(&topo, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_crashed_node_restarts_with_its_files_and_without_its_memory() {
    let (tmp, _) = project("kv", "kv");
    let topo = tmp.path().join("kv.toml");
    let restart = r#"
[nodes.a]
project = "kv"
[nodes.b]
project = "kv"
[[events]]
at = "10s"
crash = "a"
[[events]]
at = "12s"
restart = "a"
[[properties]]
console = { node = "a", prints = "run #2", after = "12s", within = "1s" }
[[properties]]
same = { key = "runs", stores = ["a.store", "b.store"], at = "5s" }
"#;
    std::fs::write(&topo, restart).unwrap();
    let out = sim(&topo, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("[  10.000000] a | nym: crashed"), "{text}");
    assert!(text.contains("[  12.000000] a | run #2"), "{text}");
    assert!(text.contains("[   0.000000] b | run #1"), "{text}");
    assert!(!text.contains("b | run #2"), "{text}");
    // While `a` is down, a property on its store says so, and ends the run.
    let down = "[[properties]]\nname = \"down\"\nsame = { key = \"runs\", stores = [\"a.store\", \"b.store\"], at = \"11s\" }\n";
    std::fs::write(&topo, format!("{restart}{down}")).unwrap();
    let out = sim(&topo, &[]);
    let err = stderr(&out);
    assert!(
        err.contains(
            "property `down` violated at 11.000000s: a.store = (a is down), b.store = \"1\""
        ),
        "{err}"
    );
    // The node's files live in the run's folder, not the project's.
    assert!(tmp.path().join("target/nym/sim/kv/a/kv.img").is_file());
    assert!(!tmp.path().join("kv/kv.img").exists());
}

#[test]
fn a_skewed_wall_clock_is_what_the_node_reads() {
    let (tmp, dir) = project("clock", "hello");
    common::rewrite(
        &dir,
        r#"#![no_std]
extern crate alloc;
use libos::{Console, ConsoleError, Time, WallClock};
pub async fn start(console: impl Console, wall: impl WallClock, time: impl Time) -> Result<(), ConsoleError> {
    loop {
        console.log(&alloc::format!("wall {}", wall.now_unix_ns() / 1_000_000_000)).await?;
        time.sleep(core::time::Duration::from_secs(10)).await;
    }
}
"#,
        "let c = job clock::start(console::default(), clock::wall(), time::default());\nregister(\"clock\", [c]);\n",
    );
    let topo = tmp.path().join("skew.toml");
    // 2030-01-01 is 1893456000; at 30 s the clock jumps an hour ahead.
    std::fs::write(
        &topo,
        r#"until = "45s"
[nodes.n]
project = "clock"
[[events]]
at = "25s"
skew = "n"
by = "+1h"
[[properties]]
console = { node = "n", prints = "wall 1893456020", within = "21s" }
[[properties]]
console = { node = "n", prints = "wall 1893459630", after = "25s", within = "10s" }
"#,
    )
    .unwrap();
    let out = sim(&topo, &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("[  25.000000] n | nym: wall clock skewed by +3600s"));
}

#[test]
fn many_seeds_report_the_ones_that_fail_and_each_reproduces() {
    // 10 % loss with 300 ms to connect and echo: a seed that loses a
    // frame of the exchange misses the deadline.
    let (_tmp, topo) = echo_pair(&format!(
        "[network]\nlatency = \"2ms\"\nloss = 10\n{}",
        b_reaches_a("quick", "1s", "300ms")
    ));
    let out = sim(&topo, &["--seeds", "1..12"]);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("sim: ") && l.contains("seeds failed: "))
        .unwrap_or_else(|| panic!("some seeds fail: {err}"));
    let failed: Vec<u64> = line
        .split("seeds failed: ")
        .nth(1)
        .unwrap()
        .split(", ")
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(out.status.code(), Some(1));
    assert!(failed.len() < 12, "some seeds hold: {err}");
    let passed = (1..=12).find(|s| !failed.contains(s)).unwrap();
    assert!(
        err.contains(&format!("seed {passed}: 1 properties held")),
        "{err}"
    );
    let again = sim(&topo, &["--seed", &failed[0].to_string()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "seed {} fails again",
        failed[0]
    );
    let again = sim(&topo, &["--seed", &passed.to_string()]);
    assert!(again.status.success(), "seed {passed} holds again");
}

#[test]
fn mistakes_in_the_topology_are_named_before_anything_runs() {
    let (_tmp, topo) = echo_pair("[[events]]\nat = \"1s\"\ncrash = \"c\"\n");
    let out = sim(&topo, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pair.toml: events[0]: no node `c` (nodes: a, b)"),
        "{}",
        stderr(&out)
    );
    let (_tmp, topo) = echo_pair("");
    for (args, want) in [
        (
            &["--pcap", "z=x.pcap"][..],
            "--pcap z=x.pcap: no node `z` (nodes: a, b)",
        ),
        (
            &["--seeds", "5..1"][..],
            "--seeds 5..1: write a range of seeds",
        ),
        (
            &["--until", "soon"][..],
            "--until: `soon` is not a duration",
        ),
    ] {
        let out = sim(&topo, args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
    }
    // A node whose graph cannot run as a unikernel is refused, with the
    // graph's own diagnostics.
    let (tmp, dir) = project("host", "hello");
    std::fs::write(
        dir.join("unikernel.nym"),
        "let s = stack::socket();\nlet c = job hello::start(console::default(), clock::mono(), time::default(), 1, 1s);\nregister(\"h\", [c]);\n",
    )
    .unwrap();
    let topo = tmp.path().join("t.toml");
    std::fs::write(&topo, "[nodes.h]\nproject = \"host\"\n").unwrap();
    let out = sim(&topo, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("node `h`"), "{err}");
    assert!(err.contains("checked for kvm"), "{err}");
    assert!(err.contains("stack::socket"), "{err}");
}

#[test]
fn a_trace_is_on_simulated_time_with_a_track_per_nodes_job() {
    let (tmp, topo) = echo_pair(&b_reaches_a("echo", "30s", "5s"));
    let out = sim(&topo, &["--trace", "t.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("t.json")).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let named = |name: &str| {
        events
            .iter()
            .any(|e| e["ph"] == "M" && e["args"]["name"].as_str() == Some(name))
    };
    for track in [
        "job a: echo",
        "job b: echo",
        "task: a.stack",
        "task: b.stack",
    ] {
        assert!(named(track), "a track {track:?}");
    }
    // a's echo reads what b sent at 30 s, simulated: its trace says so.
    let read_at: Vec<f64> = events
        .iter()
        .filter(|e| e["name"] == "stack.read")
        .map(|e| e["ts"].as_f64().unwrap())
        .collect();
    assert!(
        read_at.iter().any(|&t| (30e6..31e6).contains(&t)),
        "{read_at:?}"
    );
    let out = sim(&topo, &["--trace", "t.json", "--seeds", "1..2"]);
    assert!(stderr(&out).contains("--trace records one run"));
}

#[test]
fn a_session_simulates_shows_a_nodes_console_and_inspects_its_devices_after_the_run() {
    let (tmp, _) = project("kv", "kv");
    std::fs::write(
        tmp.path().join("kv.toml"),
        "until = \"30s\"\n[nodes.a]\nproject = \"kv\"\n[nodes.b]\nproject = \"kv\"\n[[events]]\nat = \"10s\"\nrestart = \"a\"\n",
    )
    .unwrap();
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let mut s = nym_repl::Session::open(tmp.path(), None).unwrap();
    let r = s.eval(":sim kv.toml --until 20s");
    assert!(!r.error, "{}", r.text);
    assert!(r.text.contains("simulating 2 node(s): a, b"), "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.log().tail(200).iter().any(|l| l.starts_with("sim: ")) {
        assert!(Instant::now() < deadline, "{}", s.log().tail(50).join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary = s.log().tail(200).join("\n");
    assert!(summary.contains("sim: 20.000000s simulated"), "{summary}");
    let a = s.eval(":logs a");
    assert!(a.text.contains("[  10.000000] a | run #2"), "{}", a.text);
    assert!(!a.text.contains("b |"), "{}", a.text);
    let i = s.eval(":inspect a.store");
    assert!(!i.error, "{}", i.text);
    assert!(i.text.contains("runs = \"2\""), "{}", i.text);
    let i = s.eval(":inspect b.store");
    assert!(i.text.contains("runs = \"1\""), "{}", i.text);
    let i = s.eval(":inspect a.nothing");
    assert!(
        i.error && i.text.contains("a has no device `nothing`"),
        "{}",
        i.text
    );
    let bad = s.eval(":sim nowhere.toml");
    assert!(
        bad.error && bad.text.contains("nowhere.toml"),
        "{}",
        bad.text
    );
    let stop = s.eval(":stop");
    assert!(
        stop.text.contains("put the simulation away"),
        "{}",
        stop.text
    );
}

#[test]
fn a_node_that_never_waits_is_named_not_waited_on_for_ever() {
    let (tmp, dir) = project("spin", "hello");
    common::rewrite(
        &dir,
        "#![no_std]\nuse libos::{Console, ConsoleError};\npub async fn start(console: impl Console) -> Result<(), ConsoleError> {\n    console.log(\"spinning\").await?;\n    loop {\n        core::hint::spin_loop();\n    }\n}\n",
        "let s = job spin::start(console::default());\nregister(\"spin\", [s]);\n",
    );
    let topo = tmp.path().join("spin.toml");
    std::fs::write(&topo, "[nodes.n]\nproject = \"spin\"\n").unwrap();
    let started = Instant::now();
    let out = run(nym(tmp.path())
        .args(["sim", "spin.toml"])
        .env("NYM_SIM_STUCK_SECS", "2"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).contains("n | spinning"));
    assert!(
        stderr(&out).contains("simulated time has stood still at about 0.0s for 2 s"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn the_dns_template_answers_a_resolver_across_a_lossy_link() {
    let (_tmp, dir) = project("names", "dns");
    let out = run(nym(&dir).args(["sim", "sim.toml", "--pcap", "resolver=r.pcap"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(
            "resolver | resolve: web.example.test = alias of www.example.test., 192.0.2.10"
        ),
        "{text}"
    );
    assert!(
        text.contains("resolver | resolve: nope.example.test = no such name"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("2 properties held"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("lost"), "{}", stderr(&out));
    if common::required(common::runs("tshark"), "tshark is not installed") {
        let shown = run(std::process::Command::new("tshark")
            .args([
                "-r",
                "r.pcap",
                "-Y",
                "dns",
                "-T",
                "fields",
                "-e",
                "dns.flags.response",
                "-e",
                "dns.qry.name",
            ])
            .current_dir(&dir));
        let lines = stdout(&shown);
        assert!(lines.contains("0\tweb.example.test"), "a query: {lines}");
        assert!(lines.contains("1\tweb.example.test"), "its answer: {lines}");
    }
}
