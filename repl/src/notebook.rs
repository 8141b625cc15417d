//! The notebook file format: Markdown whose fenced ```` ```nym ```` and
//! ```` ```rust ```` blocks are code cells, and whose other text is
//! Markdown cells. It diffs well in git and opens in any editor; outputs
//! are not stored. `nym tui FILE.md` opens one, `:save FILE.md` in the
//! REPL writes one, `:load FILE.md` runs one.

/// What a cell holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Graph statements and session commands.
    Nym,
    /// Rust, evaluated with evcxr.
    Rust,
    /// Prose.
    Markdown,
}

impl CellKind {
    /// The fence's language tag, or "markdown".
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Nym => "nym",
            CellKind::Rust => "rust",
            CellKind::Markdown => "markdown",
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Its kind.
    pub kind: CellKind,
    /// Its text, without the fences.
    pub source: String,
}

impl Cell {
    /// A cell of `kind` holding `source`.
    pub fn new(kind: CellKind, source: impl Into<String>) -> Cell {
        Cell {
            kind,
            source: source.into(),
        }
    }
}

/// Reads a notebook. Every input is a notebook: text outside fences is
/// Markdown, a fence with another language stays in its Markdown cell, and
/// an unclosed fence runs to the end of the file.
pub fn parse(text: &str) -> Vec<Cell> {
    let mut cells = Vec::new();
    let mut prose = String::new();
    let mut lines = text.lines();
    let flush = |prose: &mut String, cells: &mut Vec<Cell>| {
        let t = prose.trim_matches('\n');
        if !t.trim().is_empty() {
            cells.push(Cell::new(CellKind::Markdown, t));
        }
        prose.clear();
    };
    while let Some(line) = lines.next() {
        let kind = match line.trim_end().strip_prefix("```") {
            Some("nym") => Some(CellKind::Nym),
            Some("rust") => Some(CellKind::Rust),
            _ => None,
        };
        let Some(kind) = kind else {
            // A foreign fence is prose, and so is everything up to its end.
            if line.trim_start().starts_with("```") {
                prose.push_str(line);
                prose.push('\n');
                for inner in lines.by_ref() {
                    prose.push_str(inner);
                    prose.push('\n');
                    if inner.trim() == "```" {
                        break;
                    }
                }
                continue;
            }
            prose.push_str(line);
            prose.push('\n');
            continue;
        };
        flush(&mut prose, &mut cells);
        let mut code = Vec::new();
        for inner in lines.by_ref() {
            if inner.trim_end() == "```" {
                break;
            }
            code.push(inner);
        }
        cells.push(Cell::new(kind, code.join("\n")));
    }
    flush(&mut prose, &mut cells);
    cells
}

/// Writes a notebook: cells separated by blank lines, code fenced.
pub fn write(cells: &[Cell]) -> String {
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match c.kind {
            CellKind::Markdown => out.push_str(c.source.trim_matches('\n')),
            kind => {
                out.push_str("```");
                out.push_str(kind.name());
                out.push('\n');
                out.push_str(c.source.trim_matches('\n'));
                out.push_str("\n```");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip() {
        let text = "# Title\n\nSome prose.\n\n```nym\nlet kv = kv::mem();\n:devices\n```\n\n```rust\nlet x = 1 + 1;\nx\n```\n\nMore prose.\n";
        let cells = parse(text);
        assert_eq!(
            cells,
            [
                Cell::new(CellKind::Markdown, "# Title\n\nSome prose."),
                Cell::new(CellKind::Nym, "let kv = kv::mem();\n:devices"),
                Cell::new(CellKind::Rust, "let x = 1 + 1;\nx"),
                Cell::new(CellKind::Markdown, "More prose."),
            ]
        );
        assert_eq!(write(&cells), text);
        assert_eq!(parse(&write(&cells)), cells);
    }

    #[test]
    fn foreign_fences_are_prose_and_unclosed_fences_end_the_file() {
        let cells = parse("```sh\nnym run\n```\n```nym\nlet a = kv::mem();");
        assert_eq!(
            cells,
            [
                Cell::new(CellKind::Markdown, "```sh\nnym run\n```"),
                Cell::new(CellKind::Nym, "let a = kv::mem();"),
            ]
        );
        assert!(parse("").is_empty());
        assert_eq!(parse("```nym\n```"), [Cell::new(CellKind::Nym, "")]);
    }
}
