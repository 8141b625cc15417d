//! No shared secret keys: `nym new --template https` makes each project a
//! CA and a server certificate of its own (src/new.rs, `certs`). Two
//! projects share nothing; the certificates are what a TLS scanner does not
//! flag (serials of 64 bits and more, a server certificate valid a year);
//! a fresh project answers `curl --cacert tls/ca.pem` with no other step,
//! and testssl.sh finds TLS 1.3 and AEAD suites only; the CA's key is never
//! baked into the program; and the repository commits no private key.
mod common;

use common::net::{curl, curl_available, s_client};
use common::tls::{foreign_ca, openssl};
use common::{nym, project, required, run, runs, stderr, Server};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the server certificate is valid, in days (src/new.rs).
const SERVER_DAYS: i64 = 365;
/// How long the CA is valid, in days (src/new.rs).
const CA_DAYS: i64 = 5 * 365;
/// The most a testssl.sh scan may take.
const SCAN_LIMIT: Duration = Duration::from_secs(300);

/// A PKCS#8 key's first line (split, so that the search for committed
/// keys does not find this file).
const PKCS8: &str = concat!("-----BEGIN PRIVATE", " KEY-----");

/// The files of a project that differ between any two, the keys last.
const MADE: [&str; 4] = ["tls/ca.pem", "tls/cert.pem", "tls/key.pem", "ca.key"];

#[test]
fn each_https_project_gets_keys_and_certificates_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["one", "two"] {
        let out = run(nym(tmp.path()).args(["new", name, "--template", "https"]));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    for file in MADE {
        assert_ne!(
            std::fs::read(one.join(file)).unwrap(),
            std::fs::read(two.join(file)).unwrap(),
            "{file} is the same in two projects"
        );
    }
    for cert in ["tls/ca.pem", "tls/cert.pem"] {
        assert_ne!(serial(&one.join(cert)), serial(&two.join(cert)), "{cert}");
    }
    for dir in [&one, &two] {
        check_project(dir);
    }
}

/// What every new https project holds: its keys private and out of git and
/// of the baked store, its chain sound, its serials and validity what a
/// scanner accepts.
fn check_project(dir: &Path) {
    let mut baked: Vec<String> = std::fs::read_dir(dir.join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    baked.sort();
    assert_eq!(
        baked,
        ["ca.pem", "cert.pem", "key.pem"],
        "tls/ is baked whole"
    );
    let ignored = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    for key in ["tls/key.pem", "ca.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}'s mode");
        assert!(ignored.lines().any(|l| l == format!("/{key}")), "{ignored}");
        let pem = std::fs::read_to_string(dir.join(key)).unwrap();
        assert_eq!(pem.lines().next(), Some(PKCS8), "{key} is PKCS#8");
        let text = openssl(&["pkey", "-in", path(&dir.join(key)), "-noout", "-text"]);
        assert!(text.contains("ASN1 OID: prime256v1"), "{key}: {text}");
    }
    // Each key is the one its certificate names.
    for (cert, key) in [("tls/ca.pem", "ca.key"), ("tls/cert.pem", "tls/key.pem")] {
        let of_cert = openssl(&["x509", "-in", path(&dir.join(cert)), "-noout", "-pubkey"]);
        let of_key = openssl(&["pkey", "-in", path(&dir.join(key)), "-pubout"]);
        assert_eq!(of_cert, of_key, "{key} is not {cert}'s key");
    }

    let ca = dir.join("tls/ca.pem");
    let cert = dir.join("tls/cert.pem");
    let verified = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        path(&ca),
        path(&cert),
    ]);
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");
    let names = openssl(&[
        "x509",
        "-in",
        path(&cert),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        names.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:10.0.2.15"),
        "{names}"
    );
    let ca_ext = openssl(&[
        "x509",
        "-in",
        path(&ca),
        "-noout",
        "-ext",
        "basicConstraints,nameConstraints",
    ]);
    assert!(ca_ext.contains("CA:TRUE, pathlen:0"), "{ca_ext}");
    for name in ["DNS:localhost", "IP:127.0.0.1/", "IP:10.0.2.15/"] {
        assert!(
            ca_ext.contains(name),
            "the CA is limited to {name}: {ca_ext}"
        );
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (cert, days) in [(&cert, SERVER_DAYS), (&ca, CA_DAYS)] {
        let bits = serial_bits(&serial(cert));
        assert!(
            (64..=159).contains(&bits),
            "{}: a {bits}-bit serial",
            cert.display()
        );
        let (from, until) = validity(cert);
        assert_eq!(until - from, days * 86_400, "{} days", cert.display());
        // Valid now, from at most a day back (clock skew's margin).
        assert!(from <= now && now - from < 86_400, "{}", cert.display());
    }
}

#[test]
fn a_fresh_https_project_answers_curl_trusting_its_own_ca() {
    if !curl_available() {
        return;
    }
    let (tmp, dir) = project("fresh", "https");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");
    let ca = dir.join("tls/ca.pem");
    for host in ["localhost", "127.0.0.1"] {
        assert_eq!(
            curl(
                None,
                &["--cacert", path(&ca), &format!("https://{host}:{port}/")]
            ),
            (200, "Hello from nym!\n".into()),
            "curl --cacert tls/ca.pem https://{host}:{port}/"
        );
    }
    // Another CA, such as another project's, proves nothing.
    let foreign = foreign_ca(&tmp.path().join("foreign"));
    let url = format!("https://localhost:{port}/");
    assert_eq!(curl(None, &["--cacert", path(&foreign), &url]).0, 0);
    let (verified, text) = s_client(port, path(&foreign));
    assert!(!verified, "a foreign CA was accepted:\n{text}");
}

#[test]
fn testssl_finds_tls13_aead_and_nothing_wrong_with_the_certificate() {
    if !required(
        runs("testssl"),
        "testssl (Debian's testssl.sh) is missing: scripts/install.sh installs it",
    ) {
        return;
    }
    let (tmp, dir) = project("scanned", "https");
    let port = common::free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for("listening on port");

    let json = tmp.path().join("scan.json");
    let log = tmp.path().join("scan.log");
    // Protocols (-p), each protocol's cipher suites (-E) and the server's
    // defaults with the certificate (-S): what this test asserts, and no
    // more, so the scan takes seconds; timeouts bound every connection.
    let mut scan = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "off"])
        .args(["--nodns", "none", "--ip", "127.0.0.1"])
        .args(["--connect-timeout", "10", "--openssl-timeout", "10"])
        .args(["--add-ca", path(&dir.join("tls/ca.pem"))])
        .args(["-p", "-E", "-S", "--jsonfile", path(&json)])
        .arg(format!("localhost:{port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("testssl starts");
    common::exit_within(&mut scan, SCAN_LIMIT, "testssl finishes its scan");
    let report = std::fs::read_to_string(&log).unwrap();
    eprintln!("--- testssl's report\n{report}");
    let findings: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
        .unwrap_or_else(|e| panic!("testssl's JSON: {e}"));
    let find = |id: &str| -> (String, String) {
        let f = findings
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no finding `{id}` in testssl's report"));
        (
            f["severity"].as_str().unwrap_or("").to_owned(),
            f["finding"].as_str().unwrap_or("").to_owned(),
        )
    };

    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2"] {
        let (_, finding) = find(old);
        assert!(finding.starts_with("not offered"), "{old}: {finding}");
    }
    let (_, tls13) = find("TLS1_3");
    assert!(tls13.starts_with("offered"), "TLS 1.3: {tls13}");
    // Every suite offered is TLS 1.3's, and AEAD (AES-GCM, ChaCha20-Poly1305
    // or AES-CCM: 0x1301 to 0x1305, all the suites TLS 1.3 has).
    let suites: Vec<&str> = findings
        .iter()
        .filter_map(|f| f["id"].as_str())
        .filter(|id| id.starts_with("cipher-"))
        .collect();
    assert!(!suites.is_empty(), "testssl listed no cipher suite");
    for id in &suites {
        let aead = ["x1301", "x1302", "x1303", "x1304", "x1305"]
            .iter()
            .any(|s| *id == format!("cipher-tls1_3_{s}"));
        assert!(aead, "offered: {id}");
    }

    let (severity, length) = find("cert_serialNumberLen");
    assert_eq!(severity, "INFO", "serial length: {length}");
    assert!(length.parse::<u32>().is_ok_and(|n| n >= 8), "{length}");
    let (severity, period) = find("cert_validityPeriod");
    assert_eq!((severity.as_str(), period.as_str()), ("INFO", "No finding"));
    for ok in ["cert_expirationStatus", "cert_chain_of_trust", "cert_trust"] {
        let (severity, finding) = find(ok);
        assert_eq!(severity, "OK", "{ok}: {finding}");
    }
    // Nothing serious, but that a private CA for localhost has no revocation
    // service (no CRL, no OCSP): there is no one to ask.
    let serious: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] == "HIGH" || f["severity"] == "CRITICAL")
        .filter(|f| f["id"] != "cert_revocation")
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
}

#[test]
fn the_ca_key_is_not_baked_into_the_program() {
    let (_tmp, dir) = project("sealed", "https");
    let out = run(nym(&dir).args(["build", "--target", "unix"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let program = std::fs::read(dir.join("target/nym/unix/sealed")).unwrap();
    let holds = |file: &str| {
        let text = std::fs::read(dir.join(file)).unwrap();
        program.windows(text.len()).any(|w| w == text)
    };
    assert!(
        holds("tls/key.pem"),
        "the server's key is baked, as it must be"
    );
    assert!(!holds("ca.key"), "the CA's key is in the program");
}

#[test]
fn the_repository_commits_no_private_key() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tracked = Command::new("git")
        .args(["-C", root, "ls-files", "--error-unmatch", "Cargo.toml"])
        .output();
    if !tracked.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: {root} is not a git checkout");
        return;
    }
    // Any PEM private key: PKCS#8, and SEC1, PKCS#1, OpenSSH, encrypted.
    let marker = PKCS8.trim_start_matches("-----BEGIN ");
    let out = Command::new("git")
        .args(["-C", root, "grep", "-l", "-I", "-F", marker])
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&out.stdout);
    assert!(files.trim().is_empty(), "private keys in git:\n{files}");
}

/// `p` as a `&str` (test paths are UTF-8).
fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The serial number of the certificate at `cert`, in hex.
fn serial(cert: &Path) -> String {
    let out = openssl(&["x509", "-in", path(cert), "-noout", "-serial"]);
    out.trim().trim_start_matches("serial=").to_owned()
}

/// How many bits a serial number given in hex has.
fn serial_bits(hex: &str) -> u32 {
    let hex = hex.trim_start_matches('0');
    let Some(first) = hex.chars().next() else {
        return 0;
    };
    let first = first.to_digit(16).expect("a hex serial");
    (hex.len() as u32 - 1) * 4 + (u32::BITS - first.leading_zeros())
}

/// When the certificate at `cert` becomes valid and stops being valid, in
/// seconds since 1970.
fn validity(cert: &Path) -> (i64, i64) {
    let out = openssl(&[
        "x509",
        "-in",
        path(cert),
        "-noout",
        "-dates",
        "-dateopt",
        "iso_8601",
    ]);
    let date = |key: &str| -> i64 {
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        // `2026-12-07 03:05:47Z`
        let n: Vec<i64> = line
            .trim_end_matches('Z')
            .split(['-', ' ', ':'])
            .map(|n| n.parse().unwrap())
            .collect();
        let month = time::Month::try_from(n[1] as u8).unwrap();
        let date = time::Date::from_calendar_date(n[0] as i32, month, n[2] as u8).unwrap();
        let at = time::Time::from_hms(n[3] as u8, n[4] as u8, n[5] as u8).unwrap();
        date.with_time(at).assume_utc().unix_timestamp()
    };
    (date("notBefore="), date("notAfter="))
}
