//! dns: an authoritative DNS server answering A, AAAA, CNAME, NS and SOA
//! questions from zones baked into the program (try `dig @127.0.0.1 -p
//! 5300 www.example.test` after `nym run -- --port 5300`).
//!
//! Two jobs share one port number: [`udp`] answers datagrams, [`tcp`]
//! answers connections (for answers too large for a datagram, which UDP
//! answers with TC set so the client asks again over TCP, and for clients
//! that ask over TCP to begin with). Each reads the zones at start: every
//! `*.zone` file of the store, in the format [`zone`] describes.
//!
//! A third job, [`resolve`], is the other side: a stub resolver asking a
//! server over UDP (a simulation's resolver node).
//!
//! The rooms: [`wire`] reads and writes messages, [`zone`] reads zone files
//! and looks questions up, [`answer`] turns a query's bytes into the
//! response's (FORMERR for what cannot be read, never a panic).
#![no_std]
extern crate alloc;

pub mod answer;
pub mod resolve;
pub mod wire;
pub mod zone;

pub use answer::{respond, Transport};
pub use zone::Zones;

use alloc::{boxed::Box, format, string::String, vec, vec::Vec};
use core::time::Duration;
use libos::{Console, Flow, KvRo, NetError, Stack, Time};

/// The UDP job: answers datagrams on `port` until the stack fails.
pub async fn udp(
    console: impl Console,
    stack: impl Stack,
    zone: impl KvRo,
    port: u16,
) -> Result<(), String> {
    let zones = load(&zone).await?;
    let mut socket = stack
        .udp(port)
        .await
        .map_err(|e| format!("cannot bind UDP port {port}: {e}"))?;
    announce(&console, port, "UDP", &zones).await;
    // Larger than any query over UDP this server answers.
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(NetError::FrameTooLarge { .. }) => continue,
            Err(e) => return Err(format!("UDP port {port}: {e}")),
        };
        let Some(reply) = respond(&zones, &buf[..n], Transport::Udp) else {
            continue;
        };
        // A datagram that cannot go is lost, as datagrams are; the client
        // asks again.
        if let Err(NetError::Down) = socket.send_to(&reply, peer).await {
            return Err(format!("UDP port {port}: {}", NetError::Down));
        }
    }
}

/// The TCP job: answers connections on `port` until the stack fails, each
/// connection query after query (RFC 7766), many connections at once.
pub async fn tcp(
    console: impl Console,
    stack: impl Stack,
    zone: impl KvRo,
    port: u16,
) -> Result<(), String> {
    let zones = load(&zone).await?;
    let mut listener = libos::net::listen(&stack, port).await?;
    announce(&console, port, "TCP", &zones).await;
    let err = libos::net::serve(&mut *listener, |flow, _peer| serve(flow, &zones)).await;
    Err(format!("port {port}: {err}"))
}

/// The resolver job: asks `server:port` over UDP for the A records of
/// each of `names` (comma-separated), each try waiting `timeout`, and
/// prints what came back (see [`resolve::run`]).
pub async fn resolve(
    console: impl Console,
    stack: impl Stack,
    time: impl Time,
    server: String,
    port: u16,
    names: String,
    timeout: Duration,
) -> Result<(), String> {
    let ip: core::net::Ipv4Addr = server
        .parse()
        .map_err(|_| format!("`{server}` is not an IPv4 address"))?;
    let to = core::net::SocketAddrV4::new(ip, port);
    resolve::run(&console, &stack, &time, to, &names, timeout).await
}

/// Says where a job listens and for which zones.
async fn announce(console: &impl Console, port: u16, transport: &str, zones: &Zones) {
    let zones = zones.describe();
    let said = format!("dns: listening on port {port} ({transport}) for {zones}");
    let _ = console.log(&said).await;
}

/// The zones of every `*.zone` file in `store`.
pub async fn load(store: &impl KvRo) -> Result<Zones, String> {
    let keys = store
        .list("")
        .await
        .map_err(|e| format!("cannot list the zone files: {e}"))?;
    let mut texts: Vec<(String, String)> = Vec::new();
    for key in keys.into_iter().filter(|k| k.ends_with(".zone")) {
        let bytes = store
            .get(&key)
            .await
            .map_err(|e| format!("cannot read zone {key}: {e}"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("zone {key}: the file is not UTF-8"))?;
        texts.push((key, text));
    }
    let zones = Zones::parse(texts.iter().map(|(k, t)| (k.as_str(), t.as_str())))
        .map_err(|e| format!("{e}"))?;
    if zones.is_empty() {
        return Err("no zone: the store has no `*.zone` file".into());
    }
    Ok(zones)
}

/// Serves one TCP connection: messages after their 2-byte lengths, each
/// answered in turn, until the client closes.
async fn serve(mut flow: Box<dyn Flow>, zones: &Zones) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 4096];
    'conn: loop {
        while let [hi, lo, ..] = buf[..] {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if buf.len() < 2 + len {
                break;
            }
            let reply = respond(zones, &buf[2..2 + len], Transport::Tcp);
            buf.drain(..2 + len);
            if let Some(reply) = reply {
                // At most 65,535 bytes: `respond` truncates past it.
                let prefix = u16::try_from(reply.len()).unwrap_or(u16::MAX).to_be_bytes();
                let mut out = Vec::with_capacity(2 + reply.len());
                out.extend_from_slice(&prefix);
                out.extend_from_slice(&reply);
                if flow.write_all(&out).await.is_err() {
                    break 'conn;
                }
            }
        }
        match flow.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = flow.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use core::task::{Context, Poll, Waker};
    use libos::kv::Baked;

    /// The output of a future that is ready at once (a baked store's).
    fn now<F: Future>(fut: F) -> F::Output {
        let mut fut = core::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("a baked store made the job wait"),
        }
    }

    fn store(files: &[(&str, &[u8])]) -> Baked {
        Baked::from_entries(files.iter().map(|(k, v)| (String::from(*k), v.to_vec())))
    }

    #[test]
    fn the_zone_files_of_the_store_load_and_others_are_ignored() {
        let zone = include_bytes!("../zone/example.test.zone");
        let zones = now(load(&store(&[
            ("example.test.zone", zone),
            ("README.md", b"\xff not a zone"),
        ])))
        .expect("loads");
        assert_eq!(zones.describe(), "example.test.");
        let none = now(load(&store(&[("README.md", b"hi")]))).expect_err("no zone");
        assert_eq!(none, "no zone: the store has no `*.zone` file");
        let binary = now(load(&store(&[("x.zone", b"\xff")]))).expect_err("not text");
        assert_eq!(binary, "zone x.zone: the file is not UTF-8");
        let bad = now(load(&store(&[("x.zone", b"www 60 A 1.2.3.4\n")]))).expect_err("bad");
        assert!(bad.starts_with("zone x.zone line 1: "), "{bad}");
    }
}
