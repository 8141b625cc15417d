//! A key-value store on the host: a directory with one file per key, each
//! value replaced whole, so a crash leaves the old value or the new one.
//!
//! ## File names
//!
//! A key becomes one flat file name by percent-encoding every byte outside
//! `[A-Za-z0-9_.-]`, and a leading `.` too: `users/ada` is `users%2Fada`.
//! Names never start with `.`, which leaves that namespace to the store's own
//! temporary files, and never contain `/`, so the store stays one flat
//! directory. Decoding the name gives the key back, which is how [`Dir`]
//! lists keys without an index.
//!
//! A key may be 200 bytes and an encoded byte takes three, but a file name
//! may only take 255 (`NAME_MAX`). A key whose encoding would be longer is
//! stored under `~` and the FNV-1a-128 hash of the key in hex (`~` is never
//! part of an encoding), and its file starts with the key and a newline
//! (keys hold no control characters) before the value: listing reads the key
//! back from there, and every access checks it, so two long keys that share
//! a hash are refused rather than confused.
//!
//! ## Crash safety
//!
//! A write goes to a new temporary file, `.tmp.<pid>.<counter>`, in the same
//! directory; the file is synced, renamed over the key's file, and the
//! directory is synced. `rename` replaces the name atomically, so a reader
//! (or the next run, after a crash at any point) finds either the whole old
//! value or the whole new one, never a mix or a prefix; the syncs make the
//! completed write survive a power cut as well. Temporary files a killed
//! writer left behind are never listed and are deleted by [`Dir::open`].
//!
//! ## One process at a time
//!
//! Opening a directory deletes every temporary file in it, which would
//! include those of a writer still running, so a store is one process's:
//! [`Dir::open`] takes an exclusive `flock` on the directory's `.lock` (a
//! name of the store's own, never listed) and holds it until the `Dir` is
//! dropped. A second opening, by another process or by this one, is refused.
//!
//! ## What it writes and reads
//!
//! Values are written with mode `0600`: they are the application's data,
//! not the host's other users'. A key's file is read only if it is a
//! regular file named directly: a symbolic link or a FIFO planted in the
//! directory is an error, never the contents of whatever it leads to.
use super::{io_error, InitError};
use libos::{
    kv::{validate_key, MAX_KEY_LEN},
    BoxFuture, IoError, Kv, KvError, KvRo,
};
use std::{
    fmt::Write as _,
    fs,
    io::{self, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process,
    sync::atomic::{AtomicU64, Ordering},
};

/// The longest file name most Unix file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// How temporary files start; every name starting with `.` is the store's.
const TEMP_PREFIX: &str = ".tmp.";
/// How the names of keys too long to encode start.
const LONG_PREFIX: char = '~';
/// The file whose lock says which process owns the store.
const LOCK_NAME: &str = ".lock";
/// The mode of values (and of the lock file).
const MODE: u32 = 0o600;

/// Numbers temporary files apart within this process, across every [`Dir`].
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store keeping each key in a file of a host directory (`kv::dir(path)`).
pub struct Dir {
    path: PathBuf,
    /// Holds the store's `flock` for as long as the store is open.
    _lock: fs::File,
}

impl Dir {
    /// Opens the store at `path`, creating the directory if it is missing,
    /// locking it for this `Dir` (another process, or another `Dir` of this
    /// one, holding it is an error) and deleting the temporary files of a
    /// writer that crashed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InitError> {
        let path = path.as_ref().to_path_buf();
        let existed = path.exists();
        fs::create_dir_all(&path)
            .map_err(|e| InitError::io("kv::dir: cannot create the directory", &path, e))?;
        if !existed {
            // Make the new directory's own name durable, or the first
            // durable write could vanish with it after a power cut.
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(parent)
                .map_err(|e| InitError::io("kv::dir: cannot sync the parent of", &path, e))?;
        }
        // Locked before the temporary files go: they may be a live writer's.
        let lock = lock(&path)?;
        let entries = fs::read_dir(&path)
            .map_err(|e| InitError::io("kv::dir: cannot read the directory", &path, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| InitError::io("kv::dir: cannot read the directory", &path, e))?;
            if entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
            {
                match fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(InitError::io(
                            "kv::dir: cannot delete a crashed writer's temporary file",
                            entry.path(),
                            e,
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(Self { path, _lock: lock })
    }

    fn get_now(&self, key: &str) -> Result<Vec<u8>, KvError> {
        validate_key(key)?;
        let name = file_name(key);
        let mut content = Vec::new();
        match open_value(&self.path.join(&name)).and_then(|mut f| f.read_to_end(&mut content)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KvError::NotFound(key.into()))
            }
            other => other.map_err(kv_error)?,
        };
        if name.starts_with(LONG_PREFIX) {
            // The file may belong to another long key with the same hash.
            match long_header_len(&content, key) {
                Some(len) => drop(content.drain(..len)),
                None => return Err(KvError::NotFound(key.into())),
            }
        }
        Ok(content)
    }

    fn list_now(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(kv_error)? {
            let entry = entry.map_err(kv_error)?;
            let os_name = entry.file_name();
            let Some(name) = os_name.to_str() else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().map_err(kv_error)?.is_file() {
                continue;
            }
            let key = if name.starts_with(LONG_PREFIX) {
                match read_owner(&entry.path()) {
                    Ok(Some(key)) => key,
                    // Removed since the directory was read, or not ours.
                    Ok(None) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(kv_error(e)),
                }
            } else {
                match decode(name) {
                    Some(key) => key,
                    None => continue,
                }
            };
            // Only a file under the very name the key maps to is that key's:
            // this skips files the store did not write.
            if key.starts_with(prefix) && validate_key(&key).is_ok() && file_name(&key) == name {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn set_now(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        validate_key(key)?;
        let name = file_name(key);
        let target = self.path.join(&name);
        let header = if name.starts_with(LONG_PREFIX) {
            self.check_long_owner(&target, key)?;
            format!("{key}\n")
        } else {
            String::new()
        };
        let (temp, file) = self.create_temp().map_err(kv_error)?;
        let written =
            fill(file, &[header.as_bytes(), value]).and_then(|()| fs::rename(&temp, &target));
        if let Err(e) = written {
            // Best effort: whatever is left is deleted by the next `open`.
            let _ = fs::remove_file(&temp);
            return Err(kv_error(e));
        }
        sync_dir(&self.path).map_err(kv_error)
    }

    fn remove_now(&self, key: &str) -> Result<(), KvError> {
        validate_key(key)?;
        let name = file_name(key);
        let target = self.path.join(&name);
        if name.starts_with(LONG_PREFIX) {
            match read_owner(&target) {
                Ok(Some(owner)) if owner == key => {}
                // Missing, or another key's: either way `key` is not stored.
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(kv_error(e)),
            }
        }
        match fs::remove_file(&target) {
            Ok(()) => sync_dir(&self.path).map_err(kv_error),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(kv_error(e)),
        }
    }

    /// Refuses to write `key` over the file of another long key with the
    /// same hash.
    fn check_long_owner(&self, target: &Path, key: &str) -> Result<(), KvError> {
        match read_owner(target) {
            Ok(Some(owner)) if owner != key => Err(KvError::Io(IoError::Other(
                "another long key's file has the same name (an FNV-128 collision)",
            ))),
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(kv_error(e)),
            _ => Ok(()),
        }
    }

    /// A new, empty temporary file in the store's directory.
    fn create_temp(&self) -> io::Result<(PathBuf, fs::File)> {
        let mut tries = 0;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = self
                .path
                .join(format!("{TEMP_PREFIX}{}.{n}", process::id()));
            // `create_new` never follows a planted symlink nor reuses a file
            // another process (a writer in another pid namespace) is filling.
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(MODE)
                .open(&temp)
            {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
                other => return other.map(|file| (temp, file)),
            }
        }
    }
}

impl KvRo for Dir {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        Box::pin(async move { self.get_now(key) })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move { self.list_now(prefix) })
    }
}

impl Kv for Dir {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move { self.set_now(key, value) })
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move { self.remove_now(key) })
    }
}

/// Locks the store at `dir` through its lock file.
fn lock(dir: &Path) -> Result<fs::File, InitError> {
    let path = dir.join(LOCK_NAME);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| InitError::io("kv::dir: cannot open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(InitError::Invalid {
            what: format!(
                "kv::dir {}: the store is already open (another process, or another \
                 kv::dir of this one, holds its {LOCK_NAME}); a store has one owner at a time",
                dir.display()
            ),
        }),
        Err(fs::TryLockError::Error(e)) => {
            Err(InitError::io("kv::dir: cannot lock the store at", dir, e))
        }
    }
}

/// A file the store will not read as a key's, and why.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// Opens a key's file for reading: never through a symbolic link
/// (`O_NOFOLLOW`), and only a regular file (`O_NONBLOCK` keeps the open
/// from waiting on a FIFO before it is refused).
fn open_value(path: &Path) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(Refused(
                "the key's file is a symbolic link, which the store does not follow",
            )),
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(Refused(
            "the key's file is not a regular file",
        )));
    }
    Ok(file)
}

/// A host failure as the store reports it.
fn kv_error(e: io::Error) -> KvError {
    if let Some(Refused(why)) = e.get_ref().and_then(|inner| inner.downcast_ref()) {
        return KvError::Io(IoError::Other(why));
    }
    match io_error(&e) {
        IoError::NoSpace => KvError::NoSpace,
        other => KvError::Io(other),
    }
}

/// Writes `parts` to `file` and waits until they are on disk.
fn fill(mut file: fs::File, parts: &[&[u8]]) -> io::Result<()> {
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

/// Makes the directory's entries (a rename, a removal) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Whether `b` stands for itself in a file name.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The name of the file holding `key`.
fn file_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for (i, &b) in key.as_bytes().iter().enumerate() {
        if is_plain(b) && !(i == 0 && b == b'.') {
            name.push(char::from(b));
        } else {
            let _ = write!(name, "%{b:02X}");
        }
    }
    if name.len() <= NAME_MAX {
        name
    } else {
        format!("{LONG_PREFIX}{:032x}", fnv1a_128(key.as_bytes()))
    }
}

/// The key a percent-encoded name stands for, if it decodes to UTF-8.
fn decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            key.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            key.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(key).ok()
}

/// The length of the `key\n` header a long key's file starts with, if the
/// file is `key`'s.
fn long_header_len(content: &[u8], key: &str) -> Option<usize> {
    let len = key.len() + 1;
    (content.get(..len)? == format!("{key}\n").as_bytes()).then_some(len)
}

/// The key named in the header of a long key's file, if it has one.
fn read_owner(path: &Path) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(MAX_KEY_LEN + 1);
    open_value(path)?
        .take(MAX_KEY_LEN as u64 + 1)
        .read_to_end(&mut head)?;
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    head.truncate(end);
    Ok(String::from_utf8(head).ok())
}

/// FNV-1a with 128-bit state: enough to tell long keys apart, with the
/// header check behind it for the rare (or contrived) collision.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos::kv::InvalidKey;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keys_encode_to_flat_names_and_back() {
        assert_eq!(file_name("users/ada"), "users%2Fada");
        assert_eq!(file_name(".hidden"), "%2Ehidden");
        assert_eq!(file_name("a.b-c_D9"), "a.b-c_D9");
        assert_eq!(file_name("sp ce%"), "sp%20ce%25");
        assert_eq!(file_name("é"), "%C3%A9");
        assert_eq!(decode("users%2Fada").as_deref(), Some("users/ada"));
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode("bad%2"), None);
        assert_eq!(decode("bad%zz"), None);
        assert_eq!(decode("%FF"), None, "not UTF-8");
        // A name that is not how its key encodes is someone else's file.
        assert_ne!(file_name(&decode("%2e").unwrap()), "%2e");
        assert_ne!(file_name(&decode("a b").unwrap()), "a b");
    }

    #[test]
    fn keys_too_long_to_encode_get_a_hashed_name() {
        let slashes = "/".repeat(MAX_KEY_LEN);
        let name = file_name(&slashes);
        assert!(name.starts_with(LONG_PREFIX) && name.len() == 33, "{name}");
        assert_ne!(name, file_name(&"/".repeat(MAX_KEY_LEN - 1)));
        let fits = "/".repeat(NAME_MAX / 3);
        assert_eq!(file_name(&fits).len(), NAME_MAX);
        // The published FNV-1a-128 value of the empty input and of "a".
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    #[test]
    fn full_disks_are_no_space_and_other_errors_keep_their_errno() {
        assert_eq!(kv_error(io::Error::from_raw_os_error(28)), KvError::NoSpace);
        assert_eq!(
            kv_error(io::Error::from_raw_os_error(5)),
            KvError::Io(IoError::Os(5))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn set_get_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        kv.set("b", b"2").await.unwrap();
        kv.set("a/1", b"1").await.unwrap();
        kv.set("a/2", b"x").await.unwrap();
        kv.set("a/2", b"replaced").await.unwrap();
        assert_eq!(kv.get("a/1").await.unwrap(), b"1");
        assert_eq!(kv.get("a/2").await.unwrap(), b"replaced");
        assert_eq!(kv.list("").await.unwrap(), ["a/1", "a/2", "b"]);
        assert_eq!(kv.list("a/").await.unwrap(), ["a/1", "a/2"]);
        assert_eq!(kv.list("zzz").await.unwrap(), Vec::<String>::new());
        kv.remove("a/1").await.unwrap();
        kv.remove("a/1").await.unwrap();
        kv.remove("never-there").await.unwrap();
        assert_eq!(kv.get("a/1").await, Err(KvError::NotFound("a/1".into())));
        assert_eq!(kv.list("a/").await.unwrap(), ["a/2"]);
        kv.set("empty", b"").await.unwrap();
        assert_eq!(kv.get("empty").await.unwrap(), b"");
        assert_eq!(
            kv.set("", b"").await,
            Err(KvError::InvalidKey(InvalidKey::Empty))
        );
        assert_eq!(
            kv.get("a\nb").await,
            Err(KvError::InvalidKey(InvalidKey::ControlChar))
        );
        assert_eq!(
            kv.remove(&"k".repeat(MAX_KEY_LEN + 1)).await,
            Err(KvError::InvalidKey(InvalidKey::TooLong(MAX_KEY_LEN + 1)))
        );
        assert_eq!(
            names_in(tmp.path()),
            [LOCK_NAME, "a%2F2", "b", "empty"],
            "no temporary file is left"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_valid_key_round_trips_through_list() {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        let mut keys: Vec<String> = [
            "dir/sub/file",
            "with space",
            "ünïcødé/ключ/鍵",
            ".leading-dot",
            ".",
            "..",
            "%41",
            "~tilde",
            "README.txt",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        keys.push("/".repeat(MAX_KEY_LEN));
        keys.push("é".repeat(MAX_KEY_LEN / 2));
        keys.push(format!("long/{}", "鍵".repeat(60)));
        for (i, key) in keys.iter().enumerate() {
            kv.set(key, format!("value {i}").as_bytes()).await.unwrap();
        }
        keys.sort();
        assert_eq!(kv.list("").await.unwrap(), keys);
        assert_eq!(
            kv.list("long/").await.unwrap(),
            [format!("long/{}", "鍵".repeat(60))]
        );
        for (i, key) in keys.iter().enumerate() {
            let value = kv.get(key).await.unwrap();
            assert!(
                String::from_utf8(value).unwrap().starts_with("value "),
                "{key}"
            );
            if i % 2 == 0 {
                kv.remove(key).await.unwrap();
                assert!(
                    matches!(kv.get(key).await, Err(KvError::NotFound(_))),
                    "{key}"
                );
            }
        }
        let left: Vec<String> = keys.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(kv.list("").await.unwrap(), left);
        for entry in fs::read_dir(tmp.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name == LOCK_NAME {
                continue;
            }
            assert!(
                entry.file_type().unwrap().is_file(),
                "the store is flat: {name}"
            );
            assert!(name.len() <= NAME_MAX && !name.starts_with('.'), "{name}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn values_survive_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        {
            let kv = Dir::open(tmp.path().join("nested/store")).unwrap();
            kv.set("config/name", b"nym").await.unwrap();
            kv.set("big", &big).await.unwrap();
        }
        let kv = Dir::open(tmp.path().join("nested/store")).unwrap();
        assert_eq!(kv.get("config/name").await.unwrap(), b"nym");
        assert_eq!(kv.get("big").await.unwrap(), big);
        assert_eq!(kv.list("").await.unwrap(), ["big", "config/name"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn leftover_temp_files_are_deleted_on_open_and_never_listed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("key"), b"whole").unwrap();
        fs::write(tmp.path().join(".tmp.4242.7"), b"torn").unwrap();
        fs::write(tmp.path().join(".tmp.1.0"), b"").unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        assert_eq!(names_in(tmp.path()), [LOCK_NAME, "key"]);
        assert_eq!(kv.list("").await.unwrap(), ["key"]);

        // One appearing while the store is open (another writer's, or ours
        // mid-write) is not a key either.
        fs::write(tmp.path().join(".tmp.4242.8"), b"torn").unwrap();
        assert_eq!(kv.list("").await.unwrap(), ["key"]);
        assert_eq!(kv.get("key").await.unwrap(), b"whole");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn files_the_store_did_not_write_are_not_keys() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("not canonical"), b"").unwrap();
        fs::write(tmp.path().join("bad%zz"), b"").unwrap();
        fs::write(tmp.path().join("~0123"), b"no header").unwrap();
        fs::create_dir(tmp.path().join("subdir")).unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        assert_eq!(kv.list("").await.unwrap(), Vec::<String>::new());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_long_key_never_reads_or_replaces_another_keys_file() {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        let key = "/".repeat(MAX_KEY_LEN);
        // Plant the file `key` maps to, as a colliding key would have written it.
        fs::write(tmp.path().join(file_name(&key)), b"other\nsecret").unwrap();
        assert_eq!(kv.get(&key).await, Err(KvError::NotFound(key.clone())));
        assert!(matches!(
            kv.set(&key, b"mine").await,
            Err(KvError::Io(IoError::Other(_)))
        ));
        kv.remove(&key).await.unwrap();
        assert_eq!(
            fs::read(tmp.path().join(file_name(&key))).unwrap(),
            b"other\nsecret"
        );
        assert_eq!(
            kv.list("").await.unwrap(),
            Vec::<String>::new(),
            "its name is not its key's"
        );
    }

    #[test]
    fn readers_never_see_a_partial_value_while_another_thread_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        let small = vec![1u8; 10];
        let large = vec![2u8; 300_000];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(kv.set("k", &small)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..40 {
                    let value = if i % 2 == 0 { &large } else { &small };
                    rt.block_on(kv.set("k", value)).unwrap();
                }
            });
            let reader = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for _ in 0..400 {
                let got = reader.block_on(kv.get("k")).unwrap();
                assert!(
                    got == small || got == large,
                    "a torn value of {} bytes",
                    got.len()
                );
            }
        });
    }

    #[test]
    fn opening_a_path_that_is_a_file_names_the_device_and_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("plain-file");
        fs::write(&path, b"").unwrap();
        let err = Dir::open(&path).err().expect("a file is not a store");
        let text = err.to_string();
        assert!(
            text.contains("kv::dir") && text.contains("plain-file"),
            "{text}"
        );
        assert!(matches!(err, InitError::Io { .. }));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn values_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        let long = "/".repeat(MAX_KEY_LEN);
        for key in ["short", long.as_str()] {
            kv.set(key, b"private").await.unwrap();
            let mode = fs::metadata(tmp.path().join(file_name(key)))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}: {mode:o}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_key_whose_file_is_a_link_or_a_fifo_is_an_error_not_what_it_leads_to() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let kv = Dir::open(&store).unwrap();
        fs::write(tmp.path().join("secret"), b"not the store's").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), store.join("key")).unwrap();
        let long = "/".repeat(MAX_KEY_LEN);
        std::os::unix::fs::symlink(tmp.path().join("secret"), store.join(file_name(&long)))
            .unwrap();
        for key in ["key", long.as_str()] {
            match kv.get(key).await {
                Err(KvError::Io(IoError::Other(why))) => {
                    assert!(why.contains("symbolic link"), "{why}")
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(kv.list("").await.unwrap(), Vec::<String>::new());
        // A FIFO would block a plain open until a writer came.
        let fifo = store.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert_eq!(
                kv.get("fifo").await,
                Err(KvError::Io(IoError::Other(
                    "the key's file is not a regular file"
                )))
            );
        }
        // Replacing the key replaces the link, never its target.
        kv.set("key", b"mine").await.unwrap();
        assert_eq!(kv.get("key").await.unwrap(), b"mine");
        assert_eq!(
            fs::read(tmp.path().join("secret")).unwrap(),
            b"not the store's"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_store_is_one_openers_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Dir::open(tmp.path()).unwrap();
        kv.set("k", b"v").await.unwrap();
        // A second opening (flock locks belong to an open file, so this
        // process's second open is refused as another process's would be)
        // neither opens nor deletes the first one's temporary files.
        fs::write(tmp.path().join(".tmp.1.1"), b"a live writer's").unwrap();
        let err = Dir::open(tmp.path()).err().expect("the store is taken");
        let text = err.to_string();
        assert!(
            text.contains("the store is already open")
                && text.contains(&tmp.path().display().to_string()),
            "{text}"
        );
        assert!(tmp.path().join(".tmp.1.1").exists());
        drop(kv);
        // Whoever holds the lock file: here this test, as another process.
        let held = fs::File::open(tmp.path().join(LOCK_NAME)).unwrap();
        held.try_lock().unwrap();
        assert!(Dir::open(tmp.path()).is_err());
        drop(held);
        let kv = Dir::open(tmp.path()).unwrap();
        assert_eq!(kv.get("k").await.unwrap(), b"v");
        assert_eq!(kv.list("").await.unwrap(), ["k"], "the lock is no key");
    }
}
