//! Hot reload end to end: `nym run --watch` on the http template, a client
//! looping on it, and edits to the code and the graph.
mod common;

use common::{edit, get, nym, project, put, wait_for_body, Server};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a client looping on `GET /` saw.
#[derive(Default)]
struct Seen {
    bodies: Vec<String>,
    failures: Vec<String>,
}

#[test]
fn editing_code_and_graph_swaps_the_app_and_keeps_devices_sockets_and_state() {
    let (_tmp, dir) = project("live", "http");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--watch", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for_all(&["listening on port", "watching"]);
    put(port, "/kv/note", "written before the edit");

    // A client hammering the server through every swap below.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let done = Arc::new(AtomicBool::new(false));
    let client = {
        let (seen, done) = (seen.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let r = get(port, "/");
                let mut seen = seen.lock().unwrap();
                match r {
                    Ok(body) if !body.is_empty() => seen.bodies.push(body),
                    Ok(_) => seen.failures.push("an empty answer".into()),
                    Err(e) => seen.failures.push(e.to_string()),
                }
            }
        })
    };

    // 1. Edit the page: the new text is served, the store kept.
    edit(
        &dir.join("src/lib.rs"),
        "Hello from nym!",
        "Hello, reloaded!",
    );
    server.wait_for("nym: reloaded");
    wait_for_body(port, "/", "Hello, reloaded!\n");
    assert_eq!(get(port, "/kv/note").unwrap(), "written before the edit");

    // 2. A broken edit: cargo's error is shown, the old code keeps serving.
    edit(
        &dir.join("src/lib.rs"),
        "pub const INDEX",
        "pub const INDEX oops",
    );
    let report = server.wait_for("keeps running").join("\n");
    assert!(
        report.contains("error"),
        "the build error is shown:\n{report}"
    );
    assert_eq!(get(port, "/").unwrap(), "Hello, reloaded!\n");
    // ... and fixing it swaps.
    edit(
        &dir.join("src/lib.rs"),
        "pub const INDEX oops",
        "pub const INDEX",
    );
    edit(&dir.join("src/lib.rs"), "Hello, reloaded!", "Hello, fixed!");
    server.wait_for("nym: reloaded");
    wait_for_body(port, "/", "Hello, fixed!\n");

    // 3. A graph edit that changes one device: the files. The store and
    // the stack are untouched.
    std::fs::create_dir(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/hello.txt"), "from public/\n").unwrap();
    edit(
        &dir.join("unikernel.nym"),
        r#"kv::baked("www")"#,
        r#"kv::baked("public")"#,
    );
    server.wait_for("new devices: files");
    wait_for_body(port, "/hello.txt", "from public/\n");
    assert_eq!(get(port, "/kv/note").unwrap(), "written before the edit");

    done.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "{} of {} requests failed during the swaps: {:?}",
        seen.failures.len(),
        seen.failures.len() + seen.bodies.len(),
        &seen.failures[..seen.failures.len().min(5)]
    );
    for text in ["Hello from nym!\n", "Hello, reloaded!\n", "Hello, fixed!\n"] {
        assert!(
            seen.bodies.iter().any(|b| b == text),
            "the loop never saw {text:?}"
        );
    }
}

#[test]
fn watch_is_refused_for_targets_that_do_not_run_in_process() {
    let (_tmp, dir) = project("nowatch", "hello");
    let out = common::run(nym(&dir).args(["run", "--watch", "--target", "kvm"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("--watch reloads the application in-process"));
}
