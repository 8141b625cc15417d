//! Watching a project's sources for hot reload: `src/**/*.rs`, `Cargo.toml`
//! and the graph file. Editors save by renaming a new file over the old
//! one, so the directories are watched, not the files.
use crate::Error;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Edits arriving closer together than this are one change.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(80);

/// Sends each changed path of the project at `root` (graph file `graph`)
/// to `tx` while the returned watcher lives.
pub fn watch(
    root: &Path,
    graph: &Path,
    tx: mpsc::UnboundedSender<PathBuf>,
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
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in event.paths.into_iter().filter(|p| relevant(p)) {
            let _ = tx.send(p);
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
pub async fn next_change(
    changes: &mut mpsc::UnboundedReceiver<PathBuf>,
    root: &Path,
) -> Option<Vec<String>> {
    let first = changes.recv().await?;
    let mut changed = vec![first];
    // An editor's save is several events: wait for quiet.
    while let Ok(Some(p)) = tokio::time::timeout(SETTLE, changes.recv()).await {
        changed.push(p);
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
