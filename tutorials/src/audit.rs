//! What a lesson says the learner should type, pulled out of its text and
//! hints so the tests can hold it to the product: every `nym …` command
//! line to nym's own parser, every `:command` to the session's, every
//! implementation to the catalog, every ```nym cell to a session.
use crate::lesson::Lesson;

/// Where in a lesson a piece of text is (for the tests' messages).
pub type Place = String;

/// Every text of the lesson a learner reads: the notebook and the hints.
fn texts(lesson: &Lesson) -> Vec<(Place, String)> {
    let mut out = vec![(
        format!("{}/lesson.md", lesson.name),
        lesson.notebook.clone(),
    )];
    for s in &lesson.steps {
        for (i, h) in s.hints.iter().enumerate() {
            out.push((
                format!("{}/{} hint {}", lesson.name, s.id, i + 1),
                h.clone(),
            ));
        }
        for a in &s.actions {
            if let Some(r) = &a.repl {
                out.push((format!("{}/{} action", lesson.name, s.id), format!("`{r}`")));
            }
        }
    }
    out
}

/// Inline code spans (`…`) of Markdown text.
fn spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // A fence named in prose (```nym) is no code span.
        let line = line.replace("```", "");
        let parts: Vec<&str> = line.split('`').collect();
        out.extend(parts.iter().skip(1).step_by(2).map(|s| s.to_string()));
    }
    out
}

/// The lines of fenced blocks of `text` in the language `lang` ("" for a
/// fence without one).
fn fenced(text: &str, lang: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // The block being read, and whether it is in `lang`.
    let mut current: Option<(bool, Vec<String>)> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("```") {
            match current.take() {
                Some((true, block)) => out.push(block),
                Some((false, _)) => {}
                None => current = Some((rest.trim() == lang, Vec::new())),
            }
            continue;
        }
        if let Some((_, block)) = &mut current {
            block.push(line.to_owned());
        }
    }
    out
}

/// A shell line cut to the command: no comment, pipe, redirection or
/// second command.
fn command_of(line: &str) -> &str {
    let mut end = line.len();
    for cut in [" #", " |", " >", " &&", ";"] {
        if let Some(i) = line.find(cut) {
            end = end.min(i);
        }
    }
    line[..end].trim()
}

/// Splits a command line into words, as a shell would for simple quoting.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// Every `nym …` command line the lesson tells the learner to type.
pub fn nym_commands(lesson: &Lesson) -> Vec<(Place, String)> {
    let mut out = Vec::new();
    for (place, text) in texts(lesson) {
        let lines = fenced(&text, "").into_iter().flatten().chain(spans(&text));
        for line in lines {
            let cmd = command_of(line.trim());
            if cmd == "nym" || cmd.starts_with("nym ") {
                out.push((place.clone(), cmd.to_owned()));
            }
        }
    }
    out
}

/// Every `:command` the lesson tells the learner to type in a session.
pub fn session_commands(lesson: &Lesson) -> Vec<(Place, String)> {
    let mut out = Vec::new();
    for (place, text) in texts(lesson) {
        let lines = fenced(&text, "")
            .into_iter()
            .chain(fenced(&text, "nym"))
            .flatten()
            .chain(spans(&text));
        for line in lines {
            let t = line.trim();
            if t.starts_with(':') && t[1..].starts_with(|c: char| c.is_ascii_lowercase()) {
                let word = t.split_whitespace().next().unwrap_or(t);
                out.push((place.clone(), word.to_owned()));
            }
        }
    }
    out
}

/// The kinds of device, as implementations are named (`kv::dir`).
const KINDS: &[&str] = &[
    "console", "clock", "time", "random", "kv", "block", "stack", "netif", "tls",
];

/// Every `kind::name` the lesson mentions.
pub fn implementations(lesson: &Lesson) -> Vec<(Place, String)> {
    let mut out = Vec::new();
    let mut texts = texts(lesson);
    for step in &lesson.steps {
        if let Some(files) = lesson.solutions.get(&step.id) {
            for (path, bytes) in files {
                if path.ends_with(".nym") || path.ends_with(".md") {
                    texts.push((
                        format!("{}/steps/{}/{path}", lesson.name, step.id),
                        String::from_utf8_lossy(bytes).into_owned(),
                    ));
                }
            }
        }
    }
    for (path, bytes) in &lesson.start {
        if path.ends_with(".nym") {
            texts.push((
                format!("{}/start/{path}", lesson.name),
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
    }
    for (place, text) in texts {
        let bytes = text.as_bytes();
        for (i, _) in text.match_indices("::") {
            let before = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |j| j + 1);
            let kind = &text[before..i];
            // `kv::start` in the kv lesson is the project's job.
            let job = kind == lesson.project;
            if job || !KINDS.contains(&kind) || (before > 0 && bytes[before - 1] == b':') {
                continue;
            }
            let rest = &text[i + 2..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            // `time::scaled` is an implementation; `core::time::Duration`
            // a Rust path.
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_uppercase()) {
                continue;
            }
            out.push((place.clone(), format!("{kind}::{name}")));
        }
    }
    out
}

/// The ```nym cells of the lesson's notebook, each with the step whose
/// solution it runs over (`None`: the introduction, over the start files).
pub fn nym_cells(lesson: &Lesson) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = fenced(&lesson.intro, "nym")
        .into_iter()
        .map(|b| (None, b.join("\n")))
        .collect();
    for s in &lesson.steps {
        out.extend(
            fenced(&s.text, "nym")
                .into_iter()
                .map(|b| (Some(s.id.clone()), b.join("\n"))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_found_cut_and_split_as_a_shell_would() {
        let md = "Run `nym run -- --name Ada` now.\n\n```\nnym graph --dot > graph.dot   # save it\ncurl localhost:8080/\n:inspect state\n```\n\n```nym\n:devices\nlet x = kv::mem();\n```\n";
        let lines: Vec<String> = fenced(md, "")
            .into_iter()
            .flatten()
            .chain(spans(md))
            .collect();
        let cmds: Vec<&str> = lines
            .iter()
            .map(|l| command_of(l))
            .filter(|c| c.starts_with("nym"))
            .collect();
        assert_eq!(cmds, ["nym graph --dot", "nym run -- --name Ada"]);
        assert_eq!(
            fenced(md, "nym"),
            vec![vec![":devices".to_owned(), "let x = kv::mem();".to_owned()]]
        );
        assert_eq!(
            words("nym check --answer 'a b' \"c\" ''"),
            ["nym", "check", "--answer", "a b", "c", ""]
        );
    }
}
