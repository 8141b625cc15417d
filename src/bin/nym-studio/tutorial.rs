//! `nym tutorial`: the guided lessons. The lessons and the engine that
//! checks them live in `nym-tutorials`; this is the command line over them
//! (and the lesson pane of `nym tutorial open`).
use nym::cli::TutorialCommand;
use nym::CliError;
use nym_tutorials::engine::{State, Tutorial, Verdict};
use nym_tutorials::{Lesson, Step};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where lessons are laid out unless `--dir` says.
const DEFAULT_DIR: &str = "nym-tutorial";

fn tutorial_error(e: nym_tutorials::Error) -> CliError {
    CliError::Other(Box::new(e))
}

/// The `nym` a lesson's commands are run with: the one beside this
/// program, which is what the learner types.
fn nym_exe() -> Result<PathBuf, CliError> {
    std::env::current_exe()
        .map(|exe| exe.with_file_name("nym"))
        .map_err(|source| CliError::Io {
            what: "finding this program".into(),
            source,
        })
}

/// Runs a `nym tutorial` command.
pub(crate) fn run(cwd: &Path, command: Option<TutorialCommand>) -> Result<ExitCode, CliError> {
    match command {
        None => list(cwd),
        Some(TutorialCommand::Start { name, dir }) => {
            let parent = cwd.join(dir.unwrap_or_else(|| DEFAULT_DIR.into()));
            let (t, new) = Tutorial::start(&nym_exe()?, &name, &parent).map_err(tutorial_error)?;
            let shown = t
                .dir
                .strip_prefix(cwd)
                .unwrap_or(&t.dir)
                .display()
                .to_string();
            if new {
                println!(
                    "Lesson {}: {} — laid out in {shown}",
                    t.lesson.order, t.lesson.title
                );
            } else {
                println!(
                    "Lesson {}: {} — already in {shown}; carrying on",
                    t.lesson.order, t.lesson.title
                );
            }
            println!("  cd {shown}\n");
            print!("{}", intro(&t.lesson));
            match t.current() {
                Some(step) => print_step(&t, step),
                None => println!("Every step is done. `nym tutorial` lists the lessons."),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TutorialCommand::Check { answer, step }) => {
            let mut t = Tutorial::find(cwd).map_err(tutorial_error)?;
            check(&mut t, step.as_deref(), answer.as_deref())
        }
        Some(TutorialCommand::Watch) => watch(cwd),
        Some(TutorialCommand::Hint) => {
            let mut t = Tutorial::find(cwd).map_err(tutorial_error)?;
            let Some(step) = t.current().cloned() else {
                println!("Every step of this lesson is done.");
                return Ok(ExitCode::SUCCESS);
            };
            let hint = t.hint(&step.id).map_err(tutorial_error)?;
            println!("{}: {hint}", step.title);
            Ok(ExitCode::SUCCESS)
        }
        Some(TutorialCommand::Reset { step }) => {
            let t = Tutorial::find(cwd).map_err(tutorial_error)?;
            let saved = t.reset(step).map_err(tutorial_error)?;
            let which = match (step, t.current()) {
                (true, Some(s)) => format!("as at the start of step `{}`", s.id),
                _ => "as the lesson laid them out".to_owned(),
            };
            println!("Files laid back {which}; progress kept.");
            if let Some(saved) = saved {
                let shown = saved.strip_prefix(&t.dir).unwrap_or(&saved);
                println!(
                    "Your versions of the files that changed are in {}.",
                    shown.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TutorialCommand::Open { name }) => open(cwd, name.as_deref()),
    }
}

/// `nym tutorial`: the lessons, each with its steps and what they need.
fn list(cwd: &Path) -> Result<ExitCode, CliError> {
    let lessons = nym_tutorials::lesson::all().map_err(|e| CliError::Other(Box::new(e)))?;
    let here = Tutorial::find(cwd).ok();
    println!("The lessons (`nym tutorial start NAME`):\n");
    for lesson in &lessons {
        // Progress from the lesson folder here, or the default place.
        let t = match &here {
            Some(t) if t.lesson.name == lesson.name => Tutorial::open(&t.dir).ok(),
            _ => Tutorial::open(&cwd.join(DEFAULT_DIR).join(&lesson.name)).ok(),
        };
        let mut needs: Vec<_> = lesson
            .steps
            .iter()
            .flat_map(|s| s.needs.iter().copied())
            .collect();
        needs.sort();
        needs.dedup();
        let missing: Vec<_> = needs
            .iter()
            .filter(|n| n.missing().is_some())
            .map(|n| n.name())
            .collect();
        let needs_text = match (needs.is_empty(), missing.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!("  needs {}", names(&needs)),
            (false, false) => format!(
                "  needs {} (missing here: {})",
                names(&needs),
                missing.join(", ")
            ),
        };
        println!(
            "{:>2}. {:<10} {}{needs_text}",
            lesson.order, lesson.name, lesson.title
        );
        println!("    {}", lesson.summary);
        let marks: Vec<String> = lesson
            .steps
            .iter()
            .map(|s| {
                let state = t.as_ref().map_or(State::Todo, |t| t.state(&s.id));
                let mark = match state {
                    State::Done => "✓",
                    State::Skipped => "–",
                    State::Todo if s.needs.iter().any(|n| n.missing().is_some()) => "!",
                    State::Todo => "·",
                };
                format!("{mark} {}", s.id)
            })
            .collect();
        println!("    {}", marks.join("  "));
    }
    println!("\n✓ done  · not yet  – skipped  ! this machine lacks what it needs");
    Ok(ExitCode::SUCCESS)
}

fn names(needs: &[nym_tutorials::Need]) -> String {
    needs
        .iter()
        .map(|n| n.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lesson's introduction, without its title and cells.
fn intro(lesson: &Lesson) -> String {
    let text = prose(&lesson.intro);
    format!("{}\n\n", text.trim())
}

/// Markdown as the terminal shows it: ```nym cells as what to type at
/// `nym repl`'s prompt, ```rust cells as `:rust` lines, the rest as it is.
fn prose(md: &str) -> String {
    let mut out = String::new();
    let mut cell: Option<&str> = None;
    for line in md.lines() {
        let t = line.trim_start();
        if let Some(prompt) = cell {
            if t.starts_with("```") {
                cell = None;
            } else {
                out.push_str(&format!("    {prompt}{line}\n"));
            }
            continue;
        }
        if t.starts_with("```nym") {
            cell = Some("nym> ");
            continue;
        }
        if t.starts_with("```rust") {
            cell = Some("nym> :rust ");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    // Cells leave blank lines behind: no more than one in a row.
    let mut tidy = String::new();
    for line in out.lines() {
        if line.trim().is_empty() && tidy.ends_with("\n\n") {
            continue;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    tidy
}

fn position(t: &Tutorial, step: &Step) -> String {
    let i = t
        .lesson
        .steps
        .iter()
        .position(|s| s.id == step.id)
        .unwrap_or(0);
    format!("step {} of {}", i + 1, t.lesson.steps.len())
}

fn print_step(t: &Tutorial, step: &Step) {
    let body: String = prose(&step.text)
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    println!("── {}: {} ──", position(t, step), step.title);
    println!("{}", body.trim_matches('\n'));
    let missing: Vec<_> = step
        .needs
        .iter()
        .filter_map(|n| n.missing().map(|w| (n, w)))
        .collect();
    for (need, why) in missing {
        println!(
            "(this step needs {}: {why}; {})",
            need.name(),
            need.install()
        );
    }
    println!("\nWhen it is done: nym tutorial check   (stuck? nym tutorial hint)");
}

fn check(t: &mut Tutorial, id: Option<&str>, answer: Option<&str>) -> Result<ExitCode, CliError> {
    let step = match id {
        Some(id) => t.lesson.step(id).cloned().ok_or_else(|| {
            let ids: Vec<_> = t.lesson.steps.iter().map(|s| s.id.as_str()).collect();
            CliError::Other(
                format!(
                    "no step `{id}` in lesson {}; its steps: {}",
                    t.lesson.name,
                    ids.join(", ")
                )
                .into(),
            )
        })?,
        None => match t.current() {
            Some(s) => s.clone(),
            None => {
                println!(
                    "Every step of {} is done.{}",
                    t.lesson.title,
                    next_lesson(t)
                );
                return Ok(ExitCode::SUCCESS);
            }
        },
    };
    let started = Instant::now();
    let mut say = |what: &str| eprintln!("  … {what}");
    let nym = nym_exe()?;
    let verdict = t
        .check(&nym, &step.id, answer, &mut say)
        .map_err(tutorial_error)?;
    let took = started.elapsed();
    Ok(report(t, &step, &verdict, took))
}

/// Prints a verdict; the exit code it makes.
fn report(t: &Tutorial, step: &Step, verdict: &Verdict, took: Duration) -> ExitCode {
    let secs = if took > Duration::from_secs(2) {
        format!(" ({:.0} s)", took.as_secs_f64())
    } else {
        String::new()
    };
    match verdict {
        Verdict::Passed => {
            println!("✓ {}: {} — passed{secs}\n", position(t, step), step.title);
            match t.current() {
                Some(next) => print_step(t, next),
                None => println!("Lesson {} is done.{}", t.lesson.title, next_lesson(t)),
            }
            ExitCode::SUCCESS
        }
        Verdict::Failed { check, failure } => {
            println!(
                "✗ {}: {} — not yet ({check}){secs}\n",
                position(t, step),
                step.title
            );
            println!("{failure}");
            println!("\n(stuck? nym tutorial hint)");
            ExitCode::from(1)
        }
        Verdict::Skipped(missing) => {
            println!(
                "– {}: {} — skipped: this machine lacks what it needs",
                position(t, step),
                step.title
            );
            for (need, why) in missing {
                println!(
                    "  {}: {why}\n    to install: {}",
                    need.name(),
                    need.install()
                );
            }
            println!(
                "  (`nym tutorial check --step {}` once it is there)\n",
                step.id
            );
            if let Some(next) = t.current() {
                print_step(t, next);
            }
            ExitCode::SUCCESS
        }
    }
}

fn next_lesson(t: &Tutorial) -> String {
    let next = nym_tutorials::lesson::all()
        .ok()
        .and_then(|all| all.into_iter().find(|l| l.order == t.lesson.order + 1));
    match next {
        Some(l) => format!("\nNext: nym tutorial start {}   ({})", l.name, l.title),
        None => "\nThat was the last lesson.".to_owned(),
    }
}

/// What the watch compares to see a save: each source file's size and
/// modification time, and the session journal's size.
pub(crate) fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, Option<std::time::SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if !nym_tutorials::files::is_source(&rel) {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(root, &path, out),
                Ok(m) => out.push((rel, m.len(), m.modified().ok())),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    let journal = dir
        .join(nym_tutorials::engine::STATE)
        .join(nym_repl::journal::FILE);
    if let Ok(m) = std::fs::metadata(&journal) {
        out.push((journal.display().to_string(), m.len(), m.modified().ok()));
    }
    out.sort();
    out
}

/// `nym tutorial watch`.
fn watch(cwd: &Path) -> Result<ExitCode, CliError> {
    let mut t = Tutorial::find(cwd).map_err(tutorial_error)?;
    let nym = nym_exe()?;
    let Some(step) = t.current().cloned() else {
        println!(
            "Every step of {} is done.{}",
            t.lesson.title,
            next_lesson(&t)
        );
        return Ok(ExitCode::SUCCESS);
    };
    print_step(&t, &step);
    println!(
        "\nWatching {}: every save checks the step again; Ctrl-C stops.",
        t.dir.display()
    );
    let mut seen = fingerprint(&t.dir);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = fingerprint(&t.dir);
        if now == seen {
            continue;
        }
        // Let an editor finish writing.
        std::thread::sleep(Duration::from_millis(200));
        let Some(step) = t.current().cloned() else {
            break;
        };
        println!("\n— a change: checking {} again", step.id);
        let started = Instant::now();
        let mut say = |what: &str| eprintln!("  … {what}");
        let verdict = t
            .check(&nym, &step.id, None, &mut say)
            .map_err(tutorial_error)?;
        report(&t, &step, &verdict, started.elapsed());
        if t.current().is_none() {
            break;
        }
        // What the check itself wrote is not a change of the learner's.
        seen = fingerprint(&t.dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// `nym tutorial open [NAME]`.
fn open(cwd: &Path, name: Option<&str>) -> Result<ExitCode, CliError> {
    let t = match (name, Tutorial::find(cwd)) {
        (None, Ok(t)) => t,
        (Some(n), Ok(t)) if t.lesson.name == n => t,
        (Some(n), _) => {
            Tutorial::start(&nym_exe()?, n, &cwd.join(DEFAULT_DIR))
                .map_err(tutorial_error)?
                .0
        }
        (None, Err(e)) => return Err(tutorial_error(e)),
    };
    let notebook = t.dir.join("lesson.md");
    if !notebook.exists() {
        std::fs::write(&notebook, &t.lesson.notebook).map_err(|source| CliError::Io {
            what: format!("writing {}", notebook.display()),
            source,
        })?;
    }
    let session = nym_repl::Session::open(&t.dir, None)?;
    let guide = crate::guide::Guide::start(t, nym_exe()?);
    Ok(nym_tui::run_guided(
        session,
        &notebook,
        Some(Box::new(guide)),
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn every_nym_command_line_in_a_lesson_parses_with_nyms_own_parser() {
        let mut seen = 0;
        for l in nym_tutorials::lesson::all().unwrap() {
            for (place, line) in nym_tutorials::audit::nym_commands(&l) {
                seen += 1;
                let words = nym_tutorials::audit::words(&line);
                if let Err(e) = nym::cli::Cli::try_parse_from(&words) {
                    panic!("{place}: `{line}` does not parse:\n{e}");
                }
            }
        }
        assert!(
            seen > 40,
            "only {seen} command lines found: the scan is broken"
        );
    }

    #[test]
    fn prose_shows_cells_at_the_sessions_prompt_and_keeps_shell_blocks() {
        let md = "Text.\n\n```nym\n:devices\n```\n\n```\nnym run\n```\n";
        assert_eq!(
            super::prose(md),
            "Text.\n\n    nym> :devices\n\n```\nnym run\n```\n"
        );
    }
}
