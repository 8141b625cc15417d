//! Targets: `match target` picks the arm for the target being checked, and
//! an implementation the target lacks is refused with the alternative.
//!
//! The other arms are not evaluated (they are built and judged when the
//! graph is checked for their targets), but the names in them are uses all
//! the same: every arm is in scope of the same bindings, so references,
//! rename and the unused warning see them whatever the target.
use super::resolve::closest;
use super::{Checker, Eval};
use crate::catalog::{self, Implementation};
use crate::diagnostic::Diagnostic;
use crate::syntax::{Expr, ExprKind, MatchArm, Path, Span};
use crate::types::{Target, Type};

impl Checker<'_> {
    /// Evaluates the arm for the target being checked; the other arms are
    /// checked when the graph is checked for their targets, and only their
    /// names' uses are recorded now.
    pub(super) fn match_target(&mut self, span: Span, arms: &[MatchArm]) -> (Type, Eval) {
        let mut chosen = None;
        for (i, arm) in arms.iter().enumerate() {
            for t in &arm.targets {
                if Target::from_name(&t.name).is_none() {
                    let mut d = Diagnostic::error(
                        "nym::unknown-target",
                        t.span,
                        format!("unknown target `{}`", t.name),
                    )
                    .label("not a target")
                    .help(format!(
                        "the targets are: {}",
                        Target::ALL
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    if let Some(best) = closest(&t.name, Target::ALL.iter().map(|t| t.name())) {
                        d = d.fix(format!("use `{best}`"), t.span, best);
                    }
                    self.diags.push(d);
                }
            }
            let matches =
                arm.targets.is_empty() || arm.targets.iter().any(|t| t.name == self.target.name());
            if matches && chosen.is_none() {
                chosen = Some(i);
            }
        }
        // In source order, so a binding's uses stay in the order written.
        let mut value = None;
        for (i, arm) in arms.iter().enumerate() {
            if chosen == Some(i) {
                value = Some(self.expr(&arm.value));
            } else {
                self.uses_in_other_arm(&arm.value);
            }
        }
        match value {
            Some(value) => value,
            None => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::match",
                        span,
                        format!("no arm of this `match target` is for {}", self.target),
                    )
                    .label(format!("nothing for {}", self.target))
                    .help(format!("add `{} => ...` or `_ => ...`", self.target)),
                );
                (Type::Error, Eval::Error)
            }
        }
    }

    /// Records the names in `e`, an arm for other targets, as uses of what
    /// they name, without evaluating it: no node, no type, no diagnostic.
    fn uses_in_other_arm(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(id) => self.use_elsewhere(id),
            ExprKind::Method { receiver, args, .. } => {
                self.use_elsewhere(receiver);
                for arg in args {
                    self.uses_in_other_arm(&arg.value);
                }
            }
            ExprKind::Call { args, .. } | ExprKind::Job { args, .. } => {
                for arg in args {
                    self.uses_in_other_arm(&arg.value);
                }
            }
            ExprKind::List(items) => {
                for item in items {
                    self.uses_in_other_arm(item);
                }
            }
            ExprKind::Match(arms) => {
                for arm in arms {
                    self.uses_in_other_arm(&arm.value);
                }
            }
            ExprKind::Lit(_) | ExprKind::BadCidr(_) | ExprKind::Error => {}
        }
    }

    /// Reports `imp`, applied as `path` over `span`, as missing on the target
    /// being checked, with the catalog's alternative as a fix where it has one.
    pub(super) fn unavailable(
        &mut self,
        name: &str,
        imp: &Implementation,
        path: &Path,
        span: Span,
    ) {
        let available: Vec<&str> = imp.targets.iter().map(|t| t.name()).collect();
        let mut d = Diagnostic::error(
            "nym::target",
            path.span,
            format!("`{name}` is not available on target {}", self.target),
        )
        .label(format!("available on: {}", available.join(", ")));
        if let Some(alt) = imp.instead.and_then(catalog::lookup) {
            let needs_args = alt.params.iter().any(|p| p.default.is_none());
            d = d.help(format!(
                "on {} use `{}` instead: {}",
                self.target,
                alt.name,
                alt.summary()
            ));
            d = if needs_args {
                d.fix(format!("replace with `{}`", alt.name), path.span, alt.name)
            } else {
                d.fix(
                    format!("replace with `{}()`", alt.name),
                    span,
                    format!("{}()", alt.name),
                )
            };
        }
        self.diags.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check, check_for};
    use crate::Target;
    use expect_test::expect;

    const NET: &str = r#"let netif = match target {
    unix => netif::tap("tap0"),
    kvm | qemu => netif::default(),
    _ => netif::pair("link"),
};
let s = stack::dhcp(netif);
register("hello", [job hello::net(console::default(), s)]);
"#;

    #[test]
    fn match_target_takes_the_first_arm_for_the_target() {
        check_for(
            Target::Unix,
            NET,
            expect![[r#"
                graph "hello" for unix
                  node #0 netif = netif::tap("tap0")
                  node #1 s = stack::dhcp(#0)
                  node #2 console::default = console::default()
                  job #0 hello::net = hello::net(#2, #1)
            "#]],
        );
        check_for(
            Target::Qemu,
            NET,
            expect![[r#"
                graph "hello" for qemu
                  node #0 netif = netif::default()
                  node #1 s = stack::dhcp(#0)
                  node #2 console::default = console::default()
                  job #0 hello::net = hello::net(#2, #1)
            "#]],
        );
        check_for(
            Target::Xen,
            NET,
            expect![[r#"
                graph "hello" for xen
                  node #0 netif = netif::pair("link")
                  node #1 s = stack::dhcp(#0)
                  node #2 console::default = console::default()
                  job #0 hello::net = hello::net(#2, #1)
            "#]],
        );
    }

    #[test]
    fn match_target_names_real_targets_and_covers_the_one_checked() {
        check_for(
            Target::Xen,
            r#"let c = match target {
    unix => console::default(),
    kvn => console::default(),
};
register("hello", [job hello::store(c, kv::mem())]);
"#,
            expect![[r#"
                error nym::match at 1:9 "match target {\n    unix => console::default(),\n    kvn => console::default(),\n}": no arm of this `match target` is for xen
                  label: nothing for xen
                  help: add `xen => ...` or `_ => ...`
                error nym::unknown-target at 3:5 "kvn": unknown target `kvn`
                  label: not a target
                  help: the targets are: unix, kvm, qemu, libvirt, xen
                  fix "use `kvm`": 3:5 "kvn" -> "kvm"
            "#]],
        );
    }

    #[test]
    fn the_arms_for_other_targets_are_not_evaluated() {
        // Nor is a name in them judged: `missing` is an error for kvm.
        check(
            r#"let c = match target {
    unix => console::default(),
    kvm => console::nope(missing),
};
let j = job hello::store(c, kv::mem());
register("hello", [j]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 c = console::default()
                  node #1 kv::mem = kv::mem()
                  job #0 j = hello::store(#0, #1)
            "#]],
        );
    }

    #[test]
    fn a_binding_used_only_in_another_targets_arm_is_not_unused() {
        // `full` is used on kvm, `spare` nowhere. The graph for unix is
        // still built from the unix arm alone.
        const SRC: &str = r#"let full = kv::mem();
let spare = kv::mem();
let store = kv::mem();
let pick = match target { unix => store, _ => kv::full(full) };
register("hello", [job hello::store(console::default(), pick)]);
"#;
        check(
            SRC,
            expect![[r#"
                warning nym::unused at 2:5 "spare": unused binding `spare`
                  label: this Kv is never used
                  help: pass it to a job, or remove it
                  fix "remove `spare`": 2:1 "let spare = kv::mem();" -> ""
                graph "hello" for unix
                  node #0 pick = kv::mem()
                  node #1 console::default = console::default()
                  job #0 hello::store = hello::store(#1, #0)
                  unused full: Kv = kv::mem
                  unused spare: Kv = kv::mem
            "#]],
        );
        check_for(
            Target::Kvm,
            SRC,
            expect![[r#"
                warning nym::unused at 2:5 "spare": unused binding `spare`
                  label: this Kv is never used
                  help: pass it to a job, or remove it
                  fix "remove `spare`": 2:1 "let spare = kv::mem();" -> ""
                graph "hello" for kvm
                  node #0 full = kv::mem()
                  node #1 pick = kv::full(#0)
                  node #2 console::default = console::default()
                  job #0 hello::store = hello::store(#2, #1)
                  unused spare: Kv = kv::mem
                  unused store: Kv = kv::mem
            "#]],
        );
    }

    #[test]
    fn an_implementation_the_target_lacks_offers_the_alternative() {
        // `kv::mem` takes nothing: the whole application is replaced;
        // `stack::direct` needs arguments: only the path is.
        check_for(
            Target::Kvm,
            r#"let a = kv::dir("data");
let b = stack::socket();
register("hello", [job hello::store(console::default(), a), job hello::net(console::default(), b)]);
"#,
            expect![[r#"
                error nym::target at 1:9 "kv::dir": `kv::dir` is not available on target kvm
                  label: available on: unix
                  help: on kvm use `kv::mem` instead: An in-memory key-value store.
                  fix "replace with `kv::mem()`": 1:9 "kv::dir(\"data\")" -> "kv::mem()"
                error nym::target at 2:9 "stack::socket": `stack::socket` is not available on target kvm
                  label: available on: unix
                  help: on kvm use `stack::direct` instead: A TCP/IP stack in the program (smoltcp) over any network interface.
                  fix "replace with `stack::direct`": 2:9 "stack::socket" -> "stack::direct"
            "#]],
        );
    }
}
