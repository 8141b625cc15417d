//! The checks that read: the graph through nym's own checker, files, the
//! session's journal, a notebook replayed, an answer. (The checks that run
//! something are in `runs.rs`.)
use crate::check::{
    AnswerCheck, DotCheck, Failure, FileCheck, GraphCheck, NotebookCheck, SessionCheck,
    UnchangedCheck,
};
use crate::engine::{Context, STATE};
use nym_graph::check::GArg;
use nym_graph::{analyze, diagnostic, Analysis, Graph, RustCrate, Target};
use sha2::{Digest, Sha256};

/// The graph file every lesson uses.
pub(crate) const GRAPH: &str = "unikernel.nym";

/// The graph's text and the application crate its jobs come from.
fn source(cx: &Context<'_>) -> Result<(String, Option<RustCrate>), Failure> {
    let src = cx.read(GRAPH)?;
    let krate = RustCrate::find(&cx.dir.join(GRAPH)).map(|(k, _)| k);
    Ok((src, krate))
}

/// `nym check`'s report of `a`, as it prints it.
fn report(a: &Analysis, src: &str, only: Option<&str>) -> Option<String> {
    let diags: Vec<_> = (a.diagnostics().iter())
        .filter(|d| only.is_none_or(|c| d.code == c))
        .cloned()
        .collect();
    (!diags.is_empty()).then(|| diagnostic::render(&diags, GRAPH, src, false))
}

fn target(name: &str) -> Result<Target, Failure> {
    Target::from_name(name).ok_or_else(|| {
        Failure::new(
            "a target the lesson names",
            format!("`{name}` (a bug in the lesson)"),
        )
    })
}

pub(crate) fn graph(cx: &mut Context<'_>, c: &GraphCheck) -> Result<(), Failure> {
    let (src, krate) = source(cx)?;
    let targets = if c.targets.is_empty() {
        vec![Target::Unix]
    } else {
        c.targets
            .iter()
            .map(|t| target(t))
            .collect::<Result<_, _>>()?
    };
    let wants_graph =
        !c.node.is_empty() || !c.key.is_empty() || c.shared.is_some() || !c.job.is_empty();
    for t in targets {
        let on = if t == Target::Unix {
            String::new()
        } else {
            format!(" on {t}")
        };
        let a = analyze(&src, t, krate.as_ref());
        let errors: Vec<_> = a.diagnostics().iter().filter(|d| d.is_error()).collect();
        for code in &c.without {
            if let Some(d) = errors.iter().find(|d| d.code == code) {
                return Err(Failure {
                    diagnostics: report(&a, &src, Some(code)),
                    expected: format!("no `{code}` error{on}"),
                    seen: d.message.clone(),
                });
            }
        }
        if c.without.is_empty() || wants_graph {
            if let Some(first) = errors.first() {
                return Err(Failure {
                    diagnostics: report(&a, &src, None),
                    expected: format!("`nym check{}` to pass", flag(t)),
                    seen: format!("{} error(s), the first: {}", errors.len(), first.message),
                });
            }
        }
        let warnings: Vec<_> = a.diagnostics().iter().filter(|d| !d.is_error()).collect();
        if !c.warnings && errors.is_empty() && c.without.is_empty() {
            if let Some(w) = warnings.first() {
                return Err(Failure {
                    diagnostics: report(&a, &src, None),
                    expected: format!("no warnings{on}"),
                    seen: w.message.clone(),
                });
            }
        }
        if let Some(g) = a.graph() {
            shape(g, c, &on)?;
        }
    }
    Ok(())
}

fn flag(t: Target) -> String {
    if t == Target::Unix {
        String::new()
    } else {
        format!(" --target {t}")
    }
}

/// The graph's nodes, keys and jobs as the check wants them.
fn shape(g: &Graph, c: &GraphCheck, on: &str) -> Result<(), Failure> {
    let imp_of = |i: usize| g.nodes[i].imp.name;
    for want in &c.node {
        let found = g.nodes.iter().any(|n| {
            n.imp.name == want.imp
                && want.label.as_ref().is_none_or(|l| &n.label == l)
                && want.wraps.as_ref().is_none_or(|w| {
                    n.args
                        .iter()
                        .any(|a| matches!(a, GArg::Node(i) if imp_of(*i) == w))
                })
        });
        let what = match (&want.label, &want.wraps) {
            (Some(l), _) => format!("`{l}` made by `{}`", want.imp),
            (None, Some(w)) => format!("a `{}` wrapping a `{w}`", want.imp),
            (None, None) => format!("a `{}` device", want.imp),
        };
        if found == want.absent {
            let seen = nodes(g);
            return Err(if want.absent {
                Failure::new(
                    format!("no {what}{on}"),
                    format!("the graph has one: {seen}"),
                )
            } else {
                Failure::new(format!("{what}{on}"), format!("the devices are {seen}"))
            });
        }
    }
    for want in &c.key {
        let Some(k) = g.keys.iter().find(|k| k.name == want.name) else {
            let names: Vec<_> = g.keys.iter().map(|k| k.name.as_str()).collect();
            return Err(Failure::new(
                format!("a key `{}`{on}", want.name),
                if names.is_empty() {
                    "no keys".to_owned()
                } else {
                    format!("keys {}", names.join(", "))
                },
            ));
        };
        if let Some(ty) = &want.ty {
            if k.ty.name() != ty {
                return Err(Failure::new(
                    format!("key `{}` to be a {ty}", k.name),
                    format!("a {}", k.ty.name()),
                ));
            }
        }
        if let Some(default) = &want.default {
            let now = k.default.to_string();
            if &now != default {
                return Err(Failure::new(
                    format!("key `{}` to default to {default}", k.name),
                    format!("it defaults to {now}"),
                ));
            }
        }
    }
    if let Some(shared) = &c.shared {
        let mut key = None;
        for imp in &shared.imps {
            let nodes: Vec<_> = g.nodes.iter().filter(|n| n.imp.name == imp).collect();
            if nodes.is_empty() {
                return Err(Failure::new(
                    format!("a `{imp}` device{on}"),
                    format!("the devices are {}", self::nodes(g)),
                ));
            }
            for n in nodes {
                let param = n.imp.params.iter().position(|p| p.name == shared.param);
                let arg = param.and_then(|i| n.args.get(i));
                let Some(GArg::Key(k)) = arg else {
                    return Err(Failure::new(
                        format!("`{}`'s {} to come from a key", n.label, shared.param),
                        format!(
                            "{} = {}",
                            shared.param,
                            arg.map_or("nothing".into(), |a| show(g, a))
                        ),
                    ));
                };
                if key.is_some_and(|first| first != *k) {
                    return Err(Failure::new(
                        format!(
                            "one key for the {} of {}",
                            shared.param,
                            shared.imps.join(" and ")
                        ),
                        "two different keys".to_owned(),
                    ));
                }
                key = Some(*k);
            }
        }
    }
    for want in &c.job {
        let found = g.registered.iter().any(|&j| {
            g.jobs[j]
                .args
                .iter()
                .any(|a| matches!(a, GArg::Node(i) if imp_of(*i) == want.takes))
        });
        if !found {
            return Err(Failure::new(
                format!("the registered job to take a `{}` device{on}", want.takes),
                format!("the devices are {}", nodes(g)),
            ));
        }
    }
    Ok(())
}

fn nodes(g: &Graph) -> String {
    g.nodes
        .iter()
        .map(|n| format!("{} = {}", n.label, n.imp.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(g: &Graph, a: &GArg) -> String {
    match a {
        GArg::Node(i) => g.nodes[*i].label.clone(),
        GArg::Value(v) => v.to_string(),
        GArg::Key(k) => format!("key(\"{}\")", g.keys[*k].name),
    }
}

pub(crate) fn fmt(cx: &mut Context<'_>) -> Result<(), Failure> {
    let src = cx.read(GRAPH)?;
    match nym_graph::format::format(&src) {
        Ok(formatted) if formatted == src => Ok(()),
        Ok(formatted) => {
            let d = crate::diff::unified(GRAPH, &src, &formatted);
            Err(Failure::new(
                "`nym fmt --check` to pass",
                format!("it would change the file:\n{d}"),
            ))
        }
        Err(diags) => Err(Failure {
            diagnostics: Some(diagnostic::render(&diags, GRAPH, &src, false)),
            expected: "a graph `nym fmt` can format".into(),
            seen: "syntax errors".into(),
        }),
    }
}

pub(crate) fn dot(cx: &mut Context<'_>, c: &DotCheck) -> Result<(), Failure> {
    let (src, krate) = source(cx)?;
    let a = analyze(&src, Target::Unix, krate.as_ref());
    let Some(g) = a.graph() else {
        return Err(Failure {
            diagnostics: report(&a, &src, None),
            expected: "a graph that checks".into(),
            seen: "errors".into(),
        });
    };
    let file = cx.read(&c.path)?;
    let want = nym_graph::print::dot(g);
    if file.trim() == want.trim() {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "{} to hold `nym graph --dot` of the graph as it is now",
            c.path
        ),
        if file.trim_start().starts_with("digraph") {
            "the DOT of another graph (run the command again after changing the graph)".into()
        } else {
            format!("{} bytes that are not DOT", file.len())
        },
    ))
}

pub(crate) fn file(cx: &mut Context<'_>, c: &FileCheck) -> Result<(), Failure> {
    let text = cx.read(&c.path)?;
    if let Some(missing) = c.contains.iter().find(|s| !text.contains(s.as_str())) {
        return Err(Failure::new(
            format!("{} to hold {missing:?}", c.path),
            "it does not".to_owned(),
        ));
    }
    if let Some(there) = c.lacks.iter().find(|s| text.contains(s.as_str())) {
        return Err(Failure::new(
            format!("{} not to hold {there:?}", c.path),
            "it does".to_owned(),
        ));
    }
    Ok(())
}

pub(crate) fn unchanged(cx: &mut Context<'_>, c: &UnchangedCheck) -> Result<(), Failure> {
    let now = std::fs::read(cx.dir.join(&c.path)).ok();
    let start = cx.laid_out(&c.path);
    if now == start {
        return Ok(());
    }
    let seen = match (&now, &start) {
        (None, _) => "it is gone".to_owned(),
        (Some(now), Some(start)) => crate::diff::unified(
            &c.path,
            &String::from_utf8_lossy(start),
            &String::from_utf8_lossy(now),
        ),
        (Some(_), None) => "a file the lesson did not lay out".to_owned(),
    };
    Err(Failure::new(
        format!(
            "{} as the lesson laid it out (this step changes only the graph)",
            c.path
        ),
        seen,
    ))
}

pub(crate) fn session(cx: &mut Context<'_>, c: &SessionCheck) -> Result<(), Failure> {
    let path = cx.dir.join(STATE).join(nym_repl::journal::FILE);
    let events = nym_repl::journal::read(&path);
    let mut rest = events.iter();
    for want in &c.events {
        let found = rest.by_ref().any(|e| {
            !e.error
                && want
                    .input
                    .as_ref()
                    .is_none_or(|i| e.input.contains(i.as_str()))
                && want.via.as_ref().is_none_or(|v| &e.via == v)
                && want.reply.iter().all(|r| e.reply.contains(r.as_str()))
        });
        if !found {
            let last = events.iter().rev().find(|e| {
                want.input
                    .as_ref()
                    .is_none_or(|i| e.input.contains(i.as_str()))
            });
            return Err(Failure::new(
                want.expect.clone(),
                match last {
                    Some(e) => format!(
                        "the last `{}` answered:\n{}",
                        e.input.trim(),
                        e.reply.trim()
                    ),
                    None if events.is_empty() => {
                        "no session in this folder yet (start `nym repl` here)".to_owned()
                    }
                    None => format!("{} evaluations, none of them that", events.len()),
                },
            ));
        }
    }
    Ok(())
}

pub(crate) fn notebook(cx: &mut Context<'_>, c: &NotebookCheck) -> Result<(), Failure> {
    let text = cx.read(&c.path)?;
    let cells = nym_repl::notebook::parse(&text);
    let nym_cells: Vec<_> = cells
        .iter()
        .filter(|cell| cell.kind == nym_repl::CellKind::Nym)
        .collect();
    if nym_cells.is_empty() {
        return Err(Failure::new(
            format!(
                "{} to hold ```nym cells (`:save {}` in the session)",
                c.path, c.path
            ),
            "none".to_owned(),
        ));
    }
    (cx.say)(&format!(
        "replaying {} cells of {}",
        nym_cells.len(),
        c.path
    ));
    let mut session = nym_repl::Session::open(cx.dir, None)
        .map_err(|e| Failure::new("a session over the lesson", e.to_string()))?;
    for cell in &nym_cells {
        if is_run(&cell.source) {
            continue;
        }
        let reply = session.eval(&cell.source);
        if reply.error {
            return Err(Failure::new(
                format!("every cell of {} to replay", c.path),
                format!("`{}` answered:\n{}", cell.source.trim(), reply.text),
            ));
        }
    }
    let g = session.graph();
    for imp in &c.imps {
        if !g
            .as_ref()
            .is_some_and(|g| g.nodes.iter().any(|n| n.imp.name == imp))
        {
            return Err(Failure::new(
                format!("the graph, once {} is replayed, to have a `{imp}`", c.path),
                g.map_or("a graph with errors".into(), |g| {
                    format!("the devices are {}", nodes(&g))
                }),
            ));
        }
    }
    Ok(())
}

/// Whether a cell starts or boots something (the check replays the graph,
/// it does not run it).
fn is_run(cell: &str) -> bool {
    cell.lines().any(|l| {
        let l = l.trim_start();
        [
            ":run", ":boot", ":build", ":rust", ":load", ":save", ":quit",
        ]
        .iter()
        .any(|c| l.starts_with(c))
    })
}

/// The hash an answer is compared by: trimmed and in lower case, and a
/// number in decimal (`0x63a3…` and `1671…` are the same answer).
pub fn answer_hash(answer: &str) -> String {
    let text = answer.trim().to_lowercase();
    let number = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse::<u64>().ok(),
    };
    let text = number.map_or(text, |n| n.to_string());
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn answer(cx: &mut Context<'_>, c: &AnswerCheck) -> Result<(), Failure> {
    let Some(given) = cx.answer else {
        return Err(Failure::new(
            format!(
                "an answer: {} (`nym tutorial check --answer VALUE`)",
                c.question
            ),
            "no answer given".to_owned(),
        ));
    };
    if answer_hash(given) == c.sha256 {
        Ok(())
    } else {
        Err(Failure::new(
            c.question.clone(),
            format!("{given:?}, which is not it"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::answer_hash;

    #[test]
    fn an_answer_is_the_same_in_decimal_hex_and_with_spaces_around() {
        let want = answer_hash("1671665067");
        assert_eq!(answer_hash(" 0x63A3_95AB \n"), want);
        assert_eq!(answer_hash("1_671_665_067"), want);
        assert_ne!(answer_hash("1671665068"), want);
        assert_eq!(answer_hash("Ada"), answer_hash("ada"));
    }
}
