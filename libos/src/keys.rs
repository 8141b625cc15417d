//! Boot-time keys (MirageOS: keys): `--count 5`, `--ipv4=10.0.0.9/24`.
//! `nym run -- ...`, standalone Unix builds and the guest's command line
//! all parse them here, so a key means the same on every target.
use crate::value::{parse_value, ValueError};
use crate::{Ipv4Cidr, Value, ValueType};
use alloc::{borrow::ToOwned, format, string::String, vec::Vec};
use core::time::Duration;

/// Why the key arguments cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A `--name` no key has.
    #[error("unknown key `--{name}`{}", KnownList(.known))]
    Unknown {
        /// The name given.
        name: String,
        /// The keys the graph has.
        known: Vec<String>,
    },
    /// `--name` with nothing after it.
    #[error("`--{0}` needs a value")]
    MissingValue(String),
    /// An argument that is not `--name`.
    #[error("unexpected argument `{0}`: keys are given as `--name value`")]
    NotAFlag(String),
    /// A value of the wrong form.
    #[error("`--{name} {text}`: {source}")]
    Bad {
        /// The key.
        name: String,
        /// The text given.
        text: String,
        /// Why it is not a value of the key's type.
        source: ValueError,
    },
    /// Generated code asked for a key as the wrong type (a nym bug).
    #[error("key `{name}` is not a {ty}")]
    WrongType {
        /// The key.
        name: String,
        /// The type asked for.
        ty: &'static str,
    },
}

/// `; the keys are: --a, --b`, written straight to the formatter (no
/// intermediate strings: this is in every image).
struct KnownList<'a>(&'a [String]);

impl core::fmt::Display for KnownList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("; this graph has no keys");
        }
        f.write_str("; the keys are: ")?;
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str("--")?;
            f.write_str(k)?;
        }
        Ok(())
    }
}

/// The keys' values: each default, overridden from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    values: Vec<(String, Value)>,
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident => $variant:ident : $ty:ty;)*) => {
        $($(#[$doc])* pub fn $name(&self, key: &str) -> Result<$ty, KeyError> {
            match self.get(key) {
                Some(Value::$variant(v)) => Ok(v.clone()),
                _ => Err(KeyError::WrongType { name: key.into(), ty: ValueType::$variant.name() }),
            }
        })*
    };
}

impl Keys {
    /// The keys with their defaults.
    pub fn defaults(defaults: Vec<(&str, Value)>) -> Keys {
        Keys {
            values: defaults
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// Starts from `defaults` and applies `args` (`--name value` or `--name=value`).
    pub fn parse<S: AsRef<str>>(
        defaults: Vec<(&str, Value)>,
        args: &[S],
    ) -> Result<Keys, KeyError> {
        let mut values = Keys::defaults(defaults).values;
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(KeyError::NotAFlag(arg.into()));
            };
            let (name, text) = match flag.split_once('=') {
                Some(pair) => pair,
                None => (
                    flag,
                    it.next()
                        .ok_or_else(|| KeyError::MissingValue(flag.into()))?,
                ),
            };
            let Some(slot) = values.iter_mut().find(|(k, _)| k == name) else {
                let known = values.iter().map(|(k, _)| k.clone()).collect();
                return Err(KeyError::Unknown {
                    name: name.into(),
                    known,
                });
            };
            slot.1 = parse_value(slot.1.ty(), text).map_err(|source| KeyError::Bad {
                name: name.into(),
                text: text.into(),
                source,
            })?;
        }
        Ok(Keys { values })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every key and its value, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    getters! {
        /// A string key.
        string => Str: String;
        /// An integer key.
        int => Int: i64;
        /// A boolean key.
        bool => Bool: bool;
        /// A duration key.
        duration => Duration: Duration;
        /// A CIDR key.
        cidr => Cidr: Ipv4Cidr;
    }

    /// A usage text listing the keys and their defaults.
    pub fn usage(&self, program: &str) -> String {
        let mut out = format!("usage: {program} [--KEY VALUE]...\n");
        if self.values.is_empty() {
            out.push_str("\nthis unikernel has no keys\n");
        } else {
            out.push_str("\nkeys:\n");
            for (k, v) in &self.values {
                out.push_str(&format!("  --{k} <{}>  (default {v})\n", v.ty().name()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{string::ToString, vec};

    fn defaults() -> Vec<(&'static str, Value)> {
        vec![
            ("count", Value::Int(3)),
            ("ipv4", Value::Cidr("10.0.0.2/24".parse().unwrap())),
        ]
    }

    #[test]
    fn flags_override_defaults_in_both_forms() {
        let k = Keys::parse(defaults(), &["--count", "5", "--ipv4=10.0.0.9/8"]).unwrap();
        assert_eq!(k.int("count"), Ok(5));
        assert_eq!(k.cidr("ipv4").unwrap().to_string(), "10.0.0.9/8");
        assert_eq!(
            Keys::parse(defaults(), &[] as &[&str])
                .unwrap()
                .int("count"),
            Ok(3)
        );
    }

    #[test]
    fn bad_arguments_name_the_key_and_the_problem() {
        let e = Keys::parse(defaults(), &["--cuont", "5"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown key `--cuont`; the keys are: --count, --ipv4"
        );
        let e = Keys::parse(defaults(), &["--count", "many"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`--count many`: not an integer (write it like 42 or 4MiB)"
        );
        assert_eq!(
            Keys::parse(defaults(), &["--count"]).unwrap_err(),
            KeyError::MissingValue("count".into())
        );
        assert_eq!(
            Keys::parse(defaults(), &["5"]).unwrap_err(),
            KeyError::NotAFlag("5".into())
        );
    }
}
