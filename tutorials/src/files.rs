//! Trees of files: read one (leaving out what a build or a run makes),
//! write one over a directory, and keep a copy in step with a source
//! without touching what did not change (so cargo rebuilds nothing).
use crate::engine::{io, Error};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a path (relative, `/`-separated) belongs to the learner's
/// sources: not build output, run state or nym's own files.
pub fn is_source(rel: &str) -> bool {
    let first = rel.split('/').next().unwrap_or(rel);
    !(first == "target" || first == "data" || first.starts_with('.') || rel.ends_with(".img"))
}

/// Every source file under `root`, by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if !is_source(&rel) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.insert(rel, bytes);
                }
            }
            _ => {}
        }
    }
}

/// Writes `files` under `root`, making directories as needed.
pub fn write_all(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
    for (rel, bytes) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// Writes `path` whole or not at all (a new file renamed over the old).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

/// Makes `dst` hold exactly `files`: changed files are written, files not
/// in `files` removed (state a run left there included), unchanged files
/// left as they are. Build output (`target/`) and nym's own files stay.
pub fn sync(dst: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
    let mut stale = Vec::new();
    every_file(dst, dst, &mut stale);
    let kept = |rel: &str| rel.starts_with("target/") || rel.starts_with(".nym-tutorial/");
    for rel in stale.iter().filter(|r| !files.contains_key(*r) && !kept(r)) {
        let _ = std::fs::remove_file(dst.join(rel));
    }
    for (rel, bytes) in files {
        let path = dst.join(rel);
        if std::fs::read(&path).is_ok_and(|now| &now == bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// Every file under `dir`, whatever it is, relative to `root`.
fn every_file(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            every_file(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_writes_what_changed_removes_what_is_gone_and_leaves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut files = BTreeMap::new();
        files.insert("src/lib.rs".to_owned(), b"one".to_vec());
        files.insert("unikernel.nym".to_owned(), b"graph".to_vec());
        sync(root, &files).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/runs"), "3").unwrap();
        std::fs::create_dir_all(root.join("target/nym")).unwrap();
        std::fs::write(root.join("target/nym/shim"), "built").unwrap();
        let before = std::fs::metadata(root.join("unikernel.nym"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        files.insert("src/lib.rs".to_owned(), b"two".to_vec());
        sync(root, &files).unwrap();
        assert_eq!(std::fs::read(root.join("src/lib.rs")).unwrap(), b"two");
        assert!(
            !root.join("data/runs").exists(),
            "a run's state is not kept"
        );
        assert!(root.join("target/nym/shim").exists(), "a build is kept");
        let after = std::fs::metadata(root.join("unikernel.nym"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after, "an unchanged file is not rewritten");
        assert_eq!(tree(root), files);
    }

    #[test]
    fn a_tree_leaves_out_builds_runs_and_nyms_own_files() {
        for rel in [
            "target/x",
            "data/runs",
            ".nym-tutorial/progress.toml",
            "kv.img",
            ".git/HEAD",
        ] {
            assert!(!is_source(rel), "{rel}");
        }
        for rel in [
            "src/lib.rs",
            "unikernel.nym",
            "www/index.html",
            "tls/ca.pem",
        ] {
            assert!(is_source(rel), "{rel}");
        }
    }
}
