//! A lesson as its files say it: `lesson.toml` (the steps: their ids,
//! what each needs, its hints and its checks), `lesson.md` (the notebook:
//! an introduction, then one `## Title {#id}` section per step, with
//! ```nym and ```rust cells), `start/` (files laid over a `nym new`
//! template) and `steps/<id>/` (the files as they are once step `id` is
//! done; each step's overlay builds on the ones before).
use crate::check::Check;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a step needs of the machine besides nym.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// /dev/kvm, for nym's monitor.
    Kvm,
    /// QEMU 7 or later with KVM.
    Qemu,
    /// Xen's hypervisor image, run in QEMU.
    Xen,
    /// A stock gdb.
    Gdb,
    /// curl, for the HTTP checks.
    Curl,
}

impl Need {
    /// Its name, as lessons and listings write it.
    pub fn name(self) -> &'static str {
        match self {
            Need::Kvm => "kvm",
            Need::Qemu => "qemu",
            Need::Xen => "xen",
            Need::Gdb => "gdb",
            Need::Curl => "curl",
        }
    }
}

/// One step of a lesson.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its id: what progress is keyed by (never its number).
    pub id: String,
    /// Its title.
    pub title: String,
    /// What the machine must have for its checks.
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Hints, first a nudge, then the command or the change; the
    /// solution's diff comes after them by itself.
    pub hints: Vec<String>,
    /// What must be true once the step is done.
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
    /// For a step done in a session rather than in files: what to do, in
    /// order (shown by the last hint; the lessons' tests do it).
    #[serde(default, rename = "do")]
    pub actions: Vec<Action>,
    /// Whether the step's checks still pass once the lesson is done (not
    /// when a later step undoes it on purpose: a fault injected, then
    /// survived).
    #[serde(default = "yes")]
    pub stays: bool,
    /// What the learner reads: the step's section of `lesson.md`.
    #[serde(skip)]
    pub text: String,
}

/// One thing a learner does in a session step. `{port}` stands for the
/// port the session's server listens on (8080 when shown to a learner).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// A line typed into `nym repl` (one session for the step's actions).
    pub repl: Option<String>,
    /// Wait until the session has printed this.
    pub wait: Option<String>,
    /// A command in a shell in the lesson folder.
    pub shell: Option<String>,
    /// Open this notebook in `nym tui`, run every cell, leave.
    pub tui: Option<String>,
    /// `nym debug` with these arguments, these gdb commands typed into
    /// it; the answer is the last value gdb prints (`$1 = …`).
    pub debug: Option<Debug>,
}

/// A `nym debug` session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debug {
    /// `nym debug`'s arguments.
    pub args: Vec<String>,
    /// What to type at gdb's prompt.
    pub gdb: Vec<String>,
}

impl Action {
    /// How a learner would do it, in words.
    pub fn describe(&self) -> String {
        let shown = |s: &str| s.replace("{port}", "8080");
        if let Some(d) = &self.debug {
            return format!(
                "`nym debug {}`, then at gdb's prompt: {}; answer with the value printed",
                d.args.join(" "),
                d.gdb.join("; ")
            );
        }
        match (&self.repl, &self.wait, &self.shell, &self.tui) {
            (Some(r), ..) => format!("in `nym repl`:  {}", shown(r)),
            (_, Some(w), ..) => format!("  (wait for it to say {:?})", shown(w)),
            (_, _, Some(s), _) => format!("in a shell:     {}", shown(s)),
            (_, _, _, Some(n)) => format!("`nym tui {n}`, then Ctrl-A (run every cell)"),
            _ => "nothing".to_owned(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `lesson.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    title: String,
    summary: String,
    template: String,
    project: String,
    #[serde(rename = "step")]
    steps: Vec<Step>,
}

/// A lesson, loaded from the files built into nym.
#[derive(Debug, Clone)]
pub struct Lesson {
    /// Its name: its directory without the order prefix (`hello`).
    pub name: String,
    /// Its place in the course.
    pub order: u32,
    /// Its title.
    pub title: String,
    /// One line on what it teaches.
    pub summary: String,
    /// The `nym new` template it starts from.
    pub template: String,
    /// The project's name (the crate jobs are written against).
    pub project: String,
    /// The introduction: `lesson.md` before the first step.
    pub intro: String,
    /// `lesson.md` as a whole (the notebook `nym tutorial open` shows).
    pub notebook: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// `start/`'s files, by path.
    pub start: BTreeMap<String, Vec<u8>>,
    /// Each step's overlay (`steps/<id>/`), by step id then path.
    pub solutions: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Why a lesson cannot be read (a nym bug: the lessons are built in).
#[derive(Debug, thiserror::Error)]
#[error("lesson {lesson}: {problem}")]
pub struct LessonError {
    /// The lesson's directory.
    pub lesson: String,
    /// What is wrong.
    pub problem: String,
}

impl Lesson {
    /// The step called `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The step after `id`, if any.
    pub fn next_after(&self, id: &str) -> Option<&Step> {
        let i = self.steps.iter().position(|s| s.id == id)?;
        self.steps.get(i + 1)
    }

    /// The files as they are at the start of step `id`: `start/` with the
    /// overlays of every step before it.
    pub fn files_before(&self, id: &str) -> BTreeMap<String, Vec<u8>> {
        let mut files = self.start.clone();
        for step in &self.steps {
            if step.id == id {
                break;
            }
            if let Some(overlay) = self.solutions.get(&step.id) {
                files.extend(overlay.iter().map(|(p, c)| (p.clone(), c.clone())));
            }
        }
        files
    }

    /// The files once step `id` is done.
    pub fn files_after(&self, id: &str) -> BTreeMap<String, Vec<u8>> {
        let mut files = self.files_before(id);
        if let Some(overlay) = self.solutions.get(id) {
            files.extend(overlay.iter().map(|(p, c)| (p.clone(), c.clone())));
        }
        files
    }
}

/// Every lesson built into this nym, in order.
pub fn all() -> Result<Vec<Lesson>, LessonError> {
    let mut dirs: BTreeMap<String, BTreeMap<String, &[u8]>> = BTreeMap::new();
    for (path, contents) in crate::FILES {
        let Some((dir, rest)) = path.split_once('/') else {
            continue;
        };
        dirs.entry(dir.to_owned())
            .or_default()
            .insert(rest.to_owned(), contents);
    }
    dirs.into_iter()
        .map(|(dir, files)| load(&dir, &files))
        .collect()
}

/// The lesson named `name` (`hello`, or its directory `01-hello`).
pub fn find(name: &str) -> Result<Option<Lesson>, LessonError> {
    Ok(all()?
        .into_iter()
        .find(|l| l.name == name || format!("{:02}-{}", l.order, l.name) == name))
}

fn load(dir: &str, files: &BTreeMap<String, &[u8]>) -> Result<Lesson, LessonError> {
    let err = |problem: String| LessonError {
        lesson: dir.to_owned(),
        problem,
    };
    let (order, name) = dir
        .split_once('-')
        .and_then(|(n, name)| Some((n.parse::<u32>().ok()?, name)))
        .ok_or_else(|| err("its directory is not NN-name".into()))?;
    let text = |f: &str| {
        files
            .get(f)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| err(format!("no {f}")))
    };
    let manifest: Manifest =
        toml::from_str(&text("lesson.toml")?).map_err(|e| err(format!("lesson.toml: {e}")))?;
    let notebook = text("lesson.md")?;
    let (intro, sections) = split_sections(&notebook);
    let mut steps = manifest.steps;
    for step in &mut steps {
        step.text = sections
            .get(&step.id)
            .cloned()
            .ok_or_else(|| err(format!("lesson.md has no section {{#{}}}", step.id)))?;
    }
    for id in sections.keys() {
        if !steps.iter().any(|s| &s.id == id) {
            return Err(err(format!("lesson.md's section {{#{id}}} is no step")));
        }
    }
    let overlay = |prefix: &str| -> BTreeMap<String, Vec<u8>> {
        files
            .iter()
            .filter_map(|(p, c)| Some((p.strip_prefix(prefix)?.to_owned(), c.to_vec())))
            .collect()
    };
    let solutions = steps
        .iter()
        .map(|s| (s.id.clone(), overlay(&format!("steps/{}/", s.id))))
        .filter(|(_, files)| !files.is_empty())
        .collect();
    Ok(Lesson {
        name: name.to_owned(),
        order,
        title: manifest.title,
        summary: manifest.summary,
        template: manifest.template,
        project: manifest.project,
        intro,
        notebook,
        steps,
        start: overlay("start/"),
        solutions,
    })
}

/// `lesson.md` cut at its `## Title {#id}` headings: the text before the
/// first, and each step's section (heading included) by id.
fn split_sections(md: &str) -> (String, BTreeMap<String, String>) {
    let mut intro = String::new();
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        if let Some(id) = line
            .strip_prefix("## ")
            .and_then(|h| h.rsplit_once("{#"))
            .and_then(|(_, id)| id.strip_suffix('}'))
        {
            current = Some(id.trim().to_owned());
        }
        let out = match &current {
            Some(id) => sections.entry(id.clone()).or_default(),
            None => &mut intro,
        };
        out.push_str(line);
        out.push('\n');
    }
    (intro, sections)
}
