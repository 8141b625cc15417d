//! Keys: `key(name, default)` declares a boot-time argument, and the values
//! keys carry are checked where they are used (a string becomes a CIDR where
//! one is expected, an integer must be in its parameter's range).
//!
//! A key is its name and the default as written: `key("ip", "10.0.0.2/24")`
//! written twice is one key, whatever its uses made of it. A key has one
//! type: a key with a string default used where a CIDR goes becomes a CIDR
//! key, and one used both where a string goes and where a CIDR goes is an
//! error naming both uses (one boot argument cannot be parsed two ways).
use super::args::a_type;
use super::{Checker, Eval, GArg, Key};
use crate::diagnostic::Diagnostic;
use crate::syntax::{Arg, ExprKind, Span};
use crate::types::{Type, ValueType};
use libos::Value;

/// A key as the checker knows it.
#[derive(Clone)]
pub(super) struct Declared {
    /// The key as it goes into the graph (its type and default after the
    /// uses: a CIDR where a string default became one).
    pub(super) key: Key,
    /// The default as written, which every `key(...)` naming it repeats.
    written: Value,
    /// Its first use where a string goes, and where a CIDR goes.
    as_string: Option<Span>,
    as_cidr: Option<Span>,
}

impl Checker<'_> {
    pub(super) fn key(&mut self, span: Span, args: &[Arg], close: Span) -> (Type, Eval) {
        let usage = "write `key(\"name\", default)`, like `key(\"count\", 3)`";
        if close.is_empty() && args.len() < 2 {
            // Unclosed (its `)` is the error): the rest may be still to come.
            self.unchecked(args);
            return (Type::Error, Eval::Error);
        }
        if !self.two_by_position(
            "nym::key",
            "key",
            "a name and a default",
            usage,
            args,
            close,
        ) {
            self.unchecked(args);
            return (Type::Error, Eval::Error);
        }
        let name = match &args[0].value.kind {
            ExprKind::Lit(Value::Str(s)) if valid_key_name(s) => s.clone(),
            ExprKind::Lit(Value::Str(s)) => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::key",
                        args[0].value.span,
                        format!("{s:?} is not a key name"),
                    )
                    .label(
                        "a key name is lowercase letters, digits and `-`, starting with a letter",
                    )
                    .help("it becomes a command-line flag: `nym run -- --NAME VALUE`"),
                );
                return (Type::Error, Eval::Error);
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::key",
                        args[0].value.span,
                        "a key's name must be a string literal",
                    )
                    .label("not a string")
                    .help(usage),
                );
                return (Type::Error, Eval::Error);
            }
        };
        let default = match &args[1].value.kind {
            ExprKind::Lit(v) => v.clone(),
            ExprKind::Error => return (Type::Error, Eval::Error),
            _ => {
                let (ty, _) = self.expr(&args[1].value);
                if ty != Type::Error {
                    self.diags.push(
                        Diagnostic::error("nym::key", args[1].value.span, "a key's default must be a literal value")
                            .label(format!("this is {}", a_type(ty)))
                            .help("keys carry values (strings, integers, booleans, durations, CIDRs), not devices"),
                    );
                }
                return (Type::Error, Eval::Error);
            }
        };
        let ty = default.ty();
        if let Some(i) = self.keys.iter().position(|k| k.key.name == name) {
            let first = &self.keys[i];
            if first.written != default {
                self.diags.push(
                    Diagnostic::error("nym::key", args[1].value.span, format!("key `{name}` is declared twice with different defaults"))
                        .label(format!("default {default} here"))
                        .related(first.key.span, format!("default {} here", first.written))
                        .help("a key is one boot argument: give every use the same default, or bind it once with `let`"),
                );
                return (Type::Error, Eval::Error);
            }
            return (Type::Value(ty), Eval::Key(i));
        }
        self.keys.push(Declared {
            key: Key {
                name,
                ty,
                default: default.clone(),
                span,
            },
            written: default,
            as_string: None,
            as_cidr: None,
        });
        (Type::Value(ty), Eval::Key(self.keys.len() - 1))
    }

    /// Records that key `k` (with a string default) is used where a
    /// string goes, at `span`; `None` if it is a CIDR elsewhere (reported).
    pub(super) fn key_as_string(&mut self, k: usize, span: Span) -> Option<()> {
        if let Some(cidr) = self.keys[k].as_cidr {
            self.two_types(k, span, "a string", cidr, "an IPv4 CIDR");
            return None;
        }
        if self.keys[k].as_string.is_none() {
            self.key_changing(k);
            self.keys[k].as_string = Some(span);
        }
        Some(())
    }

    fn two_types(&mut self, k: usize, span: Span, here: &str, at: Span, there: &str) {
        let name = &self.keys[k].key.name;
        self.diags.push(
            Diagnostic::error(
                "nym::key",
                span,
                format!("key `{name}` is used both as a string and as an IPv4 CIDR"),
            )
            .label(format!("{here} here"))
            .related(at, format!("{there} here"))
            .help(
                "a key is one boot argument of one type: declare another key for one of the uses",
            ),
        );
    }

    /// A string, literal or a key's default, used at `span` where a CIDR
    /// goes: parsed, and a key becomes a CIDR key.
    pub(super) fn cidr_from_string(&mut self, value: GArg, span: Span) -> Option<GArg> {
        let text = match &value {
            GArg::Value(Value::Str(s)) => s.clone(),
            GArg::Key(k) => match &self.keys[*k].written {
                Value::Str(s) => s.clone(),
                _ => return Some(value),
            },
            _ => return Some(value),
        };
        match text.parse::<libos::Ipv4Cidr>() {
            Ok(c) => Some(match value {
                GArg::Key(k) => {
                    if let Some(string) = self.keys[k].as_string {
                        self.two_types(k, span, "an IPv4 CIDR", string, "a string");
                        return None;
                    }
                    self.key_changing(k);
                    let d = &mut self.keys[k];
                    d.as_cidr.get_or_insert(span);
                    d.key.ty = ValueType::Cidr;
                    d.key.default = Value::Cidr(c);
                    GArg::Key(k)
                }
                _ => GArg::Value(Value::Cidr(c)),
            }),
            Err(why) => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::bad-value",
                        span,
                        format!("{text:?} is not an IPv4 CIDR"),
                    )
                    .label(why.to_string())
                    .help("write an address and a prefix length, like \"10.0.0.2/24\""),
                );
                None
            }
        }
    }

    pub(super) fn check_range(
        &mut self,
        value: &GArg,
        range: Option<(i64, i64)>,
        span: Span,
        pname: &str,
    ) -> Option<()> {
        let (Some((lo, hi)), Some(v)) = (
            range,
            match value {
                GArg::Value(Value::Int(v)) => Some(*v),
                GArg::Key(k) => match self.keys[*k].key.default {
                    Value::Int(v) => Some(v),
                    _ => None,
                },
                _ => None,
            },
        ) else {
            return Some(());
        };
        if (lo..=hi).contains(&v) {
            return Some(());
        }
        self.diags.push(
            Diagnostic::error(
                "nym::bad-value",
                span,
                format!("{v} is out of range for `{pname}`"),
            )
            .label(format!("must be between {lo} and {hi}")),
        );
        None
    }
}

/// A key or unikernel name: `[a-z][a-z0-9-]*`.
pub fn valid_key_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check, check_codes};
    use super::valid_key_name;
    use expect_test::expect;

    #[test]
    fn a_key_is_a_boot_argument_declared_once_for_every_use_of_its_name() {
        check(
            r#"let a = job hello::start(console::default(), time::default(), key("count", 3));
let b = job hello::level(console::default(), key("count", 3));
let c = job hello::serve(kv::baked(key("dir", "www")), "10.0.0.2/24", key("every", 1s), key("verbose", false));
register("hello", [a, b, c]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 console::default = console::default()
                  node #1 time::default = time::default()
                  node #2 console::default = console::default()
                  node #3 kv::baked = kv::baked(key #1)
                  key #0 --count: int = 3
                  key #1 --dir: string = "www"
                  key #2 --every: duration = 1s
                  key #3 --verbose: bool = false
                  job #0 a = hello::start(#0, #1, key #0)
                  job #1 b = hello::level(#2, key #0)
                  job #2 c = hello::serve(#3, 10.0.0.2/24, key #2, key #3)
            "#]],
        );
    }

    #[test]
    fn a_key_declared_twice_needs_the_same_default() {
        check(
            r#"let a = job hello::level(console::default(), key("level", 3));
let b = job hello::level(console::default(), key("level", 4));
register("hello", [a, b]);
"#,
            expect![[r#"
                error nym::key at 2:59 "4": key `level` is declared twice with different defaults
                  label: default 4 here
                  related at 1:46 "key(\"level\", 3)": default 3 here
                  help: a key is one boot argument: give every use the same default, or bind it once with `let`
            "#]],
        );
    }

    #[test]
    fn a_key_needs_a_valid_name_and_a_literal_default() {
        // `g`'s default already failed: no second error for it.
        check_codes(
            &["nym::key", "nym::unknown-name"],
            r#"let a = key("Count", 3);
let b = key(count, 3);
let c = key("count", kv::mem());
let d = key("count");
let e = key("count", 3, 4);
let f = key(name = "count", 3);
let g = key("count", nothing);
"#,
            expect![[r#"
                error nym::key at 1:13 "\"Count\"": "Count" is not a key name
                  label: a key name is lowercase letters, digits and `-`, starting with a letter
                  help: it becomes a command-line flag: `nym run -- --NAME VALUE`
                error nym::key at 2:13 "count": a key's name must be a string literal
                  label: not a string
                  help: write `key("name", default)`, like `key("count", 3)`
                error nym::key at 3:22 "kv::mem()": a key's default must be a literal value
                  label: this is a `Kv` device
                  help: keys carry values (strings, integers, booleans, durations, CIDRs), not devices
                error nym::key at 4:20 ")": `key` takes 2 arguments (a name and a default) but 1 was given
                  label: missing argument here
                  help: write `key("name", default)`, like `key("count", 3)`
                error nym::key at 5:25 "4": `key` takes 2 arguments (a name and a default) but 3 were given
                  label: unexpected argument
                  help: write `key("name", default)`, like `key("count", 3)`
                error nym::key at 6:13 "name": `key` takes its arguments by position, without names
                  label: remove `name =`
                  help: write `key("name", default)`, like `key("count", 3)`
                error nym::unknown-name at 7:22 "nothing": unknown binding `nothing`
                  label: not bound by any `let` above
            "#]],
        );
    }

    #[test]
    fn an_unclosed_key_is_only_a_syntax_error() {
        check(
            r#"let a = key("count""#,
            expect![[r#"
                error nym::syntax at 1:20 "": expected `,` or `)`, found the end of the file
                  label: expected `,` or `)`
            "#]],
        );
    }

    #[test]
    fn a_string_key_where_a_cidr_is_expected_becomes_a_cidr_key() {
        check(
            r#"let ip = key("ip", "10.0.0.2/24");
let s = stack::direct(netif::pair("a"), ip);
let j = job hello::serve(kv::baked("www"), ip, 1s, true);
register("hello", [j, job hello::net(console::default(), s)]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 netif::pair = netif::pair("a")
                  node #1 s = stack::direct(#0, key #0)
                  node #2 kv::baked = kv::baked("www")
                  node #3 console::default = console::default()
                  key #0 --ip: ipv4 cidr = 10.0.0.2/24
                  job #0 j = hello::serve(#2, key #0, 1s, true)
                  job #1 hello::net = hello::net(#3, #1)
            "#]],
        );
    }

    #[test]
    fn a_cidr_key_written_out_twice_is_one_key() {
        // The same `key(...)` written again is the same key, though its
        // first use made it a CIDR, as binding it once with `let` (above).
        check_codes(
            &["nym::key"],
            r#"let s = stack::direct(netif::pair("a"), key("ip", "10.0.0.2/24"));
let j = job hello::serve(kv::baked("www"), key("ip", "10.0.0.2/24"), 1s, true);
register("hello", [j, job hello::net(console::default(), s)]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 netif::pair = netif::pair("a")
                  node #1 s = stack::direct(#0, key #0)
                  node #2 kv::baked = kv::baked("www")
                  node #3 console::default = console::default()
                  key #0 --ip: ipv4 cidr = 10.0.0.2/24
                  job #0 j = hello::serve(#2, key #0, 1s, true)
                  job #1 hello::net = hello::net(#3, #1)
            "#]],
        );
    }

    #[test]
    fn a_key_used_both_as_a_string_and_as_a_cidr_is_refused_naming_both_uses() {
        // One boot argument cannot be parsed as both, in either order.
        check(
            r#"let k = key("link", "10.0.0.2/24");
let s = stack::direct(netif::pair(k), k);
register("hello", [job hello::net(console::default(), s)]);
"#,
            expect![[r#"
                error nym::key at 2:39 "k": key `link` is used both as a string and as an IPv4 CIDR
                  label: an IPv4 CIDR here
                  related at 2:35 "k": a string here
                  help: a key is one boot argument of one type: declare another key for one of the uses
            "#]],
        );
        check_codes(
            &["nym::key"],
            r#"let s = stack::direct(netif::pair("a"), key("ip", "10.0.0.2/24"));
let b = kv::baked(key("ip", "10.0.0.2/24"));
"#,
            expect![[r#"
                error nym::key at 2:19 "key(\"ip\", \"10.0.0.2/24\")": key `ip` is used both as a string and as an IPv4 CIDR
                  label: a string here
                  related at 1:41 "key(\"ip\", \"10.0.0.2/24\")": an IPv4 CIDR here
                  help: a key is one boot argument of one type: declare another key for one of the uses
            "#]],
        );
    }

    #[test]
    fn a_string_that_is_not_a_cidr_is_refused_literal_or_key() {
        check_codes(
            &["nym::bad-value"],
            r#"let a = stack::direct(netif::pair("a"), "10.0.0.2");
let b = stack::direct(netif::pair("b"), key("ip", "nowhere"));
"#,
            expect![[r#"
                error nym::bad-value at 1:41 "\"10.0.0.2\"": "10.0.0.2" is not an IPv4 CIDR
                  label: missing `/prefix` (write it like 10.0.0.2/24)
                  help: write an address and a prefix length, like "10.0.0.2/24"
                error nym::bad-value at 2:41 "key(\"ip\", \"nowhere\")": "nowhere" is not an IPv4 CIDR
                  label: missing `/prefix` (write it like 10.0.0.2/24)
                  help: write an address and a prefix length, like "10.0.0.2/24"
            "#]],
        );
    }

    #[test]
    fn integers_literal_or_key_must_be_in_the_parameter_range() {
        // The bounds are inclusive: `c` and `d` are fine.
        check_codes(
            &["nym::bad-value"],
            r#"let a = time::scaled(time::default(), 0);
let b = netif::lossy(netif::pair("a"), key("loss", 101));
let c = block::mem(size = 512);
let d = netif::lossy(netif::pair("a"), 100);
"#,
            expect![[r#"
                error nym::bad-value at 1:39 "0": 0 is out of range for `factor`
                  label: must be between 1 and 1000000
                error nym::bad-value at 2:40 "key(\"loss\", 101)": 101 is out of range for `percent`
                  label: must be between 0 and 100
            "#]],
        );
    }

    #[test]
    fn key_names_are_lowercase_words_with_dashes() {
        assert!(valid_key_name("count"));
        assert!(valid_key_name("tap-0"));
        assert!(!valid_key_name(""));
        assert!(!valid_key_name("0tap"));
        assert!(!valid_key_name("-tap"));
        assert!(!valid_key_name("Count"));
        assert!(!valid_key_name("my_count"));
    }
}
