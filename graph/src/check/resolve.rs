//! Resolution: a name to the binding it refers to, a path to the catalog
//! implementation it applies (a node of the graph), and the closest-name
//! suggestions every part uses for typos.
use super::args::ParamSpec;
use super::{Checker, Eval, Node};
use crate::catalog;
use crate::diagnostic::Diagnostic;
use crate::syntax::{Arg, Ident, Path, Span};
use crate::types::{Kind, Type};

impl Checker<'_> {
    pub(super) fn name(&mut self, id: &Ident) -> (Type, Eval) {
        if let Some(b) = self.scope.get(&id.name) {
            let (ty, eval, index) = (b.ty, b.eval.clone(), b.index);
            self.bindings[index].uses.push(id.span);
            return (ty, eval);
        }
        let mut d = Diagnostic::error(
            "nym::unknown-name",
            id.span,
            format!("unknown binding `{}`", id.name),
        );
        if let Some(at) = self.later(&id.name) {
            // Counted as a use, so the later `let` is not also called unused.
            self.early_uses
                .entry(id.name.clone())
                .or_default()
                .push(id.span);
            d = d
                .label("used before its `let`")
                .related(at, "bound here, later")
                .help("move the `let` above its first use");
        } else {
            d = d.label("not bound by any `let` above");
            let names: Vec<&str> = self.scope.keys().map(String::as_str).collect();
            if let Some(best) = closest(&id.name, names.iter().copied()) {
                d = d.help(format!("did you mean `{best}`?")).fix(
                    format!("use `{best}`"),
                    id.span,
                    best,
                );
            } else if catalog::CATALOG
                .iter()
                .any(|i| i.name.starts_with(&format!("{}::", id.name)))
            {
                d = d.help(format!(
                    "`{}` is a module of implementations: apply one, like `{}`",
                    id.name,
                    example_in(&id.name)
                ));
            }
        }
        self.diags.push(d);
        (Type::Error, Eval::Error)
    }

    /// Records `id`, in an arm of `match target` for other targets, as a
    /// use of the binding it names, as [`Checker::name`] would, but with no
    /// diagnostic: whether it resolves is judged for those targets. A name
    /// bound further down counts as a use of that `let`, like a use before
    /// it in an evaluated expression.
    pub(super) fn use_elsewhere(&mut self, id: &Ident) {
        if let Some(b) = self.scope.get(&id.name) {
            self.bindings[b.index].uses.push(id.span);
        } else if self.later(&id.name).is_some() {
            self.early_uses
                .entry(id.name.clone())
                .or_default()
                .push(id.span);
        }
    }

    pub(super) fn apply(
        &mut self,
        span: Span,
        path: &Path,
        args: &[Arg],
        close: Span,
    ) -> (Type, Eval) {
        let name = path.text();
        let Some(imp) = catalog::lookup(&name) else {
            self.unknown_impl(path);
            self.unchecked(args);
            return (Type::Error, Eval::Error);
        };
        let params: Vec<ParamSpec> = super::args::specs(imp.params);
        let resolved = self.arguments(&name, &params, args, close);
        if !imp.supports(self.target) {
            self.unavailable(&name, imp, path, span);
            return (Type::Error, Eval::Error);
        }
        let Some(args) = resolved else {
            return (Type::Device(imp.provides), Eval::Error);
        };
        self.nodes.push(Node {
            label: name,
            imp,
            args,
            span,
        });
        (Type::Device(imp.provides), Eval::Node(self.nodes.len() - 1))
    }

    pub(super) fn unknown_impl(&mut self, path: &Path) {
        let name = path.text();
        let module = path
            .segments
            .first()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let in_module: Vec<&str> = catalog::CATALOG
            .iter()
            .filter_map(|i| i.name.strip_prefix(&format!("{module}::")))
            .collect();
        let mut d = Diagnostic::error(
            "nym::unknown-impl",
            path.span,
            format!("unknown implementation `{name}`"),
        );
        if path.segments.len() == 1 {
            d = d.label("not an implementation");
            if let Some(k) = Kind::from_trait_name(&name) {
                d = d.help(format!(
                    "`{name}` is a device kind; pick an implementation of it: {}",
                    catalog::providing(k)
                        .map(|i| i.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        } else if in_module.is_empty() {
            d = d.label(format!("no module `{module}`"));
        } else {
            d = d.label(format!("`{module}` has: {}", in_module.join(", ")));
        }
        if let Some(best) = closest(&name, catalog::CATALOG.iter().map(|i| i.name)) {
            d = d.help(format!("did you mean `{best}`?")).fix(
                format!("use `{best}`"),
                path.span,
                best,
            );
        }
        self.diags.push(d);
    }
}

fn example_in(module: &str) -> String {
    catalog::CATALOG
        .iter()
        .find(|i| i.name.starts_with(&format!("{module}::")))
        .map_or_else(String::new, |i| format!("{}()", i.name))
}

/// The candidate closest to `word` by edit distance, if close enough to be
/// a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= word.len().max(c.len()).div_ceil(3))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::fixture::check;
    use super::closest;
    use expect_test::expect;

    #[test]
    fn a_name_resolves_to_its_binding_and_the_node_takes_its_name() {
        check(
            r#"let out = console::default();
let j = job hello::start(out, time::default(), 1);
register("hello", [j]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 out = console::default()
                  node #1 time::default = time::default()
                  job #0 j = hello::start(#0, #1, 1)
            "#]],
        );
    }

    #[test]
    fn an_unknown_name_suggests_the_closest_binding() {
        check(
            r#"let console = console::default();
let j = job hello::start(consol, time::default(), 1);
register("hello", [j]);
"#,
            expect![[r#"
                warning nym::unused at 1:5 "console": unused binding `console`
                  label: this Console is never used
                  help: pass it to a job, or remove it
                  fix "remove `console`": 1:1 "let console = console::default();" -> ""
                error nym::unknown-name at 2:26 "consol": unknown binding `consol`
                  label: not bound by any `let` above
                  help: did you mean `console`?
                  fix "use `console`": 2:26 "consol" -> "console"
            "#]],
        );
    }

    #[test]
    fn a_name_used_before_its_let_points_at_the_let_and_counts_as_a_use() {
        check(
            r#"let j = job hello::store(c, kv::mem());
let c = console::default();
register("hello", [j]);
"#,
            expect![[r#"
                error nym::unknown-name at 1:26 "c": unknown binding `c`
                  label: used before its `let`
                  related at 2:5 "c": bound here, later
                  help: move the `let` above its first use
            "#]],
        );
    }

    #[test]
    fn a_module_name_used_as_a_binding_suggests_applying_one_of_its_implementations() {
        check(
            r#"let j = job hello::store(console::default(), kv);
register("hello", [j]);
"#,
            expect![[r#"
                error nym::unknown-name at 1:46 "kv": unknown binding `kv`
                  label: not bound by any `let` above
                  help: `kv` is a module of implementations: apply one, like `kv::mem()`
            "#]],
        );
    }

    #[test]
    fn an_unknown_implementation_says_what_its_module_has() {
        check(
            r#"let a = kv::mme();
let b = nope::mem();
let c = Console();
let d = widget();
"#,
            expect![[r#"
                error nym::unknown-impl at 1:9 "kv::mme": unknown implementation `kv::mme`
                  label: `kv` has: mem, baked, full, history, dir, block
                  help: did you mean `kv::mem`?
                  fix "use `kv::mem`": 1:9 "kv::mme" -> "kv::mem"
                error nym::unknown-impl at 2:9 "nope::mem": unknown implementation `nope::mem`
                  label: no module `nope`
                  help: did you mean `block::mem`?
                  fix "use `block::mem`": 2:9 "nope::mem" -> "block::mem"
                error nym::unknown-impl at 3:9 "Console": unknown implementation `Console`
                  label: not an implementation
                  help: `Console` is a device kind; pick an implementation of it: console::default
                error nym::unknown-impl at 4:9 "widget": unknown implementation `widget`
                  label: not an implementation
                error nym::register at 5:1 "": no `register(...)`: the graph runs nothing
                  label: the graph ends here
                  help: make a job with `let j = job hello::function(devices...);` and end the graph with `register("hello", [j]);`
            "#]],
        );
    }

    #[test]
    fn the_arguments_of_an_unknown_implementation_are_still_checked() {
        check(
            r#"let a = kv::nope(kv::mme(), missing);
"#,
            expect![[r#"
                error nym::unknown-impl at 1:9 "kv::nope": unknown implementation `kv::nope`
                  label: `kv` has: mem, baked, full, history, dir, block
                error nym::unknown-impl at 1:18 "kv::mme": unknown implementation `kv::mme`
                  label: `kv` has: mem, baked, full, history, dir, block
                  help: did you mean `kv::mem`?
                  fix "use `kv::mem`": 1:18 "kv::mme" -> "kv::mem"
                error nym::unknown-name at 1:29 "missing": unknown binding `missing`
                  label: not bound by any `let` above
                error nym::register at 2:1 "": no `register(...)`: the graph runs nothing
                  label: the graph ends here
                  help: make a job with `let j = job hello::function(devices...);` and end the graph with `register("hello", [j]);`
            "#]],
        );
    }

    #[test]
    fn closest_takes_the_nearest_candidate_within_a_third_of_the_length() {
        let names = ["console", "clock", "kv"];
        assert_eq!(closest("consloe", names.into_iter()), Some("console"));
        assert_eq!(closest("clok", names.into_iter()), Some("clock"));
        // Two edits in a two-letter word is no typo.
        assert_eq!(closest("xy", names.into_iter()), None);
        // Ties go to the first in byte order.
        assert_eq!(closest("ab", ["ac", "aa"].into_iter()), Some("aa"));
        assert_eq!(closest("a", std::iter::empty()), None);
    }
}
