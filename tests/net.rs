//! Networking end to end: the echo and http templates served by `nym run`
//! to real clients (`curl`, raw sockets), over the host's sockets and over
//! `stack::direct` on a tap device inside a network namespace.
mod common;

use common::{nym, project, required, runs, Server};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `curl` with `args`, in network namespace `netns` if given; returns
/// (HTTP status, body).
fn curl(netns: Option<&str>, args: &[&str]) -> (u16, String) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Whether curl runs (see [`required`]).
fn curl_available() -> bool {
    required(
        runs("curl"),
        "curl is missing: scripts/install.sh installs it",
    )
}

/// `nym run --target TARGET -p PORT:GUEST` in `dir`, once the guest listens.
fn forwarded(dir: &Path, target: &str, port: u16, guest: u16) -> Server {
    let mut server = Server::start({
        let mut c = nym(dir);
        // The guest listens on the port its `port` key says.
        let guest = guest.to_string();
        c.args(["run", "--target", target, "-p", &format!("{port}:{guest}")]);
        c.args(["--", "--port", &guest]);
        c
    });
    server.wait_for(&format!("listening on port {guest}"));
    server
}

/// The checks every http server passes, at `base` (`http://host:port`, or
/// `https://…` with the CA to trust in `cacert`).
fn http_answers_like_a_web_server(netns: Option<&str>, base: &str, cacert: Option<&str>) {
    let curl = |args: &[&str]| {
        let mut all: Vec<&str> = cacert.map_or(vec![], |ca| vec!["--cacert", ca]);
        all.extend(args);
        curl(netns, &all)
    };
    assert_eq!(
        curl(&[&format!("{base}/")]),
        (200, "Hello from nym!\n".into())
    );
    let (code, body) = curl(&[&format!("{base}/hello.txt")]);
    assert_eq!(code, 200);
    assert!(body.contains("baked into the program"), "{body}");
    assert_eq!(curl(&[&format!("{base}/missing")]).0, 404);
    assert_eq!(
        curl(&[
            "-X",
            "PUT",
            "--data-binary",
            "kept",
            &format!("{base}/kv/note")
        ])
        .0,
        204
    );
    assert_eq!(curl(&[&format!("{base}/kv/note")]), (200, "kept".into()));
    assert_eq!(curl(&["-X", "DELETE", &format!("{base}/kv/note")]).0, 405);
    // Several requests on one kept-alive connection.
    let (code, body) = curl(&[&format!("{base}/"), &format!("{base}/hello.txt")]);
    assert_eq!(code, 200);
    assert!(body.starts_with("Hello from nym!\n"), "{body}");
}

fn wait_until_connectable(port: u16) {
    for _ in 0..600 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port}");
}

fn send_raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn http_template_serves_curl_over_host_sockets_and_survives_bad_clients() {
    if !curl_available() {
        return;
    }
    let (_tmp, dir) = project("web", "http");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    let base = format!("http://127.0.0.1:{port}");
    http_answers_like_a_web_server(None, &base, None);

    // A client that connects and vanishes, one that sends half a request
    // and stalls, and garbage: each gets nothing or a 4xx, and the server
    // goes on serving everyone else meanwhile.
    drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    let mut stalled = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    stalled.write_all(b"GET / HT").unwrap();
    assert!(send_raw(port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(send_raw(port, b"GET /\r\n\r\n").starts_with("HTTP/1.1 400"));
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(send_raw(port, huge.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(send_raw(
        port,
        b"PUT /kv/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"
    )
    .starts_with("HTTP/1.1 413"));
    assert_eq!(curl(None, &[&format!("{base}/")]).0, 200, "still serving");
    drop(stalled);
}

#[test]
fn echo_template_echoes_many_connections_at_once() {
    let (_tmp, dir) = project("loud", "echo");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    wait_until_connectable(port);
    let mut conns: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap())
        .collect();
    // Write on all before reading any: served concurrently, not in turn.
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(format!("line {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().rev().enumerate() {
        let want = format!("line {}\n", 19 - i);
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let (_tmp, dir) = project("busy", "echo");
    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = common::run(nym(&dir).args(["run", "--", "--port", &port.to_string()]));
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on port {port}: address in use")),
        "{err}"
    );
    assert!(err.contains("echo"), "names the job: {err}");
}

/// A network namespace with a tap device `tap0` at 10.0.0.1/24, removed
/// when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Option<Netns> {
        // One per test: the tap tests run at once in one process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("nym-test-{}-{n}", std::process::id());
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns(name.clone());
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &name, "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        let ok = inside(&["link", "set", "lo", "up"])
            && inside(&["tuntap", "add", "tap0", "mode", "tap"])
            && inside(&["addr", "add", "10.0.0.1/24", "dev", "tap0"])
            && inside(&["link", "set", "tap0", "up"]);
        ok.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

impl Netns {
    /// [`Netns::new`], or a loud failure under CI (see [`required`]).
    fn required() -> Option<Netns> {
        let ns = Netns::new();
        let ok = required(
            ns.is_some(),
            "cannot create a network namespace with a tap device (needs root and iproute2)",
        );
        if ok {
            ns
        } else {
            None
        }
    }

    /// `nym ARGS` in project `dir`, inside the namespace.
    fn nym(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, env!("CARGO_BIN_EXE_nym")])
            .args(args)
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", common::shared_target())
            .env("NO_COLOR", "1");
        c
    }
}

/// Replaces `from` by `to` in the project's graph (which must contain it).
fn edit_graph(dir: &Path, from: &str, to: &str) {
    let path = dir.join("unikernel.nym");
    let graph = std::fs::read_to_string(&path).unwrap();
    assert!(graph.contains(from), "{graph}");
    std::fs::write(path, graph.replace(from, to)).unwrap();
}

#[test]
fn http_over_stack_direct_on_a_tap_in_a_network_namespace() {
    if !curl_available() {
        return;
    }
    let Some(ns) = Netns::required() else {
        return;
    };
    let (_tmp, dir) = project("tapweb", "http");
    edit_graph(
        &dir,
        "stack::socket()",
        r#"stack::direct(netif::tap("tap0"), key("ipv4", "10.0.0.2/24"))"#,
    );
    let mut server = Server::start(ns.nym(&dir, &["run"]));
    server.wait_for("listening on port 8080");
    http_answers_like_a_web_server(Some(&ns.0), "http://10.0.0.2:8080", None);
    // The host sees the stack's own MAC in its neighbour table: ARP was answered by smoltcp.
    let neigh = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ip", "neigh", "show", "10.0.0.2"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains("lladdr"), "{neigh}");
    drop(server);
}

#[test]
fn http_on_kvm_over_a_tap_is_a_host_on_the_taps_network() {
    if !common::kvm_available() || !curl_available() {
        return;
    }
    let Some(ns) = Netns::required() else {
        return;
    };
    let (_tmp, dir) = project("kvmtap", "http");
    let in_ns = |args: &[&str]| ns.nym(&dir, args);
    // --tap is kvm's, and replaces port forwarding.
    let out = common::run(&mut in_ns(&["run", "--tap", "tap0"]));
    assert!(common::stderr(&out).contains("--tap puts a kvm guest on the tap's network"));
    let out = common::run(&mut in_ns(&[
        "run",
        "--target",
        "kvm",
        "--tap",
        "nosuchtap/",
    ]));
    assert!(common::stderr(&out).contains("is not a valid interface name"));

    let mut server = Server::start(in_ns(&[
        "run",
        "--target",
        "kvm",
        "--tap",
        "tap0",
        "--",
        "--ipv4",
        "10.0.0.2/24",
    ]));
    server.wait_for("listening on port 8080");
    // The host's own stack talks to the guest: checksums computed and
    // checked on both sides, ARP answered by the guest.
    http_answers_like_a_web_server(Some(&ns.0), "http://10.0.0.2:8080", None);
    drop(server);
}

#[test]
fn http_on_kvm_is_served_to_curl_through_port_forwarding() {
    if !common::kvm_available() || !curl_available() {
        return;
    }
    let (_tmp, dir) = project("kvmweb", "http");
    // Without a forward the monitor refuses to boot, naming what is missing.
    let out = common::run(nym(&dir).args(["run", "--target", "kvm"]));
    assert_ne!(out.status.code(), Some(0));
    let err = common::stderr(&out);
    assert!(
        err.contains("network") && err.contains("-p HOST:GUEST"),
        "{err}"
    );

    // Not the template's port: `-p HOST:9000 -- --port 9000`.
    let port = common::free_port();
    let _server = forwarded(&dir, "kvm", port, 9000);
    http_answers_like_a_web_server(None, &format!("http://127.0.0.1:{port}"), None);
    // The image links the stack its graph names, and no TLS.
    let image = dir.join("target/nym/kvm/kvmweb.elf");
    assert!(common::links(&image, "smoltcp"));
    assert!(!common::links(&image, "rustls"));
    // A client that connects and vanishes, and garbage: the guest serves on.
    drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    assert!(send_raw(port, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert_eq!(curl(None, &[&format!("http://127.0.0.1:{port}/")]).0, 200);
}

#[test]
fn http_on_qemu_is_served_to_curl_through_virtio_net_and_port_forwarding() {
    if !common::qemu_available() || !curl_available() {
        return;
    }
    let (_tmp, dir) = project("qemuweb", "http");
    // Without a forward there is no network device: the guest says so.
    let out = common::run(nym(&dir).args(["run", "--target", "qemu"]));
    assert_ne!(out.status.code(), Some(0));
    let text = common::stdout(&out) + &common::stderr(&out);
    assert!(
        text.contains("virtio-net device (run with -p HOST:GUEST"),
        "{text}"
    );

    let port = common::free_port();
    let _server = forwarded(&dir, "qemu", port, 8080);
    http_answers_like_a_web_server(None, &format!("http://127.0.0.1:{port}"), None);
    drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    assert!(send_raw(port, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // A body of some 28 frames each way (over the whole test, the 32-entry
    // receive ring wraps several times). Guest code runs about a thousand
    // times slower than host code on these machines (BENCHMARKS.md), which
    // bounds what a test can send within curl's 10 s.
    let big = "x".repeat(40_000);
    let file = _tmp.path().join("big");
    std::fs::write(&file, &big).unwrap();
    assert_eq!(
        curl(
            None,
            &[
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("http://127.0.0.1:{port}/kv/big")
            ]
        )
        .0,
        204
    );
    assert_eq!(
        curl(None, &[&format!("http://127.0.0.1:{port}/kv/big")]),
        (200, big)
    );
}

#[test]
fn a_stack_addressed_by_qemus_dhcp_server_serves_curl() {
    if !common::qemu_available() || !curl_available() {
        return;
    }
    let (_tmp, dir) = project("dhcpweb", "http");
    edit_graph(
        &dir,
        r#"stack::direct(netif::default(), key("ipv4", "10.0.2.15/24"))"#,
        "stack::dhcp(netif::default())",
    );
    let port = common::free_port();
    let _server = forwarded(&dir, "qemu", port, 8080);
    // QEMU forwards to 10.0.2.15, the address its DHCP server leases first:
    // the guest answers once it holds the lease. With the lease's timers
    // hours away, an idle guest wakes for a frame only through the virtio
    // interrupt: this also guards its routing (a guest that only polled
    // never answered here).
    let base = format!("http://127.0.0.1:{port}");
    let answered =
        (0..5).any(|_| curl(None, &[&format!("{base}/")]) == (200, "Hello from nym!\n".into()));
    assert!(answered, "no answer from the guest configured by DHCP");
}

#[test]
fn a_forwarded_port_in_use_and_forwards_off_kvm_are_clear_errors() {
    let (_tmp, dir) = project("fwd", "echo");
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = common::run(nym(&dir).args(["run", "--target", "kvm", "-p", &format!("{port}:7")]));
    assert_ne!(out.status.code(), Some(0));
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("cannot forward port {port}")),
        "{err}"
    );
    let out = common::run(nym(&dir).args(["run", "-p", "8080:7"]));
    assert!(common::stderr(&out).contains("-p forwards host ports to a unikernel"));
    let out = common::run(nym(&dir).args(["run", "--target", "qemu", "-p", &format!("{port}:7")]));
    assert!(
        common::stderr(&out).contains(&format!("cannot forward port {port}")),
        "{}",
        common::stderr(&out)
    );
    let out = common::run(nym(&dir).args(["run", "--target", "kvm", "-p", "80"]));
    assert!(common::stderr(&out).contains("not a port forward"));
}

/// `openssl s_client` against 127.0.0.1:`port`, trusting only `ca` and
/// expecting a certificate for localhost: (whether it verified, output).
fn s_client(port: u16, ca: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            ca,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .args(["-servername", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        text,
    )
}

/// What every https server passes: the http checks through curl trusting
/// only the test CA, openssl's verification, a refused foreign CA, and a
/// client speaking plain HTTP to the TLS port.
fn https_answers_with_its_certificate(port: u16, ca: &str) {
    http_answers_like_a_web_server(None, &format!("https://127.0.0.1:{port}"), Some(ca));
    let (verified, text) = s_client(port, ca);
    assert!(verified, "openssl s_client did not verify:\n{text}");
    assert!(text.contains("TLSv1.3"), "{text}");
    // The template's demo CA did not sign the test certificate.
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/https/tls/ca.pem");
    let (verified, text) = s_client(port, demo);
    assert!(!verified, "a foreign CA was accepted:\n{text}");
    assert_eq!(
        curl(
            None,
            &["--cacert", demo, &format!("https://127.0.0.1:{port}/")]
        )
        .0,
        0
    );
    // Plain HTTP and garbage get an alert or a hang-up, never an answer.
    assert!(!send_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").contains("HTTP/1.1"));
    drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    assert_eq!(
        curl(
            None,
            &["--cacert", ca, &format!("https://127.0.0.1:{port}/")]
        ),
        (200, "Hello from nym!\n".into()),
        "still serving"
    );
}

#[test]
fn https_template_serves_curl_and_openssl_with_a_test_ca() {
    if !curl_available() {
        return;
    }
    let (_tmp, dir) = project("secure", "https");
    common::tls::make_certs(&dir.join("tls"), "DNS:localhost, IP:127.0.0.1");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    https_answers_with_its_certificate(port, dir.join("tls/ca.pem").to_str().unwrap());
}

#[test]
fn https_on_kvm_serves_curl_and_openssl_through_port_forwarding() {
    if !common::kvm_available() || !curl_available() {
        return;
    }
    let (_tmp, dir) = project("kvmsecure", "https");
    common::tls::make_certs(&dir.join("tls"), "DNS:localhost, IP:127.0.0.1");
    let port = common::free_port();
    let _server = forwarded(&dir, "kvm", port, 8443);
    https_answers_with_its_certificate(port, dir.join("tls/ca.pem").to_str().unwrap());
}
