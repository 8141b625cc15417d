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
