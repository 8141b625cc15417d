//! Watching a project's sources for hot reload: `src/**/*.rs`, `Cargo.toml`
//! and the graph file. Editors save by renaming a new file over the old
//! one, so the directories are watched, not the files.
use crate::Error;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Edits arriving closer together than this are one change.
pub const SETTLE: Duration = Duration::from_millis(80);
/// After a write that ended a save (the file closed after writing, or
/// renamed into place), how long more edits have to join the change: an
/// editor saving several files does so in one go.
pub const SAVED_SETTLE: Duration = Duration::from_millis(5);

/// A changed path, and whether the event ended a save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The file.
    pub path: PathBuf,
    /// Written and closed, or renamed into place: the save is complete.
    pub saved: bool,
}

/// Sends each changed path of the project at `root` (graph file `graph`)
/// to `tx` while the returned watcher lives.
pub fn watch(
    root: &Path,
    graph: &Path,
    tx: mpsc::UnboundedSender<Changed>,
) -> Result<notify::RecommendedWatcher, Error> {
    let src = root.join("src");
    let manifest = root.join("Cargo.toml");
    let graph_file = graph.to_owned();
    let relevant = {
        let src = src.clone();
        move |p: &Path| {
            p == graph_file
                || p == manifest
                || (p.starts_with(&src) && p.extension().is_some_and(|e| e == "rs"))
        }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
        let Ok(event) = event else { return };
        let saved = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => true,
            EventKind::Access(_) => return,
            _ => false,
        };
        for path in event.paths.into_iter().filter(|p| relevant(p)) {
            let _ = tx.send(Changed { path, saved });
        }
    })
    .map_err(|e| watch_error(root, e))?;
    // Editors save by renaming a new file over the old one: watch the
    // directories, not the files.
    let graph_dir = graph.parent().unwrap_or(root);
    watcher
        .watch(graph_dir, RecursiveMode::NonRecursive)
        .map_err(|e| watch_error(graph_dir, e))?;
    if root != graph_dir {
        watcher
            .watch(root, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(root, e))?;
    }
    if src.is_dir() {
        watcher
            .watch(&src, RecursiveMode::Recursive)
            .map_err(|e| watch_error(&src, e))?;
    }
    Ok(watcher)
}

/// Waits for the next change and for the edits after it to settle: the
/// changed paths, relative to `root`, sorted; `None` once the watcher is gone.
/// An editor's save is several events: after one that ended a save, more
/// have [`SAVED_SETTLE`] to come, else [`SETTLE`].
pub async fn next_change(
    changes: &mut mpsc::UnboundedReceiver<Changed>,
    root: &Path,
) -> Option<Vec<String>> {
    let first = changes.recv().await?;
    let mut quiet = if first.saved { SAVED_SETTLE } else { SETTLE };
    let mut changed = vec![first.path];
    while let Ok(Some(c)) = tokio::time::timeout(quiet, changes.recv()).await {
        quiet = if c.saved { SAVED_SETTLE } else { SETTLE };
        changed.push(c.path);
    }
    changed.sort();
    changed.dedup();
    Some(changed.iter().map(|p| short(root, p)).collect())
}

/// `p` relative to `root`, for messages.
pub fn short(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn watch_error(path: &Path, e: notify::Error) -> Error {
    Error::Io {
        what: format!("watching {}", path.display()),
        source: std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of `root` until one for `path` says the save ended.
    async fn until_saved(rx: &mut mpsc::UnboundedReceiver<Changed>, path: &Path) -> Vec<Changed> {
        let mut seen = Vec::new();
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(c) = rx.recv().await {
                let done = c.saved && c.path == path;
                seen.push(c);
                if done {
                    return;
                }
            }
        });
        assert!(wait.await.is_ok(), "no event ended the save: {seen:?}");
        seen
    }

    #[tokio::test]
    async fn a_write_that_closes_and_a_rename_into_place_end_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("src")).unwrap();
        let graph = root.join("unikernel.nym");
        let lib = root.join("src/lib.rs");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = watch(root, &graph, tx).unwrap();

        // Written in place: modified (not yet saved), then closed.
        std::fs::write(&lib, "pub fn a() {}\n").unwrap();
        let seen = until_saved(&mut rx, &lib).await;
        assert!(seen.iter().any(|c| c.path == lib && !c.saved), "{seen:?}");

        // Written aside and renamed over it, as editors save.
        let aside = root.join("src/.lib.rs.tmp");
        std::fs::write(&aside, "pub fn b() {}\n").unwrap();
        std::fs::rename(&aside, &lib).unwrap();
        until_saved(&mut rx, &lib).await;

        // Files outside the project's sources say nothing.
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::write(&graph, "let c = console::default();\n").unwrap();
        let seen = until_saved(&mut rx, &graph).await;
        assert!(
            seen.iter().all(|c| !c.path.ends_with("notes.txt")),
            "{seen:?}"
        );

        // next_change gathers a save into one change, its paths relative.
        // (What is still on its way from the writes above may join it.)
        std::fs::write(&lib, "pub fn c() {}\n").unwrap();
        let changed = next_change(&mut rx, root).await.unwrap();
        assert!(changed.contains(&"src/lib.rs".to_owned()), "{changed:?}");
        assert!(changed.iter().all(|p| !p.starts_with('/')), "{changed:?}");
    }
}
