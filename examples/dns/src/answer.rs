//! From a query's bytes to its response's: what the server says, whatever
//! it is sent.
//!
//! - Fewer than 12 bytes (no header), or a message that is itself a
//!   response: dropped (no answer, so two servers cannot keep answering
//!   each other).
//! - An opcode other than QUERY: NOTIMP.
//! - A query that cannot be read (a truncated question, a compression
//!   loop, a label over 63 bytes, counts a query cannot have, bytes after
//!   it): FORMERR.
//! - A class other than IN, a zone transfer, or a name in no zone of ours:
//!   REFUSED.
//! - Otherwise the zone's answer ([`Zones::lookup`]), with AA set.
//!
//! EDNS (RFC 6891): a query with an OPT record may take a UDP answer of up
//! to its offered size, capped at [`MAX_UDP`] (which fits one Ethernet
//! frame); one without takes 512 bytes. An answer larger than that loses
//! its additional records, and if still too large is sent with TC set and
//! no records, so the client asks again over TCP.
use crate::wire::{class, rcode, rtype, Header, Message, Reader, Record, WireError, OPCODE_QUERY};
use crate::zone::Zones;
use alloc::vec::Vec;

/// The largest UDP answer without EDNS (RFC 1035, 4.2.1).
pub const CLASSIC_UDP: usize = 512;
/// The largest UDP answer with EDNS: the DNS Flag Day 2020 value, which
/// fits an Ethernet frame with IPv6's headers, so it is never fragmented.
pub const MAX_UDP: usize = 1232;
/// The largest TCP answer (its length prefix is 16 bits).
pub const MAX_TCP: usize = 65_535;

/// How the query came, which bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram.
    Udp,
    /// A TCP connection (each message after its 2-byte length).
    Tcp,
}

/// What a query asks, once read.
struct Query {
    question: crate::wire::Question,
    /// The OPT record's offered UDP size and EDNS version, if it had one.
    edns: Option<(u16, u8)>,
}

/// The response to `query`, or `None` to send nothing.
pub fn respond(zones: &Zones, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut r = Reader::new(query);
    let header = r.header().ok()?;
    if header.qr {
        return None;
    }
    let reply = Header {
        id: header.id,
        qr: true,
        opcode: header.opcode,
        rd: header.rd,
        ..Header::default()
    };
    let bare = |rcode: u16| {
        Message {
            header: Header {
                rcode: rcode as u8,
                ..reply
            },
            ..Message::default()
        }
        .encode(true)
    };
    if header.opcode != OPCODE_QUERY {
        return Some(bare(rcode::NOTIMP));
    }
    let Ok(q) = read_query(&mut r, &header) else {
        return Some(bare(rcode::FORMERR));
    };
    let limit = match (transport, q.edns) {
        (Transport::Tcp, _) => MAX_TCP,
        (Transport::Udp, None) => CLASSIC_UDP,
        (Transport::Udp, Some((size, _))) => usize::from(size).clamp(CLASSIC_UDP, MAX_UDP),
    };
    let opt = |ext: u16| {
        q.edns
            .map(|_| Record::opt(MAX_UDP as u16, (ext >> 4) as u8))
            .into_iter()
            .collect::<Vec<_>>()
    };
    let mut m = Message {
        header: reply,
        questions: alloc::vec![q.question.clone()],
        ..Message::default()
    };
    let (qtype, qclass) = (q.question.qtype, q.question.qclass);
    let code = if q.edns.is_some_and(|(_, version)| version != 0) {
        rcode::BADVERS
    } else if qtype == rtype::OPT {
        rcode::FORMERR
    } else if (qclass != class::IN && qclass != class::ANY)
        || qtype == rtype::AXFR
        || qtype == rtype::IXFR
    {
        rcode::REFUSED
    } else {
        let found = zones.lookup(&q.question.name, qtype);
        m.header.aa = found.authoritative;
        // Records owned by the name asked carry it in the question's case
        // (so they point at it), as clients that vary case expect.
        let asked = q.question.name.lower();
        m.answers = found.answers;
        for r in m.answers.iter_mut().filter(|r| r.name == asked) {
            r.name = q.question.name.clone();
        }
        m.authority = found.authority;
        m.additional = found.additional;
        found.rcode
    };
    m.header.rcode = (code & 0xf) as u8;
    let extra = m.additional.len();
    m.additional.extend(opt(code));
    let full = m.encode(true);
    if full.len() <= limit {
        return Some(full);
    }
    // Without the additional records (glue is optional), then without any.
    m.additional.drain(..extra);
    let smaller = m.encode(true);
    if smaller.len() <= limit {
        return Some(smaller);
    }
    m.header.tc = true;
    m.answers.clear();
    m.authority.clear();
    Some(m.encode(true))
}

/// The question and EDNS record of a query whose header is `h`: one
/// question, no answers or authority, at most one OPT among the
/// additional records, and nothing after them.
fn read_query(r: &mut Reader<'_>, h: &Header) -> Result<Query, WireError> {
    if h.qdcount != 1 || h.ancount != 0 || h.nscount != 0 {
        return Err(WireError::BadCount);
    }
    let question = r.question()?;
    let mut edns = None;
    for _ in 0..h.arcount {
        let rec = r.record()?;
        if rec.rtype == rtype::OPT {
            if edns.is_some() || rec.name.wire() != [0] {
                return Err(WireError::BadOpt);
            }
            edns = Some((rec.class, (rec.ttl >> 16) as u8));
        }
    }
    match r.remaining() {
        0 => Ok(Query { question, edns }),
        n => Err(WireError::Trailing(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Name, Question};
    use alloc::vec;

    const ZONE: &str = "\
$ORIGIN example.test.
@    3600 SOA ns1 hostmaster 1 7200 3600 1209600 300
@    3600 NS  ns1
ns1  3600 A   10.0.2.15
www   300 A   192.0.2.10
";

    /// The zone with `big`, whose A records take more than `MAX_UDP`.
    fn zones() -> Zones {
        let mut text = alloc::string::String::from(ZONE);
        for i in 0..100 {
            text.push_str(&alloc::format!("big 60 A 198.51.100.{i}\n"));
        }
        Zones::parse([("example.test.zone", text.as_str())]).expect("parses")
    }

    fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let labels = name.split('.').filter(|l| !l.is_empty()).map(str::as_bytes);
        Message {
            header: Header {
                id: 99,
                rd: true,
                ..Header::default()
            },
            questions: vec![Question {
                name: Name::from_labels(labels).expect("valid"),
                qtype,
                qclass: class::IN,
            }],
            additional: edns.map(|s| Record::opt(s, 0)).into_iter().collect(),
            ..Message::default()
        }
        .encode(false)
    }

    fn ask(bytes: &[u8], t: Transport) -> Message {
        let out = respond(&zones(), bytes, t).expect("an answer");
        Message::parse(&out).expect("the answer parses")
    }

    #[test]
    fn an_answer_echoes_id_question_and_rd_with_aa() {
        let m = ask(&query("WWW.example.test", rtype::A, None), Transport::Udp);
        assert_eq!(m.header.id, 99);
        assert!(m.header.qr && m.header.aa && m.header.rd && !m.header.ra);
        assert_eq!(m.header.rcode as u16, rcode::NOERROR);
        assert_eq!(
            m.questions[0].name.wire(),
            b"\x03WWW\x07example\x04test\x00"
        );
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].name, m.questions[0].name);
        assert!(m.additional.is_empty(), "no OPT without EDNS");
        // A pointer to the question's name: 12 + 18 + 4.
        let bytes = respond(
            &zones(),
            &query("WWW.example.test", rtype::A, None),
            Transport::Udp,
        )
        .expect("an answer");
        assert_eq!(&bytes[34..36], &[0xc0, 12]);
    }

    #[test]
    fn big_answers_are_truncated_over_udp_and_whole_over_tcp() {
        let udp = ask(&query("big.example.test", rtype::A, None), Transport::Udp);
        assert!(udp.header.tc);
        assert!(udp.answers.is_empty());
        let edns = respond(
            &zones(),
            &query("big.example.test", rtype::A, Some(4096)),
            Transport::Udp,
        )
        .expect("answer");
        assert!(edns.len() <= MAX_UDP);
        let edns = Message::parse(&edns).expect("parses");
        assert!(edns.header.tc);
        assert_eq!(edns.additional[0].rtype, rtype::OPT);
        let tcp = ask(&query("big.example.test", rtype::A, None), Transport::Tcp);
        assert!(!tcp.header.tc);
        assert_eq!(tcp.answers.len(), 100);
        // A small answer fits in EDNS's size and carries OPT back.
        let small = ask(
            &query("www.example.test", rtype::A, Some(1232)),
            Transport::Udp,
        );
        assert_eq!(small.additional[0].rtype, rtype::OPT);
        assert!(!small.header.tc);
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        let z = zones();
        // No header: nothing.
        assert_eq!(respond(&z, &[1, 2, 3], Transport::Udp), None);
        // A response: nothing.
        let mut resp = query("www.example.test", rtype::A, None);
        resp[2] |= 0x80;
        assert_eq!(respond(&z, &resp, Transport::Udp), None);
        let formerr = |bytes: &[u8]| {
            let out = respond(&z, bytes, Transport::Udp).expect("an answer");
            let m = Message::parse(&out).expect("parses");
            assert_eq!(m.header.rcode as u16, rcode::FORMERR, "{bytes:?}");
            assert_eq!(m.header.id, u16::from_be_bytes([bytes[0], bytes[1]]));
        };
        // Header only, question missing.
        formerr(&query("www.example.test", rtype::A, None)[..12]);
        // A compression loop.
        formerr(&[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
        // A 64-byte label.
        let mut long = vec![0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        long.extend_from_slice(&[b'a'; 64]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        formerr(&long);
        // Two questions, answers in a query, trailing bytes, two OPTs.
        let mut two = query("www.example.test", rtype::A, None);
        two[5] = 2;
        formerr(&two);
        let mut answers = query("www.example.test", rtype::A, None);
        answers[7] = 1;
        formerr(&answers);
        let mut trailing = query("www.example.test", rtype::A, None);
        trailing.push(0);
        formerr(&trailing);
        let mut opts = query("www.example.test", rtype::A, Some(512));
        opts[11] = 2;
        opts.extend_from_slice(&Record::opt(512, 0).encode_alone());
        formerr(&opts);
    }

    #[test]
    fn other_opcodes_classes_and_transfers() {
        let z = zones();
        let code = |bytes: &[u8]| {
            let out = respond(&z, bytes, Transport::Tcp).expect("an answer");
            Message::parse(&out).expect("parses").header.rcode as u16
        };
        let mut notify = query("example.test", rtype::SOA, None);
        notify[2] |= 4 << 3;
        assert_eq!(code(&notify), rcode::NOTIMP);
        let mut chaos = query("version.bind", 16, None);
        let n = chaos.len();
        chaos[n - 1] = 3;
        assert_eq!(code(&chaos), rcode::REFUSED);
        assert_eq!(
            code(&query("example.test", rtype::AXFR, None)),
            rcode::REFUSED
        );
        assert_eq!(code(&query("example.org", rtype::A, None)), rcode::REFUSED);
        assert_eq!(
            code(&query("nope.example.test", rtype::A, None)),
            rcode::NXDOMAIN
        );
        // EDNS version 1: BADVERS, whose high bits ride in the OPT record.
        let mut v1 = query("www.example.test", rtype::A, Some(1232));
        let n = v1.len();
        v1[n - 5] = 1;
        let m = ask(&v1, Transport::Udp);
        assert_eq!(m.header.rcode, 0);
        assert_eq!(m.additional[0].ttl >> 24, 1);
        assert!(m.answers.is_empty());
    }

    impl Record {
        /// This record alone in wire form, uncompressed.
        fn encode_alone(&self) -> Vec<u8> {
            let m = Message {
                additional: vec![self.clone()],
                ..Message::default()
            };
            m.encode(false)[12..].to_vec()
        }
    }

    /// xorshift64*: a deterministic stream of pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// The fuzz target's bounded twin (fuzz/fuzz_targets/dns_wire.rs): a
    /// seeded corpus of random and mutated queries, each answered without
    /// a panic, every answer parsing back with the query's id.
    #[test]
    fn a_seeded_corpus_of_hostile_queries_never_panics() {
        let z = zones();
        let seeds: Vec<Vec<u8>> = vec![
            query("www.example.test", rtype::A, None),
            query("big.example.test", rtype::A, Some(1232)),
            query("alias.example.test", rtype::AAAA, Some(512)),
            query("example.test", rtype::NS, None),
            query("nope.example.test", rtype::SOA, None),
            vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
        ];
        let mut rng = Rng(0x6e79_6d5f_646e_7321);
        let mut answered = 0;
        for i in 0..4000 {
            let mut bytes = if i % 4 == 0 {
                let len = rng.below(80);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                seeds[rng.below(seeds.len())].clone()
            };
            for _ in 0..rng.below(6) {
                match rng.below(5) {
                    0 if !bytes.is_empty() => {
                        let at = rng.below(bytes.len());
                        bytes[at] = rng.next() as u8;
                    }
                    1 if !bytes.is_empty() => {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                    2 => bytes.truncate(rng.below(bytes.len() + 1)),
                    3 => {
                        let at = rng.below(bytes.len() + 1);
                        // A pointer, to anywhere.
                        let p = [0xc0 | rng.next() as u8 & 0x3f, rng.next() as u8];
                        bytes.splice(at..at, p);
                    }
                    _ => {
                        let at = rng.below(bytes.len() + 1);
                        bytes.insert(at, rng.next() as u8);
                    }
                }
            }
            for t in [Transport::Udp, Transport::Tcp] {
                let Some(out) = respond(&z, &bytes, t) else {
                    continue;
                };
                let m = Message::parse(&out)
                    .unwrap_or_else(|e| panic!("the answer to {bytes:?} does not parse: {e}"));
                assert_eq!(m.header.id, u16::from_be_bytes([bytes[0], bytes[1]]));
                assert!(m.header.qr);
                if t == Transport::Udp {
                    assert!(out.len() <= MAX_UDP, "{} bytes over UDP", out.len());
                }
                answered += 1;
            }
        }
        assert!(
            answered > 2000,
            "only {answered} answers: the corpus is too broken"
        );
    }
}
