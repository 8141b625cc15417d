//! What the notebook's side panes show, as lines: a store's or stack's
//! history (`:history NAME`) and the timeline of the trace `:trace on`
//! records. Pure functions of the session's data, drawn by [`crate::App`].
use nym_repl::session::{CallEnd, StoreChanges, TraceWindow};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

/// The history pane's lines for `c` within `width` × `height`: the newest
/// changes that fit, oldest first, each on one line (`#3 12:04:05.120
/// greeting "hello" → "hi"`) or, where that is too wide, on two (number,
/// time and key; then old → new).
pub(crate) fn history_lines(c: &StoreChanges, width: usize, height: usize) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::Gray);
    if c.rows.is_empty() {
        let what = match &c.key {
            Some(k) => format!("no change of {k:?} yet"),
            None => "no changes yet".to_owned(),
        };
        return vec![Line::styled(
            format!("{what} (it keeps the last {})", c.bound),
            dim,
        )];
    }
    let mut groups: Vec<Vec<Line<'static>>> = Vec::new();
    for r in &c.rows {
        let number = format!("#{}", r.seq);
        let time = format!(" {} ", r.time);
        let note = r
            .note
            .as_deref()
            .map_or_else(String::new, |n| format!(" [{n}]"));
        let values = format!("{} → {}{note}", r.old, r.new);
        let head = number.chars().count() + time.chars().count();
        let head_spans = |key: String| {
            vec![
                Span::styled(number.clone(), Style::new().fg(Color::Yellow)),
                Span::styled(time.clone(), dim),
                Span::styled(key, Style::new().add_modifier(Modifier::BOLD)),
            ]
        };
        if head + r.key.chars().count() + 1 + values.chars().count() <= width {
            let mut spans = head_spans(r.key.clone());
            spans.push(Span::raw(format!(" {values}")));
            groups.push(vec![Line::from(spans)]);
        } else {
            groups.push(vec![
                Line::from(head_spans(cut(&r.key, width.saturating_sub(head)))),
                Line::raw(cut(&format!("  {values}"), width)),
            ]);
        }
    }
    let mut shown: Vec<Vec<Line<'static>>> = Vec::new();
    let mut used = 0;
    for g in groups.into_iter().rev() {
        if used + g.len() > height.max(1) {
            break;
        }
        used += g.len();
        shown.push(g);
    }
    shown.into_iter().rev().flatten().collect()
}

/// `s` cut to `width` characters, its end marked.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// In the timeline, a slice of time in which a job was polled.
pub(crate) const POLLED: char = '█';
/// In the timeline, a slice of time in which a job was woken.
const WOKEN: char = '·';
/// The letters of the device calls in the timeline, in the order they are met.
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The timeline pane's lines within `width` × `height` for `window` (none:
/// not tracing): a row per track, its name then a column per slice of
/// time, marked `█` where it was polled, with the letter of the device call
/// it waited on, or `·` where it was woken; then the legend.
pub(crate) fn timeline_lines(
    window: Option<&TraceWindow>,
    width: usize,
    height: usize,
) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::Gray);
    let Some(w) = window else {
        return vec![Line::styled(
            "not tracing: `:trace on` in a cell records the jobs' polls and device calls (`:trace off` writes them to a file)",
            dim,
        )];
    };
    let mut out = Vec::new();
    if w.dropped > 0 {
        out.push(Line::styled(
            format!(
                "the trace is full ({} events dropped): `:trace off`, then `:trace on` starts anew",
                w.dropped
            ),
            Style::new().fg(Color::Red),
        ));
    }
    if w.tracks.is_empty() {
        out.push(Line::styled(
            "no job was polled or waited on a device in this time (`:run` starts the stack)",
            dim,
        ));
        return out;
    }
    // The calls' names, each once, in the order they are met; and which
    // of them wait still.
    let mut names: Vec<(&str, bool)> = Vec::new();
    for c in w.tracks.iter().flat_map(|t| &t.calls) {
        let waiting = c.end == CallEnd::Waiting;
        match names.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, w)) => *w |= waiting,
            None => names.push((&c.name, waiting)),
        }
    }
    let letter = |name: &str| {
        (names.iter().position(|(n, _)| *n == name))
            .and_then(|i| LETTERS.get(i))
            .map_or('?', |b| *b as char)
    };
    let mut legend = vec![format!("{POLLED} polled  {WOKEN} woken")];
    for (name, waiting) in &names {
        let item = format!(
            "{} {name}{}",
            letter(name),
            if *waiting { " (waiting)" } else { "" }
        );
        match legend.last_mut() {
            Some(l) if l.chars().count() + 2 + item.chars().count() <= width => {
                l.push_str("  ");
                l.push_str(&item);
            }
            _ => legend.push(item),
        }
    }
    let name_width = (w.tracks.iter().map(|t| t.name.chars().count()))
        .max()
        .unwrap_or(0)
        .min(16)
        .min(width / 3);
    let cols = width.saturating_sub(name_width + 1).max(1);
    let span = w.to_ns.saturating_sub(w.from_ns).max(1);
    let col = |t: u64| {
        let c = u128::from(t.saturating_sub(w.from_ns)) * cols as u128 / u128::from(span);
        (c as usize).min(cols - 1)
    };
    let rows = height.saturating_sub(legend.len() + out.len()).max(1);
    let (shown, more) = match w.tracks.len() {
        n if n <= rows => (n, 0),
        n => (rows - 1, n - (rows - 1)),
    };
    for t in &w.tracks[..shown] {
        let mut cells = vec![' '; cols];
        for &at in &t.wakes {
            cells[col(at)] = WOKEN;
        }
        let mut mark = |from: u64, to: u64, glyph: char| {
            let (a, b) = (col(from), col(to));
            cells[a..=b.max(a)].fill(glyph);
        };
        for c in &t.calls {
            mark(c.from_ns, c.to_ns, letter(&c.name));
        }
        for &(from, to) in &t.polls {
            mark(from, to, POLLED);
        }
        out.push(Line::from(vec![
            Span::styled(
                format!("{:<name_width$}", cut(&t.name, name_width)),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled("│", dim),
            Span::raw(cells.into_iter().collect::<String>()),
        ]));
    }
    if more > 0 {
        out.push(Line::styled(format!("… {more} more track(s)"), dim));
    }
    out.extend(legend.into_iter().map(|l| Line::styled(l, dim)));
    out
}

/// The node a simulation's console line is from: `[   1.500000] a | text`.
fn node_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (time, rest) = rest.split_once("] ")?;
    if !time.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let (node, _) = rest.split_once(" | ")?;
    (!node.is_empty() && !node.contains(' ')).then_some(node)
}

/// The node after `current` among those the log's simulation lines name,
/// in name order; `None` (every line) after the last.
pub(crate) fn next_node(lines: &[String], current: Option<&str>) -> Option<String> {
    let nodes: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| node_of(l)).collect();
    match current {
        None => nodes.first().map(|n| (*n).to_owned()),
        Some(c) => nodes
            .range::<&str, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
            .next()
            .map(|n| (*n).to_owned()),
    }
}

/// The last `n` lines of node `node`'s console.
pub(crate) fn node_tail(lines: &[String], node: &str, n: usize) -> Vec<String> {
    let mine: Vec<String> = lines
        .iter()
        .filter(|l| node_of(l) == Some(node))
        .cloned()
        .collect();
    mine[mine.len().saturating_sub(n)..].to_vec()
}
