//! Arbitrary bytes that are UTF-8 go through `analyze` for every target,
//! with and without an application crate. It must not panic, must be
//! deterministic, must put every diagnostic on character boundaries inside
//! the source, must render, and must give a graph exactly when there is no
//! error: the properties of `graph/tests/fuzz.rs`, under libFuzzer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nym_graph::syntax::Span;
use nym_graph::{analyze, diagnostic, Target};
#[path = "../../graph/tests/common/mod.rs"]
mod common;
use common::app;


fn check_span(src: &str, span: Span, code: &str) {
    assert!(
        span.start <= span.end && span.end <= src.len(),
        "{code}: span {span:?} outside a source of {} bytes",
        src.len()
    );
    assert!(
        src.is_char_boundary(span.start) && src.is_char_boundary(span.end),
        "{code}: span {span:?} splits a character"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    for &target in Target::ALL {
        for krate in [None, Some(app())] {
            let a = analyze(src, target, krate);
            for d in a.diagnostics() {
                check_span(src, d.span, d.code);
                for (s, _) in &d.related {
                    check_span(src, *s, d.code);
                }
                if let Some(fix) = &d.fix {
                    check_span(src, fix.span, d.code);
                }
            }
            assert_eq!(a.has_errors(), a.graph().is_none());
            let _ = diagnostic::render(a.diagnostics(), "f.nym", src, false);
            let _ = diagnostic::render_short(a.diagnostics(), "f.nym", src);
            assert_eq!(
                a,
                analyze(src, target, krate),
                "analyze is not deterministic"
            );
        }
    }
});
