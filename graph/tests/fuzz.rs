//! Property tests of `analyze` on hostile input: arbitrary text, soups of
//! the language's own tokens, and mutations of a good graph.
//!
//! Whatever comes in, `analyze` returns (no panic, no stack overflow), is
//! deterministic, reports every diagnostic at a span inside the source and
//! on character boundaries (the language server and miette slice the text
//! there), renders without panicking, and hands out a graph exactly when it
//! reports no error. `fuzz/` runs the same checks under libFuzzer.
use nym_graph::syntax::Span;
use nym_graph::{analyze, diagnostic, Analysis, Target};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError};
mod common;
use common::app;

/// The graph of `a_good_graph_resolves_in_dependency_order` in `tests/check.rs`.
const GOOD: &str = r#"
// The greeter.
let console = console::default();
let clock   = time::scaled(time::default(), factor = 10);
let hello   = job hello::start(console, clock, key("count", 3));
register("hello", [hello]);
"#;

/// Tokens and fragments of the language, good and bad, for the token soup.
const VOCAB: &[&str] = &[
    "let",
    "job",
    "register",
    "key",
    "c",
    "kv",
    "console",
    "console::default",
    "time::default",
    "time::scaled",
    "kv::mem",
    "kv::dir",
    "kv::full",
    "hello::start",
    "hello::store",
    "hello::sub::run",
    "hello::not_async",
    "hello::private",
    "hello::serve",
    "hello::weird",
    "hello::nope",
    "nope::start",
    "clock::mono",
    "clock::scaled",
    "kv::baked",
    "block::file",
    "random::seeded",
    "Console",
    "factor",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "=",
    "::",
    ":",
    "\"str\"",
    "\"count\"",
    "\"hello\"",
    "\"10.0.0.2/24\"",
    "\"1.2.3.4\"",
    "\"unterminated",
    "\"esc\\",
    "\\",
    "10.0.0.2/24",
    "999.1.1.1/40",
    "1.2.3",
    "3",
    "0",
    "99999999999999999999999",
    "500ms",
    "4MiB",
    "12parsecs",
    "true",
    "false",
    "-",
    "é",
    "😀",
    "//comment\n",
    "\n",
    "(((((",
    "[[[[[",
];

const SEPARATORS: &[&str] = &["", "", " ", "\n", "\t"];

/// Characters the lexer treats specially, mixed into arbitrary text so
/// that it often reaches past the first token.
const SPECIAL: &[char] = &[
    '"', '\\', '(', ')', '[', ']', ',', ';', '=', ':', '/', '.', '-', '\n', ' ', '0', '9', 'a',
    'z', '_', 'é', '€', '😀', '\u{0}', '\u{feff}',
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Checks every property on `src`, for every target, with and without the
/// application crate.
fn check_all(src: &str) -> Result<(), TestCaseError> {
    for &target in Target::ALL {
        for krate in [None, Some(app())] {
            let a = analyze(src, target, krate);
            check_analysis(src, &a)?;
            let again = analyze(src, target, krate);
            prop_assert_eq!(&a, &again, "analyze is not deterministic");
        }
    }
    Ok(())
}

fn check_analysis(src: &str, a: &Analysis) -> Result<(), TestCaseError> {
    for d in a.diagnostics() {
        check_span(src, d.span, d.code)?;
        for (s, _) in &d.related {
            check_span(src, *s, d.code)?;
        }
        if let Some(fix) = &d.fix {
            check_span(src, fix.span, d.code)?;
        }
    }
    prop_assert_eq!(
        a.has_errors(),
        a.graph().is_none(),
        "a graph must come exactly when there is no error"
    );
    let diags = a.diagnostics();
    let _ = diagnostic::render(diags, "f.nym", src, false);
    let short = diagnostic::render_short(diags, "f.nym", src);
    prop_assert_eq!(short.lines().count(), diags.len());
    Ok(())
}

fn check_span(src: &str, span: Span, code: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        span.start <= span.end && span.end <= src.len(),
        "{code}: span {span:?} outside a source of {} bytes",
        src.len()
    );
    prop_assert!(
        src.is_char_boundary(span.start) && src.is_char_boundary(span.end),
        "{code}: span {span:?} splits a character"
    );
    Ok(())
}

/// Text whose characters are arbitrary or special to the lexer.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![any::<char>(), select(SPECIAL)], 0..80)
        .prop_map(String::from_iter)
}

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec((select(VOCAB), select(SEPARATORS)), 0..60).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(token, sep)| [token, sep])
            .collect()
    })
}

/// One edit of a text, on character indices so the result stays UTF-8.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    Replace(Index, usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = || prop_oneof![select(VOCAB).prop_map(str::to_owned), text()];
    prop_oneof![
        (any::<Index>(), 1..12usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<Index>(), piece()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<Index>(), 1..12usize, piece()).prop_map(|(at, n, s)| Edit::Replace(at, n, s)),
    ]
}

fn apply(src: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for e in edits {
        let (at, len, with) = match e {
            Edit::Delete(at, n) => (at, *n, ""),
            Edit::Insert(at, s) => (at, 0, s.as_str()),
            Edit::Replace(at, n, s) => (at, *n, s.as_str()),
        };
        let start = at.index(chars.len() + 1);
        let end = (start + len).min(chars.len());
        chars.splice(start..end, with.chars());
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_text_is_handled(src in prop_oneof![any::<String>(), text()]) {
        check_all(&src)?;
    }

    #[test]
    fn token_soup_is_handled(src in soup()) {
        check_all(&src)?;
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn mutations_of_a_good_graph_are_handled(
        edits in prop::collection::vec(edit(), 1..4)
    ) {
        check_all(&apply(GOOD, &edits))?;
    }

    /// Formatting is idempotent and changes nothing the checker sees.
    #[test]
    fn formatting_is_idempotent_and_keeps_the_meaning(
        edits in prop::collection::vec(edit(), 0..3)
    ) {
        let src = apply(GOOD, &edits);
        if let Ok(once) = nym_graph::format::format(&src) {
            let twice = nym_graph::format::format(&once);
            prop_assert_eq!(twice.as_deref(), Ok(once.as_str()), "idempotent");
            let codes = |text: &str| {
                let a = analyze(text, Target::Unix, Some(app()));
                let mut c: Vec<&'static str> = a.diagnostics().iter().map(|d| d.code).collect();
                c.sort_unstable();
                (c, a.graph().map(nym_graph::print::text))
            };
            prop_assert_eq!(codes(&src), codes(&once), "the same findings and the same graph");
        }
    }
}

#[test]
fn the_good_graph_is_good() {
    for &target in Target::ALL {
        let a = analyze(GOOD, target, Some(app()));
        assert!(
            a.diagnostics().is_empty(),
            "{target}: {:?}",
            a.diagnostics()
        );
        assert!(a.graph().is_some());
    }
}

/// Inputs the properties once failed on, checked every run.
#[test]
fn past_failures() {
    // An unknown escape of a multi-byte character ended the error token
    // inside the character, and the lexer then sliced the source there.
    for src in ["\"esc\\é", "let a = kv::dir(\"\\😀\");"] {
        check_all(src).unwrap();
    }
}

#[test]
fn deep_nesting_and_large_files_return() {
    let deep = 10_000;
    let nested = [
        "(".repeat(deep),
        format!("let x = {};", "(".repeat(deep)),
        format!("let x = {}{};", "[".repeat(deep), "]".repeat(deep)),
        format!("let x = {}{};", "f(".repeat(deep), ")".repeat(deep)),
        format!("let x = {}{};", "job f(".repeat(deep), ")".repeat(deep)),
        format!(
            "let x = {}{};",
            "key(\"k\", [".repeat(deep),
            "])".repeat(deep)
        ),
    ];
    for src in &nested {
        let a = analyze(src, Target::Unix, Some(app()));
        assert!(a.has_errors());
        check_analysis(src, &a).unwrap();
    }

    // About 1 MB of good statements: independent devices, then a chain of
    // devices each wrapping the one before.
    let register = "register(\"hello\", [hello]);\n";
    let mut big = GOOD.replace(register, "");
    let mut i = 0;
    while big.len() < 500_000 {
        big.push_str(&format!("let k{i} = kv::mem();\n"));
        i += 1;
    }
    big.push_str("let t0 = time::default();\n");
    let mut i = 1;
    while big.len() < 1_000_000 {
        big.push_str(&format!(
            "let t{i} = time::scaled(t{}, factor = 2);\n",
            i - 1
        ));
        i += 1;
    }
    big.push_str(&format!(
        "let deep = job hello::start(console, t{}, 1);\n",
        i - 1
    ));
    big.push_str(&register.replace("[hello]", "[hello, deep]"));
    let a = analyze(&big, Target::Unix, Some(app()));
    assert!(!a.has_errors(), "{:?}", a.diagnostics().first());
    assert!(a.graph().is_some());
}
