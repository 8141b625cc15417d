//! Key-value stores: read-only ([`KvRo`]) and read-write ([`Kv`]).
//!
//! Keys are UTF-8 strings of 1 to [`MAX_KEY_LEN`] bytes without control
//! characters; every implementation checks them with [`validate_key`], so a
//! key that works on one backend works on all.
//!
//! Portable stores: [`Mem`] (in memory), [`Baked`] (files fixed at build
//! time), [`Block`] (on any block device, crash-safe), the chaos wrapper
//! [`Full`] and [`History`], which records every change for a session to
//! read, diff and revert.
pub use crate::kv_block::Block;
pub use crate::kv_history::{
    Change, ChangeLog, Diff, History, HistoryError, Plan, Stored, Versioned,
    MAX_BYTES as HISTORY_MAX_BYTES,
};
use crate::BoxFuture;
use alloc::{borrow::Cow, boxed::Box, collections::BTreeMap, string::String, vec::Vec};

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 200;

/// Why a key is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    /// The key is empty.
    #[error("the key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("the key is {0} bytes long (at most {MAX_KEY_LEN})")]
    TooLong(usize),
    /// The key contains a control character.
    #[error("the key contains a control character")]
    ControlChar,
}

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// No value is stored under the key.
    #[error("no value for key {0:?}")]
    NotFound(String),
    /// The key is malformed.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] InvalidKey),
    /// The store is full.
    #[error("no space left in the store")]
    NoSpace,
    /// The store cannot be written.
    #[error("the store is read-only")]
    ReadOnly,
    /// The backend failed.
    #[error("store I/O: {0}")]
    Io(#[from] crate::IoError),
}

/// Checks `key` against the rules every store shares.
pub fn validate_key(key: &str) -> Result<(), InvalidKey> {
    if key.is_empty() {
        Err(InvalidKey::Empty)
    } else if key.len() > MAX_KEY_LEN {
        Err(InvalidKey::TooLong(key.len()))
    } else if key.chars().any(char::is_control) {
        Err(InvalidKey::ControlChar)
    } else {
        Ok(())
    }
}

/// A read-only store (MirageOS: `Mirage_kv.RO`).
pub trait KvRo: Send + Sync {
    /// The value stored under `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>>;
    /// The keys starting with `prefix`, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>>;
}

/// A read-write store (MirageOS: `Mirage_kv.RW`). A `Kv` can be passed where
/// a `KvRo` is expected.
pub trait Kv: KvRo {
    /// Stores `value` under `key`, replacing what was there. Once this
    /// completes the value is durable as far as the backend can make it.
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>>;
    /// Removes `key`; removing a missing key is not an error.
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>>;
}

crate::delegate_arc!(KvRo {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>>;
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>>;
});
crate::delegate_arc!(Kv {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>>;
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>>;
});

pub(crate) fn lookup<V: AsRef<[u8]>>(
    map: &BTreeMap<String, V>,
    key: &str,
) -> Result<Vec<u8>, KvError> {
    validate_key(key)?;
    map.get(key)
        .map(|v| v.as_ref().to_vec())
        .ok_or_else(|| KvError::NotFound(key.into()))
}

pub(crate) fn keys_with_prefix<V>(map: &BTreeMap<String, V>, prefix: &str) -> Vec<String> {
    map.range::<str, _>((
        core::ops::Bound::Included(prefix),
        core::ops::Bound::Unbounded,
    ))
    .take_while(|(k, _)| k.starts_with(prefix))
    .map(|(k, _)| k.clone())
    .collect()
}

/// An in-memory store (`kv::mem()`): fast, and gone when the program ends.
/// Its contents survive a hot reload of the application, which keeps the
/// device instance.
#[derive(Default)]
pub struct Mem {
    map: spin::Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Mem {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of keys stored.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KvRo for Mem {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        Box::pin(async move { lookup(&self.map.lock(), key) })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move { Ok(keys_with_prefix(&self.map.lock(), prefix)) })
    }
}

impl Kv for Mem {
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.map.lock().insert(key.into(), value.to_vec());
            Ok(())
        })
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            validate_key(key)?;
            self.map.lock().remove(key);
            Ok(())
        })
    }
}

/// A read-only store of files fixed when the program was built
/// (`kv::baked("dir/")`): in an image the files are `include_bytes!`ed by the
/// generated code; in-process they are read once when the device is made.
pub struct Baked {
    files: BTreeMap<String, Cow<'static, [u8]>>,
}

impl Baked {
    /// A store over files embedded in the program.
    pub fn from_static(files: &'static [(&'static str, &'static [u8])]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(k, v)| ((*k).into(), Cow::Borrowed(*v)))
                .collect(),
        }
    }

    /// A store over files loaded at run time.
    pub fn from_entries(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self {
            files: files.into_iter().map(|(k, v)| (k, Cow::Owned(v))).collect(),
        }
    }
}

impl KvRo for Baked {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        Box::pin(async move { lookup(&self.files, key) })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move { Ok(keys_with_prefix(&self.files, prefix)) })
    }
}

/// A chaos device (`kv::full(kv)`): reads and removals pass through to the
/// wrapped store, every write fails with [`KvError::NoSpace`]. Use it to see
/// how an application behaves on a full disk.
pub struct Full<K> {
    inner: K,
}

impl<K: Kv> Full<K> {
    /// Wraps `inner`.
    pub fn new(inner: K) -> Self {
        Self { inner }
    }
}

impl<K: Kv> KvRo for Full<K> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, KvError>> {
        self.inner.get(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        self.inner.list(prefix)
    }
}

impl<K: Kv> Kv for Full<K> {
    fn set<'a>(&'a self, key: &'a str, _value: &'a [u8]) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            validate_key(key)?;
            Err(KvError::NoSpace)
        })
    }
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        self.inner.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::block_on;
    use alloc::{string::ToString, sync::Arc, vec};

    #[test]
    fn mem_set_get_list_remove() {
        let kv = Mem::new();
        block_on(async {
            kv.set("b", b"2").await.unwrap();
            kv.set("a/1", b"1").await.unwrap();
            kv.set("a/2", b"x").await.unwrap();
            assert_eq!(kv.get("a/1").await.unwrap(), b"1");
            assert_eq!(
                kv.list("a/").await.unwrap(),
                vec!["a/1".to_string(), "a/2".into()]
            );
            kv.remove("a/1").await.unwrap();
            assert_eq!(kv.get("a/1").await, Err(KvError::NotFound("a/1".into())));
            assert_eq!(
                kv.set("", b"").await,
                Err(KvError::InvalidKey(InvalidKey::Empty))
            );
            assert_eq!(
                kv.set("a\nb", b"").await,
                Err(KvError::InvalidKey(InvalidKey::ControlChar))
            );
        });
    }

    #[test]
    fn full_fails_writes_but_serves_reads_of_the_wrapped_store() {
        let inner = Arc::new(Mem::new());
        block_on(async {
            inner.set("k", b"v").await.unwrap();
            let full = Full::new(inner.clone());
            assert_eq!(full.get("k").await.unwrap(), b"v");
            assert_eq!(full.set("k", b"w").await, Err(KvError::NoSpace));
            assert_eq!(
                inner.get("k").await.unwrap(),
                b"v",
                "a failed write changes nothing"
            );
        });
    }

    #[test]
    fn baked_serves_embedded_files() {
        static FILES: &[(&str, &[u8])] = &[("index.html", b"<h1>hi</h1>"), ("tls/cert.pem", b"C")];
        let kv = Baked::from_static(FILES);
        block_on(async {
            assert_eq!(kv.get("index.html").await.unwrap(), b"<h1>hi</h1>");
            assert_eq!(
                kv.list("tls/").await.unwrap(),
                vec!["tls/cert.pem".to_string()]
            );
            assert!(matches!(kv.get("nope").await, Err(KvError::NotFound(_))));
        });
    }
}
