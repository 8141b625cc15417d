//! # nym-tui: the notebook
//!
//! `nym tui [NOTEBOOK.md]` opens a notebook over the same
//! [`Session`](nym_repl::Session) the REPL drives: cells of graph text and
//! commands (`nym`), Rust, or Markdown; each cell's output under it; the
//! device graph drawn as boxes and lanes; the log of the running stack; a
//! status bar (target, run state, reloads, the last build and swap times) and
//! a line of keys.
//!
//! Two panes follow the running stack on demand. The *history* pane
//! (`:history NAME [KEY]` in a cell opens it, Ctrl-Y shows or hides it) takes
//! the graph's place and lists the newest changes of that store as they
//! happen. The *timeline* pane (`:trace on` opens it, Ctrl-L shows or hides
//! it) runs across the bottom: a row per job over the last seconds, marking
//! when it was polled and which device call it waited on. After a `:sim`,
//! Ctrl-G steps the log pane through the simulated nodes, one node's
//! console at a time, then every line again.
//!
//! Every binding has a Ctrl+letter form, since terminals (and tmux) send
//! nothing distinct for Ctrl+Enter or Shift+Enter. The file is Markdown
//! with fenced cells ([`nym_repl::notebook`]); outputs are not stored.
#![allow(unsafe_code)] // redirects file descriptor 2 while the terminal is owned
mod panes;

use nym_repl::notebook::{self, Cell, CellKind};
use nym_repl::session::{StoreChanges, TraceWindow};
use nym_repl::{Reply, Session, Status};
use panes::{history_lines, timeline_lines};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cell with its last output.
struct View {
    cell: Cell,
    output: Option<Reply>,
    collapsed: bool,
}

impl View {
    fn new(cell: Cell) -> View {
        View {
            cell,
            output: None,
            collapsed: false,
        }
    }
}

/// The cell being edited.
struct Edit {
    lines: Vec<String>,
    row: usize,
    /// In characters.
    col: usize,
}

impl Edit {
    /// Editing `source`, the cursor at its end.
    fn of(source: &str) -> Edit {
        let lines: Vec<String> = source.split('\n').map(str::to_owned).collect();
        let row = lines.len() - 1;
        let col = lines[row].chars().count();
        Edit { lines, row, col }
    }
}

/// A lesson beside the notebook (`nym tutorial open`): its steps in a
/// pane, checked again whenever something happens that may change them.
pub trait Guide: Send {
    /// The pane's title.
    fn title(&self) -> String;
    /// The pane's lines.
    fn lines(&self) -> Vec<GuideLine>;
    /// Something happened — `cell`, `save`, `reload`, `run` — that may
    /// change a step's outcome: check again (without blocking).
    fn changed(&self, what: &str);
}

/// One line of the lesson pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuideLine {
    /// What the line is.
    pub mark: Mark,
    /// Its text.
    pub text: String,
}

/// How a line of the lesson pane is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A step done.
    Done,
    /// The step to do now.
    Current,
    /// A step not done yet.
    Todo,
    /// A step skipped: the machine lacks what it needs.
    Skipped,
    /// What the last check of the current step said.
    Said,
    /// What the last check of the current step said, a failure.
    Failed,
}

/// The notebook's state.
pub struct App {
    session: Session,
    guide: Option<Box<dyn Guide>>,
    /// The reloads and run state the guide last heard of.
    heard: (u32, String),
    path: PathBuf,
    cells: Vec<View>,
    selected: usize,
    edit: Option<Edit>,
    dirty: bool,
    message: String,
    quit: bool,
    /// Whether the history pane shows (in the graph's place).
    history: bool,
    /// How many times `:history NAME` had named a store when last seen.
    follows_seen: u64,
    /// What the history pane shows, read on the last tick.
    changes: Result<StoreChanges, String>,
    /// Whether the timeline pane shows.
    timeline: bool,
    /// What the timeline pane shows, read on the last tick (`None`: not
    /// tracing).
    window: Option<TraceWindow>,
    /// The simulated node whose console alone the log pane shows (Ctrl-G).
    log_node: Option<String>,
}

const KEYS_NAV: &str =
    "⏎ edit ^R run ^A all ^N/^P new ^D del ^K/^J move ^T kind ^O fold ^S save ^Q quit";
/// The keys, the panes' included, where the line has room for them (the
/// panes' titles say their key otherwise).
const KEYS_NAV_WIDE: &str =
    "⏎ edit ^R run ^A all ^N/^P new ^D del ^K/^J move ^T kind ^O fold ^Y hist ^L time ^S save ^Q quit";
/// The most changes the history pane reads.
const HISTORY_ROWS: usize = 50;
/// How far back the timeline pane looks.
const TIMELINE: Duration = Duration::from_secs(5);
const KEYS_EDIT: &str = "editing: Esc done  ^R run  arrows move  ⏎ new line";

impl App {
    /// A notebook at `path` (read if it exists) over `session`.
    pub fn open(session: Session, path: &Path) -> Result<App, String> {
        let cells = match std::fs::read_to_string(path) {
            Ok(text) => notebook::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut cells: Vec<View> = cells.into_iter().map(View::new).collect();
        if cells.is_empty() {
            cells.push(View::new(Cell::new(CellKind::Nym, "")));
        }
        Ok(App {
            session,
            guide: None,
            heard: (0, String::new()),
            path: path.to_owned(),
            cells,
            selected: 0,
            edit: None,
            dirty: false,
            message: String::new(),
            quit: false,
            history: false,
            follows_seen: 0,
            changes: Err(String::new()),
            timeline: false,
            window: None,
            log_node: None,
        })
    }

    /// Shows `guide`'s lesson beside the notebook.
    pub fn with_guide(mut self, guide: Box<dyn Guide>) -> App {
        self.guide = Some(guide);
        self
    }

    /// Tells the guide what happened, if there is one.
    fn tell(&self, what: &str) {
        if let Some(g) = &self.guide {
            g.changed(what);
        }
    }

    /// Tells the guide of reloads and runs the session made on its own
    /// (a save of src/ under `:run`); called on every tick.
    pub fn tick(&mut self) {
        self.read_panes();
        let st = self.session.status();
        let now = (st.reloads, st.state.to_string());
        if now != self.heard {
            let what = if now.0 != self.heard.0 {
                "reload"
            } else {
                "run"
            };
            self.heard = now;
            self.tell(what);
        }
    }

    /// Reads what the open panes show from the session.
    fn read_panes(&mut self) {
        if self.history {
            self.changes = self.session.store_changes(HISTORY_ROWS);
        }
        if self.timeline {
            self.window = self.session.timeline(TIMELINE);
        }
    }

    /// Whether the user asked to leave.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// The outputs shown, cell by cell (for tests).
    pub fn outputs(&self) -> Vec<Option<&Reply>> {
        self.cells.iter().map(|v| v.output.as_ref()).collect()
    }

    /// Runs cell `i`.
    pub fn run_cell(&mut self, i: usize) -> bool {
        self.commit_edit();
        let Some(view) = self.cells.get(i) else {
            return false;
        };
        let tracing = self.session.tracing();
        let reply = self.session.eval_cell(&view.cell);
        let ok = !reply.error;
        // `:history NAME` and `:trace on` open the panes that follow them.
        if self.session.history_follows() != self.follows_seen {
            self.follows_seen = self.session.history_follows();
            self.history = true;
        }
        if self.session.tracing() && !tracing {
            self.timeline = true;
        }
        self.tell("cell");
        if reply.quit {
            self.quit = true;
        }
        let view = &mut self.cells[i];
        view.output = (view.cell.kind != CellKind::Markdown).then_some(reply);
        view.collapsed = false;
        ok
    }

    /// Runs every cell in order, stopping at the first that fails.
    pub fn run_all(&mut self) {
        for i in 0..self.cells.len() {
            self.selected = i;
            if !self.run_cell(i) {
                self.message = format!("stopped at cell {}", i + 1);
                return;
            }
        }
        self.message = format!("ran {} cell(s)", self.cells.len());
    }

    fn commit_edit(&mut self) {
        if let Some(e) = self.edit.take() {
            let text = e.lines.join("\n");
            if self.cells[self.selected].cell.source != text {
                self.cells[self.selected].cell.source = text;
                self.dirty = true;
            }
        }
    }

    fn save(&mut self) {
        self.commit_edit();
        let cells: Vec<Cell> = self.cells.iter().map(|v| v.cell.clone()).collect();
        match std::fs::write(&self.path, notebook::write(&cells)) {
            Ok(()) => {
                self.dirty = false;
                self.message = format!("saved {}", self.path.display());
                self.tell("save");
            }
            Err(e) => self.message = format!("cannot save {}: {e}", self.path.display()),
        }
    }

    fn insert(&mut self, at: usize) {
        self.commit_edit();
        let kind = self
            .cells
            .get(self.selected)
            .map_or(CellKind::Nym, |v| v.cell.kind);
        let kind = if kind == CellKind::Markdown {
            CellKind::Nym
        } else {
            kind
        };
        self.cells.insert(at, View::new(Cell::new(kind, "")));
        self.selected = at;
        self.edit = Some(Edit::of(""));
        self.dirty = true;
    }

    /// Handles one key.
    pub fn key(&mut self, k: KeyEvent) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        // Bindings that work in both modes.
        match (ctrl, k.code) {
            (true, KeyCode::Char('r')) => {
                let i = self.selected;
                self.message = if self.run_cell(i) {
                    String::new()
                } else {
                    format!("cell {} failed", i + 1)
                };
                return;
            }
            (true, KeyCode::Char('s')) => return self.save(),
            (true, KeyCode::Char('y')) => {
                self.history = !self.history;
                return self.read_panes();
            }
            (true, KeyCode::Char('l')) => {
                self.timeline = !self.timeline;
                return self.read_panes();
            }
            (true, KeyCode::Char('g')) => {
                let lines = self.session.log().tail(usize::MAX);
                self.log_node = panes::next_node(&lines, self.log_node.as_deref());
                return;
            }
            (true, KeyCode::Char('q')) => {
                self.quit = true;
                return;
            }
            _ => {}
        }
        if let Some(e) = &mut self.edit {
            edit_key(e, k);
            if k.code == KeyCode::Esc {
                self.commit_edit();
            }
            return;
        }
        let last = self.cells.len().saturating_sub(1);
        match (ctrl, k.code) {
            (false, KeyCode::Up | KeyCode::Char('k')) => {
                self.selected = self.selected.saturating_sub(1)
            }
            (false, KeyCode::Down | KeyCode::Char('j')) => {
                self.selected = (self.selected + 1).min(last)
            }
            (false, KeyCode::Enter) | (true, KeyCode::Char('e')) => {
                self.edit = Some(Edit::of(&self.cells[self.selected].cell.source));
            }
            (true, KeyCode::Char('a')) => self.run_all(),
            (true, KeyCode::Char('n')) | (false, KeyCode::Char('b')) => {
                self.insert(self.selected + 1)
            }
            (true, KeyCode::Char('p')) | (false, KeyCode::Char('a')) => self.insert(self.selected),
            (true, KeyCode::Char('d')) => {
                if self.cells.len() > 1 {
                    self.cells.remove(self.selected);
                    self.selected = self.selected.min(self.cells.len() - 1);
                } else {
                    self.cells[0] = View::new(Cell::new(CellKind::Nym, ""));
                }
                self.dirty = true;
            }
            (true, KeyCode::Char('k')) if self.selected > 0 => {
                self.cells.swap(self.selected, self.selected - 1);
                self.selected -= 1;
                self.dirty = true;
            }
            (true, KeyCode::Char('j')) if self.selected < last => {
                self.cells.swap(self.selected, self.selected + 1);
                self.selected += 1;
                self.dirty = true;
            }
            (true, KeyCode::Char('t')) => {
                let c = &mut self.cells[self.selected];
                c.cell.kind = match c.cell.kind {
                    CellKind::Nym => CellKind::Rust,
                    CellKind::Rust => CellKind::Markdown,
                    CellKind::Markdown => CellKind::Nym,
                };
                c.output = None;
                self.dirty = true;
            }
            (true, KeyCode::Char('o')) => {
                let c = &mut self.cells[self.selected];
                c.collapsed = !c.collapsed;
            }
            _ => {}
        }
    }

    /// Draws the whole screen.
    pub fn draw(&self, f: &mut Frame) {
        let [main, status, keys] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let main = if self.timeline {
            let lines = timeline_lines(
                self.window.as_ref(),
                main.width.saturating_sub(2) as usize,
                (main.height / 2).saturating_sub(2) as usize,
            );
            let height = (lines.len() as u16 + 2).min(main.height / 2);
            let [top, bottom] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(height)]).areas(main);
            let block = Block::new().borders(Borders::ALL).title(format!(
                " timeline · last {} s · ^L hides ",
                TIMELINE.as_secs()
            ));
            f.render_widget(Paragraph::new(lines).block(block), bottom);
            top
        } else {
            main
        };
        let [book, side] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(main);
        let side = match &self.guide {
            Some(g) => {
                let [lesson, rest] =
                    Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                        .areas(side);
                draw_guide(f, lesson, g.as_ref());
                rest
            }
            None => side,
        };
        let [graph, log] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(side);
        self.draw_cells(f, book);
        if self.history {
            self.draw_history(f, graph);
        } else {
            self.draw_graph(f, graph);
        }
        self.draw_log(f, log);
        let st = self.session.status();
        let name = self
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let bar = status_line(&name, self.dirty, self.session.target(), &st, &self.message);
        f.render_widget(
            Paragraph::new(bar).style(Style::new().bg(Color::Blue).fg(Color::White)),
            status,
        );
        let help = match self.edit {
            Some(_) => KEYS_EDIT,
            None if keys.width as usize >= KEYS_NAV_WIDE.chars().count() => KEYS_NAV_WIDE,
            None => KEYS_NAV,
        };
        f.render_widget(
            Paragraph::new(help).style(Style::new().add_modifier(Modifier::DIM)),
            keys,
        );
    }

    /// The lines a cell shows: its source (or the edit buffer), then its output.
    fn cell_lines(&self, i: usize) -> (Vec<Line<'static>>, Vec<Line<'static>>) {
        let v = &self.cells[i];
        let source: Vec<String> = match (&self.edit, i == self.selected) {
            (Some(e), true) => e.lines.clone(),
            _ => v.cell.source.split('\n').map(str::to_owned).collect(),
        };
        let src = source
            .into_iter()
            .map(|l| match v.cell.kind {
                CellKind::Markdown if l.starts_with('#') => {
                    Line::styled(l, Style::new().add_modifier(Modifier::BOLD))
                }
                _ => Line::raw(l),
            })
            .collect();
        let out = match &v.output {
            None => Vec::new(),
            Some(r) if r.text.is_empty() => Vec::new(),
            Some(r) if v.collapsed => vec![Line::styled(
                format!("[output: {} line(s), ^O shows it]", r.text.lines().count()),
                Style::new().add_modifier(Modifier::DIM),
            )],
            Some(r) => {
                let style = if r.error {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new().fg(Color::Gray)
                };
                r.text
                    .lines()
                    .map(|l| Line::styled(l.to_owned(), style))
                    .collect()
            }
        };
        (src, out)
    }

    fn draw_cells(&self, f: &mut Frame, area: Rect) {
        let shown: Vec<_> = (0..self.cells.len()).map(|i| self.cell_lines(i)).collect();
        let heights: Vec<u16> = shown
            .iter()
            .map(|(s, o)| (s.len() + o.len() + 2).min(u16::MAX as usize) as u16)
            .collect();
        // Scroll so that the selected cell ends inside the area.
        let mut first = self.selected;
        let mut used = heights[self.selected];
        while first > 0 && used + heights[first - 1] <= area.height {
            first -= 1;
            used += heights[first];
        }
        let mut y = area.y;
        let cells = shown.into_iter().zip(&heights).enumerate().skip(first);
        for (i, ((src, out), &height)) in cells {
            if y >= area.bottom() {
                break;
            }
            let h = height.min(area.bottom() - y);
            let rect = Rect::new(area.x, y, area.width, h);
            let v = &self.cells[i];
            let selected = i == self.selected;
            let border = match (selected, self.edit.is_some()) {
                (true, true) => Style::new().fg(Color::Green),
                (true, false) => Style::new().fg(Color::Yellow),
                _ => Style::new().fg(Color::DarkGray),
            };
            let mark = match &v.output {
                Some(r) if r.error => " ✗",
                Some(_) => " ✓",
                None => "",
            };
            let block = Block::new()
                .borders(Borders::ALL)
                .border_style(border)
                .title(format!(" [{}] {}{mark} ", i + 1, v.cell.kind.name()));
            let src_len = src.len() as u16;
            let mut lines = src;
            lines.extend(out);
            f.render_widget(Paragraph::new(lines).block(block), rect);
            if let (Some(e), true) = (&self.edit, selected) {
                let x = rect.x + 1 + e.col as u16;
                let cy = rect.y + 1 + (e.row as u16).min(src_len.saturating_sub(1));
                if x < rect.right() && cy < rect.bottom() {
                    f.set_cursor_position(Position::new(x, cy));
                }
            }
            y += h;
        }
    }

    fn draw_graph(&self, f: &mut Frame, area: Rect) {
        let text = match self.session.graph() {
            Some(g) => nym_graph::print::boxes(&g, area.width >= 60),
            None => "(the graph does not check yet;\n `:check` in a cell says why)".to_owned(),
        };
        let block = Block::new()
            .borders(Borders::ALL)
            .title(format!(" graph · {} ", self.session.target()));
        f.render_widget(Paragraph::new(text).block(block), area);
    }

    fn draw_history(&self, f: &mut Frame, area: Rect) {
        let width = area.width.saturating_sub(2) as usize;
        let height = area.height.saturating_sub(2) as usize;
        let (title, lines) = match &self.changes {
            Ok(c) => {
                let of = c
                    .key
                    .as_ref()
                    .map_or_else(String::new, |k| format!(" {k:?}"));
                (
                    format!(" history · {}{of} · ^Y hides ", c.store),
                    history_lines(c, width, height),
                )
            }
            Err(why) => (
                " history · ^Y hides ".to_owned(),
                vec![Line::styled(why.clone(), Style::new().fg(Color::Gray))],
            ),
        };
        f.render_widget(
            Paragraph::new(lines)
                .block(Block::new().borders(Borders::ALL).title(title))
                .wrap(ratatui::widgets::Wrap { trim: false }),
            area,
        );
    }

    fn draw_log(&self, f: &mut Frame, area: Rect) {
        let n = area.height.saturating_sub(2) as usize;
        let width = area.width.saturating_sub(2) as usize;
        let (tail, title) = match &self.log_node {
            None => (self.session.log().tail(n), " log ".to_owned()),
            Some(node) => (
                panes::node_tail(&self.session.log().tail(usize::MAX), node, n),
                format!(" log: {node} (^G next) "),
            ),
        };
        let lines: Vec<Line> = wrapped_tail(&tail, width, n)
            .into_iter()
            .map(Line::raw)
            .collect();
        f.render_widget(
            Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)),
            area,
        );
    }
}

fn draw_guide(f: &mut Frame, area: Rect, guide: &dyn Guide) {
    let lines: Vec<Line> = guide
        .lines()
        .into_iter()
        .map(|l| {
            let (mark, style) = match l.mark {
                Mark::Done => ("✓ ", Style::new().fg(Color::Green)),
                Mark::Current => ("▸ ", Style::new().add_modifier(Modifier::BOLD)),
                Mark::Todo => ("· ", Style::new().fg(Color::Gray)),
                Mark::Skipped => ("– ", Style::new().fg(Color::DarkGray)),
                Mark::Said => ("  ", Style::new().fg(Color::Gray)),
                Mark::Failed => ("  ", Style::new().fg(Color::Red)),
            };
            Line::styled(format!("{mark}{}", l.text), style)
        })
        .collect();
    let block = Block::new()
        .borders(Borders::ALL)
        .title(format!(" {} ", guide.title()));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(ratatui::widgets::Wrap { trim: false }),
        area,
    );
}

/// The last `rows` rows of `lines` wrapped at `width` columns: a long
/// line continues on the next rows, so nothing of it is cut off.
fn wrapped_tail(lines: &[String], width: usize, rows: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let chars: Vec<char> = line.chars().collect();
        if chars.is_empty() || width == 0 {
            out.push(line.clone());
            continue;
        }
        out.extend(chars.chunks(width).map(|c| c.iter().collect::<String>()));
    }
    let skip = out.len().saturating_sub(rows);
    out.split_off(skip)
}

/// The status bar's text: file, target, run state, reloads, the last build
/// and swap times, then the last message. The fixed part stays within 80
/// columns for usual values; a long message is cut at the pane's edge.
fn status_line(
    name: &str,
    dirty: bool,
    target: impl std::fmt::Display,
    st: &Status,
    message: &str,
) -> String {
    let mut bar = format!(
        " {name}{} │ {target} │ {} │ reloads {}",
        if dirty { "*" } else { "" },
        st.state,
        st.reloads
    );
    if let Some(b) = st.last_build {
        bar += &format!(" │ build {} ms", b.as_millis());
    }
    if let Some(s) = st.last_swap {
        bar += &format!(" │ swap {:.1} ms", s.as_secs_f64() * 1e3);
    }
    if !message.is_empty() {
        bar += &format!(" │ {message}");
    }
    bar
}

/// A key in the cell editor.
fn edit_key(e: &mut Edit, k: KeyEvent) {
    let byte = |line: &str, col: usize| line.char_indices().nth(col).map_or(line.len(), |(b, _)| b);
    let len = |line: &str| line.chars().count();
    match k.code {
        KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
            let at = byte(&e.lines[e.row], e.col);
            e.lines[e.row].insert(at, c);
            e.col += 1;
        }
        KeyCode::Tab => {
            let at = byte(&e.lines[e.row], e.col);
            e.lines[e.row].insert_str(at, "    ");
            e.col += 4;
        }
        KeyCode::Enter => {
            let at = byte(&e.lines[e.row], e.col);
            let rest = e.lines[e.row].split_off(at);
            e.lines.insert(e.row + 1, rest);
            e.row += 1;
            e.col = 0;
        }
        KeyCode::Backspace if e.col > 0 => {
            let at = byte(&e.lines[e.row], e.col - 1);
            e.lines[e.row].remove(at);
            e.col -= 1;
        }
        KeyCode::Backspace if e.row > 0 => {
            let line = e.lines.remove(e.row);
            e.row -= 1;
            e.col = len(&e.lines[e.row]);
            e.lines[e.row].push_str(&line);
        }
        KeyCode::Delete if e.col < len(&e.lines[e.row]) => {
            let at = byte(&e.lines[e.row], e.col);
            e.lines[e.row].remove(at);
        }
        KeyCode::Left if e.col > 0 => e.col -= 1,
        KeyCode::Right if e.col < len(&e.lines[e.row]) => e.col += 1,
        KeyCode::Up if e.row > 0 => {
            e.row -= 1;
            e.col = e.col.min(len(&e.lines[e.row]));
        }
        KeyCode::Down if e.row + 1 < e.lines.len() => {
            e.row += 1;
            e.col = e.col.min(len(&e.lines[e.row]));
        }
        KeyCode::Home => e.col = 0,
        KeyCode::End => e.col = len(&e.lines[e.row]),
        _ => {}
    }
}

/// While the notebook owns the terminal, whatever writes to stderr (cargo
/// and evcxr report progress there, a library may warn) would scribble over
/// the screen: file descriptor 2 goes into the log instead, until dropped.
struct StderrToLog {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StderrToLog {
    fn start(log: nym_repl::log::Log) -> StderrToLog {
        use std::os::fd::{AsRawFd, FromRawFd};
        let none = StderrToLog { saved: None };
        let Ok((reader, writer)) = std::io::pipe() else {
            return none;
        };
        // SAFETY: dup of a descriptor this process owns.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return none;
        }
        // SAFETY: `saved` was just made by dup and is owned by nothing else.
        let saved = unsafe { std::os::fd::OwnedFd::from_raw_fd(saved) };
        // SAFETY: dup2 between descriptors this process owns.
        if unsafe { libc::dup2(writer.as_raw_fd(), 2) } < 0 {
            return none;
        }
        drop(writer);
        // A panic's message must reach the terminal, not the log.
        let raw = saved.as_raw_fd();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // SAFETY: `raw` stays open for the process's life (see Drop).
            unsafe { libc::dup2(raw, 2) };
            previous(info);
        }));
        nym_driver::forward_lines(reader, move |line| log.push(line.trim()));
        StderrToLog { saved: Some(saved) }
    }
}

impl Drop for StderrToLog {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(saved) = self.saved.take() {
            // SAFETY: puts the saved descriptor back as 2; the pipe's last
            // writer closes, and the reading thread ends.
            unsafe { libc::dup2(saved.as_raw_fd(), 2) };
            // The panic hook may still use it: keep it open.
            std::mem::forget(saved);
        }
    }
}

/// Runs the notebook on the terminal until Ctrl-Q.
pub fn run(session: Session, path: &Path) -> std::process::ExitCode {
    run_guided(session, path, None)
}

/// Runs the notebook on the terminal until Ctrl-Q, with a lesson's steps
/// beside it when there is a `guide` (`nym tutorial open`).
pub fn run_guided(
    mut session: Session,
    path: &Path,
    guide: Option<Box<dyn Guide>>,
) -> std::process::ExitCode {
    session.record_for_lessons("tui");
    let app = App::open(session, path).map(|a| match guide {
        Some(g) => a.with_guide(g),
        None => a,
    });
    let mut app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nym: error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let stderr = StderrToLog::start(app.session.log().clone());
    let mut terminal = ratatui::init();
    let result = (|| -> std::io::Result<()> {
        while !app.quitting() {
            app.tick();
            terminal.draw(|f| app.draw(f))?;
            // A tick redraws the log and the status while nothing is typed.
            if !event::poll(Duration::from_millis(250))? {
                continue;
            }
            match event::read()? {
                Event::Key(k) => {
                    let runs = k.modifiers.contains(KeyModifiers::CONTROL)
                        && matches!(k.code, KeyCode::Char('r' | 'a'));
                    if runs {
                        // Say so before a build blocks the screen.
                        app.message = "running…".into();
                        terminal.draw(|f| app.draw(f))?;
                    }
                    app.key(k);
                }
                Event::Resize(..) => terminal.autoresize()?,
                _ => {}
            }
        }
        Ok(())
    })();
    ratatui::restore();
    app.session.shutdown();
    drop(stderr);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nym: error: the terminal: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panes::POLLED;
    use expect_test::{expect, Expect};
    use libos::kv::Versioned as _;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    const APP: &str = "pub async fn start(c: impl libos::Console, kv: impl libos::Kv) -> Result<(), libos::ConsoleError> { Ok(()) }\n";
    const GRAPH: &str = "let console = console::default();\nlet store = kv::mem();\nlet app = job app::start(console, store);\nregister(\"app\", [app]);\n";
    const NOTEBOOK: &str = "# Wiring\n\n```nym\nlet spare = kv::mem();\n:devices\n```\n\n```nym\nlet oops = kv::nope();\n```\n";

    #[test]
    fn status_bar_reports_the_last_build_and_swap_within_80_columns() {
        let st = Status {
            state: nym_repl::RunState::Running,
            reloads: 12,
            last_build: Some(Duration::from_millis(1834)),
            last_swap: Some(Duration::from_micros(850)),
            last_reload: Some("reloaded: build 1834 ms, swap 0.85 ms".into()),
        };
        let bar = status_line("notebook.md", true, "unix", &st, "");
        expect![[r#" notebook.md* │ unix │ running │ reloads 12 │ build 1834 ms │ swap 0.8 ms"#]]
            .assert_eq(&bar);
        assert!(bar.chars().count() <= 80, "{} columns", bar.chars().count());
        let idle = status_line("nb.md", false, "kvm", &Status::default(), "saved");
        expect![[r#" nb.md │ kvm │ stopped │ reloads 0 │ saved"#]].assert_eq(&idle);
    }

    fn app() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        nym_repl::write_project(dir.path(), APP, GRAPH).unwrap();
        std::fs::write(dir.path().join("nb.md"), NOTEBOOK).unwrap();
        let session = Session::open(dir.path(), None).unwrap();
        let app = App::open(session, &dir.path().join("nb.md")).unwrap();
        (dir, app)
    }

    /// The screen the notebook draws at `w`×`h`, as text.
    fn render(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| app.draw(f)).unwrap();
        let buf = t.backend().buffer();
        let mut text = String::new();
        for y in 0..h {
            let line: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    fn screen(app: &App, w: u16, h: u16, expect: Expect) {
        expect.assert_eq(&render(app, w, h));
    }

    fn key(app: &mut App, code: KeyCode, ctrl: bool) {
        let m = if ctrl {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        app.key(KeyEvent::new(code, m));
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            key(
                app,
                if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                },
                false,
            );
        }
    }

    #[test]
    fn the_opened_notebook_shows_cells_graph_log_status_and_keys() {
        let (_d, app) = app();
        screen(
            &app,
            80,
            24,
            expect![[r#"
            ┌ [1] markdown ────────────────────────────────┐┌ graph · unix ────────────────┐
            │# Wiring                                      ││┌─────────┐                   │
            └──────────────────────────────────────────────┘││ console │                   │
            ┌ [2] nym ─────────────────────────────────────┐│└─────────┘──┐                │
            │let spare = kv::mem();                        ││┌─────────┐  │                │
            │:devices                                      │││ store   │  │                │
            └──────────────────────────────────────────────┘│└─────────┘──┼─┐              │
            ┌ [3] nym ─────────────────────────────────────┐│┌─────────┐  │ │              │
            │let oops = kv::nope();                        │││ app     │◀─┴─┘              │
            └──────────────────────────────────────────────┘│└─────────┘                   │
                                                            └──────────────────────────────┘
                                                            ┌ log ─────────────────────────┐
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            │                              │
                                                            └──────────────────────────────┘
             nb.md │ unix │ stopped │ reloads 0
            ⏎ edit ^R run ^A all ^N/^P new ^D del ^K/^J move ^T kind ^O fold ^S save ^Q quit
        "#]],
        );
    }

    #[test]
    fn run_all_shows_outputs_under_their_cells_and_stops_at_the_error() {
        let (_d, mut app) = app();
        key(&mut app, KeyCode::Char('a'), true);
        let out = app.outputs();
        assert!(out[0].is_none(), "markdown has no output");
        assert!(out[1].is_some_and(|r| !r.error && r.text.contains("spare: Kv")));
        assert!(out[2].is_some_and(|r| r.error && r.text.contains("kv::nope")));
        // The binding no job uses yet is in the graph pane, marked.
        assert!(render(&app, 100, 40).contains("╎ spare (unused) ╎"));
        screen(
            &app,
            80,
            24,
            expect![[r#"
                ┌ [2] nym ✓ ───────────────────────────────────┐┌ graph · unix ────────────────┐
                │let spare = kv::mem();                        ││┌────────────────┐            │
                │:devices                                      │││ console        │            │
                │spare: Kv                                     ││└────────────────┘──┐         │
                │console  Console  console::default            ││┌────────────────┐  │         │
                │store    Kv       kv::mem                     │││ store          │  │         │
                │app      Job      app::start                  ││└────────────────┘──┼─┐       │
                │spare    Kv       kv::mem  (unused)           ││┌────────────────┐  │ │       │
                │(unused: no registered job reaches it yet)    │││ app            │◀─┴─┘       │
                └──────────────────────────────────────────────┘│└────────────────┘            │
                ┌ [3] nym ✗ ───────────────────────────────────┐└──────────────────────────────┘
                │let oops = kv::nope();                        │┌ log ─────────────────────────┐
                │nym::unknown-impl                             ││                              │
                │                                              ││                              │
                │  × unknown implementation `kv::nope`         ││                              │
                │   ╭─[input:1:12]                             ││                              │
                │ 1 │ let oops = kv::nope();                   ││                              │
                │   ·            ────┬───                      ││                              │
                │   ·                ╰── `kv` has: mem, baked, ││                              │
                │   ╰────                                      ││                              │
                └──────────────────────────────────────────────┘│                              │
                                                                └──────────────────────────────┘
                 nb.md │ unix │ stopped │ reloads 0 │ stopped at cell 3
                ⏎ edit ^R run ^A all ^N/^P new ^D del ^K/^J move ^T kind ^O fold ^S save ^Q quit
            "#]],
        );
    }

    #[test]
    fn cells_are_edited_inserted_moved_retyped_folded_deleted_and_saved() {
        let (d, mut app) = app();
        key(&mut app, KeyCode::Down, false);
        key(&mut app, KeyCode::Char('n'), true); // a new cell below the first nym cell, in edit mode
        type_text(&mut app, "let extra = kv::mem();\nextra");
        screen(
            &app,
            80,
            12,
            expect![[r#"
            ┌ [2] nym ─────────────────────────────────────┐┌ graph · unix ────────────────┐
            │let spare = kv::mem();                        ││┌─────────┐                   │
            │:devices                                      │││ console │                   │
            └──────────────────────────────────────────────┘│└─────────┘──┐                │
            ┌ [3] nym ─────────────────────────────────────┐└──────────────────────────────┘
            │let extra = kv::mem();                        │┌ log ─────────────────────────┐
            │extra                                         ││                              │
            └──────────────────────────────────────────────┘│                              │
            ┌ [4] nym ─────────────────────────────────────┐│                              │
            └──────────────────────────────────────────────┘└──────────────────────────────┘
             nb.md* │ unix │ stopped │ reloads 0
            editing: Esc done  ^R run  arrows move  ⏎ new line
        "#]],
        );
        key(&mut app, KeyCode::Char('r'), true);
        assert!(
            app.outputs()[2].is_some_and(|r| r.text.contains("extra: Kv")),
            "{:?}",
            app.outputs()[2]
        );
        // ^O folds the output away and back.
        assert!(render(&app, 80, 24).contains("extra: Kv"));
        key(&mut app, KeyCode::Char('o'), true);
        assert!(app.cells[2].collapsed);
        assert!(!render(&app, 80, 24).contains("extra: Kv"));
        key(&mut app, KeyCode::Char('o'), true);
        assert!(render(&app, 80, 24).contains("extra: Kv"));
        // ^J moves a cell down, ^K up.
        key(&mut app, KeyCode::Char('j'), true);
        assert_eq!(app.selected, 3);
        assert!(app.cells[3].cell.source.starts_with("let extra"));
        key(&mut app, KeyCode::Char('k'), true);
        key(&mut app, KeyCode::Char('k'), true); // move it up
        assert_eq!(app.selected, 1);
        // ^P opens a new cell above, to edit; Esc ends the edit.
        key(&mut app, KeyCode::Char('p'), true);
        assert_eq!((app.selected, app.cells.len()), (1, 5));
        type_text(&mut app, "let above = kv::mem();");
        key(&mut app, KeyCode::Esc, false);
        assert_eq!(app.cells[1].cell.source, "let above = kv::mem();");
        assert!(app.cells[2].cell.source.starts_with("let extra"));
        key(&mut app, KeyCode::Char('d'), true);
        assert_eq!(app.cells.len(), 4);
        assert!(app.cells[app.selected].cell.source.starts_with("let extra"));
        key(&mut app, KeyCode::Char('t'), true); // nym -> rust
        assert_eq!(app.cells[1].cell.kind, CellKind::Rust);
        key(&mut app, KeyCode::Char('t'), true);
        key(&mut app, KeyCode::Char('t'), true);
        assert_eq!(app.cells[1].cell.kind, CellKind::Nym);
        key(&mut app, KeyCode::Char('s'), true);
        let saved = std::fs::read_to_string(d.path().join("nb.md")).unwrap();
        assert_eq!(
            saved,
            "# Wiring\n\n```nym\nlet extra = kv::mem();\nextra\n```\n\n```nym\nlet spare = kv::mem();\n:devices\n```\n\n```nym\nlet oops = kv::nope();\n```\n"
        );
        key(&mut app, KeyCode::Char('d'), true);
        assert_eq!(app.cells.len(), 3);
        key(&mut app, KeyCode::Char('q'), true);
        assert!(app.quitting());
    }

    #[test]
    fn the_log_pane_wraps_long_lines_and_keeps_their_ends() {
        let (_d, app) = app();
        let long = format!("start {} end-of-a-long-line", "x".repeat(60));
        app.session.log().push("before");
        app.session.log().push(&long);
        let screen = render(&app, 80, 24);
        let log: String = screen
            .lines()
            .skip_while(|l| !l.contains("┌ log"))
            .map(|l| l.rsplit('│').nth(1).unwrap_or("").trim_end())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(log.contains("before\nstart xxx"), "{screen}");
        assert!(log.contains("end-of-a-long-line"), "{screen}");
        assert_eq!(
            wrapped_tail(&["abcdef".into(), "gh".into()], 4, 2),
            vec!["ef".to_owned(), "gh".into()]
        );
    }

    /// Ctrl-G steps the log pane through a simulation's nodes, then back
    /// to every line.
    #[test]
    fn ctrl_g_shows_one_simulated_nodes_console_at_a_time() {
        let (_d, mut app) = app();
        for line in [
            "   Compiling echo",
            "[   0.000000] a | echo: listening on port 7",
            "[   0.000000] b | echo: listening on port 7",
            "[   1.250000] b | got 4 bytes",
            "sim: 60.000000s simulated",
        ] {
            app.session.log().push(line);
        }
        let log_pane = |app: &App| {
            let screen = render(app, 100, 24);
            let title = screen
                .lines()
                .find_map(|l| l.split_once("┌ log").map(|(_, t)| t.to_owned()))
                .unwrap_or_default();
            let body: Vec<String> = screen
                .lines()
                .skip_while(|l| !l.contains("┌ log"))
                .skip(1)
                .map(|l| l.rsplit('│').nth(1).unwrap_or("").trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            (title, body)
        };
        let (title, body) = log_pane(&app);
        let all = body.concat();
        assert!(title.starts_with(" ─"), "{title}");
        assert!(
            all.contains("Compiling echo") && all.contains("b | got 4 bytes"),
            "{all}"
        );
        key(&mut app, KeyCode::Char('g'), true);
        let (title, body) = log_pane(&app);
        let a = body.concat();
        assert!(title.starts_with(": a (^G next)"), "{title}");
        assert!(
            a.contains("[   0.000000] a | echo: listening on port 7"),
            "{a}"
        );
        assert!(!a.contains("] b | ") && !a.contains("Compiling"), "{a}");
        key(&mut app, KeyCode::Char('g'), true);
        let b = log_pane(&app).1.concat();
        assert!(
            b.contains("] b | echo") && b.contains("] b | got 4 bytes"),
            "{b}"
        );
        assert!(!b.contains("] a | ") && !b.contains("sim: "), "{b}");
        key(&mut app, KeyCode::Char('g'), true);
        assert_eq!(log_pane(&app).1.concat(), all, "back to every line");
    }

    /// A wall clock that reads 12:04:05.120 and a second more each time.
    struct Clock(std::sync::atomic::AtomicU64);
    impl libos::WallClock for Clock {
        fn now_unix_ns(&self) -> u64 {
            let s = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ((12 * 3600 + 4 * 60 + 5 + s) * 1000 + 120) * 1_000_000
        }
    }

    /// The changes a real store history records of a few writes, as the
    /// session hands them to the pane.
    fn recorded_changes() -> StoreChanges {
        use libos::Kv as _;
        let h = libos::kv::History::new(
            libos::kv::Mem::new(),
            100,
            Clock(std::sync::atomic::AtomicU64::new(0)),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            h.set("greeting", b"hello").await.unwrap();
            h.set("greeting", b"hi").await.unwrap();
            h.set("visits", b"1").await.unwrap();
            h.remove("greeting").await.unwrap();
            h.set("a-rather-long-key-name", &[0, 1, 2]).await.unwrap();
        });
        StoreChanges {
            store: "state".into(),
            key: None,
            kept: h.kept().0,
            bound: h.bound(),
            rows: h
                .changes(None)
                .iter()
                .map(nym_repl::session::ChangeRow::of)
                .collect(),
        }
    }

    fn text(lines: &[Line]) -> String {
        let rows: Vec<String> = (lines.iter())
            .map(|l| l.to_string().trim_end().to_owned())
            .collect();
        rows.join("\n")
    }

    #[test]
    fn history_lines_show_the_newest_changes_that_fit_one_or_two_lines_each() {
        let c = recorded_changes();
        let wide = history_lines(&c, 60, 10);
        expect![[r#"
            #1 12:04:05.120 greeting (none) → "hello"
            #2 12:04:06.120 greeting "hello" → "hi"
            #3 12:04:07.120 visits (none) → "1"
            #4 12:04:08.120 greeting "hi" → (none)
            #5 12:04:09.120 a-rather-long-key-name (none) → <3 bytes>"#]]
        .assert_eq(&text(&wide));
        // The side pane of an 80-column screen: too narrow for one line
        // each; the oldest change that does not fit is left out, never half of one.
        let narrow = history_lines(&c, 30, 7);
        expect![[r##"
            #3 12:04:07.120 visits
              (none) → "1"
            #4 12:04:08.120 greeting
              "hi" → (none)
            #5 12:04:09.120 a-rather-long…
              (none) → <3 bytes>"##]]
        .assert_eq(&text(&narrow));
        assert!(narrow.iter().all(|l| l.width() <= 30));
        let none = StoreChanges {
            rows: Vec::new(),
            key: Some("k".into()),
            ..c
        };
        assert_eq!(
            text(&history_lines(&none, 30, 7)),
            "no change of \"k\" yet (it keeps the last 100)"
        );
    }

    #[test]
    fn history_opens_the_pane_in_the_graphs_place_and_ctrl_y_toggles_it() {
        let (_d, mut app) = app();
        app.cells[0] = View::new(Cell::new(CellKind::Nym, ":history store"));
        key(&mut app, KeyCode::Char('r'), true);
        assert!(app.history, "`:history NAME` opens the pane");
        app.tick();
        let s = render(&app, 80, 24);
        assert!(s.contains("┌ history · ^Y hides"), "{s}");
        assert!(s.contains("│store: histories are kept"), "{s}");
        assert!(!s.contains("graph · unix"), "{s}");
        key(&mut app, KeyCode::Char('y'), true);
        assert!(render(&app, 80, 24).contains("graph · unix"));
        key(&mut app, KeyCode::Char('y'), true);
        // What it shows of a store's real changes, within 80×24.
        app.changes = Ok(recorded_changes());
        screen(
            &app,
            80,
            24,
            expect![[r#"
                ┌ [1] nym ✗ ───────────────────────────────────┐┌ history · state · ^Y hides ──┐
                │:history store                                ││#2 12:04:06.120 greeting      │
                │histories are kept while the stack runs, and n││  "hello" → "hi"              │
                └──────────────────────────────────────────────┘│#3 12:04:07.120 visits        │
                ┌ [2] nym ─────────────────────────────────────┐│  (none) → "1"                │
                │let spare = kv::mem();                        ││#4 12:04:08.120 greeting      │
                │:devices                                      ││  "hi" → (none)               │
                └──────────────────────────────────────────────┘│#5 12:04:09.120 a-rather-long…│
                ┌ [3] nym ─────────────────────────────────────┐│  (none) → <3 bytes>          │
                │let oops = kv::nope();                        ││                              │
                └──────────────────────────────────────────────┘└──────────────────────────────┘
                                                                ┌ log ─────────────────────────┐
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                │                              │
                                                                └──────────────────────────────┘
                 nb.md │ unix │ stopped │ reloads 0 │ cell 1 failed
                ⏎ edit ^R run ^A all ^N/^P new ^D del ^K/^J move ^T kind ^O fold ^S save ^Q quit
            "#]],
        );
        // Where the line has room, it names the panes' keys too.
        assert!(render(&app, 100, 24).contains("^Y hist ^L time"));
    }

    /// The trace recorder is process-wide: the tests that turn it on take turns.
    static TRACING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn the_timeline_says_how_to_trace_then_draws_the_jobs_polls_and_calls() {
        use nym_unix::trace::{call, Traced};
        use std::future::Future;
        let _one = TRACING.lock().unwrap_or_else(|p| p.into_inner());
        let (_d, mut app) = app();
        key(&mut app, KeyCode::Char('l'), true);
        app.tick();
        let s = render(&app, 80, 24);
        assert!(s.contains("┌ timeline · last 5 s"), "{s}");
        assert!(s.contains("not tracing: `:trace on` in a cell"), "{s}");

        // `:trace on` in a cell: the recorder runs, and real jobs with it.
        key(&mut app, KeyCode::Char('l'), true);
        app.cells[0] = View::new(Cell::new(CellKind::Nym, ":trace on"));
        key(&mut app, KeyCode::Char('r'), true);
        assert!(app.timeline, "`:trace on` opens the timeline");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let store: std::sync::Arc<str> = "state".into();
        rt.block_on(Traced::new("job writer", async {
            for _ in 0..2 {
                let set: libos::BoxFuture<'_, ()> =
                    Box::pin(tokio::time::sleep(Duration::from_millis(1)));
                call(&store, "set", set).await;
            }
        }));
        let net: std::sync::Arc<str> = "net".into();
        let mut server = Box::pin(Traced::new("job server", async move {
            let accept: libos::BoxFuture<'_, ()> = Box::pin(std::future::pending());
            call(&net, "accept", accept).await;
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(server.as_mut().poll(&mut cx).is_pending());
        // The server waits on its call a while (no timing is asserted:
        // the wait only spreads the window over the columns).
        std::thread::sleep(Duration::from_millis(30));

        app.tick();
        let mut window = app.window.clone().expect("tracing");
        // All of it happened within the pane's last column of 5 s; the
        // window from the writer's first poll spreads it out.
        let writer = window.tracks.iter().find(|t| t.name == "job writer");
        window.from_ns = writer.expect("the writer's track").polls[0].0;
        let lines = timeline_lines(Some(&window), 78, 8);
        let rows: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let row = |name: &str| {
            rows.iter()
                .find(|r| r.starts_with(name))
                .unwrap_or_else(|| panic!("no row for {name}: {rows:#?}"))
                .clone()
        };
        let writer = row("job writer");
        let server_row = row("job server");
        // Names padded to one width, then time across.
        let bar = writer.find('│').unwrap();
        assert_eq!(server_row.find('│'), Some(bar), "{rows:#?}");
        assert!(writer.contains(POLLED), "{writer}");
        // The server waits on its call until now: the letter reaches the
        // right edge.
        let legend = rows.last().unwrap();
        assert!(legend.starts_with("█ polled  · woken"), "{legend}");
        let letter_of = |name: &str| {
            let at = legend
                .find(name)
                .unwrap_or_else(|| panic!("{name}: {legend}"));
            legend[..at].trim_end().chars().last().unwrap()
        };
        assert!(legend.contains("net.accept (waiting)"), "{legend}");
        assert!(legend.contains("state.set"), "{legend}");
        assert!(!legend.contains("state.set (waiting)"), "{legend}");
        let accept = letter_of("net.accept");
        assert!(server_row.ends_with(accept), "{server_row}");
        assert!(
            server_row.contains(&format!("{POLLED}{accept}")),
            "polled, then waits: {server_row}"
        );
        assert!(rows.iter().all(|r| r.chars().count() <= 78), "{rows:#?}");
        // On the screen, at the bottom, across the notebook's width.
        let s = render(&app, 80, 24);
        assert!(s.contains("│job writer"), "{s}");
        assert!(s.contains("net.accept (waiting)"), "{s}");
        drop(server);
        let r = app.session.eval(":trace off");
        assert!(!r.error, "{}", r.text);
        app.tick();
        assert!(render(&app, 80, 24).contains("not tracing"));
    }

    #[test]
    fn a_timeline_of_many_tracks_keeps_within_its_height() {
        let track = |name: &str| nym_repl::session::TrackActivity {
            name: name.into(),
            polls: vec![(10, 20)],
            ..Default::default()
        };
        let w = TraceWindow {
            from_ns: 0,
            to_ns: 100,
            tracks: (0..9).map(|i| track(&format!("job {i}"))).collect(),
            dropped: 0,
        };
        let lines = timeline_lines(Some(&w), 30, 5);
        expect![[r#"
            job 0│  ███
            job 1│  ███
            job 2│  ███
            … 6 more track(s)
            █ polled  · woken"#]]
        .assert_eq(&text(&lines));
        let empty = TraceWindow::default();
        assert!(text(&timeline_lines(Some(&empty), 30, 5)).starts_with("no job was polled"));
    }

    #[test]
    fn a_small_terminal_still_draws() {
        let (_d, mut app) = app();
        key(&mut app, KeyCode::Char('a'), true);
        let mut t = Terminal::new(TestBackend::new(20, 6)).unwrap();
        t.draw(|f| app.draw(f)).unwrap();
        let mut t = Terminal::new(TestBackend::new(1, 1)).unwrap();
        t.draw(|f| app.draw(f)).unwrap();
        // With both panes open, too.
        key(&mut app, KeyCode::Char('y'), true);
        key(&mut app, KeyCode::Char('l'), true);
        app.changes = Ok(recorded_changes());
        for (w, h) in [(20, 6), (1, 1), (3, 9)] {
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| app.draw(f)).unwrap();
        }
        assert!(history_lines(&recorded_changes(), 0, 0).len() <= 2);
        assert!(!timeline_lines(Some(&TraceWindow::default()), 0, 0).is_empty());
    }
}
