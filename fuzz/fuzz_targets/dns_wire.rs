//! Arbitrary bytes as a query to the DNS appliance (examples/dns), over UDP
//! and over TCP: reading and answering must not panic, every answer must
//! parse back with the query's id, and a UDP answer must fit its limit.
//! The same bytes, if they are text, are also read as a zone file. The
//! bounded version runs in the test suite (`cargo test -p dns
//! a_seeded_corpus`).
#![no_main]

use dns::answer::MAX_UDP;
use dns::wire::Message;
use dns::{respond, Transport, Zones};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The template's zone, with a name whose answer needs TCP.
fn zones() -> &'static Zones {
    static ZONES: OnceLock<Zones> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut text = include_str!("../../examples/dns/zone/example.test.zone").to_owned();
        for i in 0..100 {
            text.push_str(&format!("big 60 A 198.51.100.{i}\n"));
        }
        Zones::parse([("example.test.zone", text.as_str())]).expect("the example's zone parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Message::parse(data);
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(out) = respond(zones(), data, transport) else {
            continue;
        };
        let answer = Message::parse(&out).expect("every answer parses back");
        assert_eq!(answer.header.id.to_be_bytes(), data[..2]);
        assert!(answer.header.qr);
        if transport == Transport::Udp {
            assert!(out.len() <= MAX_UDP, "{} bytes over UDP", out.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Zones::parse([("fuzz.zone", text)]);
    }
});
