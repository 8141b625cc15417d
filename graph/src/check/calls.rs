//! Device calls, `store.get("k")`: a method of the device's trait with
//! literal arguments, checked like an application (arity, kinds, ranges),
//! for a session to run on the live device. A graph file wires devices, so
//! there a call is an error (`nym::device-call`), which a session drops.
use super::args::{a_type, ParamSpec};
use super::resolve::closest;
use super::{Checker, Eval, GArg};
use crate::diagnostic::Diagnostic;
use crate::methods::{self, Method};
use crate::syntax::{Arg, Expr, Ident, Span};
use crate::types::{Kind, Type};
use libos::Value;

/// A device call that checked: what a session runs on the live device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCall {
    /// The binding called, as written.
    pub receiver: String,
    /// The label of its device's node in the graph (a later `let` naming
    /// the same device relabels it).
    pub node: String,
    /// The device's kind.
    pub kind: Kind,
    /// The method.
    pub method: &'static Method,
    /// One value per parameter, defaults filled in.
    pub args: Vec<Value>,
    /// The whole call.
    pub span: Span,
}

impl Checker<'_> {
    /// A call written as a statement of its own: checked, and recorded in
    /// [`super::Checked::calls`] when it is right.
    pub(super) fn device_call(
        &mut self,
        e: &Expr,
        receiver: &Ident,
        method: &Ident,
        args: &[Arg],
        close: Span,
    ) {
        self.diags.push(
            Diagnostic::error(
                "nym::device-call",
                e.span,
                "a device call runs only in a session, on the running stack",
            )
            .label("calls the live device")
            .help("type it in `nym repl` or a notebook cell while the stack runs (`:run`); a graph file only wires devices"),
        );
        let (ty, eval) = self.name(receiver);
        let kind = match ty {
            Type::Error => return self.unchecked(args),
            Type::Device(Kind::Job) => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::method",
                        receiver.span,
                        format!("`{}` is a job: a job has no methods", receiver.name),
                    )
                    .label("a job")
                    .help("a job runs (`:run`); call the devices it takes instead"),
                );
                return self.unchecked(args);
            }
            Type::Device(k) => k,
            other => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::method",
                        receiver.span,
                        format!(
                            "`{}` is {}, not a device: only devices have methods",
                            receiver.name,
                            a_type(other)
                        ),
                    )
                    .label(format!("this is {}", a_type(other))),
                );
                return self.unchecked(args);
            }
        };
        let Some(m) = methods::lookup(kind, &method.name) else {
            let names: Vec<&str> = methods::of(kind).map(|m| m.name).collect();
            let mut d = Diagnostic::error(
                "nym::method",
                method.span,
                format!("`{kind}` has no method `{}`", method.name),
            )
            .label(format!("not a method of `{kind}`"));
            let read_only = kind == Kind::KvRo && methods::lookup(Kind::Kv, &method.name).is_some();
            d = match closest(&method.name, names.iter().copied()) {
                _ if read_only => d.help(format!(
                    "`{}` is read-only: only a `Kv` has `{}`",
                    receiver.name, method.name
                )),
                Some(best) => d.help(format!("did you mean `{best}`?")).fix(
                    format!("use `{best}`"),
                    method.span,
                    best,
                ),
                None if names.is_empty() => d.help(format!("a `{kind}` has no methods")),
                None => d.help(format!("its methods: {}", names.join(", "))),
            };
            self.diags.push(d);
            return self.unchecked(args);
        };
        if let Some(why) = m.not_callable {
            self.diags.push(
                Diagnostic::error(
                    "nym::method",
                    method.span,
                    format!("`{kind}::{}` cannot be called from a session", m.name),
                )
                .label(why),
            );
            return self.unchecked(args);
        }
        let params: Vec<ParamSpec> = super::args::specs(m.params);
        let callee = format!("{}.{}", receiver.name, m.name);
        let Some(given) = self.arguments(&callee, &params, args, close) else {
            return;
        };
        let mut values = Vec::with_capacity(given.len());
        for g in given {
            match g {
                GArg::Value(v) => values.push(v),
                GArg::Key(k) => {
                    let name = &self.keys[k].key.name;
                    self.diags.push(
                        Diagnostic::error(
                            "nym::argument",
                            e.span,
                            format!("the key `{name}` has a value only at boot"),
                        )
                        .label("a key")
                        .help("a call takes values written out: `\"text\"`, `42`, `500ms`"),
                    );
                    return;
                }
                GArg::Node(_) => return,
            }
        }
        let node = match eval {
            Eval::Node(n) => self.nodes[n].label.clone(),
            _ => receiver.name.clone(),
        };
        self.calls.push(DeviceCall {
            receiver: receiver.name.clone(),
            node,
            kind,
            method: m,
            args: values,
            span: e.span,
        });
    }

    /// A call anywhere but a statement of its own: its answer is shown by
    /// the session, never passed on or bound.
    pub(super) fn call_in_place(&mut self, e: &Expr, receiver: &Ident, args: &[Arg], bound: bool) {
        let d = Diagnostic::error(
            "nym::call-place",
            e.span,
            if bound {
                "a device call's answer cannot be bound"
            } else {
                "a device call cannot be an argument"
            },
        )
        .label("a device call")
        .help("write the call on its own (`store.get(\"k\")`): the session shows its answer");
        self.diags.push(d);
        self.name(receiver);
        self.unchecked(args);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::check_codes;
    use crate::{analyze, Target};
    use expect_test::expect;

    const GRAPH: &str = "let c = console::default();\nlet store = kv::mem();\nlet disk = block::mem();\nlet files = kv::baked(\"www\");\nlet j = job hello::store(c, store);\nregister(\"hello\", [j]);\n";

    /// The calls found in `calls` appended to [`GRAPH`], as a session sees them.
    fn calls(calls: &str) -> Vec<String> {
        let a = analyze(&format!("{GRAPH}{calls}"), Target::Unix, None);
        a.checked
            .calls
            .iter()
            .map(|c| {
                let args: Vec<String> = c.args.iter().map(ToString::to_string).collect();
                format!(
                    "{} ({}) {}({})",
                    c.node,
                    c.kind,
                    c.method.name,
                    args.join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn a_call_is_checked_against_the_traits_method_and_its_defaults_filled() {
        assert_eq!(
            calls("store.get(\"k\");\nstore.list();\nfiles.list(prefix = \"a/\");\ndisk.read(2);\nc.log(\"hi\");\n"),
            [
                "store (Kv) get(\"k\")",
                "store (Kv) list(\"\")",
                "files (KvRo) list(\"a/\")",
                "disk (Block) read(2, 1)",
                "c (Console) log(\"hi\")"
            ]
        );
        // A later name for the same device: the call finds its node by it.
        assert_eq!(
            calls("let again = store;\nstore.set(\"k\", \"v\");\n"),
            ["again (Kv) set(\"k\", \"v\")"]
        );
    }

    #[test]
    fn wrong_calls_get_the_checkers_words_and_a_file_is_told_calls_are_for_sessions() {
        check_codes(
            &[
                "nym::method",
                "nym::arity",
                "nym::kind",
                "nym::argument",
                "nym::call-place",
                "nym::unknown-name",
            ],
            r#"let c = console::default();
let store = kv::mem();
let files = kv::baked("www");
let s = stack::socket();
let n = 3;
let j = job hello::store(c, store);
store.gett("k");
files.set("k", "v");
store.get();
store.get(1);
store.set("k", "v", "w");
s.listen(80);
j.run();
n.get("k");
nobody.get("k");
store.get(key("k", "x"));
let v = store.get("k");
let w = kv::full(store.get("k"));
register("hello", [j]);
"#,
            expect![[r#"
                error nym::method at 7:7 "gett": `Kv` has no method `gett`
                  label: not a method of `Kv`
                  help: did you mean `get`?
                  fix "use `get`": 7:7 "gett" -> "get"
                error nym::method at 8:7 "set": `KvRo` has no method `set`
                  label: not a method of `KvRo`
                  help: `files` is read-only: only a `Kv` has `set`
                error nym::arity at 9:11 ")": missing argument `key: string` of `store.get`
                  label: `key` goes here
                  help: the parameters are: key: string
                error nym::kind at 10:11 "1": `store.get` expects a string for `key`, found an int
                  label: this is an int
                error nym::arity at 11:21 "\"w\"": `store.set` takes 2 arguments but 3 were given
                  label: unexpected argument
                  help: the parameters are: key: string, value: string
                error nym::method at 12:3 "listen": `Stack::listen` cannot be called from a session
                  label: it answers a listener, which a session cannot hold (a job listens)
                error nym::method at 13:1 "j": `j` is a job: a job has no methods
                  label: a job
                  help: a job runs (`:run`); call the devices it takes instead
                error nym::method at 14:1 "n": `n` is an int, not a device: only devices have methods
                  label: this is an int
                error nym::unknown-name at 15:1 "nobody": unknown binding `nobody`
                  label: not bound by any `let` above
                error nym::argument at 16:1 "store.get(key(\"k\", \"x\"))": the key `k` has a value only at boot
                  label: a key
                  help: a call takes values written out: `"text"`, `42`, `500ms`
                error nym::call-place at 17:9 "store.get(\"k\")": a device call's answer cannot be bound
                  label: a device call
                  help: write the call on its own (`store.get("k")`): the session shows its answer
                error nym::call-place at 18:18 "store.get(\"k\")": a device call cannot be an argument
                  label: a device call
                  help: write the call on its own (`store.get("k")`): the session shows its answer
            "#]],
        );
    }
}
