//! The contract between nym's in-process runner and an application built as
//! a dynamic library.
//!
//! The runner builds a small generated library around the application crate
//! (a "shim") that exports two symbols:
//!
//! - [`FINGERPRINT_SYMBOL`], an `extern "C"` function returning a
//!   NUL-terminated string. It is read first, through the C ABI which is
//!   stable across compilers, and compared with the runner's own
//!   [`FINGERPRINT`]. A library built by another compiler or against another
//!   libos is refused there, before any Rust-ABI type crosses the boundary.
//! - [`TABLE_SYMBOL`], a [`JobTable`]: one [`JobEntry`] per job, taking the
//!   devices and values of the job's arguments as [`Arg`]s.
//!
//! Devices cross as `Arc<dyn Trait>` whose code lives in the runner: the
//! library links no async runtime of its own, so every wait is served by the
//! host's executor.
use crate::{
    Block, BoxFuture, Console, Ipv4Cidr, Kv, KvRo, MonoClock, Netif, Random, Stack, Time, WallClock,
};
use alloc::{string::String, sync::Arc, vec::Vec};
use core::time::Duration;

/// This build's fingerprint: libos's version and source hash plus the
/// compiler's commit, NUL-terminated.
pub const FINGERPRINT: &str = concat!(env!("NYM_ABI_FINGERPRINT"), "\0");
/// The symbol of the shim's `extern "C" fn() -> *const c_char` fingerprint.
pub const FINGERPRINT_SYMBOL: &[u8] = b"nym_abi_fingerprint";
/// The symbol of the shim's `static JobTable`.
pub const TABLE_SYMBOL: &[u8] = b"nym_job_table";

/// One argument of a job: a device or a value. Cloning a device argument
/// shares the device.
#[derive(Clone)]
pub enum Arg {
    /// A console.
    Console(Arc<dyn Console>),
    /// A monotonic clock.
    MonoClock(Arc<dyn MonoClock>),
    /// A wall clock.
    WallClock(Arc<dyn WallClock>),
    /// A sleeper.
    Time(Arc<dyn Time>),
    /// A random source.
    Random(Arc<dyn Random>),
    /// A read-only store.
    KvRo(Arc<dyn KvRo>),
    /// A read-write store (also accepted where a read-only one is expected).
    Kv(Arc<dyn Kv>),
    /// A block device.
    Block(Arc<dyn Block>),
    /// A network interface.
    Netif(Arc<dyn Netif>),
    /// A TCP/IP stack.
    Stack(Arc<dyn Stack>),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A duration.
    Duration(Duration),
    /// An IPv4 address with prefix.
    Cidr(Ipv4Cidr),
}

impl Arg {
    /// The name of the argument's kind or value type, as the graph spells it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Arg::Console(_) => "Console",
            Arg::MonoClock(_) => "MonoClock",
            Arg::WallClock(_) => "WallClock",
            Arg::Time(_) => "Time",
            Arg::Random(_) => "Random",
            Arg::KvRo(_) => "KvRo",
            Arg::Kv(_) => "Kv",
            Arg::Block(_) => "Block",
            Arg::Netif(_) => "Netif",
            Arg::Stack(_) => "Stack",
            Arg::Int(_) => "int",
            Arg::Str(_) => "string",
            Arg::Bool(_) => "bool",
            Arg::Duration(_) => "duration",
            Arg::Cidr(_) => "ipv4 cidr",
        }
    }
}

impl From<crate::Value> for Arg {
    fn from(v: crate::Value) -> Self {
        match v {
            crate::Value::Str(s) => Arg::Str(s),
            crate::Value::Int(i) => Arg::Int(i),
            crate::Value::Bool(b) => Arg::Bool(b),
            crate::Value::Duration(d) => Arg::Duration(d),
            crate::Value::Cidr(c) => Arg::Cidr(c),
        }
    }
}

/// Why a job's arguments do not fit its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// Fewer arguments than parameters.
    #[error("argument {index} is missing (expected {expected})")]
    Missing {
        /// Zero-based position.
        index: usize,
        /// What the parameter takes.
        expected: &'static str,
    },
    /// An argument of the wrong kind.
    #[error("argument {index} is a {found}, expected {expected}")]
    WrongKind {
        /// Zero-based position.
        index: usize,
        /// What the parameter takes.
        expected: &'static str,
        /// What was given.
        found: &'static str,
    },
    /// An integer that does not fit the parameter's Rust type.
    #[error("argument {index} is {value}, which does not fit in a {ty}")]
    OutOfRange {
        /// Zero-based position.
        index: usize,
        /// The value given.
        value: i64,
        /// The parameter's Rust type.
        ty: &'static str,
    },
    /// More arguments than parameters.
    #[error("{extra} argument(s) too many")]
    TooMany {
        /// How many were left over.
        extra: usize,
    },
}

/// A job's arguments, taken in order by the generated shim.
pub struct Args {
    items: alloc::vec::IntoIter<Arg>,
    index: usize,
}

macro_rules! takers {
    ($($(#[$doc:meta])* $name:ident => $variant:ident : $ty:ty;)*) => {
        $($(#[$doc])* pub fn $name(&mut self) -> Result<$ty, ArgError> {
            match self.next(stringify!($variant))? {
                Arg::$variant(v) => Ok(v),
                other => Err(self.wrong(stringify!($variant), &other)),
            }
        })*
    };
}

impl Args {
    /// Wraps the runner's argument list.
    pub fn new(items: Vec<Arg>) -> Self {
        Self {
            items: items.into_iter(),
            index: 0,
        }
    }

    fn next(&mut self, expected: &'static str) -> Result<Arg, ArgError> {
        let arg = self.items.next().ok_or(ArgError::Missing {
            index: self.index,
            expected,
        })?;
        self.index += 1;
        Ok(arg)
    }

    fn wrong(&self, expected: &'static str, found: &Arg) -> ArgError {
        ArgError::WrongKind {
            index: self.index - 1,
            expected,
            found: found.kind_name(),
        }
    }

    takers! {
        /// The next argument as a console.
        console => Console: Arc<dyn Console>;
        /// The next argument as a monotonic clock.
        mono_clock => MonoClock: Arc<dyn MonoClock>;
        /// The next argument as a wall clock.
        wall_clock => WallClock: Arc<dyn WallClock>;
        /// The next argument as a sleeper.
        time => Time: Arc<dyn Time>;
        /// The next argument as a random source.
        random => Random: Arc<dyn Random>;
        /// The next argument as a read-write store.
        kv => Kv: Arc<dyn Kv>;
        /// The next argument as a block device.
        block => Block: Arc<dyn Block>;
        /// The next argument as a network interface.
        netif => Netif: Arc<dyn Netif>;
        /// The next argument as a TCP/IP stack.
        stack => Stack: Arc<dyn Stack>;
        /// The next argument as a string.
        string => Str: String;
        /// The next argument as a boolean.
        bool => Bool: bool;
        /// The next argument as a duration.
        duration => Duration: Duration;
        /// The next argument as an IPv4 CIDR.
        cidr => Cidr: Ipv4Cidr;
    }

    /// The next argument as a read-only store; a read-write one is accepted.
    pub fn kv_ro(&mut self) -> Result<Arc<dyn KvRo>, ArgError> {
        match self.next("KvRo")? {
            Arg::KvRo(v) => Ok(v),
            Arg::Kv(v) => Ok(v),
            other => Err(self.wrong("KvRo", &other)),
        }
    }

    /// The next argument as an integer of the parameter's Rust type `ty`.
    pub fn int<T: TryFrom<i64>>(&mut self, ty: &'static str) -> Result<T, ArgError> {
        match self.next("int")? {
            Arg::Int(v) => T::try_from(v).map_err(|_| ArgError::OutOfRange {
                index: self.index - 1,
                value: v,
                ty,
            }),
            other => Err(self.wrong("int", &other)),
        }
    }

    /// Checks that every argument was taken.
    pub fn finish(self) -> Result<(), ArgError> {
        match self.items.len() {
            0 => Ok(()),
            extra => Err(ArgError::TooMany { extra }),
        }
    }
}

/// A running job: resolves to the job's [`crate::Outcome`].
pub type JobFuture = BoxFuture<'static, Result<(), String>>;

/// Starts a job from its arguments.
pub type JobEntry = fn(Args) -> Result<JobFuture, ArgError>;

/// One job the library offers.
pub struct JobSpec {
    /// The job's path as the graph writes it, `hello::start`.
    pub path: &'static str,
    /// Its entry point.
    pub entry: JobEntry,
}

/// Everything the library offers the runner.
pub struct JobTable {
    /// The jobs, in the order the graph registers them.
    pub jobs: &'static [JobSpec],
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn args_are_taken_in_order_and_checked() {
        let mut a = Args::new(vec![
            Arg::Int(300),
            Arg::Kv(Arc::new(crate::kv::Mem::new())),
        ]);
        assert_eq!(
            a.int::<u8>("u8").err(),
            Some(ArgError::OutOfRange {
                index: 0,
                value: 300,
                ty: "u8"
            })
        );
        assert!(a.kv_ro().is_ok(), "a Kv is accepted as a KvRo");
        assert_eq!(
            a.console().err(),
            Some(ArgError::Missing {
                index: 2,
                expected: "Console"
            })
        );

        let mut b = Args::new(vec![Arg::Bool(true), Arg::Int(1)]);
        assert_eq!(
            b.string().err(),
            Some(ArgError::WrongKind {
                index: 0,
                expected: "Str",
                found: "bool"
            })
        );
        assert_eq!(b.finish(), Err(ArgError::TooMany { extra: 1 }));
    }

    #[test]
    fn fingerprint_names_the_compiler_and_is_nul_terminated() {
        assert!(FINGERPRINT.starts_with("libos-"));
        assert!(FINGERPRINT.contains("-rustc-"));
        assert!(FINGERPRINT.ends_with('\0'));
    }
}
