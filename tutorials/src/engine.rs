//! A lesson folder and what `nym tutorial` does with it: lay it out, find
//! it again from anywhere inside, check its current step, give hints, lay
//! files back.
//!
//! The folder holds the learner's project and `.nym-tutorial/`:
//! `progress.toml` (the lesson, the steps done and skipped, the hints
//! shown, keyed by step id), `start/` (the files as laid out, for `reset`
//! and `unchanged` checks) and `events.jsonl` (what `nym repl` and
//! `nym tui` sessions in the folder evaluated, for session checks).
use crate::check::Failure;
use crate::lesson::{Lesson, Need, Step};
use crate::{diff, files};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directory of nym's own files in a lesson folder.
pub const STATE: &str = nym_repl::journal::DIR;

/// `.nym-tutorial/progress.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The lesson's name.
    pub lesson: String,
    /// Steps checked and passed, by id.
    #[serde(default)]
    pub done: Vec<String>,
    /// Steps passed over because the machine lacked what they need.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// How many hints each step has shown.
    #[serde(default)]
    pub hints: BTreeMap<String, usize>,
}

/// What could go wrong outside a check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No lesson folder at or above here.
    #[error("no lesson here (no {STATE}/ in {} or above)\n  hint: `nym tutorial start NAME` lays one out; `nym tutorial` lists them", .0.display())]
    NotInLesson(PathBuf),
    /// No such lesson.
    #[error("no lesson `{0}`\n  hint: `nym tutorial` lists them")]
    NoLesson(String),
    /// The folder is taken.
    #[error("{} already exists and is not this lesson's folder\n  hint: pass `--dir` to lay it out elsewhere", .0.display())]
    Taken(PathBuf),
    /// The progress file is damaged.
    #[error("{}: {problem}\n  hint: fix it, or delete it to start the lesson's progress over", .path.display())]
    Progress {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `nym new` failed.
    #[error("laying out the lesson: `nym new` failed: {0}")]
    New(String),
    /// A lesson is malformed (a nym bug).
    #[error(transparent)]
    Lesson(#[from] crate::lesson::LessonError),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A lesson folder.
#[derive(Debug)]
pub struct Tutorial {
    /// The folder.
    pub dir: PathBuf,
    /// Its lesson.
    pub lesson: Lesson,
    /// Its progress.
    pub progress: Progress,
    /// Where checks build: `$CARGO_TARGET_DIR` if set here or in the
    /// environment, else where `nym` builds by itself (each copy's own
    /// `target/` and the shared build cache).
    pub target_dir: Option<PathBuf>,
}

/// What a check of a step found.
#[derive(Debug)]
pub enum Verdict {
    /// Every check passed; the step is recorded as done.
    Passed,
    /// A check failed.
    Failed {
        /// Which (its description).
        check: String,
        /// How.
        failure: Failure,
    },
    /// The machine lacks what the step needs; it is recorded as skipped.
    Skipped(Vec<(Need, String)>),
}

/// What the learner sees of a step in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Checked and passed.
    Done,
    /// Passed over: the machine lacked what it needs.
    Skipped,
    /// Not done yet.
    Todo,
}

/// What a check needs besides the lesson: the `nym` to run, an answer,
/// somewhere to report progress on long checks.
pub struct Context<'a> {
    /// The lesson folder.
    pub dir: &'a Path,
    /// The `nym` program the checks run.
    pub nym: &'a Path,
    /// The lesson.
    pub lesson: &'a Lesson,
    /// The step checked.
    pub step: &'a Step,
    /// `--answer`, if given.
    pub answer: Option<&'a str>,
    /// `$CARGO_TARGET_DIR` for the `nym` the checks run, if any.
    pub target_dir: Option<PathBuf>,
    /// Where long checks say what they are doing ("building…").
    pub say: &'a mut dyn FnMut(&str),
}

impl Context<'_> {
    /// A file of the lesson folder, as text.
    pub(crate) fn read(&self, path: &str) -> Result<String, Failure> {
        std::fs::read_to_string(self.dir.join(path)).map_err(|e| {
            Failure::new(
                format!("a file {path}"),
                match e.kind() {
                    std::io::ErrorKind::NotFound => "there is none".to_owned(),
                    _ => format!("it cannot be read: {e}"),
                },
            )
        })
    }

    /// A file as the lesson laid it out.
    pub(crate) fn laid_out(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(STATE).join("start").join(path)).ok()
    }

    /// The files as they are once step `id` is done: what was laid out,
    /// with the solutions up to it.
    pub(crate) fn solution(&self, id: &str) -> BTreeMap<String, Vec<u8>> {
        solution(self.dir, self.lesson, id, true)
    }

    /// The files as they are at the start of step `id`.
    pub(crate) fn before(&self, id: &str) -> BTreeMap<String, Vec<u8>> {
        solution(self.dir, self.lesson, id, false)
    }
}

/// The laid-out files with the solutions of the steps before `id` (and of
/// `id` itself if `through`).
fn solution(dir: &Path, lesson: &Lesson, id: &str, through: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = files::tree(&dir.join(STATE).join("start"));
    let overlay = if through {
        lesson.files_after(id)
    } else {
        lesson.files_before(id)
    };
    // `files_*` start from the lesson's own start files; the template's
    // files come from what was laid out.
    out.extend(overlay);
    out
}

impl Tutorial {
    /// The lesson folder at or above `cwd`.
    pub fn find(cwd: &Path) -> Result<Tutorial, Error> {
        let dir = cwd
            .ancestors()
            .find(|d| d.join(STATE).join("progress.toml").is_file())
            .ok_or_else(|| Error::NotInLesson(cwd.to_owned()))?;
        Tutorial::open(dir)
    }

    /// The lesson folder `dir`.
    pub fn open(dir: &Path) -> Result<Tutorial, Error> {
        let path = dir.join(STATE).join("progress.toml");
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        let progress: Progress = toml::from_str(&text).map_err(|e| Error::Progress {
            path: path.clone(),
            problem: e.message().to_owned(),
        })?;
        let lesson = crate::lesson::find(&progress.lesson)?.ok_or_else(|| Error::Progress {
            path: path.clone(),
            problem: format!("this nym has no lesson `{}`", progress.lesson),
        })?;
        Ok(Tutorial {
            dir: dir.to_owned(),
            lesson,
            progress,
            target_dir: None,
        })
    }

    /// Lays lesson `name` out in `parent/NAME` with `nym` (which makes the
    /// project from its template), or opens it if it is already there.
    /// The second value says whether it was laid out now.
    pub fn start(nym: &Path, name: &str, parent: &Path) -> Result<(Tutorial, bool), Error> {
        let lesson = crate::lesson::find(name)?.ok_or_else(|| Error::NoLesson(name.to_owned()))?;
        let dir = parent.join(&lesson.name);
        if dir.join(STATE).join("progress.toml").is_file() {
            let t = Tutorial::open(&dir)?;
            if t.lesson.name == lesson.name {
                return Ok((t, false));
            }
            return Err(Error::Taken(dir));
        }
        if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
            return Err(Error::Taken(dir));
        }
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(".nym-tutorial-")
            .tempdir_in(parent)
            .map_err(io(format!("creating a directory in {}", parent.display())))?;
        let out = std::process::Command::new(nym)
            .args(["new", &lesson.project, "--template", &lesson.template])
            .current_dir(tmp.path())
            .env("NO_COLOR", "1")
            .output()
            .map_err(io(format!("running {}", nym.display())))?;
        if !out.status.success() {
            return Err(Error::New(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        let made = tmp.path().join(&lesson.project);
        files::write_all(&made, &lesson.start)?;
        let snapshot = files::tree(&made);
        let state = made.join(STATE);
        files::write_all(&state.join("start"), &snapshot)?;
        let progress = Progress {
            lesson: lesson.name.clone(),
            ..Progress::default()
        };
        let t = Tutorial {
            dir: made,
            lesson,
            progress,
            target_dir: None,
        };
        t.save()?;
        if dir.exists() {
            std::fs::remove_dir(&dir).map_err(io(format!("replacing {}", dir.display())))?;
        }
        std::fs::rename(&t.dir, &dir)
            .map_err(io(format!("moving the lesson to {}", dir.display())))?;
        Ok((Tutorial { dir, ..t }, true))
    }

    /// Writes the progress file.
    pub fn save(&self) -> Result<(), Error> {
        let path = self.dir.join(STATE).join("progress.toml");
        let text = format!(
            "# nym tutorial's record of this lesson, by step id.\n{}",
            toml::to_string(&self.progress).expect("progress serialises")
        );
        files::write_atomic(&path, text.as_bytes())
    }

    /// The step to do next: the first neither done nor skipped.
    pub fn current(&self) -> Option<&Step> {
        self.lesson
            .steps
            .iter()
            .find(|s| self.state(&s.id) == State::Todo)
    }

    /// Where step `id` stands.
    pub fn state(&self, id: &str) -> State {
        if self.progress.done.iter().any(|d| d == id) {
            State::Done
        } else if self.progress.skipped.iter().any(|d| d == id) {
            State::Skipped
        } else {
            State::Todo
        }
    }

    /// Checks step `id` (without recording anything): the verdict.
    pub fn verify(
        &self,
        nym: &Path,
        step: &Step,
        answer: Option<&str>,
        say: &mut dyn FnMut(&str),
    ) -> Verdict {
        let missing: Vec<(Need, String)> = step
            .needs
            .iter()
            .filter_map(|n| n.missing().map(|why| (*n, why)))
            .collect();
        if !missing.is_empty() {
            return Verdict::Skipped(missing);
        }
        let target_dir = (self.target_dir.clone())
            .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from));
        let mut cx = Context {
            dir: &self.dir,
            nym,
            lesson: &self.lesson,
            step,
            answer,
            target_dir,
            say,
        };
        for check in &step.checks {
            if let Err(failure) = check.verify(&mut cx) {
                return Verdict::Failed {
                    check: check.describe(),
                    failure,
                };
            }
        }
        Verdict::Passed
    }

    /// Checks step `id` and records a pass (or a skip).
    pub fn check(
        &mut self,
        nym: &Path,
        id: &str,
        answer: Option<&str>,
        say: &mut dyn FnMut(&str),
    ) -> Result<Verdict, Error> {
        let step = self
            .lesson
            .step(id)
            .cloned()
            .ok_or_else(|| Error::NoLesson(format!("{} step {id}", self.lesson.name)))?;
        let verdict = self.verify(nym, &step, answer, say);
        let list = match verdict {
            Verdict::Passed => Some(&mut self.progress.done),
            Verdict::Skipped(_) => Some(&mut self.progress.skipped),
            Verdict::Failed { .. } => None,
        };
        if let Some(list) = list {
            if !list.iter().any(|d| d == id) {
                list.push(id.to_owned());
            }
            if matches!(verdict, Verdict::Passed) {
                self.progress.skipped.retain(|d| d != id);
            }
            self.save()?;
        }
        Ok(verdict)
    }

    /// The next hint for step `id`: its hints in turn, then the diff from
    /// the learner's files to the solution's.
    pub fn hint(&mut self, id: &str) -> Result<String, Error> {
        let Some(step) = self.lesson.step(id) else {
            return Err(Error::NoLesson(format!("{} step {id}", self.lesson.name)));
        };
        let shown = self.progress.hints.get(id).copied().unwrap_or(0);
        let text = match step.hints.get(shown) {
            Some(h) => format!("hint {} of {}: {h}", shown + 1, step.hints.len() + 1),
            None => self.solution_diff(id),
        };
        if shown < step.hints.len() {
            self.progress.hints.insert(id.to_owned(), shown + 1);
            self.save()?;
        }
        Ok(text)
    }

    /// The diff from the learner's files to step `id`'s solution.
    pub fn solution_diff(&self, id: &str) -> String {
        let want = solution(&self.dir, &self.lesson, id, true);
        let touched = self.lesson.solutions.get(id);
        let mut out = String::new();
        for (path, after) in &want {
            if !touched.is_some_and(|t| t.contains_key(path)) {
                continue;
            }
            let now = std::fs::read(self.dir.join(path)).unwrap_or_default();
            if &now != after {
                out += &diff::unified(
                    path,
                    &String::from_utf8_lossy(&now),
                    &String::from_utf8_lossy(after),
                );
            }
        }
        if !self.lesson.step(id).is_some_and(|s| s.actions.is_empty()) {
            let steps: Vec<String> = (self.lesson.step(id).into_iter())
                .flat_map(|s| s.actions.iter().map(|a| format!("  {}", a.describe())))
                .collect();
            out = format!("what to do:\n{}\n{out}", steps.join("\n"));
            return format!("the solution, {out}");
        }
        if out.is_empty() {
            match touched {
                Some(_) => "the solution: your files already match it; `nym tutorial check` should pass".into(),
                None => "the solution changes no file: this step is done in a session or with a command; read the step again".into(),
            }
        } else {
            format!("the solution, as a diff from your files:\n{out}")
        }
    }

    /// Lays back the files as they were laid out or, with `at_step`, as
    /// they are at the start of the current step. Files that differ are
    /// saved first; returns where, if any were.
    pub fn reset(&self, at_step: bool) -> Result<Option<PathBuf>, Error> {
        let mut want = files::tree(&self.dir.join(STATE).join("start"));
        if at_step {
            if let Some(step) = self.current() {
                want.extend(self.lesson.files_before(&step.id));
            }
        }
        let changed: BTreeMap<String, Vec<u8>> = want
            .keys()
            .filter_map(|p| {
                let now = std::fs::read(self.dir.join(p)).ok()?;
                (Some(&now) != want.get(p)).then(|| (p.clone(), now))
            })
            .collect();
        let saved = if changed.is_empty() {
            None
        } else {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let backup = self.dir.join(STATE).join("saved").join(stamp.to_string());
            files::write_all(&backup, &changed)?;
            Some(backup)
        };
        files::write_all(&self.dir, &want)?;
        Ok(saved)
    }
}

impl Need {
    /// Why this machine lacks it, or `None` when it has it.
    pub fn missing(self) -> Option<String> {
        let runs = |program: &str| {
            std::process::Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        match self {
            Need::Kvm => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .err()
                .map(|e| format!("/dev/kvm cannot be opened: {e}")),
            Need::Qemu => nym_driver::qemu::check_version()
                .err()
                .map(|e| e.to_string()),
            Need::Xen => nym_driver::xen::hypervisor().err().map(|e| e.to_string()),
            Need::Gdb => (!runs("gdb")).then(|| "gdb does not run".to_owned()),
            Need::Curl => (!runs("curl")).then(|| "curl does not run".to_owned()),
        }
    }

    /// The command that installs it.
    pub fn install(self) -> &'static str {
        match self {
            Need::Kvm => {
                "a machine (or VM) with KVM: `ls -l /dev/kvm`; add yourself to the kvm group"
            }
            Need::Qemu | Need::Xen => "scripts/install.sh (in nym's source) installs QEMU and Xen",
            Need::Gdb => "apt-get install gdb",
            Need::Curl => "apt-get install curl",
        }
    }
}
