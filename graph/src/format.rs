//! The formatter: one canonical layout for `.nym` files, used by `nym fmt`
//! and the language server alike. It refuses files with syntax errors
//! (never guesses), keeps comments and literals as written, and is
//! idempotent.
//!
//! Layout: one statement per line; at most one blank line between
//! statements, kept where the source had one; a run of `let`s with no
//! blank line or comment between them aligns its `=`; `match target`
//! puts each arm on its own line, their `=>` aligned.
use crate::diagnostic::Diagnostic;
use crate::parser::parse;
use crate::syntax::{Arg, Expr, ExprKind, Span, Stmt};

/// `src` in canonical layout, or the syntax errors that prevent it.
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let (file, errors) = parse(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::new();
    let mut comments = file.comments.iter().peekable();
    let mut prev_end = 0;
    let mut group: Vec<(String, String, Option<String>)> = Vec::new();
    let flush = |group: &mut Vec<(String, String, Option<String>)>, out: &mut String| {
        let width = group.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        for (name, value, trailing) in group.drain(..) {
            out.push_str(&format!("let {name:width$} = {value};"));
            if let Some(c) = trailing {
                out.push(' ');
                out.push_str(&c);
            }
            out.push('\n');
        }
    };
    // A slice that is empty rather than backwards.
    let between = |from: usize, to: usize| &src[from.min(to).min(src.len())..to.min(src.len())];
    for (i, stmt) in file.stmts.iter().enumerate() {
        let span = stmt.span();
        let next_start = file.stmts.get(i + 1).map_or(src.len(), |n| n.span().start);
        // Comments and blank lines before the statement.
        let mut leading = Vec::new();
        while let Some(c) = comments.peek() {
            if c.start < span.start {
                leading.push(**c);
                comments.next();
            } else {
                break;
            }
        }
        let gap = between(prev_end, leading.first().map_or(span.start, |c| c.start));
        let blank = prev_end > 0 && gap.matches('\n').count() >= 2;
        if blank || !leading.is_empty() {
            flush(&mut group, &mut out);
        }
        if blank {
            out.push('\n');
        }
        for c in &leading {
            out.push_str(src[c.start..c.end].trim_end());
            out.push('\n');
        }
        // A statement with a comment inside is kept as written: re-printing
        // it would move or lose the comment.
        let mut inner = false;
        while let Some(c) = comments.peek() {
            if c.start < span.end {
                inner = true;
                comments.next();
            } else {
                break;
            }
        }
        // A comment later on the statement's own line, before the next
        // statement, trails it.
        let line_end = src[span.end..]
            .find('\n')
            .map_or(src.len(), |i| span.end + i);
        let trailing = comments
            .peek()
            .filter(|c| c.start >= span.end && c.start < line_end && c.start < next_start)
            .map(|c| src[c.start..c.end].trim_end().to_owned());
        if trailing.is_some() {
            comments.next();
        }
        match stmt {
            Stmt::Let { name, value, .. } if !inner => {
                group.push((name.name.clone(), expr(src, value, 0), trailing));
            }
            _ => {
                flush(&mut group, &mut out);
                if inner {
                    out.push_str(src[span.start..span.end].trim_end());
                } else if let Stmt::Expr { expr: e, .. } = stmt {
                    out.push_str(&expr(src, e, 0));
                    out.push(';');
                }
                if let Some(c) = trailing {
                    out.push(' ');
                    out.push_str(&c);
                }
                out.push('\n');
            }
        }
        prev_end = span.end.max(line_end.min(next_start));
    }
    flush(&mut group, &mut out);
    let rest: Vec<Span> = comments.copied().collect();
    if !rest.is_empty() {
        if between(prev_end, rest[0].start).matches('\n').count() >= 2 && !out.is_empty() {
            out.push('\n');
        }
        for c in rest {
            out.push_str(src[c.start..c.end].trim_end());
            out.push('\n');
        }
    }
    Ok(out)
}

fn args(src: &str, args: &[Arg], depth: usize) -> String {
    args.iter()
        .map(|a| match &a.name {
            Some(n) => format!("{} = {}", n.name, expr(src, &a.value, depth)),
            None => expr(src, &a.value, depth),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn expr(src: &str, e: &Expr, depth: usize) -> String {
    match &e.kind {
        ExprKind::Call { path, args: a, .. } => format!("{}({})", path.text(), args(src, a, depth)),
        ExprKind::Job { path, args: a, .. } => {
            format!("job {}({})", path.text(), args(src, a, depth))
        }
        ExprKind::Method {
            receiver,
            method,
            args: a,
            ..
        } => format!("{}.{}({})", receiver.name, method.name, args(src, a, depth)),
        ExprKind::Name(id) => id.name.clone(),
        // Literals as written: `4MiB` stays `4MiB`, `"a\"b"` stays escaped.
        ExprKind::Lit(_) | ExprKind::BadCidr(_) | ExprKind::Error => {
            src[e.span.start..e.span.end].to_owned()
        }
        ExprKind::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| expr(src, i, depth))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Match(arms) => {
            let indent = "    ".repeat(depth + 1);
            let mut s = String::from("match target {\n");
            let patterns: Vec<String> = arms
                .iter()
                .map(|arm| {
                    if arm.targets.is_empty() {
                        "_".to_owned()
                    } else {
                        arm.targets
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    }
                })
                .collect();
            let width = patterns.iter().map(String::len).max().unwrap_or(0);
            for (arm, pattern) in arms.iter().zip(&patterns) {
                s.push_str(&format!(
                    "{indent}{pattern:width$} => {},\n",
                    expr(src, &arm.value, depth + 1)
                ));
            }
            s.push_str(&"    ".repeat(depth));
            s.push('}');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn formats_canonically_and_idempotently() {
        let src = "// head\nlet a=console::default( ) ;\nlet longer  =kv::full( kv::mem(),);   // trailing\n\n\n// the job\nlet j = job x::start(a,longer,key(\"n\",4MiB), pause=100ms);\nregister( \"x\" ,[ j ] );\n// end\n";
        let once = format(src).unwrap();
        assert_eq!(
            once,
            "// head\nlet a      = console::default();\nlet longer = kv::full(kv::mem()); // trailing\n\n// the job\nlet j = job x::start(a, longer, key(\"n\", 4MiB), pause = 100ms);\nregister(\"x\", [j]);\n// end\n"
        );
        assert_eq!(format(&once).unwrap(), once, "idempotent");
    }

    #[test]
    fn match_arms_go_one_per_line_and_syntax_errors_are_refused() {
        let src = "let s = match target { unix => kv::dir(\"d\"), kvm|qemu => kv::mem(), _ => kv::mem() };\n";
        let out = format(src).unwrap();
        assert_eq!(out, "let s = match target {\n    unix       => kv::dir(\"d\"),\n    kvm | qemu => kv::mem(),\n    _          => kv::mem(),\n};\n");
        assert_eq!(format(&out).unwrap(), out);
        assert!(format("let a = ;\n").is_err());
    }

    #[test]
    fn comments_inside_a_statement_keep_it_as_written() {
        let src =
            "let a = kv::mem();\nregister(\"x\", [a//why\n]);\nlet b = 1; let c = 2; // both\n";
        let out = format(src).unwrap();
        assert!(out.contains("register(\"x\", [a//why\n]);"), "{out}");
        assert!(out.contains("// both"), "{out}");
        assert_eq!(format(&out).unwrap(), out, "idempotent");
    }

    #[test]
    fn the_examples_are_formatted() {
        for src in [
            include_str!("../../examples/hello/unikernel.nym"),
            include_str!("../../examples/kv/unikernel.nym"),
        ] {
            assert_eq!(format(src).unwrap(), src);
        }
    }
}
