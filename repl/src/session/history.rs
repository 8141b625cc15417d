//! Versioned device state: every store of the stack a session runs records
//! its changes (`libos::kv::History`, applied by the runner), and the
//! session reads them: `:history NAME [KEY]` lists them, `:diff NAME N M`
//! compares two versions, `:revert NAME N` writes the values from before
//! change N back through the live store (itself recorded).
use super::supervisor::Request;
use super::{Reply, Session};
use libos::kv::{Change, HistoryError};
use nym_unix::runner::StoreHistory;
use std::sync::Arc;
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
}

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
            [name] => self.ask_history(Some(name), Ask::List(None)),
            [name, key] => self.ask_history(
                Some(name),
                Ask::List(Some(key.trim_matches('"').to_owned())),
            ),
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

    fn ask_history(&mut self, name: Option<&str>, ask: Ask) -> Reply {
        self.poll();
        let Some(running) = &self.running else {
            return Reply::err(match &self.booted {
                Some(_) => "a store's history is kept by the stack running in-process (`:run`); a booted guest's is not".to_owned(),
                None => "histories are kept while the stack runs, and nothing runs: `:run` starts it".to_owned(),
            });
        };
        if let Some(name) = name {
            let analysis = self.analysis();
            let bound = analysis
                .checked
                .bindings
                .iter()
                .find(|b| b.name.name == name);
            match bound.map(|b| b.ty) {
                None => {
                    return Reply::err(format!("no binding `{name}` (`:history` lists the stores)"))
                }
                Some(nym_graph::Type::Device(nym_graph::Kind::Kv)) => {}
                Some(nym_graph::Type::Device(nym_graph::Kind::KvRo)) => {
                    return Reply::err(format!(
                        "`{name}` is read-only: nothing changes it, so it has no history"
                    ))
                }
                Some(ty) => {
                    return Reply::err(format!(
                        "`{name}` is a {ty}: only stores (`Kv`) keep a history"
                    ))
                }
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
pub(super) fn stores(histories: &[(String, Arc<StoreHistory>)], ask: &Ask) -> String {
    if let Ask::Bound(n) = ask {
        for (_, h) in histories {
            h.set_bound(*n);
        }
    }
    if histories.is_empty() {
        return "no store of the running stack keeps a history (it has no `Kv`)".into();
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
pub(super) async fn answer(label: &str, h: &StoreHistory, ask: Ask) -> Result<String, String> {
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
}
