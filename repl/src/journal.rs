//! The session's journal: in a lesson folder of `nym tutorial`, each
//! evaluation (`nym repl` or `nym tui`) appends one JSON line — the input,
//! the reply, whether it was an error, where it was typed — to
//! `.nym-tutorial/events.jsonl`, and the lesson's session checks read it.
//! Outside a lesson folder nothing is written.
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory of `nym tutorial`'s files in a lesson folder.
pub const DIR: &str = ".nym-tutorial";

/// The journal's file in [`DIR`].
pub const FILE: &str = "events.jsonl";

/// One evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What was typed (a cell's source).
    pub input: String,
    /// What the session answered.
    pub reply: String,
    /// Whether the answer was an error.
    pub error: bool,
    /// Where: `repl` or `tui`.
    pub via: String,
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    via: &'static str,
}

impl Journal {
    /// The journal of the lesson folder at or above `dir`, if there is one.
    pub fn find(dir: &Path, via: &'static str) -> Option<Journal> {
        let lesson = dir.ancestors().find(|d| d.join(DIR).is_dir())?;
        Some(Journal {
            path: lesson.join(DIR).join(FILE),
            via,
        })
    }

    /// Appends `event`. A journal that cannot be written is left alone: the
    /// session matters more than the lesson's record of it.
    pub fn record(&self, input: &str, reply: &str, error: bool) {
        let line = json!({ "input": input, "reply": reply, "error": error, "via": self.via });
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Every event in the journal at `path`, oldest first; lines that are not
/// events (a torn write) are left out.
pub fn read(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            Some(Event {
                input: v.get("input")?.as_str()?.to_owned(),
                reply: v.get("reply")?.as_str()?.to_owned(),
                error: v.get("error")?.as_bool()?,
                via: v.get("via")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_only_in_a_lesson_folder_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Journal::find(dir.path(), "repl").is_none());
        std::fs::create_dir(dir.path().join(DIR)).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let j = Journal::find(&dir.path().join("src"), "tui").unwrap();
        j.record(":inspect state", "state: kv\n  greeting = \"hi\"", false);
        j.record("let x = ;", "error", true);
        let path = dir.path().join(DIR).join(FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "{{\"input\": \"torn").unwrap();
        let events = read(&path);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].reply, "state: kv\n  greeting = \"hi\"");
        assert_eq!((events[1].error, events[1].via.as_str()), (true, "tui"));
    }
}
