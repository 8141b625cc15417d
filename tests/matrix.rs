//! The portability matrix (README, "One graph, every target"): each
//! template on every target but Xen (tests/xen.rs boots it there), run for
//! real: in-process, as the program `nym build --target unix` makes, in
//! nym's monitor, under QEMU's microvm, and as a libvirt domain (q35). The
//! same console output everywhere, the same answers to curl and openssl,
//! the same bytes echoed, and the kv counter kept across restarts wherever
//! the store persists.
mod common;

use common::net::{
    curl, curl_available, forwarded, http_answers_like_a_web_server,
    https_answers_with_its_certificate, send_raw,
};
use common::{nym, project, run, stderr, stdout, Server};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The targets that boot an image, in the matrix's order.
const GUESTS: [&str; 3] = ["kvm", "qemu", "libvirt"];

/// Whether every engine of the matrix is there (each fails loudly under CI
/// when it is not, see `common::required`).
fn engines() -> bool {
    common::kvm_available() && common::qemu_available() && common::libvirt_available()
}

/// The standalone program of the project in `dir`, built.
fn binary(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = run(nym(dir).args(["build", "--target", "unix"]));
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("target/nym/unix").join(name)
}

/// The console output of a run, which must succeed.
fn console(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn hello_prints_the_same_on_every_target() {
    if !engines() {
        return;
    }
    let (_tmp, dir) = project("mxhello", "hello");
    let keys = ["--count", "2", "--pause", "1ms"];
    let want = console(run(nym(&dir).arg("run").arg("--").args(keys)), "in-process");
    assert!(want.contains("hello from nym #2"), "{want}");
    let program = binary(&dir, "mxhello");
    assert_eq!(
        console(run(Command::new(&program).args(keys)), "the program"),
        want
    );
    for target in GUESTS {
        let got = console(
            run(nym(&dir).args(["run", "--target", target, "--"]).args(keys)),
            target,
        );
        assert_eq!(got, want, "on {target}");
    }
    // One image serves the three guest targets: built once.
    let image = |t: &str| std::fs::read(dir.join(format!("target/nym/{t}/mxhello.elf"))).unwrap();
    for t in ["qemu", "libvirt"] {
        assert!(image("kvm") == image(t), "the {t} image is not the kvm one");
    }
}

#[test]
fn kv_keeps_its_counter_across_restarts_on_every_target() {
    if !engines() {
        return;
    }
    let (tmp, dir) = project("mxkv", "kv");
    let first = console(run(nym(&dir).arg("run")), "in-process");
    let second = console(run(nym(&dir).arg("run")), "in-process again");
    assert!(first.contains("run #1"), "{first}");
    assert!(second.contains("run #2"), "{second}");
    // The program keeps its store in ./data of wherever it runs.
    let program = binary(&dir, "mxkv");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    for want in [&first, &second] {
        let got = console(
            run(Command::new(&program).current_dir(&elsewhere)),
            "the program",
        );
        assert_eq!(&got, want);
    }
    // Each guest target on a disk of its own (`--block`), made at the
    // graph's size on the first run, read back on the second.
    for target in GUESTS {
        let disk = format!("{target}.img");
        for want in [&first, &second] {
            let got = console(
                run(nym(&dir).args(["run", "--target", target, "--block", &disk])),
                target,
            );
            assert_eq!(&got, want, "on {target}");
        }
        assert_eq!(
            std::fs::metadata(dir.join(&disk)).unwrap().len(),
            64 << 10,
            "the graph's size"
        );
    }
}

/// Sends `data` to the echo server at `port` and reads it back.
fn echoes(port: u16, data: &[u8]) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, data);
}

#[test]
fn echo_echoes_the_same_bytes_on_every_target() {
    if !engines() {
        return;
    }
    let (_tmp, dir) = project("mxecho", "echo");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    echoes(port, &data);
    drop(server);
    let program = binary(&dir, "mxecho");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = Command::new(&program);
        c.args(["--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    echoes(port, &data);
    drop(server);
    for target in GUESTS {
        let port = common::free_port();
        let _server = forwarded(&dir, target, port, 7);
        echoes(port, &data);
        echoes(port, b"and a second connection\n");
    }
}

#[test]
fn http_serves_curl_on_every_target() {
    if !engines() || !curl_available() {
        return;
    }
    let (tmp, dir) = project("mxweb", "http");
    // Off unix, without a forward there is no network device: the guest
    // (or nym's monitor, before it boots) says what to do.
    let out = run(nym(&dir).args(["run", "--target", "kvm"]));
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("-p HOST:GUEST"), "{}", stderr(&out));
    for target in ["qemu", "libvirt"] {
        let out = run(nym(&dir).args(["run", "--target", target]));
        assert_ne!(out.status.code(), Some(0));
        let text = stdout(&out) + &stderr(&out);
        assert!(
            text.contains("virtio-net device (run with -p HOST:GUEST"),
            "{target}: {text}"
        );
    }
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    http_answers_like_a_web_server(None, &format!("http://127.0.0.1:{port}"), None);
    drop(server);
    let program = binary(&dir, "mxweb");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = Command::new(&program);
        // The program bakes www/ in: it serves from anywhere.
        c.current_dir(tmp.path())
            .args(["--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    http_answers_like_a_web_server(None, &format!("http://127.0.0.1:{port}"), None);
    drop(server);
    // Not the template's port: `-p HOST:9000 -- --port 9000`.
    for target in GUESTS {
        let port = common::free_port();
        let _server = forwarded(&dir, target, port, 9000);
        let base = format!("http://127.0.0.1:{port}");
        http_answers_like_a_web_server(None, &base, None);
        // A client that connects and vanishes, and garbage: the guest
        // serves on.
        drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
        assert!(send_raw(port, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        // A body of some 28 frames each way: receive rings wrap. Guest
        // code runs about a thousand times slower than host code here
        // (BENCHMARKS.md), and other tests share the two cores: a minute.
        let big = "x".repeat(40_000);
        let file = tmp.path().join("big");
        std::fs::write(&file, &big).unwrap();
        let put = curl(
            None,
            &[
                "-m",
                "60",
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("{base}/kv/big"),
            ],
        );
        assert_eq!(put.0, 204, "on {target}");
        let (code, got) = curl(None, &["-m", "60", &format!("{base}/kv/big")]);
        let differs = got.bytes().zip(big.bytes()).position(|(a, b)| a != b);
        assert!(
            code == 200 && got == big,
            "on {target}: status {code}, {} bytes back of {}, first difference at {differs:?}",
            got.len(),
            big.len()
        );
    }
    // The image links the stack its graph names, and no TLS.
    let image = dir.join("target/nym/kvm/mxweb.elf");
    assert!(common::links(&image, "smoltcp"));
    assert!(!common::links(&image, "rustls"));
}

#[test]
fn https_serves_curl_and_openssl_on_every_target() {
    if !engines() || !curl_available() {
        return;
    }
    let (_tmp, dir) = project("mxsecure", "https");
    common::tls::make_certs(&dir.join("tls"), "DNS:localhost, IP:127.0.0.1");
    let ca = dir.join("tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    https_answers_with_its_certificate(port, ca);
    drop(server);
    let program = binary(&dir, "mxsecure");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = Command::new(&program);
        c.args(["--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    https_answers_with_its_certificate(port, ca);
    drop(server);
    for target in GUESTS {
        let port = common::free_port();
        let _server = forwarded(&dir, target, port, 8443);
        https_answers_with_its_certificate(port, ca);
    }
}
