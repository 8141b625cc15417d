//! Fixture tests of the editor features in `nym_graph::ide`, one `check_*`
//! helper per feature. A fixture is a graph with a `$0` cursor where the
//! feature needs one; after a `//- src/lib.rs` line it may give the
//! application crate's source (otherwise the shared crate `hello` of
//! `common` is used). Each helper renders the answer as text: spans as
//! `line:col "text"`. Update the snapshots with
//! `UPDATE_EXPECT=1 cargo test -p nym-graph --test ide`.
use expect_test::{expect, Expect};
use nym_graph::diagnostic::line_col;
use nym_graph::ide::{self, Definition};
use nym_graph::syntax::Span;
use nym_graph::{analyze, Analysis, RustCrate, Target};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

mod common;

const CURSOR: &str = "$0";
const RUST: &str = "//- src/lib.rs\n";

/// A graph, the cursor in it, and the application crate.
struct Fixture {
    src: String,
    offset: Option<usize>,
    rust: Option<String>,
    krate: Option<RustCrate>,
}

fn fixture(text: &str) -> Fixture {
    let (graph, rust) = match text.split_once(RUST) {
        Some((graph, rust)) => (graph, Some(rust.to_owned())),
        None => (text, None),
    };
    let krate = rust.as_ref().map(|rust| {
        let files = HashMap::from([(PathBuf::from("src/lib.rs"), rust.clone())]);
        RustCrate::in_memory("hello", files)
    });
    Fixture {
        offset: graph.find(CURSOR),
        src: graph.replacen(CURSOR, "", 1),
        rust,
        krate,
    }
}

impl Fixture {
    fn krate(&self) -> &RustCrate {
        self.krate.as_ref().unwrap_or_else(|| common::app())
    }
    fn analysis(&self) -> Analysis {
        analyze(&self.src, Target::Unix, Some(self.krate()))
    }
    fn offset(&self) -> usize {
        self.offset.expect("the fixture has no `$0`")
    }
    /// `2:9 "kv::mem"`: where a span starts and the text it covers.
    fn place(&self, span: Span) -> String {
        let (line, col) = line_col(&self.src, span.start);
        format!("{line}:{col} {:?}", &self.src[span.start..span.end])
    }
    /// The source with `(offset, text)` insertions made.
    fn with_inserted(&self, mut inserts: Vec<(usize, String)>) -> String {
        let mut out = self.src.clone();
        inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, text) in inserts {
            out.insert_str(at, &text);
        }
        out
    }
}

fn check_hover(text: &str, expect: Expect) {
    let f = fixture(text);
    let out = match ide::hover(&f.analysis(), Some(f.krate()), f.offset()) {
        Some((span, markdown)) => format!("{}\n{markdown}\n", f.place(span)),
        None => "no hover\n".into(),
    };
    expect.assert_eq(&out);
}

fn check_definition(text: &str, expect: Expect) {
    let f = fixture(text);
    let out = match ide::definition(&f.analysis(), Some(f.krate()), f.offset()) {
        Some(Definition::Here(span)) => format!("here: {}\n", f.place(span)),
        Some(Definition::Rust(file, line)) => {
            let code = f
                .rust
                .as_deref()
                .and_then(|rust| rust.lines().nth(line - 1))
                .unwrap_or("?");
            format!("rust: {}:{line}: {code}\n", file.display())
        }
        Some(Definition::Catalog(line)) => {
            let catalog = std::fs::read_to_string(ide::catalog_path()).expect("catalog.rs");
            let code = catalog.lines().nth(line - 1).unwrap_or("?").trim();
            format!("catalog: {code}\n")
        }
        None => "no definition\n".into(),
    };
    expect.assert_eq(&out);
}

fn check_completions(text: &str, expect: Expect) {
    let f = fixture(text);
    let mut out = String::new();
    for c in ide::completions(&f.src, &f.analysis(), Some(f.krate()), f.offset()) {
        let kind = format!("{:?}", c.kind);
        let _ = writeln!(out, "{kind:<14} {:<18} {}", c.label, c.detail);
    }
    expect.assert_eq(&out);
}

fn check_semantic_tokens(text: &str, expect: Expect) {
    let f = fixture(text);
    let mut out = String::new();
    for (start, len, kind) in ide::semantic_tokens(&f.analysis()) {
        let place = f.place(Span::new(start, start + len));
        let _ = writeln!(out, "{place} {}", ide::TOKEN_TYPES[kind as usize]);
    }
    expect.assert_eq(&out);
}

fn check_symbols(text: &str, expect: Expect) {
    let f = fixture(text);
    let mut out = String::new();
    for s in ide::symbols(&f.analysis()) {
        let (end_line, end_col) = line_col(&f.src, s.span.end);
        let (line, col) = line_col(&f.src, s.span.start);
        let _ = writeln!(
            out,
            "{}: {}  name {}  statement {line}:{col}..{end_line}:{end_col}",
            s.name,
            s.detail,
            f.place(s.selection)
        );
    }
    expect.assert_eq(&out);
}

fn check_references(text: &str, expect: Expect) {
    let f = fixture(text);
    let out: String = match ide::occurrences(&f.analysis(), f.offset()) {
        Some(spans) => spans.iter().map(|s| f.place(*s) + "\n").collect(),
        None => "no references\n".into(),
    };
    expect.assert_eq(&out);
}

fn check_rename(text: &str, new: &str, expect: Expect) {
    let f = fixture(text);
    let out = match ide::rename(&f.analysis(), f.offset(), new) {
        Ok(edits) => {
            let mut out = f.src.clone();
            let mut edits = edits;
            edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
            for (span, text) in edits {
                out.replace_range(span.start..span.end, &text);
            }
            out
        }
        Err(e) => format!("error: {e}\n"),
    };
    expect.assert_eq(&out);
}

fn check_inlay_hints(text: &str, expect: Expect) {
    let f = fixture(text);
    let hints = ide::inlay_hints(&f.analysis())
        .into_iter()
        .map(|(at, hint)| (at, format!("«{hint}»")))
        .collect();
    expect.assert_eq(&f.with_inserted(hints));
}

/// The signature, then each parameter as the text of the signature its
/// range covers (what an editor highlights), the active one marked `>`.
fn check_signature_help(text: &str, expect: Expect) {
    let f = fixture(text);
    let out = match ide::signature_help(&f.analysis(), Some(f.krate()), f.offset()) {
        Some(sig) => {
            let mut out = format!("{}\n", sig.label);
            for (i, range) in sig.params.iter().enumerate() {
                let mark = if i == sig.active { '>' } else { '-' };
                let p = sig.label.get(range.clone()).unwrap_or("(not in the label)");
                let _ = writeln!(out, "  {mark} {p}");
            }
            if sig.active >= sig.params.len() {
                let _ = writeln!(out, "  (active {}: past the last parameter)", sig.active);
            }
            out
        }
        None => "no signature help\n".into(),
    };
    expect.assert_eq(&out);
}

// ---------------------------------------------------------------- hover

#[test]
fn hover_on_an_implementation_shows_its_signature_doc_and_targets() {
    check_hover(
        r#"let store = kv::d$0ir("data");"#,
        expect![[r#"
            1:13 "kv::dir"
            ```nym
            kv::dir(path: string) -> Kv
            ```
            A key-value store in a host directory, one file per key.
            Writes are crash-safe (temporary file, fsync, rename): a value is old or new, never torn.

            targets: unix
        "#]],
    );
}

#[test]
fn hover_on_a_binding_shows_its_type_from_the_let_or_a_use() {
    check_hover(
        r#"let c = console::default();
let j = job hello::store(c$0, kv::mem());
"#,
        expect![[r#"
            2:26 "c"
            ```nym
            let c: Console
            ```
        "#]],
    );
    check_hover(
        r#"let w$0 = kv::full(kv::mem());"#,
        expect![[r#"
            1:5 "w"
            ```nym
            let w: Kv
            ```
        "#]],
    );
}

#[test]
fn hover_on_a_job_shows_its_rust_signature_and_place() {
    check_hover(
        r#"let j = job hello::st$0art(console::default(), time::default(), 1);"#,
        expect![[r#"
            1:13 "hello::start"
            ```rust
            pub async fn start(console: impl Console, time: impl Time, count: u32)
            ```
            job in src/lib.rs:5
        "#]],
    );
}

#[test]
fn hover_inside_a_match_arm_and_a_register_list() {
    check_hover(
        r#"let n = match target {
    unix => netif::t$0ap("tap0"),
    _ => netif::pair("a"),
};"#,
        expect![[r#"
            2:13 "netif::tap"
            ```nym
            netif::tap(name: string) -> Netif
            ```
            A Linux tap device: Ethernet frames to and from the host's network.
            The device must exist (`ip tuntap add tap0 mode tap user $USER`) or nym must run as root; the host configures its side of the link.

            targets: unix
        "#]],
    );
    check_hover(
        r#"let j = job hello::store(console::default(), kv::mem());
register("hello", [j$0]);"#,
        expect![[r#"
            2:20 "j"
            ```nym
            let j: Job
            ```
        "#]],
    );
}

#[test]
fn no_hover_on_nothing_an_unknown_name_or_a_builtin() {
    check_hover(
        r#"l$0et c = console::default();"#,
        expect![[r#"
            no hover
        "#]],
    );
    check_hover(
        r#"let c = console::default();  $0 "#,
        expect![[r#"
            no hover
        "#]],
    );
    check_hover(
        r#"let c = consol$0e;"#,
        expect![[r#"
            no hover
        "#]],
    );
    check_hover(
        r#"let c = kv::mm$0e();"#,
        expect![[r#"
            no hover
        "#]],
    );
    check_hover(
        r#"let k = ke$0y("count", 3);"#,
        expect![[r#"
            no hover
        "#]],
    );
}

// ----------------------------------------------------------- definition

#[test]
fn definition_of_a_use_is_its_let() {
    check_definition(
        r#"let c = console::default();
let j = job hello::store(c, kv::mem());
register("hello", [j$0]);"#,
        expect![[r#"
            here: 2:5 "j"
        "#]],
    );
}

#[test]
fn definition_of_a_use_before_its_let_is_the_later_let() {
    check_definition(
        r#"let j = job hello::store(c$0, kv::mem());
let c = console::default();"#,
        expect![[r#"
            here: 2:5 "c"
        "#]],
    );
}

#[test]
fn definition_of_a_job_is_its_rust_function() {
    check_definition(
        r#"let j = job hello::gr$0eet(console::default());
//- src/lib.rs
use libos::Console;

/// Says hello.
pub async fn greet(console: impl Console) {}
"#,
        expect![[r#"
            rust: src/lib.rs:4: pub async fn greet(console: impl Console) {}
        "#]],
    );
}

#[test]
fn definition_of_an_implementation_is_its_catalog_entry() {
    check_definition(
        r#"let w = kv::fu$0ll(kv::mem());"#,
        expect![[r#"
            catalog: "kv::full" -> Kv,
        "#]],
    );
}

#[test]
fn no_definition_for_nothing_or_an_unknown_name_or_job() {
    check_definition(
        r#"let c = nothing$0;"#,
        expect![[r#"
            no definition
        "#]],
    );
    check_definition(
        r#"let c = kv::nope$0();"#,
        expect![[r#"
            no definition
        "#]],
    );
    check_definition(
        r#"let j = job hello::nope$0(console::default());"#,
        expect![[r#"
            no definition
        "#]],
    );
    check_definition(
        r#"$0let c = console::default();"#,
        expect![[r#"
            no definition
        "#]],
    );
}

// ---------------------------------------------------------- completions

#[test]
fn completion_after_a_module_offers_its_implementations() {
    check_completions(
        r#"let store = kv::$0"#,
        expect![[r#"
            Implementation kv::mem            kv::mem() -> Kv
            Implementation kv::baked          kv::baked(dir: string) -> KvRo
            Implementation kv::full           kv::full(kv: Kv) -> Kv
            Implementation kv::history        kv::history(kv: Kv, bound: int = 1000) -> Kv
            Implementation kv::dir            kv::dir(path: string) -> Kv
            Implementation kv::block          kv::block(block: Block) -> Kv
        "#]],
    );
    check_completions(
        r#"let store = kv::m$0"#,
        expect![[r#"
            Implementation kv::mem            kv::mem() -> Kv
        "#]],
    );
}

#[test]
fn completion_in_a_device_argument_offers_what_fits_and_not_its_own_binding() {
    check_completions(
        r#"let base = kv::mem();
let c = console::default();
let w = kv::full($0"#,
        expect![[r#"
            Implementation kv::mem            kv::mem() -> Kv
            Implementation kv::full           kv::full(kv: Kv) -> Kv
            Implementation kv::history        kv::history(kv: Kv, bound: int = 1000) -> Kv
            Implementation kv::dir            kv::dir(path: string) -> Kv
            Implementation kv::block          kv::block(block: Block) -> Kv
            Binding        base               Kv
            Key            kv =               Kv
        "#]],
    );
}

#[test]
fn completion_in_a_job_argument_follows_the_rust_signature() {
    check_completions(
        r#"let c = console::default();
let t = time::default();
let j = job hello::start(c, $0)"#,
        expect![[r#"
            Implementation time::default      time::default() -> Time
            Implementation time::scaled       time::scaled(time: Time, factor: int) -> Time
            Binding        t                  Time
        "#]],
    );
}

#[test]
fn completion_in_a_value_argument_offers_a_literal_named_parameters_and_key() {
    check_completions(
        r#"let n = netif::pair("a");
let loss = key("loss", 5);
let l = netif::lossy(n,$0"#,
        expect![[r#"
            Binding        loss               int
            Key            percent =          int
            Key            seed =             int
            Keyword        42                 an int
            Key            key("loss", 5)     the key --loss
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
}

#[test]
fn completion_after_a_space_in_an_unclosed_call_is_for_the_argument() {
    // The usual place to ask (and a REPL line's end): after `, ` at the end
    // of the file. Only what fits `percent`, and never `l`, being defined.
    check_completions(
        r#"let n = netif::pair("a");
let loss = key("loss", 5);
let l = netif::lossy(n, $0"#,
        expect![[r#"
            Binding        loss               int
            Key            percent =          int
            Key            seed =             int
            Keyword        42                 an int
            Key            key("loss", 5)     the key --loss
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
}

#[test]
fn completion_after_a_space_in_an_unclosed_job_before_the_next_statement() {
    // In an editor the call is left open above the statements that follow:
    // the blank space up to them is still the call's.
    check_completions(
        r#"let c = console::default();
let t = time::default();
let j = job hello::start(c, $0
register("hello", [j]);
"#,
        expect![[r#"
            Implementation time::default      time::default() -> Time
            Implementation time::scaled       time::scaled(time: Time, factor: int) -> Time
            Binding        t                  Time
        "#]],
    );
}

#[test]
fn completion_in_a_named_argument_follows_the_name_with_or_without_a_value() {
    check_completions(
        r#"let t = tls::client(stack::socket(), name = "ex$0")"#,
        expect![[r#"
            Key            roots =            KvRo
            Keyword        "text"             a string
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
    // With no value yet: still `name`'s slot, not the next positional
    // one (`roots`).
    check_completions(
        r#"let t = tls::client(stack::socket(), name = $0)"#,
        expect![[r#"
            Key            roots =            KvRo
            Keyword        "text"             a string
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
}

#[test]
fn completion_offers_keys_declared_anywhere_even_in_a_file_with_errors() {
    // Where an int goes, the keys with an int default.
    check_completions(
        r#"register("hello", [job hello::start(console::default(), time::default(), key("count", 3))]);
let l = netif::lossy(netif::pair("a"), 5$0);
"#,
        expect![[r#"
            Key            seed =             int
            Keyword        42                 an int
            Key            key("count", 3)    the key --count
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
    // The call being completed misses an argument (an error, so no graph):
    // the keys come from the syntax.
    check_completions(
        r#"register("hello", [job hello::start(console::default(), time::default(), key("count", 3))]);
let l = netif::lossy(netif::pair("a"), $0);
"#,
        expect![[r#"
            Key            percent =          int
            Key            seed =             int
            Keyword        42                 an int
            Key            key("count", 3)    the key --count
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
}

#[test]
fn completion_offers_keys_that_reach_nothing_or_come_later_if_their_default_fits() {
    // Where a CIDR goes: a key whose string default parses as one (keys
    // are checked that way), not `link` nor `count`; `ip` is declared
    // after the cursor and reaches nothing yet.
    check_completions(
        r#"let a = netif::pair(key("link", "tap0"));
let s = stack::direct(netif::pair("b"), $0
let c = job hello::start(console::default(), time::default(), key("count", 3));
let ip = key("ip", "10.0.0.2/24");
"#,
        expect![[r#"
            Key            ipv4 =             ipv4 cidr
            Keyword        10.0.0.2/24        an IPv4 CIDR
            Key            key("ip", "10.0.0.2/24") the key --ip
            Key            key                key("name", default): a boot-time argument
        "#]],
    );
}

#[test]
fn completion_at_the_start_of_a_statement_offers_everything() {
    check_completions(
        r#"let c = console::default();
$0"#,
        expect![[r#"
            Implementation console::default   console::default() -> Console
            Implementation clock::mono        clock::mono() -> MonoClock
            Implementation clock::wall        clock::wall() -> WallClock
            Implementation clock::scaled      clock::scaled(clock: MonoClock, factor: int) -> MonoClock
            Implementation time::default      time::default() -> Time
            Implementation time::scaled       time::scaled(time: Time, factor: int) -> Time
            Implementation random::default    random::default() -> Random
            Implementation random::seeded     random::seeded(seed: int) -> Random
            Implementation kv::mem            kv::mem() -> Kv
            Implementation kv::baked          kv::baked(dir: string) -> KvRo
            Implementation kv::full           kv::full(kv: Kv) -> Kv
            Implementation kv::history        kv::history(kv: Kv, bound: int = 1000) -> Kv
            Implementation kv::dir            kv::dir(path: string) -> Kv
            Implementation kv::block          kv::block(block: Block) -> Kv
            Implementation block::file        block::file(path: string, size: int = 1048576) -> Block
            Implementation block::mem         block::mem(size: int = 1048576) -> Block
            Implementation stack::socket      stack::socket() -> Stack
            Implementation stack::direct      stack::direct(netif: Netif, ipv4: ipv4 cidr) -> Stack
            Implementation stack::dhcp        stack::dhcp(netif: Netif) -> Stack
            Implementation netif::tap         netif::tap(name: string) -> Netif
            Implementation netif::default     netif::default() -> Netif
            Implementation netif::pair        netif::pair(name: string) -> Netif
            Implementation netif::lossy       netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
            Implementation tls::server        tls::server(stack: Stack, certs: KvRo) -> Stack
            Implementation tls::client        tls::client(stack: Stack, roots: KvRo, name: string) -> Stack
            Binding        c                  Console
            Keyword        let                keyword
            Keyword        job                keyword
            Keyword        key                keyword
            Keyword        register           keyword
            Keyword        match target       keyword
        "#]],
    );
}

// ------------------------------------------------------ semantic tokens

#[test]
fn semantic_tokens_of_a_graph() {
    check_semantic_tokens(
        r#"// The greeter.
let c = console::default();
let j = job hello::start(c, time::scaled(time::default(), factor = 10), key("count", 3));
register("hello", [j]);
"#,
        expect![[r#"
            1:1 "// The greeter." comment
            2:1 "let" keyword
            2:5 "c" variable
            2:9 "console" namespace
            2:18 "default" function
            3:1 "let" keyword
            3:5 "j" variable
            3:9 "job" keyword
            3:13 "hello" namespace
            3:20 "start" function
            3:26 "c" variable
            3:29 "time" namespace
            3:35 "scaled" function
            3:42 "time" namespace
            3:48 "default" function
            3:59 "factor" parameter
            3:68 "10" number
            3:73 "key" function
            3:77 "\"count\"" string
            3:86 "3" number
            4:1 "register" function
            4:10 "\"hello\"" string
            4:20 "j" variable
        "#]],
    );
}

#[test]
fn semantic_tokens_of_match_target_a_bad_cidr_and_a_broken_statement() {
    check_semantic_tokens(
        r#"let n = match target { unix | kvm => netif::pair("a"), _ => netif::default() };
let s = stack::direct(n, 10.0.0.300/24);
let broken = kv::mem(;
let d = 100ms;
"#,
        expect![[r#"
            1:1 "let" keyword
            1:5 "n" variable
            1:9 "match" keyword
            1:24 "unix" namespace
            1:31 "kvm" namespace
            1:38 "netif" namespace
            1:45 "pair" function
            1:50 "\"a\"" string
            1:61 "netif" namespace
            1:68 "default" function
            2:1 "let" keyword
            2:5 "s" variable
            2:9 "stack" namespace
            2:16 "direct" function
            2:23 "n" variable
            2:26 "10.0.0.300/24" number
            3:1 "let" keyword
            3:5 "broken" variable
            3:14 "kv" namespace
            3:18 "mem" function
            4:1 "let" keyword
            4:5 "d" variable
            4:9 "100ms" number
        "#]],
    );
}

// ------------------------------------------------------------- symbols

#[test]
fn symbols_are_the_lets_and_the_register() {
    check_symbols(
        r#"let c = console::default();
let j = job hello::store(c, kv::mem());
kv::mem();
register("hello", [j]);
"#,
        expect![[r#"
            c: Console  name 1:5 "c"  statement 1:1..1:28
            j: Job  name 2:5 "j"  statement 2:1..2:40
            register: the jobs that run  name 4:1 "register"  statement 4:1..4:24
        "#]],
    );
}

#[test]
fn symbols_of_failed_and_duplicate_lets() {
    check_symbols(
        r#"let x = nothing;
let c = console::default();
let c = kv::mem();
"#,
        expect![[r#"
            x: {unknown}  name 1:5 "x"  statement 1:1..1:17
            c: Console  name 2:5 "c"  statement 2:1..2:28
            c: Kv  name 3:5 "c"  statement 3:1..3:19
        "#]],
    );
}

#[test]
fn symbols_after_an_unclosed_call_keep_the_next_let() {
    // The unclosed call's argument list ends where the next statement
    // starts, as a statement that fails to parse does.
    check_symbols(
        r#"let l = netif::lossy(netif::pair("a"),
let m = kv::mem();
let c = console::default();
let j = job hello::store(c, m
register("hello", [j]);
"#,
        expect![[r#"
            l: Netif  name 1:5 "l"  statement 1:1..1:39
            m: Kv  name 2:5 "m"  statement 2:1..2:19
            c: Console  name 3:5 "c"  statement 3:1..3:28
            j: Job  name 4:5 "j"  statement 4:1..4:30
            register: the jobs that run  name 5:1 "register"  statement 5:1..5:24
        "#]],
    );
}

// ----------------------------------------------------------- references

#[test]
fn references_of_a_binding_used_several_times_from_its_let_or_a_use() {
    let text = r#"let c$0 = console::default();
let a = job hello::store(c, kv::mem());
let b = job hello::start(c, time::default(), 1);
register("hello", [a, b]);
"#;
    check_references(
        text,
        expect![[r#"
            1:5 "c"
            2:26 "c"
            3:26 "c"
        "#]],
    );
    check_references(
        &text
            .replace("c$0 =", "c =")
            .replace("start(c,", "start(c$0,"),
        expect![[r#"
            1:5 "c"
            2:26 "c"
            3:26 "c"
        "#]],
    );
}

#[test]
fn references_include_a_use_before_the_let() {
    check_references(
        r#"let j = job hello::store(c, kv::mem());
let c$0 = console::default();
"#,
        expect![[r#"
            2:5 "c"
            1:26 "c"
        "#]],
    );
}

/// `full` is used only in arms for other targets than unix, the one the
/// fixtures are checked for: one nested in an application, one alone.
const ACROSS_ARMS: &str = r#"let full = kv::mem();
let store = kv::mem();
let pick = match target { unix => store, kvm | qemu => kv::full(full), _ => full };
let j = job hello::store(console::default(), pick);
register("hello", [j]);
"#;

#[test]
fn references_reach_the_arms_of_match_target_for_other_targets() {
    // The checker evaluates the unix arm only; the others name the same
    // bindings.
    check_references(
        &ACROSS_ARMS.replacen("full", "fu$0ll", 1),
        expect![[r#"
            1:5 "full"
            3:65 "full"
            3:77 "full"
        "#]],
    );
    check_references(
        &ACROSS_ARMS.replace("_ => full", "_ => fu$0ll"),
        expect![[r#"
            1:5 "full"
            3:65 "full"
            3:77 "full"
        "#]],
    );
    check_definition(
        &ACROSS_ARMS.replace("kv::full(full)", "kv::full(fu$0ll)"),
        expect![[r#"
            here: 1:5 "full"
        "#]],
    );
    check_hover(
        &ACROSS_ARMS.replace("_ => full", "_ => fu$0ll"),
        expect![[r#"
            3:77 "full"
            ```nym
            let full: Kv
            ```
        "#]],
    );
}

#[test]
fn no_references_for_an_implementation_an_unknown_name_or_an_unused_binding() {
    check_references(
        r#"let c = console::defa$0ult();"#,
        expect![[r#"
            no references
        "#]],
    );
    check_references(
        r#"let c = noth$0ing;"#,
        expect![[r#"
            no references
        "#]],
    );
    check_references(
        r#"let c$0 = console::default();"#,
        expect![[r#"
            1:5 "c"
        "#]],
    );
}

// --------------------------------------------------------------- rename

#[test]
fn rename_rewrites_the_let_and_every_use() {
    check_rename(
        r#"let c = console::default();
let a = job hello::store(c$0, kv::mem());
let b = job hello::start(c, time::default(), 1);
register("hello", [a, b]);
"#,
        "out",
        expect![[r#"
            let out = console::default();
            let a = job hello::store(out, kv::mem());
            let b = job hello::start(out, time::default(), 1);
            register("hello", [a, b]);
        "#]],
    );
}

#[test]
fn rename_rewrites_uses_in_the_arms_for_other_targets() {
    // Left as `_ => full`, the graph would no longer check for kvm.
    check_rename(
        &ACROSS_ARMS.replacen("full", "fu$0ll", 1),
        "whole",
        expect![[r#"
            let whole = kv::mem();
            let store = kv::mem();
            let pick = match target { unix => store, kvm | qemu => kv::full(whole), _ => whole };
            let j = job hello::store(console::default(), pick);
            register("hello", [j]);
        "#]],
    );
}

#[test]
fn rename_refuses_what_is_not_a_binding_or_a_name_or_is_taken() {
    let text = r#"let c = console::default();
let s = kv::mem();
let j = job hello::store(c$0, s);
"#;
    check_rename(
        text,
        "s",
        expect![[r#"
            error: `s` is already bound
        "#]],
    );
    check_rename(
        text,
        "1c",
        expect![[r#"
            error: `1c` is not a name: ASCII letters, digits and `_`, not starting with a digit
        "#]],
    );
    check_rename(
        text,
        "match",
        expect![[r#"
            error: `match` is not a name: it is a keyword
        "#]],
    );
    check_rename(
        text,
        "",
        expect![[r#"
            error: `` is not a name: ASCII letters, digits and `_`, not starting with a digit
        "#]],
    );
    check_rename(
        &text
            .replace("c$0, s", "c, s")
            .replace("kv::mem", "kv::m$0em"),
        "x",
        expect![[r#"
            error: only `let` bindings can be renamed
        "#]],
    );
}

#[test]
fn rename_to_a_name_the_lexer_does_not_take_is_refused() {
    // The lexer's names are ASCII: `café` would not read back as a name.
    check_rename(
        r#"let c$0 = console::default();
register("hello", [job hello::store(c, kv::mem())]);
"#,
        "café",
        expect![[r#"
            error: `café` is not a name: ASCII letters, digits and `_`, not starting with a digit
        "#]],
    );
}

#[test]
fn a_duplicate_let_is_itself_for_hover_references_and_rename() {
    // The second `c` is refused; uses of `c` are the first one's. From the
    // second `let`, each feature answers for that `let` (renaming it is
    // how the error is fixed), never with the first binding's data.
    let text = r#"let c = console::default();
let c$0 = kv::mem();
register("hello", [job hello::store(c, kv::mem())]);
"#;
    check_hover(
        text,
        expect![[r#"
            2:5 "c"
            ```nym
            let c: Kv
            ```
        "#]],
    );
    check_definition(
        text,
        expect![[r#"
            here: 2:5 "c"
        "#]],
    );
    check_references(
        text,
        expect![[r#"
            2:5 "c"
        "#]],
    );
    check_rename(
        text,
        "store",
        expect![[r#"
            let c = console::default();
            let store = kv::mem();
            register("hello", [job hello::store(c, kv::mem())]);
        "#]],
    );
    // From a use: the first binding.
    check_references(
        &text
            .replace("c$0 =", "c =")
            .replace("store(c,", "store(c$0,"),
        expect![[r#"
            1:5 "c"
            3:37 "c"
        "#]],
    );
}

// ---------------------------------------------------------- inlay hints

#[test]
fn inlay_hints_give_each_let_its_type() {
    check_inlay_hints(
        r#"let c = console::default();
let k = key("count", 3);
let j = job hello::start(c, time::default(), k);
let x = nothing;
register("hello", [j]);
"#,
        expect![[r#"
            let c«: Console» = console::default();
            let k«: int» = key("count", 3);
            let j«: Job» = job hello::start(c, time::default(), k);
            let x«: {unknown}» = nothing;
            register("hello", [j]);
        "#]],
    );
}

#[test]
fn inlay_hints_skip_a_duplicate_let_but_not_an_unclosed_call() {
    check_inlay_hints(
        r#"let c = console::default();
let c = kv::mem();
let broken = kv::mem(;
"#,
        expect![[r#"
            let c«: Console» = console::default();
            let c = kv::mem();
            let broken«: Kv» = kv::mem(;
        "#]],
    );
}

// ------------------------------------------------------- signature help

#[test]
fn signature_help_marks_the_argument_being_typed() {
    check_signature_help(
        r#"let l = netif::lossy($0"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              > netif: Netif
              - percent: int
              - seed: int
        "#]],
    );
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), 5, $0)"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              - percent: int
              > seed: int
        "#]],
    );
}

#[test]
fn signature_help_in_a_nested_call_is_the_innermost() {
    check_signature_help(
        r#"let l = netif::lossy(netif::pair($0), 5)"#,
        expect![[r#"
            netif::pair(name: string) -> Netif
              > name: string
        "#]],
    );
}

#[test]
fn signature_help_of_a_job_is_its_rust_signature() {
    check_signature_help(
        r#"let j = job hello::start(console::default(), $0)"#,
        expect![[r#"
            pub async fn start(console: impl Console, time: impl Time, count: u32)
              - console: impl Console
              > time: impl Time
              - count: u32
        "#]],
    );
}

#[test]
fn signature_help_of_a_job_marks_each_parameter_as_rust_writes_it() {
    // Written across lines, after generics, with a pattern, bounds, a
    // trailing comma, a return type and a where clause.
    check_signature_help(
        r#"let j = job hello::run(console::default(), kv::mem(), $0
//- src/lib.rs
use libos::{Console, Kv};
pub async fn run<K: Kv>(
    mut console: impl Console + Send,
    k: K,
    count: u32,
) -> Result<(), libos::KvError>
where
    K: Clone,
{
    Ok(())
}
"#,
        expect![[r#"
            pub async fn run<K: Kv>(mut console: impl Console + Send, k: K, count: u32,) -> Result<(), libos:: KvError> where K: Clone,
              - mut console: impl Console + Send
              - k: K
              > count: u32
        "#]],
    );
}

#[test]
fn signature_help_for_a_named_argument_marks_the_name_not_the_position() {
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), seed = 3$0)"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              - percent: int
              > seed: int
        "#]],
    );
}

#[test]
fn signature_help_after_named_arguments_marks_the_first_parameter_not_given() {
    check_signature_help(
        r#"let t = tls::client(stack::socket(), name = "example.com", $0)"#,
        expect![[r#"
            tls::client(stack: Stack, roots: KvRo, name: string) -> Stack
              - stack: Stack
              > roots: KvRo
              - name: string
        "#]],
    );
    // On the name of a named argument, before its `=`.
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), se$0ed = 3, percent = 5)"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              - percent: int
              > seed: int
        "#]],
    );
}

#[test]
fn signature_help_after_a_space_in_an_unclosed_call_knows_the_call() {
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"),$0"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              > percent: int
              - seed: int
        "#]],
    );
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), $0"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              > percent: int
              - seed: int
        "#]],
    );
}

#[test]
fn signature_help_in_an_unclosed_call_above_other_statements() {
    check_signature_help(
        r#"let c = console::default();
let j = job hello::start(c, $0
let m = kv::mem();
register("hello", [j]);
"#,
        expect![[r#"
            pub async fn start(console: impl Console, time: impl Time, count: u32)
              - console: impl Console
              > time: impl Time
              - count: u32
        "#]],
    );
}

#[test]
fn signature_help_outside_a_call_for_an_unknown_one_and_past_the_end() {
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), 5);$0"#,
        expect![[r#"
            no signature help
        "#]],
    );
    check_signature_help(
        r#"let l = netif::los$0sy(netif::pair("a"), 5);"#,
        expect![[r#"
            no signature help
        "#]],
    );
    check_signature_help(
        r#"let l = kv::nope($0"#,
        expect![[r#"
            no signature help
        "#]],
    );
    check_signature_help(
        r#"let l = netif::lossy(netif::pair("a"), 5, 6, $0)"#,
        expect![[r#"
            netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif
              - netif: Netif
              - percent: int
              - seed: int
              (active 3: past the last parameter)
        "#]],
    );
}

// ---------------------------------------------------------- device calls

#[test]
fn completion_after_a_device_and_a_dot_offers_its_callable_methods() {
    check_completions(
        "let store = kv::mem();\nstore.$0",
        expect![[r#"
            Method         get(               KvRo::get(key: string) -> bytes
            Method         list(              KvRo::list(prefix: string = "") -> list
            Method         set(               Kv::set(key: string, value: string) -> ()
            Method         remove(            Kv::remove(key: string) -> ()
        "#]],
    );
    check_completions(
        "let s = stack::socket();\ns.d$0",
        expect![[r#"
            Method         describe(          Stack::describe() -> lines
        "#]],
    );
    check_completions("let n = 3;\nn.$0", expect![[r#""#]]);
}

#[test]
fn hover_and_signature_help_on_a_device_call() {
    check_hover(
        "let disk = block::mem();\ndisk.re$0ad(0, 2);",
        expect![[r#"
            2:6 "read"
            ```nym
            Block::read(sector: int, count: int = 1) -> bytes
            ```
            Reads whole sectors.

            called on the running stack's device in a session
        "#]],
    );
    check_hover(
        "let s = stack::socket();\ns.lis$0ten(80);",
        expect![[r#"
            2:3 "listen"
            ```nym
            Stack::listen(…)
            ```
            Listens on a TCP port.

            not callable from a session: it answers a listener, which a session cannot hold (a job listens)
        "#]],
    );
    check_signature_help(
        "let store = kv::mem();\nstore.set(\"k\", $0",
        expect![[r#"
            Kv::set(key: string, value: string) -> ()
              - key: string
              > value: string
        "#]],
    );
    check_semantic_tokens(
        "let store = kv::mem();\nstore.get(\"k\");",
        expect![[r#"
            1:1 "let" keyword
            1:5 "store" variable
            1:13 "kv" namespace
            1:17 "mem" function
            2:1 "store" variable
            2:7 "get" function
            2:11 "\"k\"" string
        "#]],
    );
}

/// A graph with more bindings than one answer carries: the answer holds
/// those that begin with the word typed, the nearest first, and says it
/// is incomplete; a short list goes back whole.
#[test]
fn completions_past_the_limit_begin_with_the_word_nearest_first() {
    let mut text = String::from("let k0 = kv::mem();\n");
    for i in 1..300 {
        text += &format!("let k{i} = kv::full(k{});\n", i - 1);
    }
    text += "let s = kv::full(k2$0);\n";
    let f = fixture(&text);
    let all = ide::completions(&f.src, &f.analysis(), Some(f.krate()), f.offset());
    assert!(all.len() > 300, "every store fits: {}", all.len());
    let word = ide::word_before(&f.src, f.offset());
    assert_eq!(word, "k2");
    let (some, incomplete) = ide::limit(all.clone(), word, 20);
    assert!(incomplete);
    let labels: Vec<&str> = some.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels[..3], ["k299", "k298", "k297"], "{labels:?}");
    assert_eq!(labels.len(), 20);
    assert!(labels.iter().all(|l| l.starts_with("k2")), "{labels:?}");
    let (whole, incomplete) = ide::limit(all.clone(), word, all.len());
    assert!(!incomplete);
    assert_eq!(whole.len(), all.len());
}
