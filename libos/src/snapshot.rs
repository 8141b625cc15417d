//! A copy of a running device's state, as a Rust value: what a Rust cell
//! of a session gets for `inspect!(store)` (the session takes the copy
//! from the live device when the cell runs and writes it into the cell).
//! Rust cells run in a process of their own, so a copy is all they can
//! have: changing it changes nothing in the running stack.
use alloc::{string::String, vec::Vec};

/// A device's state when the cell ran.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The device's binding in the graph.
    pub name: String,
    /// Its kind (`Kv`, `Stack`, ...).
    pub kind: String,
    /// What `:inspect` shows of it, a line per fact.
    pub lines: Vec<String>,
    /// A store's keys and values, in key order (empty for other kinds).
    pub entries: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    /// The value of `key` in a store's snapshot.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `key` as text (invalid UTF-8 replaced).
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The keys of a store's snapshot, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}
