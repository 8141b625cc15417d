//! Network clients for the end-to-end tests: curl, openssl, raw sockets,
//! and servers started with `nym run` behind forwarded ports.
use super::{nym, required, runs, Server};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `curl` with `args`, in network namespace `netns` if given; returns
/// (HTTP status, body).
pub fn curl(netns: Option<&str>, args: &[&str]) -> (u16, String) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd
        .args(["-sS", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    if !out.status.success() {
        // What went wrong, for the test's log (curl's own words).
        eprintln!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Whether curl runs (see [`required`]).
pub fn curl_available() -> bool {
    required(
        runs("curl"),
        "curl is missing: scripts/install.sh installs it",
    )
}

/// `nym run --target TARGET -p PORT:GUEST` in `dir`, once the guest listens.
pub fn forwarded(dir: &Path, target: &str, port: u16, guest: u16) -> Server {
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
pub fn http_answers_like_a_web_server(netns: Option<&str>, base: &str, cacert: Option<&str>) {
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

pub fn wait_until_connectable(port: u16) {
    for _ in 0..600 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port}");
}

pub fn send_raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// `openssl s_client` against 127.0.0.1:`port`, trusting only `ca` and
/// expecting a certificate for localhost: (whether it verified, output).
pub fn s_client(port: u16, ca: &str) -> (bool, String) {
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
pub fn https_answers_with_its_certificate(port: u16, ca: &str) {
    http_answers_like_a_web_server(None, &format!("https://127.0.0.1:{port}"), Some(ca));
    let (verified, text) = s_client(port, ca);
    assert!(verified, "openssl s_client did not verify:\n{text}");
    assert!(text.contains("TLSv1.3"), "{text}");
    // A CA of its own (made for this check) did not sign the certificate.
    let foreign = tempfile::tempdir().unwrap();
    let demo = super::tls::foreign_ca(foreign.path());
    let demo = demo.to_str().unwrap();
    assert!(Path::new(demo).is_file(), "the foreign CA was made");
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
