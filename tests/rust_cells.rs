//! Rust cells through evcxr, with the project's crate and libos as
//! dependencies. Slow: the first cell compiles libos and the project in
//! evcxr's own build directory (a minute on two cores), so everything is
//! checked in one test; it runs in CI like the others.
mod common;

use common::project;
use nym_repl::Session;

#[test]
fn rust_cells_call_the_project_build_a_device_keep_variables_and_show_errors() {
    let (_tmp, dir) = project("web", "http");
    // evcxr's build directory goes to the cache: the test's own, but under
    // $HOME like a user's, where the toolchain (~/.rustup) is reached by a
    // relative RUNPATH that a cell's library must not depend on.
    let home = std::env::var_os("HOME").expect("HOME");
    let cache = tempfile::tempdir_in(home).unwrap();
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    // cargo runs tests with the toolchain's libraries on LD_LIBRARY_PATH;
    // a user's shell has none, and cells must load all the same.
    std::env::remove_var("LD_LIBRARY_PATH");
    let mut s = Session::open(&dir, None).unwrap();
    // This test's own binary cannot be evcxr's runtime; nym-studio, which
    // runs the REPL, can.
    s.set_rust_runtime(env!("CARGO_BIN_EXE_nym-studio").into());
    let eval = |s: &mut Session, code: &str| {
        let r = s.eval_rust(code);
        assert!(!r.error, "{code}\n=> {}", r.text);
        r.text
    };

    // A compile error is rendered as rustc does, placed in the cell (the
    // first cell also carries the dependencies: the place must not move).
    let r = s.eval_rust("let n = 1;\nlet x: u8 = \"a\";");
    assert!(r.error);
    let has = |t: &str| r.text.contains(t);
    assert!(has("error[E0308]: mismatched types"), "{}", r.text);
    assert!(has("--> cell:2:13"), "{}", r.text);
    assert!(has("2 | let x: u8 = \"a\";"), "{}", r.text);
    assert!(!has(":dep"), "{}", r.text);

    // The application's crate: its constant, as the http template has it.
    let index = eval(&mut s, "web::INDEX");
    assert_eq!(index, r#""Hello from nym!\n""#);

    // A device from libos, used across cells: variables persist.
    eval(
        &mut s,
        "use libos::{Kv, KvRo};\nlet kv = libos::kv::Mem::new();\nlibos::task::block_on(kv.set(\"greeting\", b\"hi\")).unwrap();",
    );
    let got = eval(
        &mut s,
        "String::from_utf8(libos::task::block_on(kv.get(\"greeting\")).unwrap()).unwrap()",
    );
    assert_eq!(got, r#""hi""#);
    let printed = eval(&mut s, "println!(\"{} key(s)\", kv.len());");
    assert_eq!(printed, "1 key(s)");

    let r = s.eval_rust("let y: u8 = \"b\";");
    assert!(r.error && r.text.contains("--> cell:1:13"), "{}", r.text);
    // ...and an error does not lose the variables.
    assert_eq!(eval(&mut s, "kv.len()"), "1");

    // evcxr's `:quit` would end nym itself: refused.
    let r = s.eval_rust(":quit");
    assert!(r.error && r.text.contains(":nym"), "{}", r.text);

    // A cell that hangs is interrupted (Ctrl-C in the REPL does this); the
    // next cell starts a new context.
    let stop = s.rust_interrupt();
    let killer = std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if stop.fire() {
                return true;
            }
        }
        false
    });
    let r = s.eval_rust("std::thread::sleep(std::time::Duration::from_secs(600));");
    assert!(killer.join().unwrap(), "nothing to interrupt");
    assert!(
        r.error && r.text.contains("variables are lost"),
        "{}",
        r.text
    );
    assert_eq!(eval(&mut s, "web::INDEX.len()"), "16");

    // Rust cells are saved with the notebook.
    let nb = dir.join("cells.md");
    let r = s.eval(&format!(":save {}", nb.display()));
    assert!(!r.error, "{}", r.text);
    let saved = std::fs::read_to_string(&nb).unwrap();
    assert!(saved.contains("```rust\nweb::INDEX\n```"), "{saved}");

    // The running stack's devices: a cell that names one is told why it
    // cannot reach it, and `inspect!(NAME)` gives it a copy.
    let r = s.eval_rust("inspect!(state).entries.len()");
    assert!(r.error && r.text.contains("nothing runs"), "{}", r.text);
    std::env::set_var("CARGO_TARGET_DIR", common::shared_target());
    let port = common::free_port();
    let r = s.eval(&format!(":run -- --port {port}"));
    assert!(!r.error, "{}", r.text);
    common::wait_for_body(port, "/", "Hello from nym!\n");
    common::put(port, "/kv/greeting", "hi from http");
    let r = s.eval_rust("state.get(\"greeting\")");
    assert!(
        r.error
            && r.text.contains("`state` is a device of the graph")
            && r.text.contains("inspect!(state)"),
        "{}",
        r.text
    );
    eval(&mut s, "let snap = inspect!(state);");
    assert_eq!(
        eval(&mut s, "snap.text(\"greeting\")"),
        r#"Some("hi from http")"#
    );
    assert_eq!(eval(&mut s, "snap.kind.clone()"), r#""Kv""#);
    // A copy: the stack's store changes, the snapshot does not.
    common::put(port, "/kv/greeting", "changed");
    assert_eq!(
        eval(
            &mut s,
            "(snap.text(\"greeting\"), inspect!(state).text(\"greeting\"))"
        ),
        r#"(Some("hi from http"), Some("changed"))"#
    );
    assert!(s.eval(":stop").text.contains("stopped the stack"));
}
