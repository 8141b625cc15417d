//! xenstore: the guest's client end of the store dom0's xenstored keeps,
//! over one shared page (`struct xenstore_domain_interface`): a request
//! ring and a response ring of 1024 bytes each, their four indices, and
//! one event channel (an HVM parameter, like the page).
//!
//! Messages (`io/xs_wire.h`) are a 16-byte header — type, request id,
//! transaction id, payload length — and at most [`PAYLOAD_MAX`] bytes of
//! payload, NUL-separated strings. Replies carry the request's id; watch
//! events arrive on the same ring at any time, between replies.
//!
//! What comes back is input: [`Incoming`] refuses a response producer
//! that claims more than a ring of bytes, a length past the protocol's
//! limit, a list whose last string has no terminator, an error reply
//! that names no known error, and text that is not UTF-8.
use crate::byte_ring::{ByteRing, TwoRings};
use crate::ring::RingError;
use crate::Mem;
use alloc::vec::Vec;

/// Bytes in each ring.
pub const RING: u32 = 1024;

/// The page: the request ring, then the response ring.
type Page = TwoRings<{ RING as usize }, { RING as usize }>;
const REQUESTS: ByteRing = Page::FIRST;
const RESPONSES: ByteRing = Page::SECOND;

/// The header's size.
pub const HEADER: usize = 16;
/// The longest payload xenstored sends or takes.
pub const PAYLOAD_MAX: usize = 4096;

numbered! {
    /// The message types a guest uses (`enum xsd_sockmsg_type`).
    pub enum Op: u32 {
        /// List a directory.
        Directory = 1,
        /// Read a value.
        Read = 2,
        /// Watch a path.
        Watch = 4,
        /// Stop watching.
        Unwatch = 5,
        /// Write a value.
        Write = 11,
        /// Remove a path.
        Rm = 13,
        /// A watch fired (from xenstored only).
        WatchEvent = 15,
        /// The request failed (from xenstored only).
        Error = 16,
    }
}

/// The errors xenstored names in an [`Op::Error`] reply (`xsd_errors`).
const ERRORS: [&str; 16] = [
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
];

/// What went wrong talking to xenstore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// A ring index is out of range.
    Ring(RingError),
    /// A message longer than the protocol allows.
    TooLong {
        /// The length it claims (or would have).
        len: usize,
    },
    /// A message that does not parse; what is wrong with it.
    Malformed(&'static str),
    /// xenstored refused the request, naming an error (`ENOENT`).
    Store(&'static str),
}

impl XsError {
    /// Whether the key does not exist.
    pub fn is_missing(self) -> bool {
        self == XsError::Store("ENOENT")
    }
}

impl From<RingError> for XsError {
    fn from(e: RingError) -> XsError {
        XsError::Ring(e)
    }
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Ring(e) => write!(f, "xenstore ring: {e}"),
            XsError::TooLong { len } => write!(
                f,
                "a xenstore message of {len} bytes (at most {PAYLOAD_MAX})"
            ),
            XsError::Malformed(what) => write!(f, "a malformed xenstore message: {what}"),
            XsError::Store(code) => write!(f, "xenstore says {code}"),
        }
    }
}

/// The bytes of a request: the header and `parts` one after the other
/// (the caller puts the NULs where the operation wants them).
pub fn request(op: Op, req_id: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > PAYLOAD_MAX {
        return Err(XsError::TooLong { len });
    }
    let mut out = Vec::with_capacity(HEADER + len);
    for word in [op as u32, req_id, 0, len as u32] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Writes as much of `bytes` to the request ring as fits; how much.
pub fn send(page: &impl Mem, bytes: &[u8]) -> Result<usize, XsError> {
    Ok(REQUESTS.write(page, bytes)?)
}

/// One message from xenstored.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    op: u32,
    /// The request it answers (0 for a watch event).
    pub req_id: u32,
    payload: Vec<u8>,
}

impl Message {
    /// Its type, if it is one a guest knows.
    pub fn op(&self) -> Option<Op> {
        Op::from_number(self.op)
    }

    /// Whether it is a watch event rather than a reply.
    pub fn is_watch_event(&self) -> bool {
        self.op() == Some(Op::WatchEvent)
    }

    /// The reply as the answer to a request of type `op`: an error reply
    /// becomes [`XsError::Store`], a reply of another type is malformed.
    pub fn answer(self, op: Op) -> Result<Message, XsError> {
        match self.op() {
            Some(Op::Error) => {
                let name = self.strings()?;
                let code = name.first().copied().unwrap_or("");
                match ERRORS.iter().find(|e| **e == code) {
                    Some(e) => Err(XsError::Store(e)),
                    None => Err(XsError::Malformed("an error reply naming no known error")),
                }
            }
            Some(got) if got == op => Ok(self),
            _ => Err(XsError::Malformed(
                "a reply of another type than the request",
            )),
        }
    }

    /// The payload as text (a read's value: no terminator).
    pub fn text(&self) -> Result<&str, XsError> {
        core::str::from_utf8(&self.payload)
            .map_err(|_| XsError::Malformed("a value that is not UTF-8"))
    }

    /// The payload as NUL-terminated strings (a directory's entries, a
    /// watch event's path and token, an error's name).
    pub fn strings(&self) -> Result<Vec<&str>, XsError> {
        if self.payload.is_empty() {
            return Ok(Vec::new());
        }
        if self.payload.last() != Some(&0) {
            return Err(XsError::Malformed("an unterminated string"));
        }
        self.payload[..self.payload.len() - 1]
            .split(|b| *b == 0)
            .map(|s| {
                core::str::from_utf8(s)
                    .map_err(|_| XsError::Malformed("a string that is not UTF-8"))
            })
            .collect()
    }

    /// A watch event's path and token.
    pub fn watch_event(&self) -> Result<(&str, &str), XsError> {
        match self.strings()?.as_slice() {
            [path, token, ..] => Ok((path, token)),
            _ => Err(XsError::Malformed(
                "a watch event without a path and a token",
            )),
        }
    }
}

/// Bytes from the response ring, assembled into messages.
#[derive(Default)]
pub struct Incoming {
    buf: Vec<u8>,
}

impl Incoming {
    /// Moves what xenstored produced from the response ring into the
    /// buffer; whether there was anything.
    pub fn fill(&mut self, page: &impl Mem) -> Result<bool, XsError> {
        let n = RESPONSES.consume(page, |b| self.buf.push(b))?;
        Ok(n > 0)
    }

    /// The next whole message, if one has arrived.
    pub fn message(&mut self) -> Result<Option<Message>, XsError> {
        let Some(header) = self.buf.get(..HEADER) else {
            return Ok(None);
        };
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&header[i * 4..i * 4 + 4]);
            u32::from_le_bytes(w)
        };
        let (op, req_id, len) = (word(0), word(1), word(3) as usize);
        if len > PAYLOAD_MAX {
            return Err(XsError::TooLong { len });
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(Message {
            op,
            req_id,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;
    use alloc::vec;

    /// What xenstored would put in the response ring.
    fn reply(page: &TestPage, op: u32, req_id: u32, payload: &[u8]) {
        let mut bytes = Vec::new();
        for w in [op, req_id, 0, payload.len() as u32] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.extend_from_slice(payload);
        let prod = page.read::<u32>(RESPONSES.prod);
        for (i, b) in bytes.iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (RING - 1);
            page.write::<u8>(RESPONSES.data + at as usize, *b);
        }
        page.write::<u32>(RESPONSES.prod, prod.wrapping_add(bytes.len() as u32));
    }

    fn one(page: &TestPage) -> Result<Option<Message>, XsError> {
        let mut inc = Incoming::default();
        inc.fill(page)?;
        inc.message()
    }

    #[test]
    fn a_request_goes_in_the_ring_whole_or_in_parts() {
        let page = TestPage::new();
        let req = request(Op::Write, 7, &[b"device/vif/0/state\0", b"4"]).unwrap();
        assert_eq!(req.len(), 16 + 20);
        assert_eq!(send(&page, &req), Ok(36));
        assert_eq!(page.read::<u32>(REQUESTS.prod), 36);
        assert_eq!(page.read::<u32>(0), 11);
        assert_eq!(page.read::<u32>(4), 7);
        assert_eq!(page.read::<u32>(12), 20);
        // A full ring takes what fits, and the rest later.
        let big = request(Op::Write, 8, &[&[b'a'; 2000]]).unwrap();
        assert_eq!(send(&page, &big), Ok(1024 - 36));
        assert_eq!(send(&page, &big[988..]), Ok(0));
        page.write::<u32>(REQUESTS.cons, 1024);
        assert_eq!(send(&page, &big[988..]), Ok(1024));
        assert!(request(Op::Write, 9, &[&[0; 5000]]).is_err());
    }

    #[test]
    fn replies_values_lists_and_errors() {
        let page = TestPage::new();
        reply(&page, 2, 1, b"00:16:3e:01:02:03");
        let m = one(&page).unwrap().unwrap().answer(Op::Read).unwrap();
        assert_eq!(m.text(), Ok("00:16:3e:01:02:03"));
        reply(&page, 1, 2, b"0\x0051712\x00");
        let m = one(&page).unwrap().unwrap().answer(Op::Directory).unwrap();
        assert_eq!(m.strings(), Ok(vec!["0", "51712"]));
        reply(&page, 16, 3, b"ENOENT\x00");
        let e = one(&page).unwrap().unwrap().answer(Op::Read).unwrap_err();
        assert!(e.is_missing());
        reply(&page, 15, 0, b"backend/vif/1/0/state\x00nym1\x00");
        let m = one(&page).unwrap().unwrap();
        assert!(m.is_watch_event());
        assert_eq!(m.watch_event(), Ok(("backend/vif/1/0/state", "nym1")));
    }

    #[test]
    fn messages_arrive_in_pieces_and_back_to_back() {
        let page = TestPage::new();
        let mut inc = Incoming::default();
        reply(&page, 2, 1, b"abc");
        reply(&page, 2, 2, b"de");
        // Only the first 10 bytes produced so far.
        page.write::<u32>(RESPONSES.prod, 10);
        inc.fill(&page).unwrap();
        assert_eq!(inc.message(), Ok(None));
        page.write::<u32>(RESPONSES.prod, 37);
        inc.fill(&page).unwrap();
        assert_eq!(inc.message().unwrap().unwrap().text(), Ok("abc"));
        assert_eq!(inc.message().unwrap().unwrap().text(), Ok("de"));
        assert_eq!(inc.message(), Ok(None));
        assert_eq!(page.read::<u32>(RESPONSES.cons), 37);
    }

    #[test]
    fn hostile_rings_and_messages_are_refused() {
        // A producer more than a ring ahead: nothing is read.
        let page = TestPage::new();
        page.write::<u32>(RESPONSES.prod, 1025);
        assert!(matches!(
            Incoming::default().fill(&page),
            Err(XsError::Ring(RingError::ProducerAhead { .. }))
        ));
        assert_eq!(page.read::<u32>(RESPONSES.cons), 0);
        // A request consumer past the producer.
        let page = TestPage::new();
        page.write::<u32>(REQUESTS.cons, 2000);
        assert!(send(&page, b"x").is_err());
        // A length past the page and the protocol.
        let page = TestPage::new();
        for (i, b) in [2u32, 1, 0, 70_000]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .enumerate()
        {
            page.write::<u8>(RESPONSES.data + i, b);
        }
        page.write::<u32>(RESPONSES.prod, 16);
        assert_eq!(one(&page), Err(XsError::TooLong { len: 70_000 }));
        // Unterminated strings, bad UTF-8, unknown errors, a reply of the
        // wrong type, a watch event missing its token.
        let page = TestPage::new();
        reply(&page, 1, 1, b"a\x00b");
        let m = one(&page).unwrap().unwrap();
        assert_eq!(
            m.strings(),
            Err(XsError::Malformed("an unterminated string"))
        );
        reply(&page, 2, 2, b"\xff\xfe");
        assert!(one(&page).unwrap().unwrap().text().is_err());
        reply(&page, 16, 3, b"EWHATEVER\x00");
        assert!(matches!(
            one(&page).unwrap().unwrap().answer(Op::Read),
            Err(XsError::Malformed(_))
        ));
        reply(&page, 16, 4, b"ENOENT");
        assert!(matches!(
            one(&page).unwrap().unwrap().answer(Op::Read),
            Err(XsError::Malformed(_))
        ));
        reply(&page, 11, 5, b"OK\x00");
        assert!(matches!(
            one(&page).unwrap().unwrap().answer(Op::Read),
            Err(XsError::Malformed(_))
        ));
        reply(&page, 15, 0, b"path\x00");
        assert!(one(&page).unwrap().unwrap().watch_event().is_err());
    }
}
