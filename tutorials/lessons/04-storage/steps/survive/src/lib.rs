//! kv: a key-value store in use. Every run increments a counter stored under
//! `runs`, so with a persistent store (`kv::dir` on Unix) the count goes on
//! across restarts; with `kv::mem` it starts again at 1.
#![no_std]
extern crate alloc;

use alloc::{format, string::String};
use libos::{Console, Kv, KvError};

/// Why the job failed.
#[derive(Debug)]
pub enum Error {
    /// The store failed.
    Kv(KvError),
    /// The console failed.
    Console(libos::ConsoleError),
    /// The stored counter is not a number.
    Corrupt(String),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Kv(e) => write!(f, "store: {e}"),
            Error::Console(e) => write!(f, "console: {e}"),
            Error::Corrupt(v) => write!(f, "the counter holds {v:?}, not a number"),
        }
    }
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        Error::Kv(e)
    }
}

impl From<libos::ConsoleError> for Error {
    fn from(e: libos::ConsoleError) -> Self {
        Error::Console(e)
    }
}

/// The job: counts this run, stores a greeting, and lists what is stored.
pub async fn start(console: impl Console, store: impl Kv) -> Result<(), Error> {
    let runs = match store.get("runs").await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            text.trim()
                .parse::<u64>()
                .map_err(|_| Error::Corrupt(text))?
        }
        Err(KvError::NotFound(_)) => 0,
        Err(e) => return Err(e.into()),
    } + 1;
    // A store that cannot take the count (full, read-only) costs the
    // count, not the run.
    match store.set("runs", format!("{runs}").as_bytes()).await {
        Ok(()) => console.log(&format!("run #{runs}")).await?,
        Err(e) => console.log(&format!("run #{runs} (not saved: {e})")).await?,
    }

    match store.set("greeting", b"hello, store").await {
        Ok(()) => {
            let greeting = store.get("greeting").await?;
            console
                .log(&format!(
                    "greeting = {}",
                    String::from_utf8_lossy(&greeting)
                ))
                .await?;
        }
        Err(e) => console.log(&format!("greeting not stored: {e}")).await?,
    }

    let keys = store.list("").await?;
    console.log(&format!("keys: {}", keys.join(", "))).await?;
    Ok(())
}
