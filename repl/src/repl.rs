//! `nym repl`: the session behind a rustyline prompt.
//!
//! Tab completes commands, implementations, bindings and keys (what fits
//! the parameter under the cursor when the checker knows it); a grey hint
//! finishes the one candidate left; graph text is coloured; a statement
//! stays open over several lines until its brackets close and its `;`
//! comes; history is kept in `~/.local/state/nym/history` (or
//! `$NYM_HISTORY`). Ctrl-C cancels the line (or an evaluation), Ctrl-D
//! leaves. Logs from the running stack are printed above the prompt.
//!
//! Standard input that is not a terminal is read line by line with the
//! same rules, which suits scripts and tests.
use crate::session::{is_complete, Session, COMMANDS};
use nym_graph::ide::completions;
use nym_graph::lexer::{lex, TokenKind};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the helper knows of the session: refreshed after each evaluation.
#[derive(Default)]
struct Known {
    source: String,
    target: Option<nym_graph::Target>,
    krate: Option<nym_graph::RustCrate>,
    bindings: Vec<String>,
    rust_mode: bool,
}

struct NymHelper {
    known: Arc<Mutex<Known>>,
    color: bool,
}

impl NymHelper {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Candidates for the word ending at `pos`: its start and the words.
    fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<(String, String)>) {
        let before = &line[..pos];
        let known = self.known();
        if known.rust_mode && !before.trim_start().starts_with(':') {
            return (pos, Vec::new());
        }
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        let trimmed = before.trim_start();
        if trimmed.starts_with(':') {
            if let Some((cmd, _)) = trimmed.split_once(char::is_whitespace) {
                let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
                let word = &before[start..];
                let options: Vec<(String, String)> = match cmd {
                    ":inspect" | ":history" | ":diff" | ":revert" => known
                        .bindings
                        .iter()
                        .map(|b| (b.clone(), "device".into()))
                        .collect(),
                    ":target" => nym_graph::Target::ALL
                        .iter()
                        .map(|t| (t.name().to_owned(), "target".into()))
                        .collect(),
                    _ => Vec::new(),
                };
                return (
                    start,
                    options
                        .into_iter()
                        .filter(|(c, _)| c.starts_with(word))
                        .collect(),
                );
            }
            let start = before.len() - trimmed.len();
            return (
                start,
                COMMANDS
                    .iter()
                    .filter(|(c, _)| c.starts_with(trimmed))
                    .map(|(c, h)| (c.to_string(), h.to_string()))
                    .collect(),
            );
        }
        let source = format!("{}\n", known.source);
        let src = format!("{source}{line}");
        let analysis = nym_graph::analyze(
            &src,
            known.target.unwrap_or(nym_graph::Target::Unix),
            known.krate.as_ref(),
        );
        let mut found: Vec<(String, String)> =
            completions(&src, &analysis, known.krate.as_ref(), source.len() + pos)
                .into_iter()
                .map(|c| (c.label, c.detail))
                .collect();
        // Labels are whole paths (`kv::mem`) or the part after `::`.
        let (prefix_start, filter) = match word.rfind("::") {
            Some(i) if !found.iter().any(|(l, _)| l.contains("::")) => {
                (start + i + 2, &word[i + 2..])
            }
            _ => (start, word),
        };
        found.retain(|(l, _)| l.starts_with(filter));
        found.dedup();
        (prefix_start, found)
    }
}

impl Completer for NymHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = self.candidates(line, pos);
        Ok((
            start,
            found
                .into_iter()
                .map(|(label, detail)| Pair {
                    display: if detail.is_empty() {
                        label.clone()
                    } else {
                        format!("{label}  {detail}")
                    },
                    replacement: label,
                })
                .collect(),
        ))
    }
}

impl Hinter for NymHelper {
    type Hint = String;
    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        if pos < line.len() || line.trim().is_empty() {
            return None;
        }
        let (start, found) = self.candidates(line, pos);
        match found.as_slice() {
            [(only, _)] => only
                .strip_prefix(&line[start..pos])
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            _ => None,
        }
    }
}

impl Highlighter for NymHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || line.trim_start().starts_with(':') || self.known().rust_mode {
            return Cow::Borrowed(line);
        }
        Cow::Owned(colour(line))
    }
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }
    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

impl Validator for NymHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if self.known().rust_mode {
            let open = !crate::session::balanced(input);
            return Ok(if open {
                ValidationResult::Incomplete
            } else {
                ValidationResult::Valid(None)
            });
        }
        Ok(if is_complete(input) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for NymHelper {}

/// Graph text with ANSI colours: keywords, paths, strings, numbers, comments.
fn colour(line: &str) -> String {
    let (tokens, comments) = lex(line);
    let mut marks: Vec<(usize, usize, &str)> = Vec::new();
    for t in &tokens {
        let c = match &t.kind {
            TokenKind::Ident(w)
                if ["let", "job", "match", "register", "key", "target"].contains(&w.as_str()) =>
            {
                "1;35"
            }
            TokenKind::Ident(_) => "36",
            TokenKind::Str(_) => "32",
            TokenKind::Number(_) | TokenKind::Ipv4(_) => "33",
            TokenKind::Error(_) => "31",
            _ => continue,
        };
        marks.push((t.span.start, t.span.end, c));
    }
    for c in &comments {
        marks.push((c.start, c.end, "2"));
    }
    marks.sort_unstable();
    let mut out = String::with_capacity(line.len() + marks.len() * 9);
    let mut at = 0;
    for (s, e, c) in marks {
        if s < at || e > line.len() {
            continue;
        }
        out.push_str(&line[at..s]);
        out.push_str(&format!("\x1b[{c}m{}\x1b[0m", &line[s..e]));
        at = e;
    }
    out.push_str(&line[at..]);
    out
}

fn history_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NYM_HISTORY") {
        return Some(PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("nym/history"))
}

fn refresh(known: &Arc<Mutex<Known>>, session: &Session, rust_mode: bool) {
    let analysis = session.analysis();
    let mut k = known.lock().unwrap_or_else(|p| p.into_inner());
    k.source = session.source();
    k.target = Some(session.target());
    k.krate = session.krate();
    k.bindings = analysis
        .checked
        .bindings
        .iter()
        .map(|b| b.name.name.clone())
        .collect();
    k.rust_mode = rust_mode;
}

/// Runs the REPL on the terminal until `:quit` or Ctrl-D.
pub fn run(mut session: Session) -> std::process::ExitCode {
    use std::io::IsTerminal;
    session.record_for_lessons("repl");
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let color = terminal && std::env::var_os("NO_COLOR").is_none();
    let known = Arc::new(Mutex::new(Known::default()));
    let config = rustyline::Config::builder()
        .auto_add_history(true)
        .completion_type(rustyline::CompletionType::List)
        .max_history_size(10_000)
        .map(|b| b.build())
        .unwrap_or_default();
    let mut editor: Editor<NymHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("nym: error: cannot start the line editor: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    editor.set_helper(Some(NymHelper {
        known: known.clone(),
        color,
    }));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if terminal {
        session.survive_interrupts();
    }
    // Log lines go above the prompt (or straight out, without a terminal).
    let logs = session.log().subscribe();
    let printer = editor.create_external_printer().ok();
    std::thread::spawn(move || {
        let mut printer = printer;
        for line in logs {
            match &mut printer {
                Some(p) if terminal => {
                    let _ = p.print(format!("{line}\n"));
                }
                _ => println!("{line}"),
            }
        }
    });
    let where_ = session
        .root()
        .map_or_else(|| "no project".to_owned(), |r| r.display().to_string());
    println!(
        "nym repl — {where_}; target {}. `:help` for commands, Ctrl-D to leave.",
        session.target()
    );
    let mut rust_mode = false;
    refresh(&known, &session, rust_mode);
    loop {
        let prompt = match (rust_mode, session.target()) {
            (true, _) => "rust> ".to_owned(),
            (false, nym_graph::Target::Unix) => "nym> ".to_owned(),
            (false, t) => format!("nym[{t}]> "),
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let reply = if line.trim() == ":rust" {
                    rust_mode = true;
                    crate::Reply::ok("Rust mode: lines are Rust cells; `:nym` goes back")
                } else if line.trim() == ":nym" {
                    rust_mode = false;
                    crate::Reply::ok("graph mode")
                } else if rust_mode && !Session::is_command(&line) {
                    session.eval_rust(&line)
                } else {
                    session.eval(&line)
                };
                if !reply.text.is_empty() {
                    if reply.error && color {
                        println!("\x1b[31m{}\x1b[0m", reply.text.trim_end());
                    } else {
                        println!("{}", reply.text.trim_end());
                    }
                }
                if reply.quit {
                    break;
                }
                refresh(&known, &session, rust_mode);
            }
            Err(ReadlineError::Interrupted) => {
                println!("^C (Ctrl-D leaves)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("nym: error: reading input: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    session.shutdown();
    println!("bye");
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    const GRAPH: &str =
        "let state = kv::mem();\nlet files = kv::baked(\"www\");\nlet port = key(\"port\", 8080);";

    fn helper() -> NymHelper {
        let known = Known {
            source: GRAPH.into(),
            target: None,
            krate: None,
            bindings: vec!["state".into(), "files".into(), "port".into()],
            rust_mode: false,
        };
        NymHelper {
            known: Arc::new(Mutex::new(known)),
            color: true,
        }
    }

    /// What Tab offers at the end of `line`: where the word starts, then
    /// one candidate a line.
    fn check(line: &str, want: Expect) {
        let (start, found) = helper().candidates(line, line.len());
        let rows: Vec<String> = found
            .iter()
            .map(|(label, detail)| format!("{label}  {detail}").trim_end().to_owned())
            .collect();
        want.assert_eq(&format!("at {start}\n{}", rows.join("\n")));
    }

    #[test]
    fn an_argument_completes_with_what_fits_its_kind() {
        // kv::full wraps a Kv: the Kv binding, not the read-only one.
        check(
            "let w = kv::full(",
            expect![[r#"
                at 17
                kv::mem  kv::mem() -> Kv
                kv::full  kv::full(kv: Kv) -> Kv
                kv::history  kv::history(kv: Kv, bound: int = 1000) -> Kv
                kv::dir  kv::dir(path: string) -> Kv
                kv::block  kv::block(block: Block) -> Kv
                state  Kv
                kv =   Kv"#]],
        );
        check(
            "let w = kv::full(s",
            expect![[r#"
                at 17
                state  Kv"#]],
        );
    }

    #[test]
    fn an_implementation_completes_after_its_module() {
        check(
            "let k = kv::me",
            expect![[r#"
                at 8
                kv::mem  kv::mem() -> Kv"#]],
        );
    }

    #[test]
    fn commands_inspect_names_and_targets_complete() {
        check(
            ":ch",
            expect![[r#"
                at 0
                :check  check the whole graph for the target, as `nym check` does"#]],
        );
        check(
            ":inspect st",
            expect![[r#"
                at 9
                state  device"#]],
        );
        check(
            ":target k",
            expect![[r#"
                at 8
                kvm  target"#]],
        );
    }

    #[test]
    fn the_one_candidate_left_is_hinted_and_many_are_not() {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let h = helper();
        let line = "let k = kv::me";
        assert_eq!(h.hint(line, line.len(), &ctx).as_deref(), Some("m"));
        let line = "let k = kv::";
        assert_eq!(h.hint(line, line.len(), &ctx), None);
        // Not in the middle of the line.
        assert_eq!(h.hint("let k = kv::me;", 14, &ctx), None);
    }

    #[test]
    fn graph_text_is_coloured_by_token_and_commands_are_not() {
        let coloured = colour("let n = kv::mem(\"a\", 3); // note");
        expect![[r#"\u{1b}[1;35mlet\u{1b}[0m \u{1b}[36mn\u{1b}[0m = \u{1b}[36mkv\u{1b}[0m::\u{1b}[36mmem\u{1b}[0m(\u{1b}[32m\"a\"\u{1b}[0m, \u{1b}[33m3\u{1b}[0m); \u{1b}[2m// note\u{1b}[0m"#]]
            .assert_eq(&coloured.escape_debug().to_string());
        let h = helper();
        assert_eq!(h.highlight(":check", 0), ":check");
    }
}
