//! What an evaluation answers ([`Reply`]) and what the status bar shows
//! ([`Status`], [`RunState`]).
use nym_graph::Target;
use std::time::Duration;

/// What an evaluation answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// What to show, possibly several lines; may be empty.
    pub text: String,
    /// Whether it is an error (shown as one; the session did not change).
    pub error: bool,
    /// `:quit`.
    pub quit: bool,
}

impl Reply {
    pub(crate) fn ok(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ..Reply::default()
        }
    }
    pub(crate) fn err(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            error: true,
            quit: false,
        }
    }
    /// Joins `next` under `self`; an error in either makes an error.
    pub(super) fn then(mut self, next: Reply) -> Reply {
        if !next.text.is_empty() {
            if !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push('\n');
            }
            self.text.push_str(&next.text);
        }
        self.error |= next.error;
        self.quit |= next.quit;
        self
    }
}

/// Whether the stack or a guest is running.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunState {
    /// Nothing runs.
    #[default]
    Stopped,
    /// The stack runs in-process (`:run`).
    Running,
    /// A guest is booted on a target (`:boot`).
    Booted(Target),
    /// It ended, and how.
    Ended(String),
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunState::Stopped => f.write_str("stopped"),
            RunState::Running => f.write_str("running"),
            RunState::Booted(t) => write!(f, "booted on {t}"),
            RunState::Ended(how) => write!(f, "ended: {how}"),
        }
    }
}

/// What the status bar shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Run state.
    pub state: RunState,
    /// Reloads since `:run`.
    pub reloads: u32,
    /// The last build's duration.
    pub last_build: Option<Duration>,
    /// The last reload's swap: from stopping the old jobs to the new ones running.
    pub last_swap: Option<Duration>,
    /// The last reload's report.
    pub last_reload: Option<String>,
}
