//! Hot reload end to end: `nym run --watch` on the http template, a client
//! looping on it, and edits to the code and the graph.
mod common;

use common::{edit, get, nym, project, put, wait_for_body, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads one whole response: its head, then as many bytes of body as its
/// Content-Length says. A response cut short is an error.
fn response(r: &mut impl BufRead) -> std::io::Result<(String, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!(
                "cut off in the head: {head:?}"
            )));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no Content-Length: {head:?}")))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((head, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` on a fresh connection: the whole body of a 200 answer.
fn get_whole(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let (head, body) = response(&mut BufReader::new(s)).map_err(|e| e.to_string())?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {head:?}"));
    }
    Ok(body)
}

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

    // A keep-alive connection that is idle when the swap comes.
    let idle = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut idle = BufReader::new(idle);
    idle.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, _) = response(&mut idle).unwrap();
    assert!(!head.contains("Connection: close"), "kept alive: {head}");

    // A client hammering the server through every swap below.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let done = Arc::new(AtomicBool::new(false));
    let client = {
        let (seen, done) = (seen.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let r = get_whole(port);
                let mut seen = seen.lock().unwrap();
                match r {
                    Ok(body) if !body.is_empty() => seen.bodies.push(body),
                    Ok(_) => seen.failures.push("an empty answer".into()),
                    Err(e) => seen.failures.push(e),
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
    // The idle connection was closed cleanly by the swap: an end of
    // stream, not a reset.
    let mut rest = Vec::new();
    match idle.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => panic!("the idle connection ended with {e} ({:?})", e.kind()),
    }

    // 2. A broken edit: cargo's error is shown, the old code keeps serving.
    edit(
        &dir.join("src/lib.rs"),
        "pub const INDEX",
        "pub const INDEX oops",
    );
    let report = server.wait_for("keeps running").join("\n");
    // rustc's own words, with the line it points at.
    for want in ["expected one of", "found `oops`", "pub const INDEX oops"] {
        assert!(
            report.contains(want),
            "the build error is shown as cargo prints it ({want:?}):\n{report}"
        );
    }
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
