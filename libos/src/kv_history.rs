//! A store that remembers its changes ([`History`]): every write and
//! removal that reaches the wrapped store is recorded with its time, key,
//! old and new value, numbered from 1, the newest `bound` kept. The
//! session reads it (`:history`, `:diff`) and writes old values back
//! through it (`:revert`), which is itself recorded: the Irmin idea, a
//! store you can `git log` and roll back, on any store.
//!
//! Reads pass straight through; a write reads the old value first (one
//! `get` more per write). Two writes of one key racing each other may
//! record each other's value as the old one: the log is in the order the
//! writes completed.
use crate::kv::{validate_key, Kv, KvError, KvRo};
use crate::{BoxFuture, WallClock};
use alloc::{boxed::Box, collections::VecDeque, format, string::String, vec::Vec};

/// The most value bytes (old and new) a history keeps, whatever its bound:
/// the oldest changes go first past it.
pub const MAX_BYTES: usize = 16 << 20;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its number: 1 for the first change the history saw.
    pub seq: u64,
    /// When it completed, in nanoseconds since 1970.
    pub at_unix_ns: u64,
    /// The key.
    pub key: String,
    /// The value before (`None`: the key had none).
    pub old: Option<Vec<u8>>,
    /// The value after (`None`: removed).
    pub new: Option<Vec<u8>>,
    /// Why it was made, when not by the store's users (`revert to #3`).
    pub note: Option<String>,
}

impl Change {
    fn bytes(&self) -> usize {
        self.old.as_ref().map_or(0, Vec::len) + self.new.as_ref().map_or(0, Vec::len)
    }
}

/// Why the history cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The change fell off the history's bound.
    #[error("change #{asked} fell off the history (it keeps the last {bound}; the oldest kept is #{oldest})")]
    FellOff {
        /// The change asked for.
        asked: u64,
        /// The oldest change kept.
        oldest: u64,
        /// The bound.
        bound: usize,
    },
    /// No such change yet.
    #[error("there is no change #{asked} yet (the latest is #{latest})")]
    NotYet {
        /// The change asked for.
        asked: u64,
        /// The latest change (0: none).
        latest: u64,
    },
    /// The history is a record of what happened, not a store to write
    /// back (a stack's neighbours and sockets).
    #[error("{what} is a record of what happened: it cannot be put back")]
    ReadOnly {
        /// What it records.
        what: &'static str,
    },
    /// Writing an old value back failed.
    #[error("writing `{key}` back: {error}")]
    Write {
        /// The key.
        key: String,
        /// The store's error.
        error: KvError,
    },
}

/// What [`History::diff`] answers: each key whose value differs between
/// two versions, with its value in the first and in the second.
pub type Diff = Vec<(String, Stored, Stored)>;

/// A key's value at some version (`None`: it had none).
pub type Stored = Option<Vec<u8>>;

/// What [`History::revert_plan`] answers: each key with the value to write.
pub type Plan = Vec<(String, Stored)>;

/// Changes, numbered from 1, the newest `bound` kept (and at most
/// [`MAX_BYTES`] of values): what a [`History`] keeps, and what other
/// recorded state (a stack's neighbours and sockets) keeps the same way.
#[derive(Debug)]
pub struct ChangeLog {
    changes: VecDeque<Change>,
    /// The number the next change gets.
    next: u64,
    bound: usize,
    bytes: usize,
}

impl ChangeLog {
    /// An empty log keeping the newest `bound` changes (at least one).
    pub fn new(bound: usize) -> ChangeLog {
        ChangeLog {
            changes: VecDeque::new(),
            next: 1,
            bound: bound.max(1),
            bytes: 0,
        }
    }

    fn oldest(&self) -> u64 {
        self.changes.front().map_or(self.next, |c| c.seq)
    }

    /// Records `change`, numbering it (its `seq` is set here).
    pub fn push(&mut self, mut change: Change) {
        change.seq = self.next;
        self.next += 1;
        self.bytes += change.bytes();
        self.changes.push_back(change);
        self.trim();
    }

    fn trim(&mut self) {
        while self.changes.len() > self.bound || (self.bytes > MAX_BYTES && self.changes.len() > 1)
        {
            if let Some(c) = self.changes.pop_front() {
                self.bytes -= c.bytes();
            }
        }
    }

    /// How many changes it keeps.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Keeps the newest `bound` changes (at least one) from now on.
    pub fn set_bound(&mut self, bound: usize) {
        self.bound = bound.max(1);
        self.trim();
    }

    /// The number of the latest change (0: none yet).
    pub fn latest(&self) -> u64 {
        self.next - 1
    }

    /// The changes kept, oldest first; only those of `key` if given.
    pub fn changes(&self, key: Option<&str>) -> Vec<Change> {
        self.changes
            .iter()
            .filter(|c| key.is_none_or(|k| c.key == k))
            .cloned()
            .collect()
    }

    /// The number of changes kept and the oldest's number.
    pub fn kept(&self) -> (usize, u64) {
        (self.changes.len(), self.oldest())
    }

    /// Checks that the state after change `n` can be told from the log: 0
    /// is the state before the first change, while that is kept.
    fn version(&self, n: u64) -> Result<(), HistoryError> {
        let latest = self.next - 1;
        if n > latest {
            return Err(HistoryError::NotYet { asked: n, latest });
        }
        // The changes after `n` must all be kept.
        if n + 1 < self.oldest() {
            return Err(HistoryError::FellOff {
                asked: n,
                oldest: self.oldest(),
                bound: self.bound,
            });
        }
        Ok(())
    }

    /// The keys whose values differ between the state after change `from`
    /// and after change `to` (0: before the first), in key order, each with
    /// its value then and now.
    pub fn diff(&self, from: u64, to: u64) -> Result<Diff, HistoryError> {
        self.version(from)?;
        self.version(to)?;
        let (lo, hi) = (from.min(to), from.max(to));
        let mut keys: alloc::collections::BTreeMap<&str, (Stored, Stored)> =
            alloc::collections::BTreeMap::new();
        for c in self.changes.iter().filter(|c| lo < c.seq && c.seq <= hi) {
            let entry = keys.entry(&c.key).or_insert_with(|| (c.old.clone(), None));
            entry.1 = c.new.clone();
        }
        Ok(keys
            .into_iter()
            .filter(|(_, (at_lo, at_hi))| at_lo != at_hi)
            .map(|(k, (at_lo, at_hi))| {
                if from <= to {
                    (k.into(), at_lo, at_hi)
                } else {
                    (k.into(), at_hi, at_lo)
                }
            })
            .collect())
    }

    /// Each key changed by change `n` or later, with its value before `n`
    /// (`None`: it had none).
    fn revert_plan(&self, n: u64) -> Result<Plan, HistoryError> {
        if n == 0 {
            return Err(HistoryError::NotYet {
                asked: 0,
                latest: self.latest(),
            });
        }
        if n < self.oldest() {
            return Err(HistoryError::FellOff {
                asked: n,
                oldest: self.oldest(),
                bound: self.bound,
            });
        }
        self.version(n)?;
        let mut plan: Plan = Vec::new();
        for c in self.changes.iter().filter(|c| c.seq >= n) {
            if !plan.iter().any(|(k, _)| *k == c.key) {
                plan.push((c.key.clone(), c.old.clone()));
            }
        }
        Ok(plan)
    }
}

/// Recorded state a session reads (`:history`, `:diff`) and, where it can
/// be written back, rolls back (`:revert`): a store's [`History`], a
/// stack's neighbours and sockets.
pub trait Versioned: Send + Sync {
    /// How many changes it keeps.
    fn bound(&self) -> usize;
    /// Keeps the newest `bound` changes (at least one) from now on.
    fn set_bound(&self, bound: usize);
    /// The number of the latest change (0: none yet).
    fn latest(&self) -> u64;
    /// The changes kept, oldest first; only those of `key` if given.
    fn changes(&self, key: Option<&str>) -> Vec<Change>;
    /// The number of changes kept and the oldest's number.
    fn kept(&self) -> (usize, u64);
    /// What differs between the state after change `from` and after `to`.
    fn diff(&self, from: u64, to: u64) -> Result<Diff, HistoryError>;
    /// Puts the state back as it was before change `n`, answering how many
    /// keys were written; [`HistoryError::ReadOnly`] where it cannot be.
    fn revert(&self, n: u64) -> BoxFuture<'_, Result<usize, HistoryError>>;
}

/// A store whose changes are recorded (`kv::history(kv, bound)`): see the
/// [module](self).
pub struct History<K, C> {
    inner: K,
    clock: C,
    log: spin::Mutex<ChangeLog>,
}

impl<K: Kv, C: WallClock> History<K, C> {
    /// Records the changes of `inner`, keeping the newest `bound` (at
    /// least one), timed by `clock`.
    pub fn new(inner: K, bound: usize, clock: C) -> Self {
        History {
            inner,
            clock,
            log: spin::Mutex::new(ChangeLog::new(bound)),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// What [`revert`](Versioned::revert) would write: each key changed by
    /// change `n` or later, with its value before `n` (`None`: remove it).
    pub fn revert_plan(&self, n: u64) -> Result<Plan, HistoryError> {
        self.log.lock().revert_plan(n)
    }

    /// Puts the store back as it was before change `n`: the old values
    /// written back through the wrapped store, each recorded as a change
    /// of its own. Answers how many keys it wrote.
    async fn put_back(&self, n: u64) -> Result<usize, HistoryError> {
        let plan = self.revert_plan(n)?;
        let note = format!("revert to before #{n}");
        let mut written = 0;
        for (key, value) in &plan {
            let now = self.inner.get(key).await.ok();
            if now.as_deref() == value.as_deref() {
                continue;
            }
            self.write(key, value.as_deref(), Some(note.clone()))
                .await
                .map_err(|error| HistoryError::Write {
                    key: key.clone(),
                    error,
                })?;
            written += 1;
        }
        Ok(written)
    }

    /// Writes `value` (`None`: removes) and records it.
    async fn write(
        &self,
        key: &str,
        value: Option<&[u8]>,
        note: Option<String>,
    ) -> Result<(), KvError> {
        validate_key(key)?;
        let old = self.inner.get(key).await.ok();
        match value {
            Some(v) => self.inner.set(key, v).await?,
            None => self.inner.remove(key).await?,
        }
        if old.is_none() && value.is_none() {
            // Removing what was not there changes nothing.
            return Ok(());
        }
        self.log.lock().push(Change {
            seq: 0,
            at_unix_ns: self.clock.now_unix_ns(),
            key: key.into(),
            old,
            new: value.map(<[u8]>::to_vec),
            note,
        });
        Ok(())
    }
}

impl<K: Kv, C: WallClock> Versioned for History<K, C> {
    fn bound(&self) -> usize {
        self.log.lock().bound()
    }
    fn set_bound(&self, bound: usize) {
        self.log.lock().set_bound(bound)
    }
    fn latest(&self) -> u64 {
        self.log.lock().latest()
    }
    fn changes(&self, key: Option<&str>) -> Vec<Change> {
        self.log.lock().changes(key)
    }
    fn kept(&self) -> (usize, u64) {
        self.log.lock().kept()
    }
    fn diff(&self, from: u64, to: u64) -> Result<Diff, HistoryError> {
        self.log.lock().diff(from, to)
    }
    fn revert(&self, n: u64) -> BoxFuture<'_, Result<usize, HistoryError>> {
        Box::pin(self.put_back(n))
    }
}

impl<K: Kv, C: WallClock> KvRo for History<K, C> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        self.inner.get(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        self.inner.list(prefix)
    }
}

impl<K: Kv, C: WallClock> Kv for History<K, C> {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(self.write(key, Some(value), None))
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(self.write(key, None, None))
    }
}

/// A wall clock for tests whose every reading is one nanosecond later.
#[cfg(test)]
pub(crate) struct Ticks(pub(crate) core::sync::atomic::AtomicU64);

#[cfg(test)]
impl WallClock for Ticks {
    fn now_unix_ns(&self) -> u64 {
        self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::block_on;
    use crate::kv::Mem;
    use alloc::{string::ToString, vec};
    use core::sync::atomic::AtomicU64;

    fn store(bound: usize) -> History<Mem, Ticks> {
        History::new(Mem::new(), bound, Ticks(AtomicU64::new(100)))
    }

    fn v(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn every_write_and_removal_is_recorded_with_old_and_new() {
        let h = store(10);
        block_on(async {
            h.set("a", b"1").await.unwrap();
            h.set("a", b"2").await.unwrap();
            h.set("b", b"x").await.unwrap();
            h.remove("a").await.unwrap();
            h.remove("nope").await.unwrap();
            assert!(h.set("", b"bad").await.is_err());
        });
        let got: Vec<_> = h
            .changes(None)
            .into_iter()
            .map(|c| (c.seq, c.at_unix_ns, c.key, c.old, c.new))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 100, "a".to_string(), None, v("1")),
                (2, 101, "a".into(), v("1"), v("2")),
                (3, 102, "b".into(), None, v("x")),
                (4, 103, "a".into(), v("2"), None),
            ],
            "a removal of a missing key and a refused write change nothing"
        );
        assert_eq!(h.changes(Some("b")).len(), 1);
        assert_eq!(h.latest(), 4);
    }

    #[test]
    fn a_diff_tells_two_versions_apart_in_either_direction() {
        let h = store(10);
        block_on(async {
            h.set("a", b"1").await.unwrap(); // 1
            h.set("b", b"1").await.unwrap(); // 2
            h.set("a", b"2").await.unwrap(); // 3
            h.set("b", b"1").await.unwrap(); // 4: the same value
            h.remove("a").await.unwrap(); // 5
        });
        assert_eq!(
            h.diff(0, 2).unwrap(),
            vec![("a".into(), None, v("1")), ("b".into(), None, v("1"))]
        );
        assert_eq!(
            h.diff(1, 3).unwrap(),
            vec![("a".into(), v("1"), v("2")), ("b".into(), None, v("1"))]
        );
        assert_eq!(h.diff(2, 4).unwrap(), vec![("a".into(), v("1"), v("2"))]);
        assert_eq!(h.diff(4, 2).unwrap(), vec![("a".into(), v("2"), v("1"))]);
        assert_eq!(h.diff(3, 5).unwrap(), vec![("a".into(), v("2"), None)]);
        assert_eq!(h.diff(5, 5).unwrap(), vec![]);
        assert_eq!(
            h.diff(1, 6),
            Err(HistoryError::NotYet {
                asked: 6,
                latest: 5
            })
        );
    }

    #[test]
    fn revert_writes_the_old_values_back_recorded_and_says_when_one_fell_off() {
        let h = store(4);
        block_on(async {
            h.set("page", b"v1").await.unwrap(); // 1
            h.set("page", b"v2").await.unwrap(); // 2
            h.set("other", b"o").await.unwrap(); // 3
            h.set("page", b"v3").await.unwrap(); // 4
            assert_eq!(h.revert(2).await, Ok(2));
            assert_eq!(h.get("page").await.unwrap(), b"v1");
            assert!(h.get("other").await.is_err(), "made after #2: removed");
            // Recorded, with why: #5 and #6; #1 and #2 fell off the bound.
            let last = h.changes(None);
            assert_eq!(last.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4, 5, 6]);
            assert_eq!(last[2].note.as_deref(), Some("revert to before #2"));
            assert_eq!(
                h.revert(2).await,
                Err(HistoryError::FellOff {
                    asked: 2,
                    oldest: 3,
                    bound: 4
                })
            );
            assert_eq!(
                h.revert(2).await.unwrap_err().to_string(),
                "change #2 fell off the history (it keeps the last 4; the oldest kept is #3)"
            );
            assert_eq!(
                h.diff(1, 6),
                Err(HistoryError::FellOff {
                    asked: 1,
                    oldest: 3,
                    bound: 4
                })
            );
            assert!(h.diff(2, 6).is_ok(), "the changes after #2 are all kept");
            // Undoing the revert: back to before #5.
            assert_eq!(h.revert(5).await, Ok(2));
            assert_eq!(h.get("page").await.unwrap(), b"v3");
            assert_eq!(h.get("other").await.unwrap(), b"o");
            assert_eq!(
                h.revert(9).await,
                Err(HistoryError::NotYet {
                    asked: 9,
                    latest: 8
                })
            );
        });
    }

    #[test]
    fn the_bound_and_the_byte_limit_keep_the_newest() {
        let h = store(3);
        block_on(async {
            for i in 0..10u8 {
                h.set("k", &[i]).await.unwrap();
            }
            assert_eq!(h.kept(), (3, 8));
            h.set_bound(1);
            assert_eq!(h.kept(), (1, 10));
            h.set_bound(100);
            let big = vec![0u8; MAX_BYTES / 2];
            for _ in 0..3 {
                h.set("big", &big).await.unwrap();
            }
            // The second write holds the first value as its old one: each
            // change of `big` after the first is a whole MAX_BYTES.
            let (n, _) = h.kept();
            assert!(n <= 2, "{n} changes kept");
        });
    }
}
