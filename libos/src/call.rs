//! Calling a device's method by name with plain values: what a session
//! runs when its user types `store.get("k")` against the running stack.
//!
//! The graph crate's method table (`nym_graph::methods`) says which
//! methods a session may call and checks the arguments before anything
//! runs; [`call`] runs one on a device lent as an [`Arg`], checking the
//! arguments again (a bad one is an error, never a panic), and answers an
//! [`Answer`] or the device's own typed error.
use crate::abi::Arg;
use crate::{BlockError, BoxFuture, ConsoleError, KvError, RandomError, Value};
use alloc::{boxed::Box, format, string::String, vec, vec::Vec};
use core::fmt;

/// The largest read a call makes of a block device, in bytes.
pub const MAX_READ: usize = 64 * 4096;

/// What a call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done, with nothing to say.
    Unit,
    /// Bytes: a value, sectors, random bytes.
    Bytes(Vec<u8>),
    /// Keys of a store.
    Keys(Vec<String>),
    /// A number.
    Int(u64),
    /// Yes or no.
    Bool(bool),
    /// A short text.
    Text(String),
    /// Facts, a line each.
    Lines(Vec<String>),
}

/// Why a call did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The device has no method of that name that can be called this way.
    #[error("a {kind} has no method `{method}` to call")]
    NoMethod {
        /// The device's kind.
        kind: &'static str,
        /// The method asked for.
        method: String,
    },
    /// An argument is missing or not what the method takes.
    #[error("argument {index} of `{method}`: expected {expected}")]
    BadArgument {
        /// The method.
        method: &'static str,
        /// Zero-based position.
        index: usize,
        /// What it takes.
        expected: &'static str,
    },
    /// The store's error.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The console's error.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// The block device's error.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The random source's error.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The arguments of one call, taken in order.
struct Args<'a> {
    method: &'static str,
    values: &'a [Value],
}

impl Args<'_> {
    fn bad(&self, index: usize, expected: &'static str) -> CallError {
        CallError::BadArgument {
            method: self.method,
            index,
            expected,
        }
    }

    fn text(&self, index: usize) -> Result<&str, CallError> {
        match self.values.get(index) {
            Some(Value::Str(s)) => Ok(s),
            _ => Err(self.bad(index, "a string")),
        }
    }

    fn count(&self, index: usize, max: u64) -> Result<u64, CallError> {
        match self.values.get(index) {
            Some(Value::Int(i)) if *i >= 0 && (*i as u64) <= max => Ok(*i as u64),
            _ => Err(self.bad(index, "an integer in range")),
        }
    }

    fn duration(&self, index: usize) -> Result<core::time::Duration, CallError> {
        match self.values.get(index) {
            Some(Value::Duration(d)) => Ok(*d),
            _ => Err(self.bad(index, "a duration")),
        }
    }
}

/// What [`call`] can call: each kind (its trait's name) with a method.
/// A `Kv` has the `KvRo` methods too.
pub const CALLABLE: &[(&str, &str)] = &[
    ("Console", "write"),
    ("Console", "log"),
    ("MonoClock", "elapsed_ns"),
    ("WallClock", "now_unix_ns"),
    ("Time", "sleep"),
    ("Random", "fill"),
    ("Random", "next_u64"),
    ("KvRo", "get"),
    ("KvRo", "list"),
    ("Kv", "set"),
    ("Kv", "remove"),
    ("Block", "info"),
    ("Block", "read"),
    ("Block", "write"),
    ("Block", "flush"),
    ("Netif", "mac"),
    ("Netif", "mtu"),
    ("Netif", "reliable"),
    ("Stack", "describe"),
];

/// The kind of device `dev` is, by its trait's name ([`Arg::kind_name`]);
/// `value` for the values a graph passes.
pub fn kind_name(dev: &Arg) -> &'static str {
    match dev {
        Arg::Int(_) | Arg::Str(_) | Arg::Bool(_) | Arg::Duration(_) | Arg::Cidr(_) => "value",
        device => device.kind_name(),
    }
}

/// Calls `method` on `dev` with `args` (one value per parameter, defaults
/// filled in, as the graph's checker leaves them).
pub fn call<'a>(
    dev: &'a Arg,
    method: &'a str,
    args: &'a [Value],
) -> BoxFuture<'a, Result<Answer, CallError>> {
    Box::pin(async move {
        let no_method = || CallError::NoMethod {
            kind: kind_name(dev),
            method: method.into(),
        };
        let kind = kind_name(dev);
        let name = CALLABLE
            .iter()
            .find(|(k, m)| *m == method && (*k == kind || (*k == "KvRo" && kind == "Kv")))
            .map(|(_, m)| *m)
            .ok_or_else(no_method)?;
        let a = Args {
            method: name,
            values: args,
        };
        Ok(match (dev, method) {
            (Arg::Console(c), "write") => c.write(a.text(0)?).await.map(|()| Answer::Unit)?,
            (Arg::Console(c), "log") => c.log(a.text(0)?).await.map(|()| Answer::Unit)?,
            (Arg::MonoClock(c), "elapsed_ns") => Answer::Int(c.elapsed_ns()),
            (Arg::WallClock(c), "now_unix_ns") => Answer::Int(c.now_unix_ns()),
            (Arg::Time(t), "sleep") => {
                t.sleep(a.duration(0)?).await;
                Answer::Unit
            }
            (Arg::Random(r), "fill") => {
                let mut buf = vec![0u8; a.count(0, 4096)? as usize];
                r.fill(&mut buf)?;
                Answer::Bytes(buf)
            }
            (Arg::Random(r), "next_u64") => Answer::Int(r.next_u64()?),
            (Arg::Kv(kv), "get") => Answer::Bytes(kv.get(a.text(0)?).await?),
            (Arg::KvRo(kv), "get") => Answer::Bytes(kv.get(a.text(0)?).await?),
            (Arg::Kv(kv), "list") => Answer::Keys(kv.list(a.text(0)?).await?),
            (Arg::KvRo(kv), "list") => Answer::Keys(kv.list(a.text(0)?).await?),
            (Arg::Kv(kv), "set") => {
                kv.set(a.text(0)?, a.text(1)?.as_bytes()).await?;
                Answer::Unit
            }
            (Arg::Kv(kv), "remove") => {
                kv.remove(a.text(0)?).await?;
                Answer::Unit
            }
            (Arg::Block(b), "info") => {
                let i = b.info();
                Answer::Lines(vec![
                    format!("{} sectors of {} bytes", i.sectors, i.sector_size),
                    String::from(if i.writable { "writable" } else { "read-only" }),
                ])
            }
            (Arg::Block(b), "read") => {
                let size = b.info().sector_size as usize;
                let count = a.count(1, (MAX_READ / size.max(1)) as u64)? as usize;
                let mut buf = vec![0u8; count * size];
                b.read(a.count(0, u64::MAX >> 1)?, &mut buf).await?;
                Answer::Bytes(buf)
            }
            (Arg::Block(b), "write") => {
                b.write(a.count(0, u64::MAX >> 1)?, a.text(1)?.as_bytes())
                    .await?;
                Answer::Unit
            }
            (Arg::Block(b), "flush") => {
                b.flush().await?;
                Answer::Unit
            }
            (Arg::Netif(n), "mac") => {
                let m = n.mac();
                Answer::Text(format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ))
            }
            (Arg::Netif(n), "mtu") => Answer::Int(n.mtu() as u64),
            (Arg::Netif(n), "reliable") => Answer::Bool(n.reliable()),
            (Arg::Stack(s), "describe") => Answer::Lines(s.describe()),
            _ => return Err(no_method()),
        })
    })
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Unit => f.write_str("ok"),
            Answer::Int(n) => write!(f, "{n}"),
            Answer::Bool(b) => write!(f, "{b}"),
            Answer::Text(t) => f.write_str(t),
            Answer::Lines(lines) if lines.is_empty() => f.write_str("(nothing to say)"),
            Answer::Lines(lines) => f.write_str(&lines.join("\n")),
            Answer::Keys(keys) => {
                write!(f, "{} key(s)", keys.len())?;
                for k in keys {
                    write!(f, "\n{k:?}")?;
                }
                Ok(())
            }
            Answer::Bytes(bytes) => write_bytes(f, bytes),
        }
    }
}

/// Text as a string literal, anything else as a hex dump (runs of equal
/// rows shown once, `*` for the rest, as `hexdump` does).
fn write_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let n = bytes.len();
    let plural = if n == 1 { "" } else { "s" };
    if let Ok(text) = core::str::from_utf8(bytes) {
        if !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return write!(f, "{text:?} ({n} byte{plural})");
        }
    }
    write!(f, "{n} byte{plural}")?;
    let mut previous: Option<&[u8]> = None;
    let mut starred = false;
    for (i, row) in bytes.chunks(16).enumerate() {
        if previous == Some(row) && row.len() == 16 {
            if !starred {
                f.write_str("\n*")?;
                starred = true;
            }
            continue;
        }
        starred = false;
        previous = Some(row);
        write!(f, "\n{:06x} ", i * 16)?;
        for b in row {
            write!(f, " {b:02x}")?;
        }
        for _ in row.len()..16 {
            f.write_str("   ")?;
        }
        f.write_str("  |")?;
        for &b in row {
            let c = if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            };
            write!(f, "{c}")?;
        }
        f.write_str("|")?;
    }
    if starred {
        write!(f, "\n{n:06x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::block_on;
    use alloc::string::ToString;
    use alloc::sync::Arc;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn a_store_is_called_by_name_and_its_errors_come_back_typed() {
        let kv = Arg::Kv(Arc::new(crate::kv::Mem::new()));
        block_on(async {
            assert_eq!(call(&kv, "set", &[s("k"), s("v")]).await, Ok(Answer::Unit));
            let got = call(&kv, "get", &[s("k")]).await.unwrap();
            assert_eq!(got.to_string(), "\"v\" (1 byte)");
            assert_eq!(
                call(&kv, "list", &[s("")]).await.unwrap().to_string(),
                "1 key(s)\n\"k\""
            );
            assert_eq!(
                call(&kv, "get", &[s("nope")]).await,
                Err(CallError::Kv(KvError::NotFound("nope".into())))
            );
            // Arguments are checked again here: never a panic.
            assert!(matches!(
                call(&kv, "get", &[Value::Int(1)]).await,
                Err(CallError::BadArgument { index: 0, .. })
            ));
            assert!(matches!(
                call(&kv, "get", &[]).await,
                Err(CallError::BadArgument { .. })
            ));
            assert!(matches!(
                call(&kv, "fill", &[]).await,
                Err(CallError::NoMethod { .. })
            ));
            assert!(matches!(
                call(&kv, "nope", &[]).await,
                Err(CallError::NoMethod { .. })
            ));
        });
    }

    struct Quiet;
    impl crate::Console for Quiet {
        fn write<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), ConsoleError>> {
            Box::pin(async { Ok(()) })
        }
    }
    impl crate::MonoClock for Quiet {
        fn elapsed_ns(&self) -> u64 {
            7
        }
    }
    impl crate::WallClock for Quiet {
        fn now_unix_ns(&self) -> u64 {
            8
        }
    }
    impl crate::Time for Quiet {
        fn sleep(&self, _: core::time::Duration) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }
    impl crate::Stack for Quiet {
        fn listen(
            &self,
            _: u16,
        ) -> BoxFuture<'_, Result<Box<dyn crate::Listener>, crate::NetError>> {
            Box::pin(async { Err(crate::NetError::Down) })
        }
        fn connect(
            &self,
            _: core::net::SocketAddrV4,
        ) -> BoxFuture<'_, Result<Box<dyn crate::Flow>, crate::NetError>> {
            Box::pin(async { Err(crate::NetError::Down) })
        }
    }

    /// Every (kind, method) in [`CALLABLE`] reaches its device, with
    /// arguments of the types the graph's method table gives.
    #[test]
    fn every_callable_method_reaches_its_device() {
        let device = |kind: &str| match kind {
            "Console" => Arg::Console(Arc::new(Quiet)),
            "MonoClock" => Arg::MonoClock(Arc::new(Quiet)),
            "WallClock" => Arg::WallClock(Arc::new(Quiet)),
            "Time" => Arg::Time(Arc::new(Quiet)),
            "Random" => Arg::Random(Arc::new(crate::random::Seeded::new(1))),
            "KvRo" => Arg::KvRo(Arc::new(crate::kv::Baked::from_entries([(
                "k".into(),
                b"v".to_vec(),
            )]))),
            "Kv" => Arg::Kv(Arc::new(crate::kv::Mem::new())),
            "Block" => Arg::Block(Arc::new(crate::block::Mem::new(4, 512))),
            "Netif" => Arg::Netif(Arc::new(crate::netif::pair().0)),
            _ => Arg::Stack(Arc::new(Quiet)),
        };
        let args = |kind: &str, method: &str| match method {
            "write" if kind == "Block" => vec![Value::Int(0), s(&"z".repeat(512))],
            "write" | "log" => vec![s("x")],
            "sleep" => vec![Value::Duration(core::time::Duration::from_millis(1))],
            "fill" => vec![Value::Int(4)],
            "get" | "list" | "remove" => vec![s("k")],
            "set" => vec![s("k"), s("v")],
            "read" => vec![Value::Int(0), Value::Int(1)],
            _ => vec![],
        };
        block_on(async {
            for (kind, method) in CALLABLE {
                let dev = device(kind);
                let args = args(kind, method);
                let r = call(&dev, method, &args).await;
                assert!(
                    !matches!(
                        r,
                        Err(CallError::NoMethod { .. } | CallError::BadArgument { .. })
                    ),
                    "{kind}::{method}: {r:?}"
                );
            }
            let kv = device("Kv");
            assert!(call(&kv, "get", &[s("k")]).await.is_err(), "a Kv has get");
            assert!(matches!(
                call(&kv, "get", &[s("k")]).await,
                Err(CallError::Kv(_))
            ));
        });
    }

    #[test]
    fn sectors_show_as_a_hex_dump_with_repeated_rows_starred() {
        let disk = Arg::Block(Arc::new(crate::block::Mem::new(4, 512)));
        block_on(async {
            let mut data = vec![0u8; 512];
            data[..3].copy_from_slice(b"\x01ab");
            let text = core::str::from_utf8(&data).unwrap();
            call(&disk, "write", &[Value::Int(1), Value::Str(text.into())])
                .await
                .unwrap();
            let read = call(&disk, "read", &[Value::Int(1), Value::Int(1)])
                .await
                .unwrap()
                .to_string();
            assert_eq!(
                read,
                "512 bytes\n000000  01 61 62 00 00 00 00 00 00 00 00 00 00 00 00 00  |.ab.............|\n\
                 000010  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  |................|\n*\n000200"
            );
            assert!(matches!(
                call(&disk, "write", &[Value::Int(0), s("short")]).await,
                Err(CallError::Block(BlockError::Unaligned { .. }))
            ));
            assert!(matches!(
                call(&disk, "read", &[Value::Int(9), Value::Int(1)]).await,
                Err(CallError::Block(BlockError::OutOfRange { .. }))
            ));
        });
    }
}
