//! The other side: a stub resolver, the job of a node that asks a DNS
//! server (a simulation's resolver across a lossy link, a health check).
use crate::wire::{class, rcode, rtype, Header, Message, Name, Question, Rdata};
use alloc::{format, string::String, vec, vec::Vec};
use core::future::{poll_fn, Future};
use core::net::SocketAddrV4;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;
use libos::{Console, Stack, Time};

/// Tries per name before giving up on it.
pub const TRIES: u16 = 5;

/// The body of [`crate::resolve`]: each of `names` asked of `to`, up to
/// [`TRIES`] times, what came back said on `console` (`resolve:
/// web.example.test = 192.0.2.10 (try 2)`), then `resolve: done`.
pub async fn run(
    console: &impl Console,
    stack: &impl Stack,
    time: &impl Time,
    to: SocketAddrV4,
    names: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut socket = stack
        .udp(0)
        .await
        .map_err(|e| format!("cannot bind a UDP port: {e}"))?;
    let mut buf = vec![0u8; 4096];
    for (n, text) in names
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let name = parse_name(text)?;
        let mut said = format!("resolve: {text}: no answer after {TRIES} tries");
        for attempt in 1..=TRIES {
            let id = (n as u16).wrapping_mul(TRIES).wrapping_add(attempt);
            let query = query(id, &name);
            if socket.send_to(&query, to).await.is_err() {
                time.sleep(timeout).await;
                continue;
            }
            let answer = race(time.sleep(timeout), async {
                loop {
                    match socket.recv_from(&mut buf).await {
                        Ok((len, from)) if from == to => match Message::parse(&buf[..len]) {
                            Ok(m) if m.header.id == id && m.header.qr => return Some(m),
                            _ => continue,
                        },
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            })
            .await;
            if let Some(Some(m)) = answer {
                said = format!("resolve: {text} = {} (try {attempt})", describe(&m));
                break;
            }
        }
        let _ = console.log(&said).await;
    }
    let _ = console.log("resolve: done").await;
    Ok(())
}

/// `www.example.test` as a name.
fn parse_name(text: &str) -> Result<Name, String> {
    let labels = text.trim_end_matches('.').split('.').map(str::as_bytes);
    Name::from_labels(labels).map_err(|e| format!("`{text}` is not a name: {e}"))
}

/// A standard query for `name`'s A records, recursion not asked for.
fn query(id: u16, name: &Name) -> Vec<u8> {
    Message {
        header: Header {
            id,
            ..Header::default()
        },
        questions: vec![Question {
            name: name.clone(),
            qtype: rtype::A,
            qclass: class::IN,
        }],
        ..Message::default()
    }
    .encode(true)
}

/// An answer's addresses (after its aliases), or its response code.
fn describe(m: &Message) -> String {
    let mut parts: Vec<String> = Vec::new();
    for r in &m.answers {
        match &r.data {
            Rdata::A(a) => parts.push(format!("{a}")),
            Rdata::Cname(c) => parts.push(format!("alias of {c}")),
            _ => {}
        }
    }
    match (u16::from(m.header.rcode), parts.is_empty()) {
        (rcode::NOERROR, false) => parts.join(", "),
        (rcode::NOERROR, true) => String::from("no A record"),
        (rcode::NXDOMAIN, _) => String::from("no such name"),
        (code, _) => format!("error {code}"),
    }
}

/// The output of `b` if it finishes before `a`; `None` if `a` finishes first.
async fn race<A: Future, B: Future>(a: A, b: B) -> Option<B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        match a.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{respond, Transport};

    #[test]
    fn a_query_for_an_alias_is_answered_with_its_address() {
        let zone = include_str!("../zone/example.test.zone");
        let zones = crate::Zones::parse([("example.test.zone", zone)]).unwrap();
        let q = query(7, &parse_name("web.example.test").unwrap());
        let reply = respond(&zones, &q, Transport::Udp).expect("an answer");
        let m = Message::parse(&reply).unwrap();
        assert_eq!(m.header.id, 7);
        assert_eq!(describe(&m), "alias of www.example.test., 192.0.2.10");
        let q = query(8, &parse_name("nope.example.test.").unwrap());
        let m = Message::parse(&respond(&zones, &q, Transport::Udp).unwrap()).unwrap();
        assert_eq!(describe(&m), "no such name");
        assert!(parse_name("a..b").is_err());
    }
}
