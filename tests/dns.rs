//! The DNS appliance (issue 23) against Debian's `dig`: the dns template
//! served by `nym run` in-process over the host's sockets (every record
//! type, negative answers, TCP, an answer too large for UDP, hostile
//! datagrams), and as a kvm guest (and a qemu one) through forwarded
//! ports: `-p HOST:53` for TCP and `-p HOST:53/udp` for UDP.
mod common;

use common::{nym, project, qemu_available, required, Server};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether dig runs (see [`required`]).
fn dig_available() -> bool {
    let runs = Command::new("dig")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    required(
        runs,
        "dig is missing: scripts/install.sh installs bind9-dnsutils",
    )
}

/// A port free for both TCP and UDP on loopback right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

/// What dig printed, read from its default output.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    /// Records, whitespace made single spaces: `www.example.test. 300 IN A 192.0.2.10`.
    answers: Vec<String>,
    authority: Vec<String>,
    /// Whether the answer came over TCP.
    tcp: bool,
    text: String,
}

/// `dig @127.0.0.1 -p PORT ARGS`, waiting `wait` seconds per try.
fn dig(port: u16, wait: u32, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string()])
        .args([format!("+time={wait}"), "+tries=3".to_owned()])
        .args(args)
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let after = |key: &str| {
        text.lines()
            .find_map(|l| l.split_once(key).map(|(_, rest)| rest.to_owned()))
            .unwrap_or_default()
    };
    let section = |title: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    Dig {
        status: after("status: ").split(',').next().unwrap_or("").to_owned(),
        flags: after(";; flags: ")
            .split(';')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        answers: section(";; ANSWER SECTION:"),
        authority: section(";; AUTHORITY SECTION:"),
        tcp: after(";; SERVER: ").ends_with("(TCP)"),
        text,
    }
}

impl Dig {
    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// A datagram to the server and its answer, if one comes within a second.
fn raw(port: u16, query: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(query, (Ipv4Addr::LOCALHOST, port)).unwrap();
    let mut buf = [0u8; 4096];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Appends `big`, 100 A records (about 1.6 KB as an answer), to the zone.
fn add_big_name(dir: &Path) {
    let path = dir.join("zone/example.test.zone");
    let mut zone = std::fs::read_to_string(&path).unwrap();
    for i in 0..100 {
        zone.push_str(&format!("big 60 IN A 198.51.100.{i}\n"));
    }
    std::fs::write(path, zone).unwrap();
}

#[test]
fn dns_template_answers_dig_in_process() {
    if !dig_available() {
        return;
    }
    let (_tmp, dir) = project("zones", "dns");
    add_big_name(&dir);
    let port = free_port();
    let mut server = Server::start({
        let mut c = nym(&dir);
        c.args(["run", "--", "--port", &port.to_string()]);
        c
    });
    server.wait_for_all(&["(UDP) for example.test.", "(TCP) for example.test."]);

    let a = dig(port, 5, &["www.example.test", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.text);
    assert!(a.flag("aa") && a.flag("qr") && !a.flag("ra"), "{}", a.text);
    assert_eq!(a.answers, ["www.example.test. 300 IN A 192.0.2.10"]);
    assert!(!a.tcp);
    let aaaa = dig(port, 5, &["www.example.test", "AAAA"]);
    assert_eq!(aaaa.answers, ["www.example.test. 300 IN AAAA 2001:db8::10"]);
    let cname = dig(port, 5, &["web.example.test", "CNAME"]);
    assert_eq!(
        cname.answers,
        ["web.example.test. 300 IN CNAME www.example.test."]
    );
    // Chased within the zone.
    let chased = dig(port, 5, &["WEB.Example.Test", "A"]);
    assert_eq!(
        chased.answers,
        [
            "WEB.Example.Test. 300 IN CNAME www.example.test.",
            "www.example.test. 300 IN A 192.0.2.10"
        ],
        "{}",
        chased.text
    );
    let ns = dig(port, 5, &["example.test", "NS"]);
    assert_eq!(ns.answers, ["example.test. 3600 IN NS ns1.example.test."]);
    assert!(
        ns.text
            .contains("ns1.example.test.\t3600\tIN\tA\t10.0.2.15"),
        "glue: {}",
        ns.text
    );
    let soa = dig(port, 5, &["example.test", "SOA"]);
    assert_eq!(
        soa.answers,
        ["example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 2026120701 7200 3600 1209600 300"]
    );

    // Negative answers carry the SOA, its TTL the negative one.
    let nx = dig(port, 5, &["nope.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
    assert!(nx.flag("aa") && nx.answers.is_empty());
    assert_eq!(nx.authority.len(), 1);
    assert!(
        nx.authority[0].starts_with("example.test. 300 IN SOA"),
        "{nx:?}"
    );
    let nodata = dig(port, 5, &["ns1.example.test", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(
        nodata.answers.is_empty() && nodata.authority.len() == 1,
        "{}",
        nodata.text
    );
    let refused = dig(port, 5, &["www.example.org", "A"]);
    assert_eq!(refused.status, "REFUSED");
    assert!(!refused.flag("aa"));

    // Over TCP when asked.
    let tcp = dig(port, 5, &["+tcp", "www.example.test", "A"]);
    assert!(tcp.tcp, "{}", tcp.text);
    assert_eq!(tcp.answers, ["www.example.test. 300 IN A 192.0.2.10"]);

    // Too large for a datagram: TC over UDP (kept by +ignore), then dig
    // asks again over TCP by itself and gets all 100.
    let truncated = dig(port, 5, &["+ignore", "big.example.test", "A"]);
    assert!(truncated.flag("tc"), "{}", truncated.text);
    assert!(!truncated.tcp && truncated.answers.is_empty());
    let classic = dig(port, 5, &["+ignore", "+noedns", "big.example.test", "A"]);
    assert!(classic.flag("tc"), "{}", classic.text);
    let whole = dig(port, 5, &["big.example.test", "A"]);
    assert!(whole.tcp, "{}", whole.text);
    assert!(!whole.flag("tc"));
    assert_eq!(whole.answers.len(), 100);

    // Hostile datagrams: a header cut short gets nothing; a compression
    // loop and a 64-byte label get FORMERR with the query's id.
    assert_eq!(raw(port, &[0xab, 0xcd, 1, 0, 0]), None);
    let lp = raw(
        port,
        &[
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ],
    )
    .expect("an answer to a compression loop");
    assert_eq!(&lp[..2], &[0xab, 0xcd]);
    assert_eq!(
        (lp[2] & 0x80, lp[3] & 0xf),
        (0x80, 1),
        "QR and FORMERR: {lp:?}"
    );
    let mut long = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
    long.extend_from_slice(&[b'a'; 64]);
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let lb = raw(port, &long).expect("an answer to a 64-byte label");
    assert_eq!((&lb[..2], lb[3] & 0xf), (&[0x12, 0x34][..], 1));
    // And it goes on answering.
    let again = dig(port, 5, &["www.example.test", "A"]);
    assert_eq!(again.answers, ["www.example.test. 300 IN A 192.0.2.10"]);
    drop(server);
}

/// `nym run --target TARGET -p TCP:53 -p UDP:53/udp` in `dir` (either
/// forward left out when `None`), once the guest listens on both.
fn served(dir: &Path, target: &str, tcp: Option<u16>, udp: Option<u16>) -> Server {
    let mut server = Server::start({
        let mut c = nym(dir);
        c.args(["run", "--target", target]);
        if let Some(p) = tcp {
            c.args(["-p", &format!("{p}:53")]);
        }
        if let Some(p) = udp {
            c.args(["-p", &format!("{p}:53/udp")]);
        }
        c.args(["--", "--port", "53"]);
        c
    });
    server.wait_for_all(&["listening on port 53 (UDP)", "listening on port 53 (TCP)"]);
    server
}

/// The answers every guest gives, over UDP or (`+tcp`) TCP.
fn answers_like_the_zone(port: u16, over: &[&str]) {
    // Guest code is slow under nested KVM (BENCHMARKS.md): long tries.
    let ask = |q: &[&str]| dig(port, 20, &[over, q].concat());
    let a = ask(&["www.example.test", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.text);
    assert!(a.flag("aa"), "{}", a.text);
    assert_eq!(a.answers, ["www.example.test. 300 IN A 192.0.2.10"]);
    assert_eq!(a.tcp, over.contains(&"+tcp"), "{}", a.text);
    let soa = ask(&["example.test", "SOA"]);
    assert_eq!(soa.answers.len(), 1, "{}", soa.text);
    assert!(soa.answers[0].starts_with("example.test. 3600 IN SOA ns1.example.test."));
    let nx = ask(&["nope.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
}

#[test]
fn dns_on_kvm_answers_dig_over_udp_and_tcp_through_forwarded_ports() {
    if !common::kvm_available() || !dig_available() {
        return;
    }
    let (_tmp, dir) = project("kvmzones", "dns");
    let (tcp, udp) = (free_port(), free_port());
    // Under the monitor's seccomp allowlists, as nym run always has them.
    let server = served(&dir, "kvm", Some(tcp), Some(udp));
    answers_like_the_zone(tcp, &["+tcp"]);
    answers_like_the_zone(udp, &[]);
    // Several clients at once each get their own answer.
    let askers: Vec<_> = ["www", "web", "ns1", "nope"]
        .into_iter()
        .map(|name| {
            std::thread::spawn(move || {
                (name, dig(udp, 20, &[&format!("{name}.example.test"), "A"]))
            })
        })
        .collect();
    for asker in askers {
        let (name, d) = asker.join().unwrap();
        let want = if name == "nope" {
            "NXDOMAIN"
        } else {
            "NOERROR"
        };
        assert_eq!(d.status, want, "{name}: {}", d.text);
        assert!(
            d.text
                .contains(&format!("QUESTION SECTION:\n;{name}.example.test.")),
            "{name}'s answer is to its own question: {}",
            d.text
        );
    }
    drop(server);
}

#[test]
fn dns_under_qemu_answers_dig_over_udp_through_a_forwarded_port() {
    if !qemu_available() || !dig_available() {
        return;
    }
    let (_tmp, dir) = project("qemuzones", "dns");
    let udp = free_port();
    let server = served(&dir, "qemu", None, Some(udp));
    answers_like_the_zone(udp, &[]);
    drop(server);
}
