//! Checks as data: what a step's `[[step.check]]` tables say must be true,
//! and how each is verified. Checks look at outcomes — the resolved graph,
//! a run's output, an exchange with a server, a value that outlives a
//! restart or a reload, the session's replies, a file, a hashed answer —
//! never at line numbers, so a learner may write a step any way that works.
use crate::engine::Context;
use serde::Deserialize;

/// One check of a step.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Check {
    /// The graph, as `nym check` resolves it.
    Graph(GraphCheck),
    /// The graph file is formatted as `nym fmt` would.
    Fmt(FmtCheck),
    /// A file holds `nym graph --dot`'s output for the current graph.
    Dot(DotCheck),
    /// A file exists and says (or does not say) something.
    File(FileCheck),
    /// A file is as the lesson laid it out.
    Unchanged(UnchangedCheck),
    /// A run: its output, exit status and time, once or across restarts.
    Run(RunCheck),
    /// HTTP or HTTPS requests to a copy of the server the engine starts.
    Http(HttpCheck),
    /// Bytes through a copy of a TCP echo server the engine starts.
    Echo(EchoCheck),
    /// A hot reload under `nym run --watch`, state planted before it.
    Reload(ReloadCheck),
    /// What the learner's `nym repl` or `nym tui` session did.
    Session(SessionCheck),
    /// A notebook whose cells replay in a session.
    Notebook(NotebookCheck),
    /// A value given with `nym tutorial check --answer`.
    Answer(AnswerCheck),
    /// A simulation (`nym sim`) of a topology of the lesson: how it ends.
    Sim(SimCheck),
}

/// `kind = "graph"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphCheck {
    /// The targets to check for (default: unix).
    pub targets: Vec<String>,
    /// Diagnostic codes that must be gone (`nym::unknown-impl`); other
    /// errors may remain. Without it, the graph must have no errors.
    pub without: Vec<String>,
    /// Warnings allowed (default: none).
    pub warnings: bool,
    /// Nodes that must be there (or not).
    pub node: Vec<NodeWant>,
    /// Keys that must be declared.
    pub key: Vec<KeyWant>,
    /// Every node of these implementations takes its `param` from one key.
    pub shared: Option<SharedKey>,
    /// The registered jobs take these implementations among their
    /// arguments (directly): `job = { name = "web", takes = "tls::server" }`.
    pub job: Vec<JobWant>,
}

/// A node the graph must (or must not) have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWant {
    /// Its implementation (`kv::full`).
    pub imp: String,
    /// Its binding, when it matters.
    pub label: Option<String>,
    /// Its implementation wraps a node of this implementation (directly).
    pub wraps: Option<String>,
    /// It must not be there.
    #[serde(default)]
    pub absent: bool,
}

/// A key the graph must declare.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWant {
    /// Its name.
    pub name: String,
    /// Its type (`int`, `string`, `duration`, …) when it matters.
    pub ty: Option<String>,
    /// Its default, as the graph prints it (`5`, `"nym"`, `250ms`).
    pub default: Option<String>,
}

/// Several nodes sharing one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedKey {
    /// The implementations whose nodes share it.
    pub imps: Vec<String>,
    /// The parameter they take from it.
    pub param: String,
}

/// A registered job's argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobWant {
    /// The implementation one of its arguments must be.
    pub takes: String,
}

/// `kind = "fmt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FmtCheck {}

/// `kind = "dot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotCheck {
    /// The file (`graph.dot`).
    pub path: String,
}

/// `kind = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// The file.
    pub path: String,
    /// Text it must hold.
    #[serde(default)]
    pub contains: Vec<String>,
    /// Text it must not hold.
    #[serde(default)]
    pub lacks: Vec<String>,
}

/// `kind = "unchanged"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnchangedCheck {
    /// The file.
    pub path: String,
}

/// `kind = "run"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCheck {
    /// The target (default: unix).
    pub target: Option<String>,
    /// Key values, as after `nym run --`.
    #[serde(default)]
    pub args: Vec<String>,
    /// How many times to run it on the same copy (state kept between):
    /// 2 checks a value survives a restart.
    #[serde(default = "one")]
    pub runs: u32,
    /// Text the last run's output must hold.
    #[serde(default)]
    pub contains: Vec<String>,
    /// Text it must not hold.
    #[serde(default)]
    pub lacks: Vec<String>,
    /// The run must fail (exit non-zero), not succeed.
    #[serde(default)]
    pub fails: bool,
    /// The run (not its build) must end within this, as `5s`.
    pub within: Option<String>,
}

fn one() -> u32 {
    1
}

/// `kind = "sim"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCheck {
    /// The topology file, in the lesson folder (default: sim.toml).
    #[serde(default = "sim_toml")]
    pub topology: String,
    /// More arguments, as after `nym sim TOPOLOGY` (`--seed 3`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Text its output (consoles and verdict) must hold.
    #[serde(default)]
    pub contains: Vec<String>,
    /// Text it must not hold.
    #[serde(default)]
    pub lacks: Vec<String>,
    /// A property must be violated (`nym sim` exits non-zero).
    #[serde(default)]
    pub fails: bool,
}

fn sim_toml() -> String {
    "sim.toml".into()
}

/// `kind = "http"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The target (default: unix).
    pub target: Option<String>,
    /// The port the server listens on (its `port` key), in the guest.
    pub port: u16,
    /// The CA to trust, for HTTPS (a file of the lesson folder).
    pub cacert: Option<String>,
    /// The requests, in order.
    #[serde(rename = "request")]
    pub requests: Vec<Request>,
}

/// One HTTP request and what must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// GET (default) or PUT.
    pub method: Option<String>,
    /// The path.
    pub path: String,
    /// The body to send.
    pub body: Option<String>,
    /// The status expected (default 200).
    pub status: Option<u16>,
    /// Text the body must hold.
    #[serde(default)]
    pub contains: Vec<String>,
}

/// `kind = "echo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoCheck {
    /// The target (default: unix).
    pub target: Option<String>,
    /// The port the server listens on in the guest.
    pub port: u16,
    /// How many bytes to send through it.
    pub bytes: usize,
}

/// `kind = "reload"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadCheck {
    /// The port the server listens on.
    pub port: u16,
    /// The step whose solution the server starts from (default: the files
    /// as this step began).
    pub from: Option<String>,
    /// The edit must fail to build, and the old version keep serving.
    #[serde(default)]
    pub broken: bool,
    /// Text the page at `/` must hold after the edit.
    #[serde(default)]
    pub page: Vec<String>,
}

/// `kind = "session"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCheck {
    /// What the session must have answered, in this order.
    #[serde(rename = "event")]
    pub events: Vec<EventWant>,
}

/// One evaluation a session check looks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventWant {
    /// The input holds this (`:inspect state`); any input if absent.
    pub input: Option<String>,
    /// The reply holds all of these.
    #[serde(default)]
    pub reply: Vec<String>,
    /// Where it was typed: `repl` or `tui`; either if absent.
    pub via: Option<String>,
    /// What to say when it is missing.
    pub expect: String,
}

/// `kind = "notebook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotebookCheck {
    /// The notebook (`notebook.md`).
    pub path: String,
    /// Implementations the replayed graph must have.
    #[serde(default)]
    pub imps: Vec<String>,
}

/// `kind = "answer"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCheck {
    /// The SHA-256 (hex) of the answer, trimmed and in lower case.
    pub sha256: String,
    /// What is asked, for the message when no answer is given.
    pub question: String,
}

/// Why a check failed: what was expected and what was seen, and first,
/// when the graph is involved, `nym check`'s own diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `nym check`'s report, when it has something to say.
    pub diagnostics: Option<String>,
    /// What the step wants.
    pub expected: String,
    /// What the check saw instead.
    pub seen: String,
}

impl Failure {
    /// A failure without diagnostics.
    pub fn new(expected: impl Into<String>, seen: impl Into<String>) -> Failure {
        Failure {
            diagnostics: None,
            expected: expected.into(),
            seen: seen.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.diagnostics {
            writeln!(f, "{}", d.trim_end())?;
        }
        write!(
            f,
            "expected: {}\n    seen: {}",
            self.expected,
            self.seen.trim_end().replace('\n', "\n          ")
        )
    }
}

impl Check {
    /// A short name for listings and logs.
    pub fn describe(&self) -> String {
        match self {
            Check::Graph(_) => "the graph".into(),
            Check::Fmt(_) => "the graph's layout".into(),
            Check::Dot(c) => format!("{} (DOT)", c.path),
            Check::File(c) => c.path.clone(),
            Check::Unchanged(c) => format!("{} unchanged", c.path),
            Check::Run(c) => format!("a run on {}", c.target.as_deref().unwrap_or("unix")),
            Check::Http(c) => format!("requests on {}", c.target.as_deref().unwrap_or("unix")),
            Check::Echo(c) => format!("an echo on {}", c.target.as_deref().unwrap_or("unix")),
            Check::Reload(_) => "a hot reload".into(),
            Check::Session(_) => "your session".into(),
            Check::Notebook(c) => c.path.clone(),
            Check::Answer(_) => "your answer".into(),
            Check::Sim(c) => format!("a simulation of {}", c.topology),
        }
    }

    /// Verifies the check against the lesson folder in `cx`.
    pub fn verify(&self, cx: &mut Context<'_>) -> Result<(), Failure> {
        match self {
            Check::Graph(c) => crate::checks::graph(cx, c),
            Check::Fmt(_) => crate::checks::fmt(cx),
            Check::Dot(c) => crate::checks::dot(cx, c),
            Check::File(c) => crate::checks::file(cx, c),
            Check::Unchanged(c) => crate::checks::unchanged(cx, c),
            Check::Run(c) => crate::runs::run(cx, c),
            Check::Http(c) => crate::runs::http(cx, c),
            Check::Echo(c) => crate::runs::echo(cx, c),
            Check::Reload(c) => crate::runs::reload(cx, c),
            Check::Session(c) => crate::checks::session(cx, c),
            Check::Notebook(c) => crate::checks::notebook(cx, c),
            Check::Answer(c) => crate::checks::answer(cx, c),
            Check::Sim(c) => crate::runs::sim(cx, c),
        }
    }
}
