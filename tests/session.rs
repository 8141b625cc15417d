//! The interactive session end to end, on the http template: `:run`
//! builds and serves, a statement re-wires the running stack keeping the
//! devices it did not change, `:inspect` shows live state, an edit of
//! src/lib.rs hot-reloads (counted in the status bar), `:stop` stops.
mod common;

use common::{edit, get, project, put, wait_for_body};
use nym_repl::session::RunState;
use nym_repl::Session;

#[test]
fn a_session_runs_rewires_inspects_reloads_and_stops_the_http_template() {
    let (_tmp, dir) = project("web", "http");
    // The session builds with cargo in-process: share the tests' target.
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let port = common::free_port();
    let mut s = Session::open(&dir, None).unwrap();
    let r = s.eval(&format!(":run -- --port {port}"));
    assert!(
        !r.error,
        "{}\nlog:\n{}",
        r.text,
        s.log().tail(50).join("\n")
    );
    assert!(r.text.contains("running in-process"), "{}", r.text);
    assert_eq!(s.status().state, RunState::Running);
    wait_for_body(port, "/", "Hello from nym!\n");
    put(port, "/kv/greeting", "kept");
    assert!(get(port, "/hello.txt")
        .unwrap()
        .contains("baked into the program"));

    let i = s.eval(":inspect state");
    assert!(i.text.contains("greeting = \"kept\""), "{}", i.text);
    let i = s.eval(":inspect stack");
    assert!(
        i.text.contains(&format!("listening on [{port}]")),
        "{}",
        i.text
    );

    // Re-wire one device while running: the files become an empty store;
    // the state store and the stack are kept, so is what was written.
    let r = s.eval("let files = kv::mem();");
    assert!(!r.error, "{}", r.text);
    assert!(r.text.contains("re-wired"), "{}", r.text);
    assert!(r.text.contains("new files"), "{}", r.text);
    let kept = r.text.split("kept ").nth(1).unwrap_or("");
    assert!(
        kept.contains("state") && kept.contains("stack"),
        "{}",
        r.text
    );
    assert_eq!(get(port, "/kv/greeting").unwrap(), "kept");
    let missing = get(port, "/hello.txt").unwrap();
    assert!(
        !missing.contains("baked"),
        "the new files store is empty: {missing}"
    );

    // An edit of the application reloads it; the status bar counts it.
    let before = s.status().reloads;
    edit(
        &dir.join("src/lib.rs"),
        "Hello from nym!",
        "Hello from the session!",
    );
    wait_for_body(port, "/", "Hello from the session!\n");
    let st = s.status();
    assert_eq!(st.reloads, before + 1, "{st:?}");
    assert!(
        st.last_reload
            .as_deref()
            .is_some_and(|r| r.contains("swap")),
        "{st:?}"
    );
    assert!(st.last_swap.is_some(), "{st:?}");
    assert!(s.log().tail(200).iter().any(|l| l.contains("reloaded")));
    assert_eq!(get(port, "/kv/greeting").unwrap(), "kept");

    let r = s.eval(":stop");
    assert!(r.text.contains("stopped the stack"), "{}", r.text);
    assert!(get(port, "/").is_err(), "the port is closed after :stop");
    assert_eq!(s.status().state, RunState::Stopped);
}

/// `:boot` on kvm runs nym's monitor inside the session's own process:
/// the guest's console reaches the log, only the vCPU thread is under the
/// monitor's system-call allowlist, `:stop` ends a guest that would run
/// for minutes, and a guest that ended does not block the next `:boot`.
#[test]
fn a_session_boots_kvm_in_process_confines_only_the_vcpu_and_stops_it() {
    if !common::kvm_available() {
        return;
    }
    let (_tmp, dir) = project("greeter", "hello");
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let mut s = Session::open(&dir, None).unwrap();
    assert!(!s.eval(":target kvm").error);
    let r = s.eval(":boot -- --count 100000 --pause 50ms");
    assert!(!r.error, "{}", r.text);
    assert_eq!(s.status().state, RunState::Booted(nym_graph::Target::Kvm));
    let log = |s: &Session| s.log().tail(400).join("\n");
    let started = std::time::Instant::now();
    while !log(&s).contains("hello from nym #3") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "{}",
            log(&s)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Each thread's seccomp mode: the vCPU's is a filter (2), ours none.
    let mode = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(|v| v.trim().to_owned())
    };
    let mut vcpu = None;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if name.trim() == "nym-boot" {
            vcpu = mode(&std::fs::read_to_string(task.join("status")).unwrap());
        }
    }
    assert_eq!(vcpu.as_deref(), Some("2"), "the vCPU thread is filtered");
    assert_eq!(
        mode(&std::fs::read_to_string("/proc/self/status").unwrap()).as_deref(),
        Some("0"),
        "the session's own thread is not"
    );
    assert!(
        s.eval(":boot").text.contains(":stop"),
        "one guest at a time"
    );

    let r = s.eval(":stop");
    assert_eq!(r.text, "stopped the guest", "{}", log(&s));
    let started = std::time::Instant::now();
    while !log(&s).contains("nym: the kvm guest was stopped") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            log(&s)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let seen = log(&s).matches("hello from nym #").count();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        log(&s).matches("hello from nym #").count(),
        seen,
        "nothing prints after the stop"
    );

    // A guest that ends on its own is reported, and the next :boot starts.
    let r = s.eval(":boot -- --count 1 --pause 1ms");
    assert!(!r.error, "{}", r.text);
    let started = std::time::Instant::now();
    while !log(&s).contains("nym: the kvm guest exited with 0") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{}",
            log(&s)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = s.eval(":boot -- --count 1 --pause 1ms");
    assert!(!r.error, "a finished guest blocks nothing: {}", r.text);
    let r = s.eval(":boot -p nope");
    assert!(
        r.text.contains("`nope` is not a port forward"),
        "{}",
        r.text
    );
}

/// `input`'s reply, which must not be an error.
fn ok(s: &mut Session, input: &str) -> String {
    let r = s.eval(input);
    assert!(!r.error, "{input}: {}", r.text);
    r.text
}

/// A session serving the http template (its graph with `edit.0` replaced
/// by `edit.1`) on a free port: the project, the session, the port.
fn serving_http(edit: (&str, &str)) -> (tempfile::TempDir, std::path::PathBuf, Session, u16) {
    let (tmp, dir) = project("web", "http");
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    if !edit.0.is_empty() {
        let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
        assert!(graph.contains(edit.0), "{graph}");
        std::fs::write(dir.join("unikernel.nym"), graph.replace(edit.0, edit.1)).unwrap();
    }
    let port = common::free_port();
    let mut s = Session::open(&dir, None).unwrap();
    let r = s.eval(&format!(":run -- --port {port}"));
    assert!(
        !r.error,
        "{}\nlog:\n{}",
        r.text,
        s.log().tail(50).join("\n")
    );
    wait_for_body(port, "/", "Hello from nym!\n");
    (tmp, dir, s, port)
}

/// Device calls from the session reach the live devices of the running
/// http template: a value set from the REPL is served over HTTP, one PUT
/// over HTTP is read back, a device's error is printed while the stack
/// serves on, and what cannot be called says why.
#[test]
fn device_calls_reach_the_devices_the_running_http_template_serves_from() {
    let (_tmp, _dir, mut s, port) = serving_http(("", ""));

    assert_eq!(
        ok(&mut s, "state.set(\"greeting\", \"set from the REPL\")"),
        "ok"
    );
    assert_eq!(get(port, "/kv/greeting").unwrap(), "set from the REPL");
    put(port, "/kv/visitor", "Ada");
    assert_eq!(ok(&mut s, "state.get(\"visitor\")"), "\"Ada\" (3 bytes)");
    assert_eq!(
        ok(&mut s, "state.list()"),
        "2 key(s)\n\"greeting\"\n\"visitor\""
    );
    assert!(ok(&mut s, "files.list()").contains("\"hello.txt\""));
    assert!(ok(&mut s, "stack.describe()").contains(&format!("listening on [{port}]")));
    assert_eq!(ok(&mut s, "console.log(\"hi from the session\")"), "ok");
    assert!(s.log().tail(50).iter().any(|l| l == "hi from the session"));

    // A device's error is printed; the stack serves on.
    let r = s.eval("state.get(\"nope\")");
    assert!(
        r.error && r.text.contains("no value for key \"nope\""),
        "{}",
        r.text
    );
    let r = s.eval("state.set(\"\", \"x\")");
    assert!(r.error && r.text.contains("the key is empty"), "{}", r.text);
    assert_eq!(get(port, "/kv/greeting").unwrap(), "set from the REPL");

    // The checker refuses a wrong call before anything runs.
    let r = s.eval("files.set(\"a\", \"b\")");
    assert!(
        r.error && r.text.contains("only a `Kv` has `set`"),
        "{}",
        r.text
    );
    let r = s.eval("stack.listen(80)");
    assert!(
        r.error && r.text.contains("cannot be called from a session"),
        "{}",
        r.text
    );
    // A device no job uses is not in the running stack.
    ok(&mut s, "let spare = kv::mem();");
    let r = s.eval("spare.get(\"k\")");
    assert!(
        r.error && r.text.contains("not in the running stack"),
        "{}",
        r.text
    );

    let r = s.eval(":stop");
    assert!(r.text.contains("stopped the stack"), "{}", r.text);
    let r = s.eval("state.get(\"greeting\")");
    assert!(r.error && r.text.contains("nothing runs"), "{}", r.text);
}

/// Versioned device state: every store of the running stack records its
/// changes, whoever made them (an HTTP PUT, a call from the session);
/// `:history`, `:diff` and `:revert` read and roll them back through the
/// live store, so the server serves the old page again; a change that
/// fell off the bound says so.
#[test]
fn history_diff_and_revert_roll_back_what_the_running_server_serves() {
    let (_tmp, _dir, mut s, port) = serving_http(("", ""));

    put(port, "/kv/page", "first version");
    ok(&mut s, "state.set(\"page\", \"second version\")");
    put(port, "/kv/other", "x");
    put(port, "/kv/page", "third version");
    assert_eq!(get(port, "/kv/page").unwrap(), "third version");

    let h = ok(&mut s, ":history state");
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 4, "{h}");
    assert!(
        lines[0].starts_with("#1 ") && lines[0].ends_with("set page = \"first version\" (new key)"),
        "{h}"
    );
    assert!(
        lines[1].ends_with("set page = \"second version\" (was \"first version\")"),
        "{h}"
    );
    assert!(lines[3].starts_with("#4 "), "{h}");
    assert_eq!(ok(&mut s, ":history state page").lines().count(), 3);
    let all = ok(&mut s, ":history");
    assert!(
        all.contains("state: 4 change(s), #1–#4 (keeps 1000)"),
        "{all}"
    );
    let i = ok(&mut s, ":inspect state");
    assert!(i.contains("history: 4 change(s) kept, #1–#4"), "{i}");

    let d = ok(&mut s, ":diff state 1 4");
    assert_eq!(
        d,
        "state #1 → #4: 2 key(s) differ\n  other: (none) → \"x\"\n  page: \"first version\" → \"third version\""
    );

    // Back to before #2: the first version is served again; the revert is
    // itself recorded, so it can be undone.
    let r = ok(&mut s, ":revert state 2");
    assert!(
        r.contains("2 key(s) written through the live store (recorded as #5–#6)"),
        "{r}"
    );
    assert_eq!(get(port, "/kv/page").unwrap(), "first version");
    let h = ok(&mut s, ":history state page");
    assert!(
        h.lines().last().unwrap().contains("[revert to before #2]"),
        "{h}"
    );
    ok(&mut s, ":revert state 5");
    assert_eq!(get(port, "/kv/page").unwrap(), "third version");

    // A bound of 2: #1 has fallen off.
    ok(&mut s, ":history --bound 2");
    let r = s.eval(":revert state 1");
    assert!(
        r.error
            && r.text.contains(
                "change #1 fell off the history (it keeps the last 2; the oldest kept is #7)"
            ),
        "{}",
        r.text
    );
    let r = s.eval(":diff state 1 8");
    assert!(r.error && r.text.contains("fell off"), "{}", r.text);
    let r = s.eval(":history files");
    assert!(r.error && r.text.contains("read-only"), "{}", r.text);
    let r = s.eval(":revert state 99");
    assert!(
        r.error && r.text.contains("there is no change #99 yet"),
        "{}",
        r.text
    );
    assert_eq!(get(port, "/kv/page").unwrap(), "third version");
    assert!(s.eval(":stop").text.contains("stopped the stack"));
}

/// A `stack::direct` keeps the same history view as a store: its sockets'
/// states (and the neighbours it learns, unit-tested in libos), read-only.
#[test]
fn a_direct_stacks_sockets_have_a_history_that_cannot_be_reverted() {
    let (_tmp, dir) = project("web", "http");
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
    let graph = graph.replace(
        "unix => stack::socket(),",
        "unix => stack::direct(netif::pair(\"lan\"), key(\"ipv4\", \"10.0.0.1/24\")),",
    );
    std::fs::write(dir.join("unikernel.nym"), graph).unwrap();
    let mut s = Session::open(&dir, None).unwrap();
    let r = s.eval(":run -- --port 8080");
    assert!(
        !r.error,
        "{}\nlog:\n{}",
        r.text,
        s.log().tail(50).join("\n")
    );
    // The job listens: its listening sockets are the stack's first changes.
    let mut h = String::new();
    for _ in 0..100 {
        h = ok(&mut s, ":history stack");
        if h.contains("LISTEN :8080") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        h.lines().next().is_some_and(|l| l.starts_with("#1 "))
            && h.contains("set tcp #")
            && h.contains("= \"LISTEN :8080\" (new key)"),
        "{h}"
    );
    let all = ok(&mut s, ":history");
    assert!(
        all.contains("stack: ") && all.contains("state: no changes yet"),
        "{all}"
    );
    let r = s.eval(":revert stack 1");
    assert!(
        r.error
            && r.text
                .contains("is a record of what happened: it cannot be put back"),
        "{}",
        r.text
    );
    let i = ok(&mut s, ":inspect stack");
    assert!(
        i.contains("listening on [8080]") && i.contains("history: "),
        "{i}"
    );
    assert!(ok(&mut s, ":stop").contains("stopped"));
}

/// `kv::history(kv, bound)` in the graph is the store's history in the
/// session: its bound, not the session's, and the store it wraps is not
/// recorded twice.
#[test]
fn a_kv_history_of_the_graph_keeps_its_own_bound() {
    let (_tmp, _dir, mut s, port) = serving_http((
        "let state   = kv::mem();",
        "let state   = kv::history(kv::mem(), bound = 2);",
    ));
    for v in ["one", "two", "three"] {
        put(port, "/kv/page", v);
    }
    let h = ok(&mut s, ":history state");
    assert_eq!(h.lines().count(), 3, "{h}");
    assert!(
        h.starts_with("#2 ") && h.contains("(changes before #2 fell off: it keeps the last 2)"),
        "{h}"
    );
    let all = ok(&mut s, ":history");
    assert_eq!(
        all.matches("change(s)").count(),
        1,
        "one store recorded, once: {all}"
    );
    let r = s.eval(":revert state 1");
    assert!(r.error && r.text.contains("fell off"), "{}", r.text);
    ok(&mut s, ":revert state 3");
    assert_eq!(get(port, "/kv/page").unwrap(), "two");
    assert!(ok(&mut s, ":stop").contains("stopped"));
}
