//! A test CA and a server certificate signed by it, made by `openssl` for
//! each test run, so no test trusts a key that is committed anywhere (nym
//! commits none: `nym new` makes an https project's own, tests/tls_certs.rs).
#![allow(unreachable_pub, dead_code)] // shared by several test binaries, each using some
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA that signed nothing any server holds, in `dir`: its `ca.pem`,
/// which every server must refuse to be proven by.
pub fn foreign_ca(dir: &Path) -> PathBuf {
    make_certs(dir, "DNS:localhost, IP:127.0.0.1");
    dir.join("ca.pem")
}

/// What `openssl args` prints; it must succeed.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (scripts/install.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `ca.pem`, and `cert.pem` and `key.pem` for `names` (a
/// subjectAltName list: `DNS:localhost, IP:127.0.0.1`), into `dir`.
pub fn make_certs(dir: &Path, names: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        format!(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = {names}\n"
        ),
    )
    .unwrap();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<String>; 3] = [
        ["req", "-x509"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(
                [
                    "-keyout",
                    &p("ca.key"),
                    "-out",
                    &p("ca.pem"),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=nym test CA",
                ]
                .map(String::from),
            )
            .collect(),
        ["req"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(
                [
                    "-keyout",
                    &p("key.pem"),
                    "-out",
                    &p("leaf.csr"),
                    "-subj",
                    "/CN=nym test server",
                ]
                .map(String::from),
            )
            .collect(),
        [
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-set_serial",
            "2",
            "-days",
            "2",
            "-out",
            &p("cert.pem"),
            "-extfile",
            &p("leaf.ext"),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl runs (scripts/install.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for f in ["ca.key", "leaf.csr", "leaf.ext"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
}
