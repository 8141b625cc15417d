//! The DNS message format (RFC 1035, section 4): reading and writing
//! headers, questions and resource records.
//!
//! Reading trusts nothing: every length is checked against the message, a
//! compressed name may only point backwards (before the labels that hold
//! the pointer, so no pointer can loop), a label is at most 63 bytes and a
//! name at most 255, and labels of the reserved types (a length byte of
//! 64 to 191) are errors. Writing compresses names (RFC 1035, 4.1.4) or
//! not, as asked; a pointer stands only for the same name in the same
//! case.
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// The longest name in wire form, its length bytes and the root's included.
pub const MAX_NAME: usize = 255;
/// The longest label.
pub const MAX_LABEL: usize = 63;
/// The header's length.
pub const HEADER_LEN: usize = 12;
/// Compression pointers followed in one name at most. Pointers only go
/// backwards, so a name ends anyway; this bounds the work on a hostile one.
const MAX_POINTERS: usize = 64;
/// Offsets a compression pointer can reach (14 bits).
const POINTER_REACH: usize = 0x4000;

/// Record types (RFC 1035, 3.2.2; RFC 3596; RFC 6891).
pub mod rtype {
    /// An IPv4 address.
    pub const A: u16 = 1;
    /// An authoritative name server.
    pub const NS: u16 = 2;
    /// The canonical name of an alias.
    pub const CNAME: u16 = 5;
    /// The start of a zone of authority.
    pub const SOA: u16 = 6;
    /// An IPv6 address.
    pub const AAAA: u16 = 28;
    /// EDNS's pseudo-record (RFC 6891).
    pub const OPT: u16 = 41;
    /// An incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// A whole zone transfer.
    pub const AXFR: u16 = 252;
    /// Every type (a question only).
    pub const ANY: u16 = 255;
}

/// Classes (RFC 1035, 3.2.4).
pub mod class {
    /// The Internet.
    pub const IN: u16 = 1;
    /// Every class (a question only).
    pub const ANY: u16 = 255;
}

/// Response codes (RFC 1035, 4.1.1; RFC 6891 for the extended one).
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// The server could not read the query.
    pub const FORMERR: u16 = 1;
    /// The server failed.
    pub const SERVFAIL: u16 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// The server does not do this kind of query.
    pub const NOTIMP: u16 = 4;
    /// The server will not answer this query.
    pub const REFUSED: u16 = 5;
    /// The query's EDNS version is not supported (extended: needs an OPT).
    pub const BADVERS: u16 = 16;
}

/// The opcode of a standard query.
pub const OPCODE_QUERY: u8 = 0;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The message ends inside a field.
    Truncated,
    /// A label's length byte has a reserved type (64 to 191: a label longer
    /// than 63 bytes, or an extended label).
    LabelType(u8),
    /// A label that is empty or longer than 63 bytes, where a name is made.
    LabelLength(usize),
    /// A compression pointer that does not point back before its name's
    /// labels (a loop, or a forward reference), or too many of them.
    PointerLoop,
    /// A name longer than 255 bytes.
    NameTooLong,
    /// Record data whose length does not fit its type.
    BadRdata(u16),
    /// Bytes after the last record the header counts.
    Trailing(usize),
    /// Section counts a query cannot have.
    BadCount,
    /// An EDNS OPT record that is misplaced or repeated.
    BadOpt,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "the message ends inside a field"),
            WireError::LabelType(b) => write!(f, "a label of reserved type (length byte {b:#04x})"),
            WireError::LabelLength(n) => {
                write!(f, "a label of {n} bytes (1 to {MAX_LABEL} allowed)")
            }
            WireError::PointerLoop => write!(f, "a compression pointer that does not point back"),
            WireError::NameTooLong => write!(f, "a name longer than {MAX_NAME} bytes"),
            WireError::BadRdata(t) => write!(f, "record data of the wrong length for type {t}"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the last record"),
            WireError::BadCount => write!(f, "section counts a query cannot have"),
            WireError::BadOpt => write!(f, "a misplaced or repeated EDNS OPT record"),
        }
    }
}

/// A domain name in wire form, uncompressed: each label after its length
/// byte, ending with the root's empty label. Case is kept as written;
/// [`Name::lower`] is the form names are compared in.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Vec<u8>);

impl Name {
    /// The root, `.`.
    pub fn root() -> Name {
        Name(alloc::vec![0])
    }

    /// The name of `labels`, from the leftmost, checking their lengths.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a [u8]>) -> Result<Name, WireError> {
        let mut wire = Vec::new();
        for label in labels {
            if label.is_empty() || label.len() > MAX_LABEL {
                return Err(WireError::LabelLength(label.len()));
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        if wire.len() > MAX_NAME {
            return Err(WireError::NameTooLong);
        }
        Ok(Name(wire))
    }

    /// This name followed by `suffix` (a relative name made absolute).
    pub fn join(&self, suffix: &Name) -> Result<Name, WireError> {
        Name::from_labels(self.labels().chain(suffix.labels()))
    }

    /// The labels, leftmost first, without the root's.
    pub fn labels(&self) -> Labels<'_> {
        Labels(&self.0)
    }

    /// The name in wire form.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The name with ASCII letters lowercased, as names compare.
    pub fn lower(&self) -> Name {
        Name(self.0.to_ascii_lowercase())
    }

    /// Whether this is `apex` or a name under it (byte for byte: lowercase
    /// both to compare without case).
    pub fn is_under(&self, apex: &Name) -> bool {
        self.suffixes().any(|s| s == apex.0.as_slice())
    }

    /// The name without its leftmost label; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        let first = *self.0.first()? as usize;
        (first != 0).then(|| Name(self.0[1 + first..].to_vec()))
    }

    /// Wire forms of this name and each of its ancestors, this one first.
    fn suffixes(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = Some(0usize);
        core::iter::from_fn(move || {
            let i = at?;
            let rest = self.0.get(i..)?;
            let len = *rest.first()? as usize;
            at = (len != 0).then_some(i + 1 + len);
            Some(rest)
        })
    }
}

/// The labels of a [`Name`].
pub struct Labels<'a>(&'a [u8]);

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.0.first()? as usize;
        if len == 0 {
            return None;
        }
        let label = self.0.get(1..1 + len)?;
        self.0 = self.0.get(1 + len..).unwrap_or(&[]);
        Some(label)
    }
}

impl fmt::Display for Name {
    /// Presentation form: labels joined by `.`, ending with `.`; bytes
    /// other than letters, digits, `-` and `_` as `\DDD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in self.labels() {
            for &b in label {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
            any = true;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A message's header (RFC 1035, 4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The query's identifier, copied into its response.
    pub id: u16,
    /// A response (not a query).
    pub qr: bool,
    /// The kind of query (0: a standard query).
    pub opcode: u8,
    /// An authoritative answer.
    pub aa: bool,
    /// Truncated: the answer did not fit.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Authentic data (DNSSEC).
    pub ad: bool,
    /// Checking disabled (DNSSEC).
    pub cd: bool,
    /// The response code's low four bits.
    pub rcode: u8,
    /// Questions.
    pub qdcount: u16,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records.
    pub arcount: u16,
}

impl Header {
    /// The header's 12 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let bit = |b: bool, at: u16| if b { 1u16 << at } else { 0 };
        let flags = bit(self.qr, 15)
            | u16::from(self.opcode & 0xf) << 11
            | bit(self.aa, 10)
            | bit(self.tc, 9)
            | bit(self.rd, 8)
            | bit(self.ra, 7)
            | bit(self.ad, 5)
            | bit(self.cd, 4)
            | u16::from(self.rcode & 0xf);
        let mut out = [0u8; HEADER_LEN];
        for (i, v) in [
            self.id,
            flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ]
        .into_iter()
        .enumerate()
        {
            out[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
        }
        out
    }
}

/// A question (RFC 1035, 4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// The type asked for.
    pub qtype: u16,
    /// The class asked in.
    pub qclass: u16,
}

/// A zone's start of authority (RFC 1035, 3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// The primary name server.
    pub mname: Name,
    /// The responsible person's mailbox, its `@` a `.`.
    pub rname: Name,
    /// The zone's version.
    pub serial: u32,
    /// Seconds between secondaries' refreshes.
    pub refresh: u32,
    /// Seconds before a failed refresh is retried.
    pub retry: u32,
    /// Seconds after which a secondary stops answering.
    pub expire: u32,
    /// The TTL of negative answers (RFC 2308).
    pub minimum: u32,
}

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// The canonical name of an alias.
    Cname(Name),
    /// A name server.
    Ns(Name),
    /// A start of authority.
    Soa(Soa),
    /// Data of another type, as it came.
    Other(Vec<u8>),
}

/// A resource record (RFC 1035, 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner.
    pub name: Name,
    /// The type ([`rtype`]).
    pub rtype: u16,
    /// The class; an OPT record's UDP payload size.
    pub class: u16,
    /// Seconds it may be cached; an OPT record's extended code and flags.
    pub ttl: u32,
    /// The data.
    pub data: Rdata,
}

impl Record {
    /// A record of class IN whose type is its data's.
    pub fn new(name: Name, ttl: u32, data: Rdata) -> Record {
        let rtype = match &data {
            Rdata::A(_) => rtype::A,
            Rdata::Aaaa(_) => rtype::AAAA,
            Rdata::Cname(_) => rtype::CNAME,
            Rdata::Ns(_) => rtype::NS,
            Rdata::Soa(_) => rtype::SOA,
            // Only made by hand, with its type.
            Rdata::Other(_) => 0,
        };
        Record {
            name,
            rtype,
            class: class::IN,
            ttl,
            data,
        }
    }

    /// An EDNS OPT record offering `size` bytes over UDP, with extended
    /// response code bits `ext_rcode` (the code's high eight bits).
    pub fn opt(size: u16, ext_rcode: u8) -> Record {
        Record {
            name: Name::root(),
            rtype: rtype::OPT,
            class: size,
            ttl: u32::from(ext_rcode) << 24,
            data: Rdata::Other(Vec::new()),
        }
    }
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The header; its counts are the sections' lengths when written.
    pub header: Header,
    /// The questions.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section.
    pub additional: Vec<Record>,
}

impl Message {
    /// Reads a whole message: every section the header counts, and nothing
    /// after them.
    pub fn parse(msg: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader::new(msg);
        let header = r.header()?;
        let mut m = Message {
            header,
            ..Message::default()
        };
        for _ in 0..header.qdcount {
            m.questions.push(r.question()?);
        }
        for (count, section) in [
            (header.ancount, &mut m.answers),
            (header.nscount, &mut m.authority),
            (header.arcount, &mut m.additional),
        ] {
            for _ in 0..count {
                section.push(r.record()?);
            }
        }
        match r.remaining() {
            0 => Ok(m),
            n => Err(WireError::Trailing(n)),
        }
    }

    /// The message in wire form, its names compressed if `compress`. A
    /// section of more than 65,535 records is cut there.
    pub fn encode(&self, compress: bool) -> Vec<u8> {
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        let header = Header {
            qdcount: count(self.questions.len()),
            ancount: count(self.answers.len()),
            nscount: count(self.authority.len()),
            arcount: count(self.additional.len()),
            ..self.header
        };
        let mut w = Writer::new(compress);
        w.buf.extend_from_slice(&header.encode());
        for q in self.questions.iter().take(usize::from(header.qdcount)) {
            w.name(&q.name);
            w.u16(q.qtype);
            w.u16(q.qclass);
        }
        for (section, n) in [
            (&self.answers, header.ancount),
            (&self.authority, header.nscount),
            (&self.additional, header.arcount),
        ] {
            for r in section.iter().take(usize::from(n)) {
                w.record(r);
            }
        }
        w.buf
    }
}

/// Reads a message field by field.
pub struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `msg`.
    pub fn new(msg: &'a [u8]) -> Reader<'a> {
        Reader { msg, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.msg.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let b = self.msg.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The header.
    pub fn header(&mut self) -> Result<Header, WireError> {
        let id = self.u16()?;
        let flags = self.u16()?;
        let bit = |at: u16| flags & (1 << at) != 0;
        Ok(Header {
            id,
            qr: bit(15),
            opcode: (flags >> 11 & 0xf) as u8,
            aa: bit(10),
            tc: bit(9),
            rd: bit(8),
            ra: bit(7),
            ad: bit(5),
            cd: bit(4),
            rcode: (flags & 0xf) as u8,
            qdcount: self.u16()?,
            ancount: self.u16()?,
            nscount: self.u16()?,
            arcount: self.u16()?,
        })
    }

    /// A name, following compression pointers.
    pub fn name(&mut self) -> Result<Name, WireError> {
        let mut wire = Vec::new();
        // Where the labels being read began: a pointer must go before it.
        let mut run_start = self.pos;
        let mut at = self.pos;
        let mut pointers = 0;
        // Where reading goes on after the name: after its first pointer.
        let mut resume = None;
        loop {
            let len = *self.msg.get(at).ok_or(WireError::Truncated)?;
            match len {
                0 => {
                    wire.push(0);
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(Name(wire));
                }
                1..=63 => {
                    let end = at + 1 + usize::from(len);
                    let label = self.msg.get(at..end).ok_or(WireError::Truncated)?;
                    // Room for the root's byte still to come.
                    if wire.len() + label.len() + 1 > MAX_NAME {
                        return Err(WireError::NameTooLong);
                    }
                    wire.extend_from_slice(label);
                    at = end;
                }
                0xc0..=0xff => {
                    let low = *self.msg.get(at + 1).ok_or(WireError::Truncated)?;
                    let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                    pointers += 1;
                    if target >= run_start || pointers > MAX_POINTERS {
                        return Err(WireError::PointerLoop);
                    }
                    resume.get_or_insert(at + 2);
                    run_start = target;
                    at = target;
                }
                reserved => return Err(WireError::LabelType(reserved)),
            }
        }
    }

    /// A question.
    pub fn question(&mut self) -> Result<Question, WireError> {
        Ok(Question {
            name: self.name()?,
            qtype: self.u16()?,
            qclass: self.u16()?,
        })
    }

    /// A resource record, its data read by type.
    pub fn record(&mut self) -> Result<Record, WireError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = usize::from(self.u16()?);
        let end = self.pos + len;
        if end > self.msg.len() {
            return Err(WireError::Truncated);
        }
        let bad = WireError::BadRdata(rtype);
        let data = match rtype {
            rtype::A => {
                let b: [u8; 4] = self.bytes(len)?.try_into().map_err(|_| bad)?;
                Rdata::A(Ipv4Addr::from(b))
            }
            rtype::AAAA => {
                let b: [u8; 16] = self.bytes(len)?.try_into().map_err(|_| bad)?;
                Rdata::Aaaa(Ipv6Addr::from(b))
            }
            rtype::CNAME => Rdata::Cname(self.within(end, Reader::name)?),
            rtype::NS => Rdata::Ns(self.within(end, Reader::name)?),
            rtype::SOA => Rdata::Soa(self.within(end, |r| {
                Ok(Soa {
                    mname: r.name()?,
                    rname: r.name()?,
                    serial: r.u32()?,
                    refresh: r.u32()?,
                    retry: r.u32()?,
                    expire: r.u32()?,
                    minimum: r.u32()?,
                })
            })?),
            _ => Rdata::Other(self.bytes(len)?.to_vec()),
        };
        if self.pos != end {
            return Err(bad);
        }
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }

    /// `read` on the message cut at `end`: record data must not run past
    /// its length (its names' pointers may still reach back before it).
    fn within<T>(
        &mut self,
        end: usize,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<T, WireError> {
        let mut inner = Reader {
            msg: self.msg.get(..end).ok_or(WireError::Truncated)?,
            pos: self.pos,
        };
        let value = read(&mut inner)?;
        self.pos = inner.pos;
        Ok(value)
    }
}

/// Writes a message, remembering where names were written for compression.
struct Writer {
    buf: Vec<u8>,
    compress: bool,
    /// Each name suffix written (wire form) and its offset. Matching keeps
    /// case: a name never takes another's case through a pointer.
    written: Vec<(Vec<u8>, u16)>,
}

impl Writer {
    fn new(compress: bool) -> Writer {
        Writer {
            buf: Vec::new(),
            compress,
            written: Vec::new(),
        }
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name) {
        let wire = name.wire();
        let mut i = 0;
        while let Some(&len) = wire.get(i) {
            if len == 0 {
                break;
            }
            if self.compress {
                let suffix = &wire[i..];
                if let Some(&(_, at)) = self.written.iter().find(|(s, _)| s == suffix) {
                    self.u16(0xc000 | at);
                    return;
                }
                if self.buf.len() < POINTER_REACH {
                    self.written.push((suffix.to_vec(), self.buf.len() as u16));
                }
            }
            let end = (i + 1 + usize::from(len)).min(wire.len());
            self.buf.extend_from_slice(&wire[i..end]);
            i = end;
        }
        self.buf.push(0);
    }

    fn record(&mut self, r: &Record) {
        self.name(&r.name);
        self.u16(r.rtype);
        self.u16(r.class);
        self.u32(r.ttl);
        let len_at = self.buf.len();
        self.u16(0);
        match &r.data {
            Rdata::A(a) => self.buf.extend_from_slice(&a.octets()),
            Rdata::Aaaa(a) => self.buf.extend_from_slice(&a.octets()),
            Rdata::Cname(n) | Rdata::Ns(n) => self.name(n),
            Rdata::Soa(s) => {
                self.name(&s.mname);
                self.name(&s.rname);
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    self.u32(v);
                }
            }
            Rdata::Other(b) => {
                let n = b.len().min(usize::from(u16::MAX));
                self.buf.extend_from_slice(&b[..n]);
            }
        }
        let len = u16::try_from(self.buf.len() - len_at - 2).unwrap_or(u16::MAX);
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn name(text: &str) -> Name {
        Name::from_labels(text.split('.').filter(|l| !l.is_empty()).map(str::as_bytes))
            .expect("a valid name")
    }

    fn query(qname: &[u8], qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(qname);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn a_query_reads_back() {
        let m = Message::parse(&query(b"\x03www\x07example\x04test\x00", rtype::AAAA))
            .expect("a valid query");
        assert_eq!(m.header.id, 0x1234);
        assert!(m.header.rd && !m.header.qr);
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.questions[0].name.to_string(), "www.example.test.");
        assert_eq!(m.questions[0].qtype, rtype::AAAA);
    }

    #[test]
    fn names_compress_and_read_back_with_or_without_compression() {
        let www = name("www.example.test");
        let msg = Message {
            header: Header {
                id: 7,
                qr: true,
                aa: true,
                ..Header::default()
            },
            questions: vec![Question {
                name: www.clone(),
                qtype: rtype::A,
                qclass: class::IN,
            }],
            answers: vec![
                Record::new(www.clone(), 60, Rdata::Cname(name("web.example.test"))),
                Record::new(
                    name("web.example.test"),
                    60,
                    Rdata::A(Ipv4Addr::new(192, 0, 2, 1)),
                ),
            ],
            authority: vec![Record::new(
                name("example.test"),
                60,
                Rdata::Ns(name("ns.example.test")),
            )],
            additional: vec![Record::opt(1232, 0)],
        };
        let small = msg.encode(true);
        let large = msg.encode(false);
        assert!(
            small.len() < large.len(),
            "{} vs {}",
            small.len(),
            large.len()
        );
        // The answer's owner points at the question's name (offset 12).
        assert_eq!(&small[34..36], &[0xc0, 12]);
        for bytes in [small, large] {
            let back = Message::parse(&bytes).expect("reads back");
            assert_eq!(back.header.ancount, 2);
            assert_eq!(back.answers, msg.answers);
            assert_eq!(back.authority, msg.authority);
            assert_eq!(back.additional, msg.additional);
        }
    }

    #[test]
    fn a_pointer_to_itself_or_forward_is_a_loop() {
        // The question's name is a pointer to itself.
        let m = query(b"\xc0\x0c", rtype::A);
        assert_eq!(Message::parse(&m), Err(WireError::PointerLoop));
        // Two names pointing at each other: the second name points at the
        // first, which points forward at the second.
        let mut m = query(b"\xc0\x12", rtype::A);
        m[5] = 2;
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(Message::parse(&m), Err(WireError::PointerLoop));
        // Labels, then a pointer back into those same labels.
        let m = query(b"\x01a\xc0\x0c", rtype::A);
        assert_eq!(Message::parse(&m), Err(WireError::PointerLoop));
    }

    #[test]
    fn a_backward_pointer_chain_reads() {
        let mut m = query(b"\x03www\x07example\x04test\x00", rtype::A);
        m[5] = 2;
        // "mail" + pointer to "example.test" at offset 16.
        m.extend_from_slice(b"\x04mail\xc0\x10\x00\x01\x00\x01");
        let back = Message::parse(&m).expect("valid");
        assert_eq!(back.questions[1].name.to_string(), "mail.example.test.");
    }

    #[test]
    fn oversized_labels_and_names_are_errors() {
        let mut long = vec![64u8];
        long.extend_from_slice(&[b'a'; 64]);
        long.push(0);
        assert_eq!(
            Message::parse(&query(&long, rtype::A)),
            Err(WireError::LabelType(64))
        );
        // 5 labels of 63: 320 bytes.
        let mut huge = Vec::new();
        for _ in 0..5 {
            huge.push(63);
            huge.extend_from_slice(&[b'x'; 63]);
        }
        huge.push(0);
        assert_eq!(
            Message::parse(&query(&huge, rtype::A)),
            Err(WireError::NameTooLong)
        );
        assert!(Name::from_labels([&[b'a'; 64][..]]).is_err());
        assert!(Name::from_labels([&b""[..]]).is_err());
    }

    #[test]
    fn truncation_anywhere_is_an_error_never_a_panic() {
        let full = query(b"\x03www\x07example\x04test\x00", rtype::A);
        for n in 0..full.len() {
            assert_eq!(Message::parse(&full[..n]), Err(WireError::Truncated), "{n}");
        }
        let mut lying = full.clone();
        lying[7] = 3; // three answers that are not there
        assert_eq!(Message::parse(&lying), Err(WireError::Truncated));
        let mut trailing = full;
        trailing.push(0);
        assert_eq!(Message::parse(&trailing), Err(WireError::Trailing(1)));
    }

    #[test]
    fn record_data_of_the_wrong_length_is_an_error() {
        let mut m = query(b"\x00", rtype::A);
        m[7] = 1;
        // root A IN ttl 0, rdlength 3
        m.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(Message::parse(&m), Err(WireError::BadRdata(rtype::A)));
        // A CNAME whose name runs past its rdlength.
        let mut m = query(b"\x00", rtype::A);
        m[7] = 1;
        m.extend_from_slice(&[0, 0, 5, 0, 1, 0, 0, 0, 0, 0, 2, 1, b'a', 0]);
        assert_eq!(Message::parse(&m), Err(WireError::Truncated));
    }

    #[test]
    fn names_know_their_ancestors() {
        let n = name("a.b.example.test");
        assert!(n.is_under(&name("example.test")));
        assert!(n.is_under(&n));
        assert!(n.is_under(&Name::root()));
        assert!(!n.is_under(&name("ample.test")));
        assert_eq!(n.parent(), Some(name("b.example.test")));
        assert_eq!(Name::root().parent(), None);
        assert_eq!(Name::root().to_string(), ".");
        let odd = Name::from_labels([&b"a.b\x01"[..]]).expect("valid");
        assert_eq!(odd.to_string(), "a\\046b\\001.");
    }

    #[test]
    fn header_flags_round_trip() {
        let h = Header {
            id: 0xbeef,
            qr: true,
            opcode: 2,
            aa: true,
            tc: true,
            rd: true,
            ra: false,
            ad: true,
            cd: true,
            rcode: 5,
            qdcount: 1,
            ancount: 2,
            nscount: 3,
            arcount: 4,
        };
        assert_eq!(Reader::new(&h.encode()).header(), Ok(h));
    }
}
