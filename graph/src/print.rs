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

/// The graph drawn as boxes and arrows in text, for terminals: one box per
/// device and registered job, in dependency order from the top, and lanes
/// on the right carrying each device to the boxes that take it (`◀`).
/// With `detail`, each box names its implementation too. Bindings no
/// registered job reaches yet ([`Graph::unused`]) follow, in dashed boxes
/// marked `(unused)`, with no lanes: the user is still wiring them.
///
/// ```text
/// ┌──────────────────────────┐
/// │ console: console::default│──┐
/// └──────────────────────────┘  │
/// ┌──────────────────────────┐  │
/// │ hello: job hello::start  │◀─┘
/// └──────────────────────────┘
/// ```
pub fn boxes(g: &Graph, detail: bool) -> String {
    let text = |label: &str, what: String| {
        if detail {
            format!("{label}: {what}")
        } else {
            label.to_owned()
        }
    };
    let mut items: Vec<(String, Vec<usize>)> = g
        .nodes
        .iter()
        .map(|n| (text(&n.label, n.imp.name.to_owned()), inputs(&n.args)))
        .collect();
    for &j in &g.registered {
        let job = &g.jobs[j];
        items.push((
            text(&job.label, format!("job {}", job.sig.path)),
            inputs(&job.args),
        ));
    }
    let unused: Vec<String> = g
        .unused
        .iter()
        .map(|u| format!("{} (unused)", text(&u.label, u.what.clone())))
        .collect();
    let inner = items
        .iter()
        .map(|(t, _)| t)
        .chain(&unused)
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0);
    let width = inner + 4;
    // Each producer's lane runs from under its box to its last consumer.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (c, (_, ins)) in items.iter().enumerate() {
        for &p in ins {
            consumers[p].push(c);
        }
    }
    let mut lane_of = vec![None; items.len()];
    let mut lane_end: Vec<usize> = Vec::new();
    for p in 0..items.len() {
        let Some(&last) = consumers[p].last() else {
            continue;
        };
        let (start, end) = (3 * p + 2, 3 * last + 1);
        let lane = match lane_end.iter().position(|&e| e < start) {
            Some(l) => {
                lane_end[l] = end;
                l
            }
            None => {
                lane_end.push(end);
                lane_end.len() - 1
            }
        };
        lane_of[p] = Some(lane);
    }
    let cols = width + 2 + 2 * lane_end.len();
    let mut grid = vec![vec![' '; cols]; 3 * items.len()];
    for (i, (text, _)) in items.iter().enumerate() {
        let pad = inner - text.chars().count();
        let rows = [
            format!("┌{}┐", "─".repeat(width - 2)),
            format!("│ {text}{} │", " ".repeat(pad)),
            format!("└{}┘", "─".repeat(width - 2)),
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, ch) in row.chars().enumerate() {
                grid[3 * i + r][c] = ch;
            }
        }
    }
    let x_of = |lane: usize| width + 2 + 2 * lane;
    let cross = |cell: &mut char, ch: char| {
        *cell = match (*cell, ch) {
            ('│', '─') | ('─', '│') => '┼',
            (' ', c) => c,
            (old, _) => old,
        }
    };
    for p in 0..items.len() {
        let Some(lane) = lane_of[p] else { continue };
        let x = x_of(lane);
        let (start, end) = (3 * p + 2, 3 * consumers[p].last().copied().unwrap_or(p) + 1);
        for row in grid.iter_mut().take(end).skip(start + 1) {
            cross(&mut row[x], '│');
        }
        for cell in &mut grid[start][width..x] {
            cross(cell, '─');
        }
        grid[start][x] = '┐';
    }
    for (c, (_, ins)) in items.iter().enumerate() {
        let row = 3 * c + 1;
        let lanes: Vec<(usize, bool)> = ins
            .iter()
            .filter_map(|&p| lane_of[p].map(|l| (x_of(l), consumers[p].last() == Some(&c))))
            .collect();
        let Some(far) = lanes.iter().map(|l| l.0).max() else {
            continue;
        };
        grid[row][width] = '◀';
        for cell in &mut grid[row][width + 1..far] {
            cross(cell, '─');
        }
        for &(x, ends) in &lanes {
            grid[row][x] = match (x == far, ends) {
                (true, true) => '┘',
                (true, false) => '┤',
                (false, true) => '┴',
                (false, false) => '┼',
            };
        }
    }
    let mut out = String::new();
    for row in grid {
        let line: String = row.into_iter().collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for text in &unused {
        let pad = inner - text.chars().count();
        let _ = writeln!(out, "┌{}┐", "╌".repeat(width - 2));
        let _ = writeln!(out, "╎ {text}{} ╎", " ".repeat(pad));
        let _ = writeln!(out, "└{}┘", "╌".repeat(width - 2));
    }
    out
}

/// The nodes `args` takes, each once, in order.
fn inputs(args: &[GArg]) -> Vec<usize> {
    let mut v: Vec<usize> = Vec::new();
    for a in args {
        if let GArg::Node(n) = a {
            if !v.contains(n) {
                v.push(*n);
            }
        }
    }
    v
}
