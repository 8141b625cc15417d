//! Jobs: `job path(args)` checked against the application crate's Rust
//! signature, and `register("name", [jobs])`, which says which jobs run.
use super::args::{a_type, int_range};
use super::keys::valid_key_name;
use super::resolve::closest;
use super::{Checker, Eval, JobNode};
use crate::diagnostic::Diagnostic;
use crate::jobs::{JobError, JobParam};
use crate::syntax::{Arg, ExprKind, Path, Span};
use crate::types::{Kind, Type};
use libos::Value;

impl Checker<'_> {
    pub(super) fn job(
        &mut self,
        span: Span,
        path: &Path,
        args: &[Arg],
        close: Span,
    ) -> (Type, Eval) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.name.clone()).collect();
        // What the crate says may change between two checks of one text.
        self.track.first_crate = self.track.first_crate.min(self.at);
        let Some(krate) = self.krate else {
            self.diags.push(
                Diagnostic::error(
                    "nym::job",
                    path.span,
                    "jobs need the application crate, and there is none here",
                )
                .label("no Cargo.toml next to the graph")
                .help("run nym in a project made with `nym new`"),
            );
            self.unchecked(args);
            return (Type::Error, Eval::Error);
        };
        let sig = match krate.job(&segments) {
            Ok(sig) => sig,
            Err(err) => {
                let mut d =
                    Diagnostic::error("nym::job", path.span, err.to_string()).label("not a job");
                match &err {
                    JobError::NotFound {
                        name, candidates, ..
                    } => {
                        if let Some(best) = closest(name, candidates.iter().map(String::as_str)) {
                            let fixed =
                                format!("{}::{best}", segments[..segments.len() - 1].join("::"));
                            d = d.help(format!("did you mean `{fixed}`?")).fix(
                                format!("use `{fixed}`"),
                                path.span,
                                fixed,
                            );
                        } else if !candidates.is_empty() {
                            d = d.help(format!(
                                "public async functions there: {}",
                                candidates.join(", ")
                            ));
                        } else {
                            d = d.help("write the job in src/lib.rs as `pub async fn NAME(console: impl Console, ...)`");
                        }
                    }
                    JobError::UnknownCrate { expected, .. } => {
                        let mut fixed = segments.clone();
                        fixed[0] = expected.clone();
                        let fixed = fixed.join("::");
                        d = d.help(format!("write `{fixed}`")).fix(
                            format!("use `{fixed}`"),
                            path.span,
                            fixed,
                        );
                    }
                    JobError::NotAsync(_) | JobError::NotPublic(_) => {
                        d = d.help("declare it as `pub async fn` in the application crate");
                    }
                    _ => {}
                }
                self.diags.push(d);
                self.unchecked(args);
                return (Type::Error, Eval::Error);
            }
        };
        let params: Vec<_> = sig
            .params
            .iter()
            .map(|p: &JobParam| (p.name.clone(), p.ty, None, p.int_ty.map(int_range)))
            .collect();
        let Some(args) = self.arguments(&sig.path, &params, args, close) else {
            return (Type::Device(Kind::Job), Eval::Error);
        };
        self.jobs.push(JobNode {
            label: sig.path.clone(),
            sig,
            args,
            span,
        });
        (Type::Device(Kind::Job), Eval::Job(self.jobs.len() - 1))
    }

    pub(super) fn register(&mut self, span: Span, args: &[Arg], close: Span) {
        let usage = "write `register(\"name\", [job1, job2]);`";
        if let Some((_, _, first)) = &self.register {
            self.diags.push(
                Diagnostic::error(
                    "nym::register",
                    span,
                    "a second `register`: a graph registers one unikernel",
                )
                .label("second")
                .related(*first, "first"),
            );
            self.unchecked(args);
            return;
        }
        if close.is_empty() && args.len() < 2 {
            // Unclosed (its `)` is the error): the rest may be still to come.
            self.register = Some((String::new(), Vec::new(), span));
            self.unchecked(args);
            return;
        }
        if !self.two_by_position(
            "nym::register",
            "register",
            "a name and a list of jobs",
            usage,
            args,
            close,
        ) {
            self.register = Some((String::new(), Vec::new(), span));
            self.unchecked(args);
            return;
        }
        let name = match &args[0].value.kind {
            ExprKind::Lit(Value::Str(s)) if valid_key_name(s) => s.clone(),
            ExprKind::Error => String::new(),
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "nym::register",
                        args[0].value.span,
                        "the unikernel's name must be a string like \"hello\"",
                    )
                    .label("lowercase letters, digits and `-`, starting with a letter")
                    .help(usage),
                );
                String::new()
            }
        };
        let (ty, eval) = self.expr(&args[1].value);
        let mut jobs = Vec::new();
        match eval {
            Eval::List(items) => {
                if items.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            "nym::register",
                            args[1].value.span,
                            "no jobs to register",
                        )
                        .label("an empty list")
                        .help(usage),
                    );
                }
                for (item, item_span) in items {
                    match item {
                        Eval::Job(j) if jobs.contains(&j) => self.diags.push(
                            Diagnostic::error("nym::register", item_span, "this job is registered twice").label("again"),
                        ),
                        Eval::Job(j) => jobs.push(j),
                        Eval::Error => {}
                        Eval::Node(n) => self.diags.push(
                            Diagnostic::error("nym::kind", item_span, format!("`register` runs jobs, found {}", a_type(Type::Device(self.nodes[n].imp.provides))))
                                .label("not a job")
                                .help("make a job with `job crate::function(devices...)` and register that"),
                        ),
                        _ => self.diags.push(
                            Diagnostic::error("nym::kind", item_span, "`register` runs jobs, found a value").label("not a job"),
                        ),
                    }
                }
            }
            Eval::Error => {}
            _ => self.diags.push(
                Diagnostic::error(
                    "nym::kind",
                    args[1].value.span,
                    format!("`register` takes a list of jobs, found {}", a_type(ty)),
                )
                .label("not a list")
                .help(usage),
            ),
        }
        self.register = Some((name, jobs, span));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check, check_codes, check_without_crate};
    use expect_test::expect;

    #[test]
    fn a_job_is_checked_against_its_rust_signature() {
        check(
            r#"let c = console::default();
let greet = job hello::start(c, time::default(), 3);
register("hello", [greet, job hello::store(c, kv::mem())]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 c = console::default()
                  node #1 time::default = time::default()
                  node #2 kv::mem = kv::mem()
                  job #0 greet = hello::start(#0, #1, 3)
                  job #1 hello::store = hello::store(#0, #2)
            "#]],
        );
    }

    #[test]
    fn jobs_need_the_application_crate() {
        // The arguments are still checked (`nothing`) and their bindings
        // used (`c` is not called unused).
        check_without_crate(
            r#"let c = console::default();
let j = job hello::start(c, time::default(), nothing);
register("hello", [j]);
"#,
            expect![[r#"
                error nym::job at 2:13 "hello::start": jobs need the application crate, and there is none here
                  label: no Cargo.toml next to the graph
                  help: run nym in a project made with `nym new`
                error nym::unknown-name at 2:46 "nothing": unknown binding `nothing`
                  label: not bound by any `let` above
            "#]],
        );
    }

    #[test]
    fn a_job_that_is_not_found_suggests_one_that_is() {
        check_codes(
            &["nym::job"],
            r#"let a = job hello::strat(console::default(), time::default(), 1);
let b = job hello::zzzzzz(console::default());
let c = job helo::start(console::default(), time::default(), 1);
let d = job hello::not_async(console::default());
let e = job hello::private(console::default());
"#,
            expect![[r#"
                error nym::job at 1:13 "hello::strat": no function `strat` in `hello`
                  label: not a job
                  help: did you mean `hello::start`?
                  fix "use `hello::start`": 1:13 "hello::strat" -> "hello::start"
                error nym::job at 2:13 "hello::zzzzzz": no function `zzzzzz` in `hello`
                  label: not a job
                  help: public async functions there: start, store, serve, level, net
                error nym::job at 3:13 "helo::start": `helo` is not the application crate (it is `hello`)
                  label: not a job
                  help: write `hello::start`
                  fix "use `hello::start`": 3:13 "helo::start" -> "hello::start"
                error nym::job at 4:13 "hello::not_async": `hello::not_async` is not `async`: a job is a `pub async fn`
                  label: not a job
                  help: declare it as `pub async fn` in the application crate
                error nym::job at 5:13 "hello::private": `hello::private` is not `pub`: a job must be a public function
                  label: not a job
                  help: declare it as `pub async fn` in the application crate
            "#]],
        );
    }

    #[test]
    fn register_names_the_unikernel_and_lists_the_jobs_to_run() {
        check(
            r#"let j = job hello::store(console::default(), kv::mem());
register("Hello World", [j]);
"#,
            expect![[r#"
                error nym::register at 2:10 "\"Hello World\"": the unikernel's name must be a string like "hello"
                  label: lowercase letters, digits and `-`, starting with a letter
                  help: write `register("name", [job1, job2]);`
            "#]],
        );
    }

    #[test]
    fn register_takes_a_list_of_distinct_jobs() {
        check(
            r#"let c = console::default();
let j = job hello::store(c, kv::mem());
register("hello", [j, j, c, 3, nothing]);
"#,
            expect![[r#"
                error nym::register at 3:23 "j": this job is registered twice
                  label: again
                error nym::kind at 3:26 "c": `register` runs jobs, found a `Console` device
                  label: not a job
                  help: make a job with `job crate::function(devices...)` and register that
                error nym::kind at 3:29 "3": `register` runs jobs, found a value
                  label: not a job
                error nym::unknown-name at 3:32 "nothing": unknown binding `nothing`
                  label: not bound by any `let` above
            "#]],
        );
    }

    #[test]
    fn register_takes_two_arguments_once() {
        // A refused `register` still uses what it names: `j` and `k` are
        // not called unused.
        check(
            r#"let c = console::default();
let j = job hello::store(c, kv::mem());
let k = job hello::store(c, kv::mem());
register("hello", [j], 3);
register("hello", [k]);
"#,
            expect![[r#"
                error nym::register at 4:24 "3": `register` takes 2 arguments (a name and a list of jobs) but 3 were given
                  label: unexpected argument
                  help: write `register("name", [job1, job2]);`
                error nym::register at 5:1 "register(\"hello\", [k])": a second `register`: a graph registers one unikernel
                  label: second
                  related at 4:1 "register(\"hello\", [j], 3)": first
            "#]],
        );
        check(
            r#"let j = job hello::store(console::default(), kv::mem());
register("hello", j);
"#,
            expect![[r#"
                error nym::kind at 2:19 "j": `register` takes a list of jobs, found a job
                  label: not a list
                  help: write `register("name", [job1, job2]);`
            "#]],
        );
        check(
            r#"register("hello", []);"#,
            expect![[r#"
                error nym::register at 1:19 "[]": no jobs to register
                  label: an empty list
                  help: write `register("name", [job1, job2]);`
            "#]],
        );
    }

    #[test]
    fn an_unclosed_register_is_only_a_syntax_error() {
        check(
            r#"let j = job hello::store(console::default(), kv::mem());
register("hello""#,
            expect![[r#"
                error nym::syntax at 2:17 "": expected `,` or `)`, found the end of the file
                  label: expected `,` or `)`
            "#]],
        );
    }
}
