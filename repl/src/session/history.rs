//! Versioned device state: every store of the stack a session runs records
//! its changes (`libos::kv::History`, applied by the runner), and the
//! session reads them: `:history NAME [KEY]` lists them, `:diff NAME N M`
//! compares two versions, `:revert NAME N` writes the values from before
//! change N back through the live store (itself recorded). The store
//! `:history NAME [KEY]` last named is *followed*: a front end's pane
//! reads its newest changes with [`Session::store_changes`] as the stack
//! runs.
use super::supervisor::{Request, Running};
use super::{Reply, Session};
use libos::kv::{Change, HistoryError};
use nym_unix::runner::Recorded;
use tokio::sync::oneshot;

/// How many changes each store keeps unless `:history --bound N` says.
pub(super) const DEFAULT_BOUND: usize = 1000;

/// How many changes `:history` prints at most (the newest).
const SHOWN: usize = 100;

/// What the session asks of a store's history.
pub(super) enum Ask {
    /// The changes, of one key if given.
    List(Option<String>),
    /// The versions after two changes compared.
    Diff(u64, u64),
    /// The store put back as it was before a change.
    Revert(u64),
    /// Every store keeps this many changes from now on.
    Bound(usize),
    /// The handles to every store's history, for a pane that follows one.
    Handles(std::sync::mpsc::Sender<Vec<(String, Recorded)>>),
}

/// One change of a store as a pane shows it, its values already short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// Its number (`:diff`, `:revert` take it).
    pub seq: u64,
    /// When it completed, `HH:MM:SS.mmm` (UTC).
    pub time: String,
    /// The key.
    pub key: String,
    /// The value before, short (`(none)`: the key was new).
    pub old: String,
    /// The value after, short (`(none)`: removed).
    pub new: String,
    /// Why it was made, when not by the store's users.
    pub note: Option<String>,
}

impl ChangeRow {
    /// `c`, as a pane shows it.
    pub fn of(c: &Change) -> ChangeRow {
        ChangeRow {
            seq: c.seq,
            time: time_of_day(c.at_unix_ns),
            key: c.key.clone(),
            old: value(c.old.as_deref()),
            new: value(c.new.as_deref()),
            note: c.note.clone(),
        }
    }
}

/// The newest changes of the store a pane follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChanges {
    /// The store's binding.
    pub store: String,
    /// The one key followed, if `:history NAME KEY` named one.
    pub key: Option<String>,
    /// How many changes the store keeps now, and at most.
    pub kept: usize,
    /// The most it keeps.
    pub bound: usize,
    /// The newest changes (of the key), oldest first.
    pub rows: Vec<ChangeRow>,
}

/// The store `:history NAME [KEY]` named last, and the handle to its
/// history once the running stack has lent it.
pub(super) struct Follow {
    store: String,
    key: Option<String>,
    handle: Handle,
}

/// Where the followed store's history handle stands. A handle belongs to
/// one stack (its request channel) at one reload: a re-wire may make the
/// store anew, so it is asked for again.
enum Handle {
    None,
    Asked(Stamp, std::sync::mpsc::Receiver<Vec<(String, Recorded)>>),
    Got(Stamp, Option<Recorded>),
}

/// Which running stack, after how many reloads.
struct Stamp(tokio::sync::mpsc::UnboundedSender<Request>, u32);

impl Stamp {
    fn of(running: &Running, reloads: u32) -> Stamp {
        Stamp(running.requests.clone(), reloads)
    }

    fn is(&self, running: &Running, reloads: u32) -> bool {
        self.1 == reloads && self.0.same_channel(&running.requests)
    }
}

/// How long a pane's read waits for the running stack to lend a history
/// before trying again on its next read (the stack may be mid-reload).
const LEND_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

impl Session {
    /// `:history [NAME [KEY]]`, `:history --bound N`.
    pub(super) fn history(&mut self, rest: &str) -> Reply {
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.as_slice() {
            [] => self.ask_history(None, Ask::List(None)),
            ["--bound", n] => match n.parse::<usize>() {
                Ok(n) if n > 0 => {
                    nym_unix::runner::record_history(n);
                    if self.running.is_none() {
                        return Reply::ok(format!(
                            "each store the stack makes will keep its last {n} changes"
                        ));
                    }
                    self.ask_history(None, Ask::Bound(n))
                }
                _ => Reply::err(format!(
                    "`:history --bound N`: N is a number of changes, at least 1, not `{n}`"
                )),
            },
            [name] => {
                self.follow(name, None);
                self.ask_history(Some(name), Ask::List(None))
            }
            [name, key] => {
                let key = key.trim_matches('"').to_owned();
                self.follow(name, Some(key.clone()));
                self.ask_history(Some(name), Ask::List(Some(key)))
            }
            _ => Reply::err(
                "`:history NAME [KEY]`: a store's changes (`:history` alone lists the stores)",
            ),
        }
    }

    /// `:diff NAME N M`.
    pub(super) fn diff(&mut self, rest: &str) -> Reply {
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [name, n, m] = words.as_slice() else {
            return Reply::err("`:diff NAME N M`: what changed in a store from the version after change N to the one after M (0: before the first)");
        };
        match (change_number(n), change_number(m)) {
            (Ok(n), Ok(m)) => self.ask_history(Some(name), Ask::Diff(n, m)),
            (Err(e), _) | (_, Err(e)) => Reply::err(format!("`:diff NAME N M`: {e}")),
        }
    }

    /// `:revert NAME N`.
    pub(super) fn revert(&mut self, rest: &str) -> Reply {
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [name, n] = words.as_slice() else {
            return Reply::err("`:revert NAME N`: puts a store back as it was before change N (`:history NAME` numbers them)");
        };
        match change_number(n) {
            Ok(n) => self.ask_history(Some(name), Ask::Revert(n)),
            Err(e) => Reply::err(format!("`:revert NAME N`: {e}")),
        }
    }

    /// Follows the store `name` (of one `key`) from now on, if it is one.
    fn follow(&mut self, name: &str, key: Option<String>) {
        if self.store_binding(name).is_ok() {
            self.follow = Some(Follow {
                store: name.to_owned(),
                key,
                handle: Handle::None,
            });
            self.follows += 1;
        }
    }

    /// How many times `:history NAME [KEY]` has named a store to follow: a
    /// front end opens its history pane when this grows.
    pub fn history_follows(&self) -> u64 {
        self.follows
    }

    /// The newest `n` changes of the store `:history NAME [KEY]` named
    /// last, read without blocking on the running stack for long; the
    /// error says why there are none to show.
    pub fn store_changes(&mut self, n: usize) -> Result<StoreChanges, String> {
        let reloads = self.status().reloads;
        let Some(f) = &mut self.follow else {
            return Err(
                "`:history NAME` in a cell picks the store to follow (`:history` alone lists them)"
                    .into(),
            );
        };
        let Some(running) = &self.running else {
            return Err(format!(
                "{}: histories are kept while the stack runs: `:run` starts it",
                f.store
            ));
        };
        let current = match &f.handle {
            Handle::Got(stamp, h) if stamp.is(running, reloads) => h.clone(),
            Handle::Asked(stamp, rx) if stamp.is(running, reloads) => {
                match rx.recv_timeout(LEND_WAIT) {
                    Ok(all) => {
                        let h = (all.into_iter())
                            .find(|(label, _)| *label == f.store)
                            .map(|(_, h)| h);
                        f.handle = Handle::Got(Stamp::of(running, reloads), h.clone());
                        h
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        return Err(format!("{}: asking the running stack…", f.store))
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        f.handle = Handle::None;
                        return Err(format!("{}: the running stack did not answer", f.store));
                    }
                }
            }
            _ => {
                let (tx, rx) = std::sync::mpsc::channel();
                let (done, _) = oneshot::channel();
                let request = Request::History(None, Ask::Handles(tx), done);
                if running.requests.send(request).is_err() {
                    return Err("the running stack is gone".into());
                }
                f.handle = Handle::Asked(Stamp::of(running, reloads), rx);
                return self.store_changes(n);
            }
        };
        let Some(h) = current else {
            return Err(format!(
                "`{}` is not in the running stack (no registered job reaches it) or keeps no history",
                f.store
            ));
        };
        let changes = h.changes(f.key.as_deref());
        let skip = changes.len().saturating_sub(n);
        Ok(StoreChanges {
            store: f.store.clone(),
            key: f.key.clone(),
            kept: h.kept().0,
            bound: h.bound(),
            rows: changes[skip..].iter().map(ChangeRow::of).collect(),
        })
    }

    /// Why `name` has no history, unless it is a store's binding.
    fn store_binding(&self, name: &str) -> Result<(), String> {
        let analysis = self.analysis();
        let bound = analysis
            .checked
            .bindings
            .iter()
            .find(|b| b.name.name == name);
        match bound.map(|b| b.ty) {
            None => Err(format!("no binding `{name}` (`:history` lists the stores)")),
            Some(nym_graph::Type::Device(nym_graph::Kind::Kv | nym_graph::Kind::Stack)) => Ok(()),
            Some(nym_graph::Type::Device(nym_graph::Kind::KvRo)) => Err(format!(
                "`{name}` is read-only: nothing changes it, so it has no history"
            )),
            Some(ty) => Err(format!(
                "`{name}` is a {ty}: only stores (`Kv`) and `stack::direct` keep a history"
            )),
        }
    }

    fn ask_history(&mut self, name: Option<&str>, ask: Ask) -> Reply {
        self.poll();
        let Some(running) = &self.running else {
            return Reply::err(match &self.booted {
                Some(_) => "a store's history is kept by the stack running in-process (`:run`); a booted guest's is not".to_owned(),
                None => "histories are kept while the stack runs, and nothing runs: `:run` starts it".to_owned(),
            });
        };
        if let Some(name) = name {
            if let Err(e) = self.store_binding(name) {
                return Reply::err(e);
            }
        }
        let (tx, rx) = oneshot::channel();
        let request = Request::History(name.map(str::to_owned), ask, tx);
        if running.requests.send(request).is_err() {
            return Reply::err("the running stack is gone");
        }
        match self.wait(rx) {
            Ok(Ok(text)) => Reply::ok(text),
            Ok(Err(e)) => Reply::err(e),
            Err(e) => Reply::err(e.to_string()),
        }
    }
}

fn change_number(word: &str) -> Result<u64, String> {
    word.trim_start_matches('#')
        .parse()
        .map_err(|_| format!("`{word}` is not a change's number (`#3` or `3`)"))
}

/// The stores with a history, a line each (for `:history` alone), after
/// setting their bound if asked.
pub(super) fn stores(histories: &[(String, Recorded)], ask: &Ask) -> String {
    match ask {
        Ask::Bound(n) => {
            for (_, h) in histories {
                h.set_bound(*n);
            }
        }
        Ask::Handles(lend) => {
            let _ = lend.send(histories.to_vec());
            return String::new();
        }
        _ => {}
    }
    if histories.is_empty() {
        return "nothing in the running stack keeps a history (it has no `Kv` and no `stack::direct`)".into();
    }
    let mut out = String::new();
    for (label, h) in histories {
        let (n, oldest) = h.kept();
        let range = match n {
            0 => "no changes yet".to_owned(),
            _ => format!("{n} change(s), #{oldest}–#{}", h.latest()),
        };
        out += &format!("{label}: {range} (keeps {})\n", h.bound());
    }
    out += "`:history NAME [KEY]` lists one's, `:diff NAME N M`, `:revert NAME N`";
    out
}

/// Answers `ask` of the history of the store labelled `label`; a revert
/// writes through the live store.
pub(super) async fn answer(label: &str, h: &Recorded, ask: Ask) -> Result<String, String> {
    let err = |e: HistoryError| format!("{label}: {e}");
    match ask {
        Ask::List(key) => {
            let changes = h.changes(key.as_deref());
            let (kept, oldest) = h.kept();
            if changes.is_empty() {
                return Ok(match (&key, kept) {
                    (Some(k), _) => format!("{label}: no change of {k:?} is kept"),
                    (None, _) => {
                        format!("{label}: no changes yet (it keeps the last {})", h.bound())
                    }
                });
            }
            let mut out = String::new();
            let skip = changes.len().saturating_sub(SHOWN);
            if skip > 0 {
                out += &format!("… {skip} earlier change(s) not shown\n");
            }
            for c in &changes[skip..] {
                out += &line(c);
                out.push('\n');
            }
            if oldest > 1 {
                out += &format!(
                    "(changes before #{oldest} fell off: it keeps the last {})",
                    h.bound()
                );
            }
            Ok(out.trim_end().to_owned())
        }
        Ask::Diff(from, to) => {
            let diff = h.diff(from, to).map_err(err)?;
            if diff.is_empty() {
                return Ok(format!("{label}: #{from} and #{to} hold the same values"));
            }
            let mut out = format!("{label} #{from} → #{to}: {} key(s) differ", diff.len());
            for (key, then, now) in diff {
                out += &format!(
                    "\n  {key}: {} → {}",
                    value(then.as_deref()),
                    value(now.as_deref())
                );
            }
            Ok(out)
        }
        Ask::Bound(n) => {
            h.set_bound(n);
            Ok(format!("{label} keeps its last {n} changes"))
        }
        Ask::Handles(_) => Err("a history's handle is lent for every store at once".into()),
        Ask::Revert(n) => {
            let before = h.latest();
            let written = h.revert(n).await.map_err(err)?;
            Ok(match written {
                0 => format!("{label} already holds the values from before #{n}: nothing written"),
                w => format!(
                    "{label}: put back as before #{n}: {w} key(s) written through the live store (recorded as #{}–#{})",
                    before + 1,
                    h.latest()
                ),
            })
        }
    }
}

/// `#3  12:04:05.120  set greeting = "hi" (was "hello")`
fn line(c: &Change) -> String {
    let what = match (&c.old, &c.new) {
        (None, Some(new)) => format!("set {} = {} (new key)", c.key, value(Some(new))),
        (Some(old), Some(new)) => format!(
            "set {} = {} (was {})",
            c.key,
            value(Some(new)),
            value(Some(old))
        ),
        (Some(old), None) => format!("removed {} (was {})", c.key, value(Some(old))),
        (None, None) => format!("removed {}", c.key),
    };
    let note = c
        .note
        .as_deref()
        .map_or_else(String::new, |n| format!("  [{n}]"));
    format!("#{:<4} {}  {what}{note}", c.seq, time_of_day(c.at_unix_ns))
}

/// `HH:MM:SS.mmm` (UTC).
fn time_of_day(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// A value, short: text quoted (cut at 40 characters), other bytes counted.
fn value(v: Option<&[u8]>) -> String {
    let Some(v) = v else {
        return "(none)".into();
    };
    match std::str::from_utf8(v) {
        Ok(t) if !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            let mut short: String = t.chars().take(40).collect();
            if t.chars().count() > 40 {
                short.push('…');
            }
            format!("{short:?}")
        }
        _ => format!("<{} bytes>", v.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn changes_read_as_a_log_and_values_stay_short() {
        let c = Change {
            seq: 3,
            at_unix_ns: ((12 * 3600 + 4 * 60 + 5) * 1000 + 120) * 1_000_000,
            key: "greeting".into(),
            old: Some(b"hello".to_vec()),
            new: Some(b"hi".to_vec()),
            note: None,
        };
        assert_eq!(
            line(&c),
            "#3    12:04:05.120  set greeting = \"hi\" (was \"hello\")"
        );
        let c = Change {
            old: None,
            new: Some(vec![0, 1, 2]),
            note: Some("revert to before #2".into()),
            ..c
        };
        assert_eq!(
            line(&c),
            "#3    12:04:05.120  set greeting = <3 bytes> (new key)  [revert to before #2]"
        );
        assert_eq!(
            value(Some("x".repeat(50).as_bytes())),
            format!("\"{}…\"", "x".repeat(40))
        );
        assert_eq!(change_number("#12"), Ok(12));
        assert!(change_number("twelve").is_err());
    }

    #[test]
    fn history_names_the_store_a_pane_follows_and_says_why_it_has_nothing_yet() {
        let dir = tempfile::tempdir().unwrap();
        crate::write_project(
            dir.path(),
            "pub async fn start(c: impl libos::Console, kv: impl libos::Kv) -> Result<(), libos::ConsoleError> { Ok(()) }\n",
            "let console = console::default();\nlet store = kv::mem();\nlet app = job app::start(console, store);\nregister(\"app\", [app]);\n",
        )
        .unwrap();
        let mut s = Session::open(dir.path(), None).unwrap();
        let e = s.store_changes(10).unwrap_err();
        assert!(
            e.contains("`:history NAME` in a cell picks the store"),
            "{e}"
        );
        // Not a store: nothing followed.
        assert!(s.eval(":history console").error);
        assert_eq!(s.history_follows(), 0);
        // A store, while nothing runs: followed, and the pane says why it is empty.
        assert!(s.eval(":history store greeting").error);
        assert_eq!(s.history_follows(), 1);
        let e = s.store_changes(10).unwrap_err();
        assert_eq!(
            e,
            "store: histories are kept while the stack runs: `:run` starts it"
        );
    }

    #[test]
    fn the_running_stack_lends_every_histories_handle_with_its_label() {
        use libos::Kv as _;
        let store: Arc<dyn libos::Kv> = Arc::new(libos::kv::Mem::new());
        let clock: Arc<dyn libos::WallClock> =
            Arc::new(nym_unix::devices::clock::Wall::new().unwrap());
        let h: Arc<nym_unix::runner::StoreHistory> =
            Arc::new(nym_unix::runner::StoreHistory::new(store, 10, clock));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(h.set("greeting", b"hi")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let all = vec![("state".to_owned(), h.clone() as Recorded)];
        assert_eq!(stores(&all, &Ask::Handles(tx)), "");
        let lent = rx.try_recv().unwrap();
        assert_eq!(lent[0].0, "state");
        assert!(
            Arc::ptr_eq(&lent[0].1, &(h.clone() as Recorded)),
            "the live history, not a copy"
        );
        let rows: Vec<ChangeRow> = lent[0].1.changes(None).iter().map(ChangeRow::of).collect();
        assert_eq!(
            (
                rows[0].seq,
                rows[0].key.as_str(),
                rows[0].old.as_str(),
                rows[0].new.as_str()
            ),
            (1, "greeting", "(none)", "\"hi\"")
        );
        assert_eq!(rows[0].time.len(), "12:04:05.120".len());
    }
}
