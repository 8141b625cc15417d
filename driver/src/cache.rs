//! The shared build cache: libos, the runtimes and their dependencies,
//! built once per toolchain and profile and reused by every project.
//!
//! Cargo does the sharing. Every generated crate builds with the same
//! `build.build-dir` (`~/.cache/nym/build`), where cargo keeps what it
//! compiles under names that hash the package, its version and source,
//! features, profile, flags and compiler: a unit some project already built
//! is fresh for the next one, and a new toolchain or profile gets units of
//! its own beside the old ones. Cargo locks that directory while it builds,
//! so two builds never write it at once. A project's final artifacts (its
//! shim library, its program or image) are uplifted into the project's own
//! `target/`: nothing shared lives in a project, and nothing a project needs
//! lives only in the cache.
//!
//! `CARGO_TARGET_DIR`, when set, wins: everything goes there, as cargo
//! would put it (the test suite shares one such directory).
//!
//! A damaged cache (a truncated library, a file a disk error or a hand
//! mangled) is not trusted: a build that fails on one says which file,
//! removes it and builds once more ([`damaged`]). A build cut short is
//! cargo's business: it records a unit as built only once it is.
use std::fs::File;
use std::path::{Path, PathBuf};

/// nym's cache directory: `$NYM_CACHE_DIR`, else `$XDG_CACHE_HOME/nym`,
/// else `~/.cache/nym`.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NYM_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("nym")
}

/// The shared build directory in the cache.
pub fn build_dir() -> PathBuf {
    dir().join("build")
}

/// Where a build writes: cargo's `--target-dir` (final artifacts) and, when
/// they are apart, its `build.build-dir` (everything else, shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// Final artifacts: the project's `target/`, or `$CARGO_TARGET_DIR`.
    pub target: PathBuf,
    /// Intermediate artifacts when not in `target`: the shared cache.
    pub build: Option<PathBuf>,
}

impl Dirs {
    /// The directories for a project whose own output goes to
    /// `project_target`: `$CARGO_TARGET_DIR` for both if set, else the
    /// project's target and the shared cache.
    pub fn for_project(project_target: PathBuf) -> Dirs {
        match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            Some(t) => Dirs {
                target: PathBuf::from(t),
                build: None,
            },
            None => Dirs {
                target: project_target,
                build: Some(build_dir()),
            },
        }
    }

    /// Where the compiled units are: the build directory if apart, else the
    /// target directory.
    pub fn units(&self) -> &Path {
        self.build.as_deref().unwrap_or(&self.target)
    }

    /// The lock every build holds (shared) and a clean holds alone: beside
    /// the units, not in them, so that removing them keeps it.
    fn lock_path(&self) -> PathBuf {
        match &self.build {
            Some(b) => b.with_extension("lock"),
            None => self.target.join(".nym-build.lock"),
        }
    }
}

/// Why the cache could not be used or cleaned.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_owned();
    move |source| CacheError::Io { what, path, source }
}

/// A build's hold on its directories: while any is alive, `nym cache clean`
/// waits.
#[derive(Debug)]
pub struct BuildLock(#[allow(dead_code)] File);

/// Takes the shared lock of `dirs` (creating it), waiting while a clean
/// runs.
pub fn lock_for_build(dirs: &Dirs) -> Result<BuildLock, CacheError> {
    let path = dirs.lock_path();
    let file = open_lock(&path)?;
    file.lock_shared().map_err(io("locking", &path))?;
    Ok(BuildLock(file))
}

fn open_lock(path: &Path) -> Result<File, CacheError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("opening", path))
}

/// One part of the cache, for `nym cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its directory.
    pub path: PathBuf,
    /// What it holds.
    pub what: &'static str,
    /// Its size in bytes (files only).
    pub bytes: u64,
}

/// The parts of the cache at `root` ([`dir`]), with their sizes.
pub fn parts(root: &Path) -> Vec<Part> {
    [
        (
            "build",
            "libos, the runtimes and their dependencies, shared by every project",
        ),
        ("rust-cells", "the builds of Rust cells, one per project"),
    ]
    .into_iter()
    .map(|(name, what)| {
        let path = root.join(name);
        let bytes = size(&path);
        Part { path, what, bytes }
    })
    .collect()
}

/// The bytes of the files under `path` (0 if it does not exist).
pub fn size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
        .unwrap_or(0)
}

/// What a clean removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// Bytes freed.
    pub bytes: u64,
    /// Rust cells' builds left alone because a session holds them.
    pub busy: Vec<PathBuf>,
}

/// Empties the cache at `root` ([`dir`]). The shared builds go once no
/// build holds them (`waiting` is called once if one does): they are
/// renamed aside under the lock, so a build that starts meanwhile finds an
/// empty cache, never a half-removed one. A Rust cells' build that a
/// session holds is left alone.
pub fn clean(root: &Path, waiting: impl FnOnce()) -> Result<Cleaned, CacheError> {
    let build = root.join("build");
    let dirs = Dirs {
        target: build.clone(),
        build: Some(build.clone()),
    };
    let lock_path = dirs.lock_path();
    let lock = open_lock(&lock_path)?;
    if lock.try_lock().is_err() {
        waiting();
        lock.lock().map_err(io("locking", &lock_path))?;
    }
    let mut cleaned = Cleaned {
        bytes: 0,
        busy: Vec::new(),
    };
    if build.exists() {
        let aside = root.join(format!(".removing-build-{}", std::process::id()));
        std::fs::rename(&build, &aside).map_err(io("moving aside", &build))?;
        drop(lock);
        cleaned.bytes += size(&aside);
        std::fs::remove_dir_all(&aside).map_err(io("removing", &aside))?;
    }
    // Each project's Rust cells build is held by its session
    // (`nym_repl::rust`, `.nym-lock`).
    let cells = root.join("rust-cells");
    for entry in std::fs::read_dir(&cells).into_iter().flatten().flatten() {
        let dir = entry.path();
        let held = File::open(dir.join(".nym-lock")).ok();
        if held.as_ref().is_some_and(|f| f.try_lock().is_err()) {
            cleaned.busy.push(dir);
            continue;
        }
        cleaned.bytes += size(&dir);
        std::fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
    }
    Ok(cleaned)
}

/// What a failed build shows to be damaged in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Files named by the errors (each under the units directory).
    pub files: Vec<PathBuf>,
    /// Crates whose compiled library an error could not read, without
    /// naming the file: their libraries are checked, and removed if damaged.
    pub crates: Vec<String>,
}

/// rustc's errors that mean a compiled dependency cannot be read: invalid
/// metadata, a crate not found where cargo said it is, one built by another
/// compiler or with another hash than its dependents expect.
const DAMAGE_CODES: &[&str] = &["E0786", "E0460", "E0463", "E0514", "E0519", "E0523"];

/// The same, in words rustc gives without a code.
const DAMAGE_WORDS: &[&str] = &[
    "required to be available in rlib format",
    "invalid metadata",
];

/// Whether the errors of a failed build (`errors`: each error's code and
/// rendered text) show damage in the compiled units under `units`: the
/// libraries they name there, the crates they could not read. A linker's
/// complaint counts when it names a file there.
pub fn damaged<'a>(
    units: &Path,
    errors: impl IntoIterator<Item = (Option<&'a str>, &'a str)>,
) -> Option<Damage> {
    let mut damage = Damage {
        files: Vec::new(),
        crates: Vec::new(),
    };
    for (code, text) in errors {
        let linker = text.contains("linking with") || text.contains("ld.lld:");
        let coded = code.is_some_and(|c| DAMAGE_CODES.contains(&c));
        let worded = DAMAGE_WORDS.iter().any(|w| text.contains(w));
        if !(coded || worded || linker) {
            continue;
        }
        let files = paths_under(units, text);
        // A crate that cannot be found (E0463) may be a user's mistake
        // (`extern crate` of no dependency): only a file named counts.
        if files.is_empty() && (worded || (coded && code != Some("E0463"))) {
            for name in crate_names(text) {
                if !damage.crates.contains(&name) {
                    damage.crates.push(name);
                }
            }
        }
        for path in files {
            if !damage.files.contains(&path) {
                damage.files.push(path);
            }
        }
    }
    (!damage.files.is_empty() || !damage.crates.is_empty()).then_some(damage)
}

/// The paths under `units` that `text` names, ending in a compiled
/// library's extension.
fn paths_under(units: &Path, text: &str) -> Vec<PathBuf> {
    let prefix = units.to_string_lossy();
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix.as_ref()) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | ':' | ')' | ','))
            .unwrap_or(tail.len());
        let path = PathBuf::from(&tail[..end]);
        let library = path
            .extension()
            .is_some_and(|e| ["rlib", "rmeta", "so", "a", "o"].contains(&&*e.to_string_lossy()));
        if library && !path.components().any(|c| c.as_os_str() == "..") {
            found.push(path);
        }
        rest = &tail[end..];
    }
    found
}

/// The crates an error names: "crate `NAME`".
fn crate_names(text: &str) -> Vec<String> {
    text.match_indices("crate `")
        .filter_map(|(at, m)| {
            let rest = &text[at + m.len()..];
            let name = &rest[..rest.find('`')?];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid.then(|| name.to_owned())
        })
        .collect()
}

/// Removes the damaged files, and the fingerprint of each one's unit so that
/// cargo builds it again whatever the files' times say. For a crate named
/// without a file, each of its libraries that is not a whole archive goes;
/// if all are whole, its metadata may be what is damaged, and they all go.
/// Holds the lock of `dirs` alone meanwhile.
pub fn repair(dirs: &Dirs, damage: &Damage) -> Result<Vec<PathBuf>, CacheError> {
    let lock_path = dirs.lock_path();
    let lock = open_lock(&lock_path)?;
    lock.lock().map_err(io("locking", &lock_path))?;
    let mut files = damage.files.clone();
    for name in &damage.crates {
        let prefix = format!("lib{name}-");
        let mine: Vec<PathBuf> = deps_dirs(dirs.units())
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.starts_with(&prefix) && (n.ends_with(".rlib") || n.ends_with(".rmeta"))
            })
            .collect();
        let broken: Vec<PathBuf> = mine
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rlib") && !whole_archive(p))
            .cloned()
            .collect();
        files.extend(if broken.is_empty() { mine } else { broken });
    }
    for file in &files {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", file)(e)),
        }
        // `deps/libNAME-HASH.rlib` is the unit whose fingerprint is
        // `.fingerprint/PACKAGE-HASH`.
        let (Some(deps), Some(stem)) = (file.parent(), file.file_stem()) else {
            continue;
        };
        let stem = stem.to_string_lossy();
        let Some((_, hash)) = stem.rsplit_once('-') else {
            continue;
        };
        let Some(profile) = deps.parent() else {
            continue;
        };
        let fingerprints = profile.join(".fingerprint");
        for entry in std::fs::read_dir(&fingerprints)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(&format!("-{hash}"))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(files)
}

/// The `deps` directories of every profile under `units`
/// (`PROFILE/deps`, `TRIPLE/PROFILE/deps`).
fn deps_dirs(units: &Path) -> Vec<PathBuf> {
    let children = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    };
    let mut found = Vec::new();
    for a in children(units) {
        for b in children(&a) {
            if b.file_name().is_some_and(|n| n == "deps") {
                found.push(b);
            } else if b.join("deps").is_dir() {
                found.push(b.join("deps"));
            }
        }
    }
    found
}

/// Whether `path` is a whole `ar` archive (what an rlib is): the magic,
/// then members whose headers' sizes add up to the file's length.
fn whole_archive(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut magic = [0u8; 8];
    if f.read_exact(&mut magic).is_err() || &magic != b"!<arch>\n" {
        return false;
    }
    let mut at = 8u64;
    while at < len {
        let mut header = [0u8; 60];
        if f.seek(SeekFrom::Start(at)).is_err() || f.read_exact(&mut header).is_err() {
            return false;
        }
        if &header[58..60] != b"`\n" {
            return false;
        }
        let Some(size) = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            return false;
        };
        at += 60 + size + (size & 1);
    }
    at == len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_metadata_names_the_library() {
        let units = Path::new("/c/build");
        let text = "error[E0786]: found invalid metadata files for crate `libos`\n  --> main.rs:13:63\n   = note: metadata not found in rlib '/c/build/x86_64-unknown-none/release/deps/liblibos-7a40a461fcfdd8b0.rlib'\n";
        let damage = damaged(units, [(Some("E0786"), text)]).unwrap();
        assert!(damage.crates.is_empty());
        assert_eq!(
            damage.files,
            [PathBuf::from(
                "/c/build/x86_64-unknown-none/release/deps/liblibos-7a40a461fcfdd8b0.rlib"
            )]
        );
    }

    #[test]
    fn a_users_error_is_no_damage() {
        let units = Path::new("/c/build");
        let text = "error[E0425]: cannot find value `x` in this scope\n --> src/lib.rs:3:5\n";
        assert_eq!(damaged(units, [(Some("E0425"), text)]), None);
        // A damage code naming nothing in the cache: nothing to remove.
        let text = "error[E0463]: can't find crate for `serde`\n";
        assert_eq!(damaged(units, [(Some("E0463"), text)]), None);
        // A path outside the cache is never removed.
        let text = "error: linking with `cc` failed: /home/u/lib.a: file truncated\n";
        assert_eq!(damaged(units, [(None, text)]), None);
    }

    #[test]
    fn a_linker_naming_a_cached_object_is_damage() {
        let units = Path::new("/c/build");
        let text = "error: linking with `rust-lld` failed: exit status: 1\n  = note: rust-lld: error: /c/build/debug/deps/libsmoltcp-0011223344556677.rlib: truncated archive\n";
        let damage = damaged(units, [(None, text)]).unwrap();
        assert_eq!(
            damage.files,
            [PathBuf::from(
                "/c/build/debug/deps/libsmoltcp-0011223344556677.rlib"
            )]
        );
    }

    #[test]
    fn a_crate_not_in_rlib_form_is_checked_by_name() {
        let units = Path::new("/c/build");
        let text = "error: crate `smoltcp` required to be available in rlib format, but was not found in this form\n";
        let damage = damaged(units, [(None, text)]).unwrap();
        assert_eq!(damage.crates, ["smoltcp"]);
        assert!(damage.files.is_empty());
    }

    /// An `ar` archive of `members`, as rustc writes an rlib.
    fn archive(members: &[&[u8]]) -> Vec<u8> {
        let mut a = b"!<arch>\n".to_vec();
        for (i, m) in members.iter().enumerate() {
            a.extend(
                format!(
                    "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    format!("m{i}/"),
                    0,
                    0,
                    0,
                    644,
                    m.len()
                )
                .bytes(),
            );
            a.extend_from_slice(m);
            if m.len() % 2 == 1 {
                a.push(b'\n');
            }
        }
        a
    }

    #[test]
    fn repair_by_crate_removes_the_truncated_library_only() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("build");
        let deps = units.join("x86_64-unknown-none/debug/deps");
        std::fs::create_dir_all(&deps).unwrap();
        let whole = archive(&[b"lib.rmeta", b"odd"]);
        assert_eq!(whole.len() % 2, 0);
        let good = deps.join("libsmoltcp-0000000000000001.rlib");
        let bad = deps.join("libsmoltcp-0000000000000002.rlib");
        let other = deps.join("libsmoltcp_extra-0000000000000003.rlib");
        std::fs::write(&good, &whole).unwrap();
        std::fs::write(&bad, &whole[..whole.len() - 3]).unwrap();
        std::fs::write(&other, b"not an archive").unwrap();
        assert!(whole_archive(&good) && !whole_archive(&bad));
        let dirs = Dirs {
            target: tmp.path().join("t"),
            build: Some(units.clone()),
        };
        let removed = repair(
            &dirs,
            &Damage {
                files: vec![],
                crates: vec!["smoltcp".into()],
            },
        )
        .unwrap();
        assert_eq!(removed, std::slice::from_ref(&bad));
        assert!(good.exists() && !bad.exists() && other.exists());
    }

    #[test]
    fn repair_removes_the_file_and_its_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("build");
        let deps = units.join("debug/deps");
        let fp = units.join("debug/.fingerprint/libos-0011223344556677");
        let other = units.join("debug/.fingerprint/smoltcp-8899aabbccddeeff");
        for d in [&deps, &fp, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let rlib = deps.join("liblibos-0011223344556677.rlib");
        std::fs::write(&rlib, b"trunc").unwrap();
        let dirs = Dirs {
            target: tmp.path().join("t"),
            build: Some(units.clone()),
        };
        repair(
            &dirs,
            &Damage {
                files: vec![rlib.clone()],
                crates: vec![],
            },
        )
        .unwrap();
        assert!(!rlib.exists() && !fp.exists() && other.exists());
    }

    #[test]
    fn clean_empties_the_parts_and_waits_for_builds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        std::fs::create_dir_all(root.join("build/debug")).unwrap();
        std::fs::write(root.join("build/debug/x"), [0u8; 100]).unwrap();
        let dirs = Dirs {
            target: root.join("p"),
            build: Some(root.join("build")),
        };
        let held = lock_for_build(&dirs).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let cleaner = {
            let root = root.clone();
            std::thread::spawn(move || clean(&root, move || tx.send(()).unwrap()).unwrap())
        };
        // The clean waits for the build's lock.
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(root.join("build/debug/x").exists());
        drop(held);
        let cleaned = cleaner.join().unwrap();
        assert_eq!(cleaned.bytes, 100);
        assert!(!root.join("build").exists());
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            1,
            "only the lock is left"
        );
    }
}
