//! The xenstore client: requests and their replies over the store's ring
//! (`nym_xen_abi::xenstore` reads and checks every byte), and watches.
//!
//! Devices use it while they are set up, which happens synchronously
//! when generated code builds them: each call blocks in `SCHEDOP_poll` on
//! the store's event channel until its reply or a deadline
//! ([`REPLY_WITHIN`]). Watch events that arrive between replies are kept
//! until someone waits for their token.
use super::evtchn;
use super::page::Shared;
use crate::runtime::kvmclock::{monotime, system_time_at};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use nym_xen_abi::xenstore::{self, Incoming, Message, Op, XsError};

/// How long xenstored may take to answer one request.
pub const REPLY_WITHIN: u64 = 20_000_000_000;

/// Why a xenstore request failed.
pub enum StoreError {
    /// The toolstack gave this domain no store (no HVM parameter).
    Absent,
    /// The ring or a message broke the protocol, or xenstored refused.
    Xs(XsError),
    /// No reply in time.
    Timeout,
}

impl StoreError {
    /// Whether the key does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, StoreError::Xs(e) if e.is_missing())
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Absent => f.write_str("this domain has no xenstore ring"),
            StoreError::Xs(e) => write!(f, "{e}"),
            StoreError::Timeout => write!(
                f,
                "xenstored did not answer within {} s",
                REPLY_WITHIN / 1_000_000_000
            ),
        }
    }
}

impl From<XsError> for StoreError {
    fn from(e: XsError) -> StoreError {
        StoreError::Xs(e)
    }
}

struct Store {
    page: Shared,
    port: u32,
    incoming: Incoming,
    next_id: u32,
    /// Watch events not yet waited for: (path, token).
    events: Vec<(String, String)>,
}

static STORE: spin::Mutex<Option<Store>> = spin::Mutex::new(None);

/// Uses the store ring at guest frame `pfn` with event channel `port`.
pub fn init(pfn: u64, port: u32) {
    evtchn::register(port);
    *STORE.lock() = Some(Store {
        page: Shared::at(pfn << 12),
        port,
        incoming: Incoming::default(),
        next_id: 1,
        events: Vec::new(),
    });
}

impl Store {
    /// Sends one request and returns its reply, keeping watch events.
    fn request(&mut self, op: Op, parts: &[&[u8]]) -> Result<Message, StoreError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let bytes = xenstore::request(op, id, parts)?;
        let until = monotime() + REPLY_WITHIN;
        let mut sent = 0;
        while sent < bytes.len() {
            let n = xenstore::send(&self.page, &bytes[sent..])?;
            sent += n;
            evtchn::notify(self.port);
            if sent < bytes.len() {
                self.wait(until)?;
            }
        }
        loop {
            self.incoming.fill(&self.page)?;
            while let Some(m) = self.incoming.message()? {
                if m.is_watch_event() {
                    let (path, token) = m.watch_event()?;
                    self.events.push((path.to_string(), token.to_string()));
                } else if m.req_id == id {
                    return Ok(m.answer(op)?);
                } else {
                    return Err(XsError::Malformed("a reply to a request never made").into());
                }
            }
            self.wait(until)?;
        }
    }

    fn wait(&self, until: u64) -> Result<(), StoreError> {
        if monotime() >= until {
            return Err(StoreError::Timeout);
        }
        evtchn::wait_one(self.port, system_time_at(until));
        Ok(())
    }
}

fn with<T>(f: impl FnOnce(&mut Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
    match STORE.lock().as_mut() {
        Some(s) => f(s),
        None => Err(StoreError::Absent),
    }
}

fn path(p: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(p.len() + 1);
    v.extend_from_slice(p.as_bytes());
    v.push(0);
    v
}

/// The value at `key` (relative keys are under this domain's home,
/// `/local/domain/ID`).
pub fn read(key: &str) -> Result<String, StoreError> {
    with(|s| Ok(s.request(Op::Read, &[&path(key)])?.text()?.to_string()))
}

/// Writes `value` at `key`.
pub fn write(key: &str, value: &str) -> Result<(), StoreError> {
    with(|s| {
        s.request(Op::Write, &[&path(key), value.as_bytes()])
            .map(|_| ())
    })
}

/// The entries of directory `key`.
pub fn directory(key: &str) -> Result<Vec<String>, StoreError> {
    with(|s| {
        let m = s.request(Op::Directory, &[&path(key)])?;
        Ok(m.strings()?.into_iter().map(String::from).collect())
    })
}

/// Watches `key`; events carry `token`. xenstored fires one at once.
pub fn watch(key: &str, token: &str) -> Result<(), StoreError> {
    with(|s| {
        s.request(Op::Watch, &[&path(key), &path(token)])
            .map(|_| ())
    })
}

/// Stops watching `key` for `token`, and forgets its pending events.
pub fn unwatch(key: &str, token: &str) -> Result<(), StoreError> {
    with(|s| {
        s.events.retain(|(_, t)| t != token);
        s.request(Op::Unwatch, &[&path(key), &path(token)])
            .map(|_| ())
    })
}

/// Waits until a watch event with `token` arrives or monotonic time
/// `until`; whether one did (the events are consumed).
pub fn wait_event(token: &str, until: u64) -> Result<bool, StoreError> {
    with(|s| loop {
        let before = s.events.len();
        s.events.retain(|(_, t)| t != token);
        if s.events.len() != before {
            return Ok(true);
        }
        s.incoming.fill(&s.page)?;
        let mut got = false;
        while let Some(m) = s.incoming.message()? {
            if !m.is_watch_event() {
                return Err(XsError::Malformed("a reply to a request never made").into());
            }
            let (p, t) = m.watch_event()?;
            if t == token {
                got = true;
            } else {
                s.events.push((p.to_string(), t.to_string()));
            }
        }
        if got {
            return Ok(true);
        }
        if monotime() >= until {
            return Ok(false);
        }
        evtchn::wait_one(s.port, system_time_at(until));
    })
}
