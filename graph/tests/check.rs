//! Snapshot tests of the parser and checker: a graph in, the rendered
//! diagnostics (as `nym check` prints them) or the resolved graph out.
//! Update the snapshots with `UPDATE_EXPECT=1 cargo test -p nym-graph`.
use expect_test::{expect, Expect};
use nym_graph::{analyze, diagnostic, print, Target};

mod common;
use common::app;

fn check_for(target: Target, src: &str, expect: Expect) {
    let a = analyze(src, target, Some(app()));
    let mut out = diagnostic::render(a.diagnostics(), "unikernel.nym", src, false);
    if let Some(g) = a.graph() {
        out.push_str(&print::text(g));
    }
    expect.assert_eq(&out);
}

fn check(src: &str, expect: Expect) {
    check_for(Target::Unix, src, expect)
}

#[test]
fn a_good_graph_resolves_in_dependency_order() {
    check(
        r#"
// The greeter.
let console = console::default();
let clock   = time::scaled(time::default(), factor = 10);
let hello   = job hello::start(console, clock, key("count", 3));
register("hello", [hello]);
"#,
        expect![[r#"
            unikernel "hello" for unix

            devices
              #0  console        console::default()               : Console
              #1  time::default  time::default()                  : Time
              #2  clock          time::scaled(time::default, 10)  : Time

            keys
              --count <int>  default 3

            jobs
              hello::start(console, clock, key count)
        "#]],
    );
}

#[test]
fn three_independent_syntax_errors_give_three_diagnostics() {
    check(
        r#"let a = console::default()
let b = kv::mem(;
let c = job hello::store(a, );
register("hello", [c]) oops
"#,
        expect![[r#"
            nym::syntax

              × expected `;`, found `let`
               ╭─[unikernel.nym:1:27]
             1 │ let a = console::default()
               ·                           ▲
               ·                           ╰── add `;` here
             2 │ let b = kv::mem(;
               ╰────
            nym::syntax

              × expected `)`, found `;`
               ╭─[unikernel.nym:2:17]
             1 │ let a = console::default()
             2 │ let b = kv::mem(;
               ·                 ┬
               ·                 ╰── expected `)`
             3 │ let c = job hello::store(a, );
               ╰────
            nym::arity

              × missing argument `kv: Kv` of `hello::store`
               ╭─[unikernel.nym:3:29]
             2 │ let b = kv::mem(;
             3 │ let c = job hello::store(a, );
               ·                             ┬
               ·                             ╰── `kv` goes here
             4 │ register("hello", [c]) oops
               ╰────
              help: the parameters are: console: Console, kv: Kv
            nym::syntax

              × expected `;`, found `oops`
               ╭─[unikernel.nym:4:23]
             3 │ let c = job hello::store(a, );
             4 │ register("hello", [c]) oops
               ·                       ▲
               ·                       ╰── add `;` here
               ╰────
        "#]],
    );
}

#[test]
fn an_unclosed_call_is_one_error_and_what_follows_is_still_checked() {
    // The call keeps its place (completion inside it knows its parameters)
    // without a second error for the arguments it may yet get.
    check(
        "let store = kv::mem();\nlet w = kv::full(store;\nlet typo = kv::mme();\nlet open = kv::full(",
        expect![[r#"
            nym::syntax

              × expected `,` or `)`, found `;`
               ╭─[unikernel.nym:2:23]
             1 │ let store = kv::mem();
             2 │ let w = kv::full(store;
               ·                       ┬
               ·                       ╰── expected `,` or `)`
             3 │ let typo = kv::mme();
               ╰────
            nym::unknown-impl

              × unknown implementation `kv::mme`
               ╭─[unikernel.nym:3:12]
             2 │ let w = kv::full(store;
             3 │ let typo = kv::mme();
               ·            ───┬───
               ·               ╰── `kv` has: mem, baked, full, history, dir, block
             4 │ let open = kv::full(
               ╰────
              help: did you mean `kv::mem`?
            nym::syntax

              × expected `)`, found the end of the file
               ╭─[unikernel.nym:4:21]
             3 │ let typo = kv::mme();
             4 │ let open = kv::full(
               ╰────
        "#]],
    );
}

#[test]
fn an_unclosed_call_ends_where_the_next_statement_starts() {
    // A `let`, or a `register(` that begins a line, ends the argument
    // list: one error for the missing `)` (none for the `;`), and the
    // statements after it are kept and checked.
    check(
        r#"let c = console::default();
let l = netif::lossy(netif::pair("a"),
let m = kv::mme();
let j = job hello::store(c, kv::mem()
register("hello", [j]);
"#,
        expect![[r#"
            nym::syntax

              × expected `)`, found `let`
               ╭─[unikernel.nym:3:1]
             2 │ let l = netif::lossy(netif::pair("a"),
             3 │ let m = kv::mme();
               · ─┬─
               ·  ╰── expected `)`
             4 │ let j = job hello::store(c, kv::mem()
               ╰────
            nym::unknown-impl

              × unknown implementation `kv::mme`
               ╭─[unikernel.nym:3:9]
             2 │ let l = netif::lossy(netif::pair("a"),
             3 │ let m = kv::mme();
               ·         ───┬───
               ·            ╰── `kv` has: mem, baked, full, history, dir, block
             4 │ let j = job hello::store(c, kv::mem()
               ╰────
              help: did you mean `kv::mem`?
            nym::syntax

              × expected `,` or `)`, found `register`
               ╭─[unikernel.nym:5:1]
             4 │ let j = job hello::store(c, kv::mem()
             5 │ register("hello", [j]);
               · ────┬───
               ·     ╰── expected `,` or `)`
               ╰────
        "#]],
    );
}

#[test]
fn unknown_names_suggest_the_closest() {
    check(
        r#"let console = console::default();
let kv = kv::memm();
let j = job hello::store(consle, kv);
register("hello", [j]);
"#,
        expect![[r#"
            nym::unused

              ⚠ unused binding `console`
               ╭─[unikernel.nym:1:5]
             1 │ let console = console::default();
               ·     ───┬───
               ·        ╰── this Console is never used
             2 │ let kv = kv::memm();
               ╰────
              help: pass it to a job, or remove it
            nym::unknown-impl

              × unknown implementation `kv::memm`
               ╭─[unikernel.nym:2:10]
             1 │ let console = console::default();
             2 │ let kv = kv::memm();
               ·          ────┬───
               ·              ╰── `kv` has: mem, baked, full, history, dir, block
             3 │ let j = job hello::store(consle, kv);
               ╰────
              help: did you mean `kv::mem`?
            nym::unknown-name

              × unknown binding `consle`
               ╭─[unikernel.nym:3:26]
             2 │ let kv = kv::memm();
             3 │ let j = job hello::store(consle, kv);
               ·                          ───┬──
               ·                             ╰── not bound by any `let` above
             4 │ register("hello", [j]);
               ╰────
              help: did you mean `console`?
        "#]],
    );
}

#[test]
fn wrong_kinds_and_arity() {
    check(
        r#"let c = console::default();
let k = kv::full(c);
let d = kv::dir("a", "b");
let e = kv::dir();
let s = kv::dir(pth = "x");
let j = job hello::store(c, k, d);
register("hello", [j, c]);
"#,
        expect![[r#"
            nym::kind

              × `kv::full` expects a `Kv` device for `kv`, found a `Console` device
               ╭─[unikernel.nym:2:18]
             1 │ let c = console::default();
             2 │ let k = kv::full(c);
               ·                  ┬
               ·                  ╰── this is a `Console` device
             3 │ let d = kv::dir("a", "b");
               ╰────
              help: implementations providing Kv on unix: kv::mem, kv::full, kv::history, kv::dir, kv::block
            nym::arity

              × `kv::dir` takes 1 argument but 2 were given
               ╭─[unikernel.nym:3:22]
             2 │ let k = kv::full(c);
             3 │ let d = kv::dir("a", "b");
               ·                      ─┬─
               ·                       ╰── unexpected argument
             4 │ let e = kv::dir();
               ╰────
              help: the parameters are: path: string
            nym::unused

              ⚠ unused binding `e`
               ╭─[unikernel.nym:4:5]
             3 │ let d = kv::dir("a", "b");
             4 │ let e = kv::dir();
               ·     ┬
               ·     ╰── this Kv is never used
             5 │ let s = kv::dir(pth = "x");
               ╰────
              help: pass it to a job, or remove it
            nym::arity

              × missing argument `path: string` of `kv::dir`
               ╭─[unikernel.nym:4:17]
             3 │ let d = kv::dir("a", "b");
             4 │ let e = kv::dir();
               ·                 ┬
               ·                 ╰── `path` goes here
             5 │ let s = kv::dir(pth = "x");
               ╰────
              help: the parameters are: path: string
            nym::unused

              ⚠ unused binding `s`
               ╭─[unikernel.nym:5:5]
             4 │ let e = kv::dir();
             5 │ let s = kv::dir(pth = "x");
               ·     ┬
               ·     ╰── this Kv is never used
             6 │ let j = job hello::store(c, k, d);
               ╰────
              help: pass it to a job, or remove it
            nym::arity

              × `kv::dir` has no parameter `pth`
               ╭─[unikernel.nym:5:17]
             4 │ let e = kv::dir();
             5 │ let s = kv::dir(pth = "x");
               ·                 ─┬─
               ·                  ╰── unknown parameter
             6 │ let j = job hello::store(c, k, d);
               ╰────
              help: did you mean `path`?
            nym::arity

              × `hello::store` takes 2 arguments but 3 were given
               ╭─[unikernel.nym:6:32]
             5 │ let s = kv::dir(pth = "x");
             6 │ let j = job hello::store(c, k, d);
               ·                                ┬
               ·                                ╰── unexpected argument
             7 │ register("hello", [j, c]);
               ╰────
              help: the parameters are: console: Console, kv: Kv
            nym::kind

              × `register` runs jobs, found a `Console` device
               ╭─[unikernel.nym:7:23]
             6 │ let j = job hello::store(c, k, d);
             7 │ register("hello", [j, c]);
               ·                       ┬
               ·                       ╰── not a job
               ╰────
              help: make a job with `job crate::function(devices...)` and register that
        "#]],
    );
}

#[test]
fn bad_values_are_reported_with_their_reason() {
    check(
        r#"let files = kv::baked("www");
let j = job hello::serve(files, 10.0.0.300/24, 5parsecs, true);
let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
let s = clock::scaled(clock::mono(), factor = 0);
let h = job hello::start(console::default(), time::default(), 5000000000);
register("hello", [j, k, h]);
"#,
        expect![[r#"
            nym::bad-value

              × `10.0.0.300/24` is not an IPv4 CIDR
               ╭─[unikernel.nym:2:33]
             1 │ let files = kv::baked("www");
             2 │ let j = job hello::serve(files, 10.0.0.300/24, 5parsecs, true);
               ·                                 ──────┬──────
               ·                                       ╰── the address is not a dotted-quad IPv4 address
             3 │ let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
               ╰────
              help: write an address and a prefix length, like 10.0.0.2/24
            nym::bad-value

              × `5parsecs`: unknown unit (durations: ns us ms s min h; sizes: KiB MiB GiB)
               ╭─[unikernel.nym:2:48]
             1 │ let files = kv::baked("www");
             2 │ let j = job hello::serve(files, 10.0.0.300/24, 5parsecs, true);
               ·                                                ────┬───
               ·                                                    ╰── unknown unit (durations: ns us ms s min h; sizes: KiB MiB GiB)
             3 │ let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
               ╰────
            nym::bad-value

              × "10.0.0.2" is not an IPv4 CIDR
               ╭─[unikernel.nym:3:33]
             2 │ let j = job hello::serve(files, 10.0.0.300/24, 5parsecs, true);
             3 │ let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
               ·                                 ──────────┬──────────
               ·                                           ╰── missing `/prefix` (write it like 10.0.0.2/24)
             4 │ let s = clock::scaled(clock::mono(), factor = 0);
               ╰────
              help: write an address and a prefix length, like "10.0.0.2/24"
            nym::unknown-name

              × unknown binding `maybe`
               ╭─[unikernel.nym:3:60]
             2 │ let j = job hello::serve(files, 10.0.0.300/24, 5parsecs, true);
             3 │ let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
               ·                                                            ──┬──
               ·                                                              ╰── not bound by any `let` above
             4 │ let s = clock::scaled(clock::mono(), factor = 0);
               ╰────
            nym::bad-value

              × 0 is out of range for `factor`
               ╭─[unikernel.nym:4:47]
             3 │ let k = job hello::serve(files, key("ip", "10.0.0.2"), 1s, maybe);
             4 │ let s = clock::scaled(clock::mono(), factor = 0);
               ·                                               ┬
               ·                                               ╰── must be between 1 and 1000000
             5 │ let h = job hello::start(console::default(), time::default(), 5000000000);
               ╰────
            nym::bad-value

              × 5000000000 is out of range for `count`
               ╭─[unikernel.nym:5:63]
             4 │ let s = clock::scaled(clock::mono(), factor = 0);
             5 │ let h = job hello::start(console::default(), time::default(), 5000000000);
               ·                                                               ─────┬────
               ·                                                                    ╰── must be between 0 and 4294967295
             6 │ register("hello", [j, k, h]);
               ╰────
        "#]],
    );
}

#[test]
fn string_keys_become_cidrs_where_a_cidr_is_expected() {
    check(
        r#"let ip = key("ipv4", "10.0.0.2/24");
let j = job hello::serve(kv::baked("www"), ip, 250ms, false);
register("web", [j]);
"#,
        expect![[r#"
            unikernel "web" for unix

            devices
              #0  kv::baked  kv::baked("www")  : KvRo

            keys
              --ipv4 <ipv4 cidr>  default 10.0.0.2/24

            jobs
              hello::serve(kv::baked, key ipv4, 250ms, false)
        "#]],
    );
}

#[test]
fn implementations_the_target_lacks_suggest_another() {
    check_for(
        Target::Kvm,
        r#"let c = console::default();
let j = job hello::store(c, kv::dir("data"));
register("hello", [j]);
"#,
        expect![[r#"
            nym::target

              × `kv::dir` is not available on target kvm
               ╭─[unikernel.nym:2:29]
             1 │ let c = console::default();
             2 │ let j = job hello::store(c, kv::dir("data"));
               ·                             ───┬───
               ·                                ╰── available on: unix
             3 │ register("hello", [j]);
               ╰────
              help: on kvm use `kv::mem` instead: An in-memory key-value store.
        "#]],
    );
}

#[test]
fn jobs_are_checked_against_their_rust_signatures() {
    check(
        r#"let c = console::default();
let a = job hello::not_async(c);
let b = job hello::private(c);
let d = job hello::weird();
let e = job hello::strat(c);
let f = job other::start(c);
let g = job hello::sub::run(c);
let h = job hello::start(c, time::default(), key("count", -1));
register("hello", [g]);
"#,
        expect![[r#"
            nym::job

              × `hello::not_async` is not `async`: a job is a `pub async fn`
               ╭─[unikernel.nym:2:13]
             1 │ let c = console::default();
             2 │ let a = job hello::not_async(c);
               ·             ────────┬───────
               ·                     ╰── not a job
             3 │ let b = job hello::private(c);
               ╰────
              help: declare it as `pub async fn` in the application crate
            nym::job

              × `hello::private` is not `pub`: a job must be a public function
               ╭─[unikernel.nym:3:13]
             2 │ let a = job hello::not_async(c);
             3 │ let b = job hello::private(c);
               ·             ───────┬──────
               ·                    ╰── not a job
             4 │ let d = job hello::weird();
               ╰────
              help: declare it as `pub async fn` in the application crate
            nym::job

              × parameter `bytes: Vec<u8>` of `hello::weird` is neither a device (`impl Console`, …) nor a
              │ value (integer, `String`, `bool`, `Duration`, `Ipv4Cidr`)
               ╭─[unikernel.nym:4:13]
             3 │ let b = job hello::private(c);
             4 │ let d = job hello::weird();
               ·             ──────┬─────
               ·                   ╰── not a job
             5 │ let e = job hello::strat(c);
               ╰────
            nym::job

              × no function `strat` in `hello`
               ╭─[unikernel.nym:5:13]
             4 │ let d = job hello::weird();
             5 │ let e = job hello::strat(c);
               ·             ──────┬─────
               ·                   ╰── not a job
             6 │ let f = job other::start(c);
               ╰────
              help: did you mean `hello::start`?
            nym::job

              × `other` is not the application crate (it is `hello`)
               ╭─[unikernel.nym:6:13]
             5 │ let e = job hello::strat(c);
             6 │ let f = job other::start(c);
               ·             ──────┬─────
               ·                   ╰── not a job
             7 │ let g = job hello::sub::run(c);
               ╰────
              help: write `hello::start`
            nym::syntax

              × unexpected `-`: values cannot be negative
               ╭─[unikernel.nym:8:59]
             7 │ let g = job hello::sub::run(c);
             8 │ let h = job hello::start(c, time::default(), key("count", -1));
               ·                                                           ┬
               ·                                                           ╰── unexpected `-`: values cannot be negative
             9 │ register("hello", [g]);
               ╰────
        "#]],
    );
}

#[test]
fn unused_bindings_warn_and_a_missing_register_is_an_error() {
    check(
        r#"let c = console::default();
let unused = kv::mem();
let j = job hello::sub::run(c);
"#,
        expect![[r#"
            nym::unused

              ⚠ unused binding `unused`
               ╭─[unikernel.nym:2:5]
             1 │ let c = console::default();
             2 │ let unused = kv::mem();
               ·     ───┬──
               ·        ╰── this Kv is never used
             3 │ let j = job hello::sub::run(c);
               ╰────
              help: pass it to a job, or remove it
            nym::unused

              ⚠ unused binding `j`
               ╭─[unikernel.nym:3:5]
             2 │ let unused = kv::mem();
             3 │ let j = job hello::sub::run(c);
               ·     ┬
               ·     ╰── this Job is never used
               ╰────
              help: add it to `register(...)` to run it
            nym::register

              × no `register(...)`: the graph runs nothing
               ╭─[unikernel.nym:4:1]
             3 │ let j = job hello::sub::run(c);
               ╰────
              help: end the graph with `register("hello", [j]);`
        "#]],
    );
}

#[test]
fn keys_bindings_and_register_are_checked() {
    check(
        r#"let c = console::default();
let c = console::default();
let j = job hello::start(c, time::default(), key("count", 3));
let k = job hello::start(c, time::default(), key("count", 4));
let x = job hello::start(c, time::default(), key("Bad Name", 4));
register("hello", [j, j]);
register("again", [j]);
"#,
        expect![[r#"
            nym::duplicate

              × `c` is already bound
               ╭─[unikernel.nym:2:5]
             1 │ let c = console::default();
               ·     ┬
               ·     ╰── first bound here
             2 │ let c = console::default();
               ·     ┬
               ·     ╰── bound again here
             3 │ let j = job hello::start(c, time::default(), key("count", 3));
               ╰────
              help: pick another name: each device in a graph has one
            nym::unused

              ⚠ unused binding `k`
               ╭─[unikernel.nym:4:5]
             3 │ let j = job hello::start(c, time::default(), key("count", 3));
             4 │ let k = job hello::start(c, time::default(), key("count", 4));
               ·     ┬
               ·     ╰── this Job is never used
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
               ╰────
              help: add it to `register(...)` to run it
            nym::key

              × key `count` is declared twice with different defaults
               ╭─[unikernel.nym:4:59]
             2 │ let c = console::default();
             3 │ let j = job hello::start(c, time::default(), key("count", 3));
               ·                                              ───────┬───────
               ·                                                     ╰── default 3 here
             4 │ let k = job hello::start(c, time::default(), key("count", 4));
               ·                                                           ┬
               ·                                                           ╰── default 4 here
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
               ╰────
              help: a key is one boot argument: give every use the same default, or bind it once with `let`
            nym::unused

              ⚠ unused binding `x`
               ╭─[unikernel.nym:5:5]
             4 │ let k = job hello::start(c, time::default(), key("count", 4));
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
               ·     ┬
               ·     ╰── this Job is never used
             6 │ register("hello", [j, j]);
               ╰────
              help: add it to `register(...)` to run it
            nym::key

              × "Bad Name" is not a key name
               ╭─[unikernel.nym:5:50]
             4 │ let k = job hello::start(c, time::default(), key("count", 4));
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
               ·                                                  ─────┬────
               ·                                                       ╰── a key name is lowercase letters, digits and `-`, starting with a letter
             6 │ register("hello", [j, j]);
               ╰────
              help: it becomes a command-line flag: `nym run -- --NAME VALUE`
            nym::register

              × this job is registered twice
               ╭─[unikernel.nym:6:23]
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
             6 │ register("hello", [j, j]);
               ·                       ┬
               ·                       ╰── again
             7 │ register("again", [j]);
               ╰────
            nym::register

              × a second `register`: a graph registers one unikernel
               ╭─[unikernel.nym:7:1]
             5 │ let x = job hello::start(c, time::default(), key("Bad Name", 4));
             6 │ register("hello", [j, j]);
               · ────────────┬────────────
               ·             ╰── first
             7 │ register("again", [j]);
               · ───────────┬──────────
               ·            ╰── second
               ╰────
        "#]],
    );
}

#[test]
fn used_before_let() {
    check(
        r#"let j = job hello::sub::run(c);
let c = console::default();
register("hello", [j]);
"#,
        expect![[r#"
            nym::unknown-name

              × unknown binding `c`
               ╭─[unikernel.nym:1:29]
             1 │ let j = job hello::sub::run(c);
               ·                             ┬
               ·                             ╰── used before its `let`
             2 │ let c = console::default();
               ·     ┬
               ·     ╰── bound here, later
             3 │ register("hello", [j]);
               ╰────
              help: move the `let` above its first use
        "#]],
    );
}

const PER_TARGET: &str = r#"let c = console::default();
let store = match target {
    unix => kv::dir("data"),
    kvm => kv::block(block::file("kv.img", size = 64KiB)),
    _ => kv::mem(),
};
let j = job hello::store(c, store);
register("hello", [j]);
"#;

#[test]
fn match_target_picks_the_arm_for_the_target() {
    check_for(
        Target::Kvm,
        PER_TARGET,
        expect![[r#"
            unikernel "hello" for kvm

            devices
              #0  c            console::default()            : Console
              #1  block::file  block::file("kv.img", 65536)  : Block
              #2  store        kv::block(block::file)        : Kv

            jobs
              hello::store(c, store)
        "#]],
    );
    check_for(
        Target::Qemu,
        PER_TARGET,
        expect![[r#"
            unikernel "hello" for qemu

            devices
              #0  c      console::default()  : Console
              #1  store  kv::mem()           : Kv

            jobs
              hello::store(c, store)
        "#]],
    );
}

#[test]
fn match_target_names_must_be_targets_and_cover_the_target() {
    check_for(
        Target::Qemu,
        r#"let c = console::default();
let store = match target { unix => kv::dir("data"), kvn => kv::mem() };
let j = job hello::store(c, store);
register("hello", [j]);
"#,
        expect![[r#"
            nym::match

              × no arm of this `match target` is for qemu
               ╭─[unikernel.nym:2:13]
             1 │ let c = console::default();
             2 │ let store = match target { unix => kv::dir("data"), kvn => kv::mem() };
               ·             ─────────────────────────────┬────────────────────────────
               ·                                          ╰── nothing for qemu
             3 │ let j = job hello::store(c, store);
               ╰────
              help: add `qemu => ...` or `_ => ...`
            nym::unknown-target

              × unknown target `kvn`
               ╭─[unikernel.nym:2:53]
             1 │ let c = console::default();
             2 │ let store = match target { unix => kv::dir("data"), kvn => kv::mem() };
               ·                                                     ─┬─
               ·                                                      ╰── not a target
             3 │ let j = job hello::store(c, store);
               ╰────
              help: the targets are: unix, kvm, qemu, libvirt, xen
        "#]],
    );
}

/// The boxes-and-lanes drawing: a device shared by two jobs has one lane
/// with a branch to each, and lanes cross what they pass.
#[test]
fn boxes_draw_each_device_to_the_boxes_that_take_it() {
    let src = "let console = console::default();\nlet time = time::default();\n\
               let kv = kv::mem();\nlet a = job hello::start(console, time, 1);\n\
               let b = job hello::store(console, kv);\nregister(\"x\", [a, b]);";
    let a = analyze(src, Target::Unix, Some(app()));
    let g = a.graph().expect("the graph checks");
    expect![[r#"
        ┌───────────────────────────┐
        │ console: console::default │
        └───────────────────────────┘──┐
        ┌───────────────────────────┐  │
        │ time: time::default       │  │
        └───────────────────────────┘──┼─┐
        ┌───────────────────────────┐  │ │
        │ kv: kv::mem               │  │ │
        └───────────────────────────┘──┼─┼─┐
        ┌───────────────────────────┐  │ │ │
        │ a: job hello::start       │◀─┼─┘ │
        └───────────────────────────┘  │   │
        ┌───────────────────────────┐  │   │
        │ b: job hello::store       │◀─┴───┘
        └───────────────────────────┘
    "#]]
    .assert_eq(&print::boxes(g, true));
    expect![[r#"
        ┌─────────┐
        │ console │
        └─────────┘──┐
        ┌─────────┐  │
        │ time    │  │
        └─────────┘──┼─┐
        ┌─────────┐  │ │
        │ kv      │  │ │
        └─────────┘──┼─┼─┐
        ┌─────────┐  │ │ │
        │ a       │◀─┼─┘ │
        └─────────┘  │   │
        ┌─────────┐  │   │
        │ b       │◀─┴───┘
        └─────────┘
    "#]]
    .assert_eq(&print::boxes(g, false));
}

/// A binding no registered job reaches yet is drawn too, in a dashed box
/// marked unused, below what runs: the user is in the middle of wiring it.
#[test]
fn boxes_show_bindings_no_job_uses_yet_marked_unused() {
    let src = "let console = console::default();\nlet spare = kv::full(kv::mem());\n\
               let idle = job hello::store(console, spare);\n\
               let a = job hello::start(console, time::default(), 1);\nregister(\"x\", [a]);";
    let a = analyze(src, Target::Unix, Some(app()));
    let g = a.graph().expect("the graph checks");
    expect![[r#"
        ┌─────────────────────────────────┐
        │ console: console::default       │
        └─────────────────────────────────┘──┐
        ┌─────────────────────────────────┐  │
        │ time::default: time::default    │  │
        └─────────────────────────────────┘──┼─┐
        ┌─────────────────────────────────┐  │ │
        │ a: job hello::start             │◀─┴─┘
        └─────────────────────────────────┘
        ┌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┐
        ╎ spare: kv::full (unused)        ╎
        └╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┘
        ┌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┐
        ╎ idle: job hello::store (unused) ╎
        └╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┘
    "#]]
    .assert_eq(&print::boxes(g, true));
}
