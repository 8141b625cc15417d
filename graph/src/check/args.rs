//! Arguments: an application's arguments matched to its parameters
//! (positional, then named), each checked against its parameter's type,
//! defaults filled in; for implementations and jobs alike.
use super::resolve::closest;
use super::{Checker, Eval, GArg};
use crate::catalog::{self, ParamType};
use crate::diagnostic::Diagnostic;
use crate::syntax::{Arg, Expr, Span};
use crate::types::{Kind, Type, ValueType};
use libos::Value;

/// A parameter as the argument matcher sees it, for implementations and
/// jobs alike: name, type, default, allowed integer range.
pub(super) type ParamSpec = (String, ParamType, Option<Value>, Option<(i64, i64)>);

/// The catalog's parameters (an implementation's or a device method's)
/// as the matcher sees them.
pub(super) fn specs(params: &[catalog::Param]) -> Vec<ParamSpec> {
    params
        .iter()
        .map(|p| {
            (
                p.name.to_owned(),
                p.ty,
                p.default.map(|d| d.value()),
                p.range,
            )
        })
        .collect()
}

impl Checker<'_> {
    /// Matches `args` to `params` (positional, then named), checks each, and
    /// fills defaults. `None` if anything failed (already reported).
    pub(super) fn arguments(
        &mut self,
        callee: &str,
        params: &[ParamSpec],
        args: &[Arg],
        close: Span,
    ) -> Option<Vec<GArg>> {
        let mut slots: Vec<Option<GArg>> = vec![None; params.len()];
        let mut ok = true;
        let mut seen_named = false;
        let mut position = 0;
        for arg in args {
            let index = match &arg.name {
                None if seen_named => {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::arity",
                            arg.value.span,
                            "positional argument after a named one",
                        )
                        .label("give this one a name too, or move it before the named ones"),
                    );
                    ok = false;
                    self.expr(&arg.value);
                    continue;
                }
                None => {
                    position += 1;
                    if position > params.len() {
                        let takes = count(params.len(), "argument");
                        let given = args.iter().filter(|a| a.name.is_none()).count();
                        self.diags.push(
                            Diagnostic::error(
                                "nym::arity",
                                arg.value.span,
                                format!("`{callee}` takes {takes} but {}", were_given(given)),
                            )
                            .label("unexpected argument")
                            .help(format!("the parameters are: {}", describe_params(params))),
                        );
                        ok = false;
                        self.expr(&arg.value);
                        continue;
                    }
                    position - 1
                }
                Some(n) => {
                    seen_named = true;
                    match params.iter().position(|p| p.0 == n.name) {
                        Some(i) if slots[i].is_some() => {
                            self.diags.push(
                                Diagnostic::error(
                                    "nym::arity",
                                    n.span,
                                    format!("`{}` is given twice", n.name),
                                )
                                .label("given again here"),
                            );
                            ok = false;
                            continue;
                        }
                        Some(i) => i,
                        None => {
                            let mut d = Diagnostic::error(
                                "nym::arity",
                                n.span,
                                format!("`{callee}` has no parameter `{}`", n.name),
                            )
                            .label("unknown parameter");
                            if let Some(best) =
                                closest(&n.name, params.iter().map(|p| p.0.as_str()))
                            {
                                d = d.help(format!("did you mean `{best}`?")).fix(
                                    format!("use `{best}`"),
                                    n.span,
                                    best,
                                );
                            } else {
                                d = d.help(format!(
                                    "the parameters are: {}",
                                    describe_params(params)
                                ));
                            }
                            self.diags.push(d);
                            ok = false;
                            self.expr(&arg.value);
                            continue;
                        }
                    }
                }
            };
            let (_, ty, _, range) = &params[index];
            match self.argument(callee, &params[index].0, *ty, *range, &arg.value) {
                Some(g) => slots[index] = Some(g),
                None => ok = false,
            }
        }
        let mut out = Vec::with_capacity(params.len());
        for (slot, (name, ty, default, _)) in slots.into_iter().zip(params) {
            match slot.or_else(|| default.clone().map(GArg::Value)) {
                Some(g) => out.push(g),
                // An unclosed call (empty `close`): its missing `)` is the
                // error; the arguments may be still to come.
                None if close.is_empty() => ok = false,
                None if ok => {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::arity",
                            close,
                            format!("missing argument `{name}: {ty}` of `{callee}`"),
                        )
                        .label(format!("`{name}` goes here"))
                        .help(format!("the parameters are: {}", describe_params(params))),
                    );
                    ok = false;
                }
                None => {}
            }
        }
        ok.then_some(out)
    }

    /// Checks one argument against its parameter, coercing strings to CIDRs.
    pub(super) fn argument(
        &mut self,
        callee: &str,
        pname: &str,
        expected: ParamType,
        range: Option<(i64, i64)>,
        e: &Expr,
    ) -> Option<GArg> {
        let (ty, eval) = self.expr(e);
        if ty == Type::Error {
            return None;
        }
        let mismatch = |c: &mut Self, found: Type| {
            let mut d = Diagnostic::error(
                "nym::kind",
                e.span,
                format!(
                    "`{callee}` expects {} for `{pname}`, found {}",
                    a(expected),
                    a_type(found)
                ),
            )
            .label(format!("this is {}", a_type(found)));
            if let ParamType::Device(k) = expected {
                let options: Vec<&str> = catalog::providing(k)
                    .filter(|i| i.supports(c.target))
                    .map(|i| i.name)
                    .collect();
                if !options.is_empty() {
                    d = d.help(format!(
                        "implementations providing {k} on {}: {}",
                        c.target,
                        options.join(", ")
                    ));
                }
            }
            c.diags.push(d);
            None
        };
        match (expected, ty, eval) {
            (ParamType::Device(k), Type::Device(found), Eval::Node(n)) if found.fits(k) => {
                Some(GArg::Node(n))
            }
            (ParamType::Device(_), Type::Device(_), Eval::Error) => None,
            (ParamType::Value(want), Type::Value(have), eval) => {
                let value = match eval {
                    Eval::Value(v) => GArg::Value(v),
                    Eval::Key(k) => GArg::Key(k),
                    _ => return None,
                };
                let value = if want == ValueType::Cidr && have == ValueType::Str {
                    self.cidr_from_string(value, e.span)?
                } else if want == have {
                    if let GArg::Key(k) = value {
                        if want == ValueType::Str {
                            self.key_as_string(k, e.span)?;
                        }
                    }
                    value
                } else {
                    return mismatch(self, ty);
                };
                self.check_range(&value, range, e.span, pname)?;
                Some(value)
            }
            _ => mismatch(self, ty),
        }
    }

    /// Whether `args` are what the builtin `callee` takes: two arguments,
    /// `what`, by position. Reports why not.
    pub(super) fn two_by_position(
        &mut self,
        code: &'static str,
        callee: &str,
        what: &str,
        usage: &str,
        args: &[Arg],
        close: Span,
    ) -> bool {
        if args.len() != 2 {
            let (at, label) = match args.len() {
                0 => (close, "missing arguments here"),
                1 => (close, "missing argument here"),
                _ => (args[2].value.span, "unexpected argument"),
            };
            self.diags.push(
                Diagnostic::error(
                    code,
                    at,
                    format!(
                        "`{callee}` takes 2 arguments ({what}) but {}",
                        were_given(args.len())
                    ),
                )
                .label(label)
                .help(usage),
            );
            return false;
        }
        if let Some(n) = args.iter().find_map(|a| a.name.as_ref()) {
            self.diags.push(
                Diagnostic::error(
                    code,
                    n.span,
                    format!("`{callee}` takes its arguments by position, without names"),
                )
                .label(format!("remove `{} =`", n.name))
                .help(usage),
            );
            return false;
        }
        true
    }
}

pub(super) fn int_range(ty: &str) -> (i64, i64) {
    match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "u64" | "usize" => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    }
}

fn a(p: ParamType) -> String {
    match p {
        ParamType::Device(k) => format!("a `{k}` device"),
        ParamType::Value(v) => a_value(v).into(),
    }
}

/// What an expression of type `t` is, in prose: "a `Kv` device", "an int".
pub(super) fn a_type(t: Type) -> String {
    match t {
        Type::Device(Kind::Job) => "a job".into(),
        Type::Device(k) => format!("a `{k}` device"),
        Type::Value(v) => a_value(v).into(),
        Type::List => "a list".into(),
        Type::Error => "an unknown value".into(),
    }
}

/// A value of type `v`, in prose, with its article: "an int", "an IPv4 CIDR".
pub(crate) fn a_value(v: ValueType) -> &'static str {
    match v {
        ValueType::Str => "a string",
        ValueType::Int => "an int",
        ValueType::Bool => "a bool",
        ValueType::Duration => "a duration",
        ValueType::Cidr => "an IPv4 CIDR",
    }
}

/// `n` of `what` (a singular noun): "no arguments", "1 argument", "2 arguments".
pub(super) fn count(n: usize, what: &str) -> String {
    match n {
        0 => format!("no {what}s"),
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// "1 was given", "3 were given": the arguments an arity error counts.
pub(super) fn were_given(n: usize) -> String {
    if n == 1 {
        "1 was given".into()
    } else {
        format!("{n} were given")
    }
}

fn describe_params(params: &[ParamSpec]) -> String {
    if params.is_empty() {
        return "none".into();
    }
    params
        .iter()
        .map(|(n, t, d, _)| match d {
            Some(d) => format!("{n}: {t} = {d}"),
            None => format!("{n}: {t}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check, check_codes};
    use expect_test::expect;

    #[test]
    fn positional_then_named_arguments_fill_their_slots_and_defaults_the_rest() {
        check(
            r#"let lossy = netif::lossy(netif::pair("a"), percent = 5);
let fast = time::scaled(factor = 10, time = time::default());
let s = stack::direct(lossy, "10.0.0.2/24");
let n = job hello::net(console::default(), s);
let j = job hello::store(console::default(), kv::block(block::mem()));
let t = job hello::start(console::default(), fast, count = 3);
register("hello", [n, j, t]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 netif::pair = netif::pair("a")
                  node #1 lossy = netif::lossy(#0, 5, 1)
                  node #2 time::default = time::default()
                  node #3 fast = time::scaled(#2, 10)
                  node #4 s = stack::direct(#1, 10.0.0.2/24)
                  node #5 console::default = console::default()
                  node #6 console::default = console::default()
                  node #7 block::mem = block::mem(1048576)
                  node #8 kv::block = kv::block(#7)
                  node #9 console::default = console::default()
                  job #0 n = hello::net(#5, #4)
                  job #1 j = hello::store(#6, #8)
                  job #2 t = hello::start(#9, #3, 3)
            "#]],
        );
    }

    #[test]
    fn arity_mistakes_each_get_a_diagnostic() {
        check_codes(
            &["nym::arity"],
            r#"let a = kv::mem(1);
let b = netif::lossy(percent = 5, netif::pair("a"));
let c = netif::lossy(netif::pair("a"), percent = 5, percent = 6);
let d = netif::lossy(netif::pair("a"), precent = 5);
let e = netif::lossy(netif::pair("a"), speed = 5);
let f = netif::lossy(netif::pair("a"));
let g = netif::lossy(netif::pair("a"), percent = 5, nonsense = 1);
let h = job hello::level(console::default(), 1, 2);
"#,
            expect![[r#"
                error nym::arity at 1:17 "1": `kv::mem` takes no arguments but 1 was given
                  label: unexpected argument
                  help: the parameters are: none
                error nym::arity at 2:35 "netif::pair(\"a\")": positional argument after a named one
                  label: give this one a name too, or move it before the named ones
                error nym::arity at 3:53 "percent": `percent` is given twice
                  label: given again here
                error nym::arity at 4:40 "precent": `netif::lossy` has no parameter `precent`
                  label: unknown parameter
                  help: did you mean `percent`?
                  fix "use `percent`": 4:40 "precent" -> "percent"
                error nym::arity at 5:40 "speed": `netif::lossy` has no parameter `speed`
                  label: unknown parameter
                  help: did you mean `seed`?
                  fix "use `seed`": 5:40 "speed" -> "seed"
                error nym::arity at 6:38 ")": missing argument `percent: int` of `netif::lossy`
                  label: `percent` goes here
                  help: the parameters are: netif: Netif, percent: int, seed: int = 1
                error nym::arity at 7:53 "nonsense": `netif::lossy` has no parameter `nonsense`
                  label: unknown parameter
                  help: the parameters are: netif: Netif, percent: int, seed: int = 1
                error nym::arity at 8:49 "2": `hello::level` takes 2 arguments but 3 were given
                  label: unexpected argument
                  help: the parameters are: console: Console, level: int
            "#]],
        );
    }

    #[test]
    fn an_unclosed_application_does_not_miss_its_arguments_yet() {
        check(
            r#"let a = netif::lossy(netif::pair("a")"#,
            expect![[r#"
                error nym::syntax at 1:38 "": expected `,` or `)`, found the end of the file
                  label: expected `,` or `)`
            "#]],
        );
    }

    #[test]
    fn an_argument_of_the_wrong_kind_or_type_names_what_fits() {
        check_codes(
            &["nym::kind"],
            r#"let a = kv::full(console::default());
let b = kv::full("store");
let c = kv::dir(kv::mem());
let d = netif::lossy(netif::pair("a"), percent = true);
let e = stack::direct(netif::pair("a"), [1]);
let f = kv::full(clock::mono());
"#,
            expect![[r#"
                error nym::kind at 1:18 "console::default()": `kv::full` expects a `Kv` device for `kv`, found a `Console` device
                  label: this is a `Console` device
                  help: implementations providing Kv on unix: kv::mem, kv::full, kv::history, kv::dir, kv::block
                error nym::kind at 2:18 "\"store\"": `kv::full` expects a `Kv` device for `kv`, found a string
                  label: this is a string
                  help: implementations providing Kv on unix: kv::mem, kv::full, kv::history, kv::dir, kv::block
                error nym::kind at 3:17 "kv::mem()": `kv::dir` expects a string for `path`, found a `Kv` device
                  label: this is a `Kv` device
                error nym::kind at 4:50 "true": `netif::lossy` expects an int for `percent`, found a bool
                  label: this is a bool
                error nym::kind at 5:41 "[1]": `stack::direct` expects an IPv4 CIDR for `ipv4`, found a list
                  label: this is a list
                error nym::kind at 6:18 "clock::mono()": `kv::full` expects a `Kv` device for `kv`, found a `MonoClock` device
                  label: this is a `MonoClock` device
                  help: implementations providing Kv on unix: kv::mem, kv::full, kv::history, kv::dir, kv::block
            "#]],
        );
    }

    #[test]
    fn job_arguments_are_checked_against_the_rust_types() {
        check_codes(
            &["nym::kind", "nym::bad-value"],
            r#"let a = job hello::level(console::default(), 300);
let b = job hello::start(console::default(), time::default(), count = 4294967296);
let c = job hello::serve(kv::baked("www"), "10.0.0.1/8", 100ms, "yes");
let d = job hello::store(console::default(), kv::baked("www"));
register("hello", [a, b, c, d]);
"#,
            expect![[r#"
                error nym::bad-value at 1:46 "300": 300 is out of range for `level`
                  label: must be between 0 and 255
                error nym::bad-value at 2:71 "4294967296": 4294967296 is out of range for `count`
                  label: must be between 0 and 4294967295
                error nym::kind at 3:65 "\"yes\"": `hello::serve` expects a bool for `verbose`, found a string
                  label: this is a string
                error nym::kind at 4:46 "kv::baked(\"www\")": `hello::store` expects a `Kv` device for `kv`, found a `KvRo` device
                  label: this is a `KvRo` device
                  help: implementations providing Kv on unix: kv::mem, kv::full, kv::history, kv::dir, kv::block
            "#]],
        );
    }
}
