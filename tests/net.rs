//! Networking end to end: the echo and http templates served by `nym run`
//! to real clients (`curl`, raw sockets), over the host's sockets and over
//! `stack::direct` on a tap device inside a network namespace; port
//! forwarding's errors. (The templates on every guest target are
//! tests/matrix.rs's.)
mod common;

use common::net::{
    curl, curl_available, forwarded, http_answers_like_a_web_server,
    https_answers_with_its_certificate, send_raw, wait_until_connectable,
};
use common::{nym, project, required, Server};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
    // UDP: a suffix other than tcp or udp says what -p takes; a UDP port
    // in use is named as a TCP one is; xen's dom0 relays TCP only.
    let out = common::run(nym(&dir).args(["run", "--target", "kvm", "-p", "5300:7/sctp"]));
    let err = common::stderr(&out);
    assert!(
        err.contains("--publish") && err.contains("-p forwards tcp or udp, not `sctp`"),
        "{err}"
    );
    let taken = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let udp = format!("{port}:7/udp");
    let out = common::run(nym(&dir).args(["run", "--target", "kvm", "-p", &udp]));
    assert_ne!(out.status.code(), Some(0));
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("cannot forward port {port}: 127.0.0.1:{port}/udp")),
        "{err}"
    );
    let out = common::run(nym(&dir).args(["run", "--target", "xen", "-p", "5300:7/udp"]));
    assert_ne!(out.status.code(), Some(0));
    let err = common::stderr(&out);
    assert!(
        err.contains("-p 5300:7/udp: a xen guest's forwards are TCP only"),
        "{err}"
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
