//! Views of a resolved graph: the text of `nym graph` and Graphviz DOT.
use crate::check::{GArg, Graph};
use std::fmt::Write;

fn arg_text(g: &Graph, a: &GArg) -> String {
    match a {
        GArg::Node(n) => g.nodes[*n].label.clone(),
        GArg::Value(v) => v.to_string(),
        GArg::Key(k) => format!("key {}", g.keys[*k].name),
    }
}

fn args_text(g: &Graph, args: &[GArg]) -> String {
    args.iter()
        .map(|a| arg_text(g, a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The graph as `nym graph` prints it: devices in construction order, keys,
/// then the jobs that run.
pub fn text(g: &Graph) -> String {
    let mut out = format!("unikernel {:?} for {}\n", g.name, g.target);
    let rows: Vec<(String, String, String)> = g
        .nodes
        .iter()
        .map(|n| {
            (
                n.label.clone(),
                format!("{}({})", n.imp.name, args_text(g, &n.args)),
                n.imp.provides.to_string(),
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    out.push_str("\ndevices\n");
    for (i, (label, app, kind)) in rows.iter().enumerate() {
        let _ = writeln!(out, "  #{i:<2} {label:<w0$}  {app:<w1$}  : {kind}");
    }
    if !g.keys.is_empty() {
        out.push_str("\nkeys\n");
        for k in &g.keys {
            let _ = writeln!(
                out,
                "  --{} <{}>  default {}",
                k.name,
                k.ty.name(),
                k.default
            );
        }
    }
    out.push_str("\njobs\n");
    for &j in &g.registered {
        let job = &g.jobs[j];
        let _ = writeln!(out, "  {}({})", job.sig.path, args_text(g, &job.args));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph in Graphviz DOT: devices as boxes, keys as ellipses, jobs as
/// rounded boxes, an edge from each argument to what it feeds.
pub fn dot(g: &Graph) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"monospace\" fontsize=10];\n",
        escape(&g.name)
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let values: Vec<String> = n
            .args
            .iter()
            .filter_map(|a| match a {
                GArg::Value(v) => Some(v.to_string()),
                _ => None,
            })
            .collect();
        let extra = if values.is_empty() {
            String::new()
        } else {
            format!("\\n({})", escape(&values.join(", ")))
        };
        let _ = writeln!(
            out,
            "  n{i} [shape=box label=\"{}\\n{}: {}{extra}\"];",
            escape(&n.label),
            escape(n.imp.name),
            n.imp.provides
        );
    }
    for (i, k) in g.keys.iter().enumerate() {
        let _ = writeln!(
            out,
            "  k{i} [shape=ellipse label=\"--{}\\n{} = {}\"];",
            escape(&k.name),
            k.ty.name(),
            escape(&k.default.to_string())
        );
    }
    for &j in &g.registered {
        let _ = writeln!(
            out,
            "  j{j} [shape=box style=\"rounded,bold\" label=\"job {}\"];",
            escape(&g.jobs[j].sig.path)
        );
    }
    let edges = |out: &mut String, args: &[GArg], to: &str| {
        for a in args {
            match a {
                GArg::Node(n) => {
                    let _ = writeln!(out, "  n{n} -> {to};");
                }
                GArg::Key(k) => {
                    let _ = writeln!(out, "  k{k} -> {to};");
                }
                GArg::Value(_) => {}
            }
        }
    };
    for (i, n) in g.nodes.iter().enumerate() {
        edges(&mut out, &n.args, &format!("n{i}"));
    }
    for &j in &g.registered {
        edges(&mut out, &g.jobs[j].args, &format!("j{j}"));
    }
    out.push_str("}\n");
    out
}
