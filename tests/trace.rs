//! The scheduler's log: `nym run --trace FILE` and the session's `:trace
//! on|off` write the jobs' polls, wake-ups and device calls in the Trace
//! Event format (held to the format by a schema check in Python, the
//! shape Perfetto and chrome://tracing load); a file that cannot be
//! written is refused at the start; the http example traced under wrk.
mod common;

use common::{free_port, get, nym, project, run, stderr, wait_for_body};
use nym_repl::Session;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The Trace Event format's rules this trace must keep, checked by
/// Python's JSON parser: an object with `traceEvents`; each event with a
/// phase, a pid and a tid; complete events with a timestamp and a
/// duration, never negative, nested on each thread; names for every
/// thread used. Prints `thread name: count of complete events` per thread.
const CHECK: &str = r#"
import json, sys, collections
t = json.load(open(sys.argv[1]))
ev = t["traceEvents"]
assert isinstance(ev, list) and ev, "no events"
names, spans = {}, collections.defaultdict(list)
for e in ev:
    assert e["ph"] in ("X", "i", "M"), e
    assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
    if e["ph"] == "M":
        if e["name"] == "thread_name":
            names[e["tid"]] = e["args"]["name"]
        continue
    assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
    if e["ph"] == "X":
        assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0, e
        spans[e["tid"]].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    else:
        assert e["s"] in ("t", "p", "g"), e
for tid, ss in spans.items():
    assert tid in names, "thread %d has no name" % tid
    ss.sort()
    for (a0, a1, n), (b0, b1, m) in zip(ss, ss[1:]):
        # One after the other (1 ns of rounding allowed).
        assert b0 >= a1 - 0.001, "overlap on %s: %s %s" % (names[tid], (a0, a1, n), (b0, b1, m))
calls = collections.Counter(e["name"] for e in ev if e["ph"] == "X" and e.get("cat") == "device")
for tid in sorted(names):
    print("%s: %d" % (names[tid], len(spans.get(tid, []))))
for n, c in sorted(calls.items()):
    print("call %s: %d" % (n, c))
"#;

/// The check's findings: `thread: spans` and `call name: count` lines.
fn checked(trace: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", CHECK])
        .arg(trace)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(trace)
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect::<String>()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(findings: &str, line: &str) -> usize {
    findings
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn nym_run_trace_writes_every_poll_sleep_and_call_of_the_jobs() {
    let (_tmp, dir) = project("hello", "hello");
    // A trace that cannot be written is refused before anything builds.
    let out = run(nym(&dir).args(["run", "--trace", "no/such/dir/t.json"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("writing the trace to") && !stderr(&out).contains("Compiling"),
        "{}",
        stderr(&out)
    );
    // QEMU's guests are not traced: said before anything builds.
    let out = run(nym(&dir).args(["run", "--trace", "t.json", "--target", "qemu"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--trace records the scheduler in-process"),
        "{}",
        stderr(&out)
    );

    let out = run(nym(&dir).args([
        "run", "--trace", "t.json", "--", "--count", "3", "--pause", "20ms",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("job hello: ") && err.contains("device call(s)"),
        "{err}"
    );
    let findings = checked(&dir.join("t.json"));
    // Three greetings and the verdict, two sleeps between them, each
    // sleep a poll more.
    assert!(count(&findings, "job hello") >= 3, "{findings}");
    assert_eq!(count(&findings, "call time.sleep"), 2, "{findings}");
    assert_eq!(count(&findings, "call console.log"), 4, "{findings}");
}

/// The guest records its log and the monitor collects it: the same
/// three greetings, two sleeps and four console writes as in-process,
/// with the executor's wake-ups and the background tasks beside them.
#[test]
fn nym_run_trace_on_kvm_collects_the_guests_log() {
    if !common::kvm_available() {
        return;
    }
    let (_tmp, dir) = project("hello", "hello");
    let out = run(nym(&dir).args([
        "run", "--target", "kvm", "--trace", "k.json", "--", "--count", "3", "--pause", "20ms",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("job hello: 3 poll(s)"), "{err}");
    let findings = checked(&dir.join("k.json"));
    assert_eq!(count(&findings, "job hello"), 3, "{findings}");
    assert_eq!(count(&findings, "call time.sleep"), 2, "{findings}");
    assert_eq!(count(&findings, "call console.puts"), 4, "{findings}");
    assert!(findings.contains("executor: "), "{findings}");
    assert!(
        findings.contains("devices (background tasks): "),
        "{findings}"
    );

    // Without --trace the monitor records nothing (and says so at boot:
    // the guest does not ask).
    let out = run(nym(&dir).args(["run", "--target", "kvm", "--", "--count", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("trace"), "{}", stderr(&out));
}

/// A server on kvm is stopped with Ctrl-C: the monitor stops the guest
/// and reads the events still in its buffer, and the trace is written
/// with the job's polls and the device calls each request made.
#[test]
fn an_interrupted_kvm_server_leaves_its_trace() {
    if !common::kvm_available() {
        return;
    }
    let (_tmp, dir) = project("web", "http");
    let port = free_port();
    let mut server = nym(&dir)
        .args(["run", "--target", "kvm", "--trace", "web.json", "-p"])
        .arg(format!("{port}:8080"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_body(port, "/", "Hello from nym!\n");
    for _ in 0..5 {
        get(port, "/").unwrap();
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    common::exit_within(
        &mut server,
        Duration::from_secs(60),
        "an interrupted traced guest ends",
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("written to"), "{err}");
    let findings = checked(&dir.join("web.json"));
    assert!(
        count(&findings, "job web") >= 6,
        "a poll per request at least: {findings}"
    );
    assert!(count(&findings, "call netif.recv") > 0, "{findings}");
    assert!(count(&findings, "call netif.send") >= 6, "{findings}");
}

#[test]
fn a_session_traces_the_http_example_under_wrk_and_shows_every_job() {
    let (_tmp, dir) = project("web", "http");
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let port = free_port();
    let mut s = Session::open(&dir, None).unwrap();
    let r = s.eval(":trace on /proc/nym-cannot-write/t.json");
    assert!(
        r.error && r.text.contains("cannot write the trace"),
        "{}",
        r.text
    );
    let r = s.eval(&format!(":run -- --port {port}"));
    assert!(
        !r.error,
        "{}\nlog:\n{}",
        r.text,
        s.log().tail(50).join("\n")
    );
    wait_for_body(port, "/", "Hello from nym!\n");
    let r = s.eval(":trace on trace.json");
    assert!(!r.error, "{}", r.text);
    assert!(s.eval(":trace").text.contains("tracing into"));
    // wrk comes with scripts/install.sh.
    let wrk = Command::new("wrk")
        .args(["-t1", "-c4", "-d1s"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk (scripts/install.sh installs it)");
    assert!(
        wrk.status.success(),
        "{}",
        String::from_utf8_lossy(&wrk.stderr)
    );
    get(port, "/kv/nope").unwrap_or_default();
    let r = s.eval("state.get(\"nope\")");
    assert!(r.error);
    std::thread::sleep(Duration::from_millis(50));
    let r = s.eval(":trace off");
    assert!(!r.error, "{}", r.text);
    assert!(r.text.contains("job web: "), "{}", r.text);
    let findings = checked(&dir.join("trace.json"));
    assert!(
        count(&findings, "job web") > 10,
        "every request polls the job: {findings}"
    );
    assert!(count(&findings, "call stack.accept") > 0, "{findings}");
    assert!(count(&findings, "call stack.read") > 0, "{findings}");
    assert!(
        count(&findings, "call state.get") >= 2,
        "the job's and the session's: {findings}"
    );
    assert!(findings.contains("session · devices"), "{findings}");
    let r = s.eval(":trace off");
    assert!(r.error && r.text.contains("not tracing"), "{}", r.text);
    assert!(s.eval(":stop").text.contains("stopped the stack"));
}
