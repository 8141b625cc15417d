//! `:trace on [FILE]` and `:trace off`: the scheduler's log of the stack
//! running in-process (`nym_unix::trace`), written in the Trace Event
//! format that Perfetto and chrome://tracing open. While it records, a
//! front end reads the last seconds of it ([`Session::timeline`]).
use super::{Reply, Session};
use std::path::PathBuf;

impl Session {
    /// `:trace`, `:trace on [FILE]`, `:trace off`.
    pub(super) fn trace(&mut self, rest: &str) -> Reply {
        let (word, file) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        match word {
            "" => Reply::ok(match &self.trace_file {
                Some(f) => format!(
                    "tracing into {} ({} event(s) so far); `:trace off` writes it",
                    f.display(),
                    nym_unix::trace::recorded()
                ),
                None => "not tracing; `:trace on [FILE]` starts".into(),
            }),
            "on" => self.trace_on(file.trim()),
            "off" => self.trace_off(),
            other => Reply::err(format!(
                "`:trace {other}`: `:trace on [FILE]` records the jobs' polls, wake-ups and device calls, `:trace off` writes them"
            )),
        }
    }

    fn trace_on(&mut self, file: &str) -> Reply {
        if !nym_unix::trace::installed() {
            return Reply::err("the tracing code is left out here (NYM_TRACE_CODE=0)");
        }
        let path = if file.is_empty() {
            match &self.project {
                Some(p) => p.root.join("target/nym/trace.json"),
                None => self.cwd.join("trace.json"),
            }
        } else {
            self.cwd.join(file)
        };
        // A file that cannot be written is said now, not at `:trace off`.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, "") {
            return Reply::err(format!("cannot write the trace to {}: {e}", path.display()));
        }
        nym_unix::trace::start();
        let what = if self.running.is_some() {
            ""
        } else {
            " (nothing runs yet: `:run` starts the stack)"
        };
        let reply = format!(
            "tracing the jobs' polls, wake-ups and device calls{what}; `:trace off` writes {}",
            path.display()
        );
        self.trace_file = Some(path);
        Reply::ok(reply)
    }

    fn trace_off(&mut self) -> Reply {
        let Some(path) = self.trace_file.take() else {
            return Reply::err("not tracing (`:trace on [FILE]` starts)");
        };
        let Some(trace) = nym_unix::trace::stop() else {
            return Reply::err("not tracing (`:trace on [FILE]` starts)");
        };
        write_trace(&trace, &path, "nym session")
    }

    /// Whether `:trace on` records now.
    pub fn tracing(&self) -> bool {
        self.trace_file.is_some()
    }

    /// What the jobs did in the last `window` of the trace `:trace on`
    /// records (`None`: not tracing), copied while it goes on: what a
    /// timeline pane draws.
    pub fn timeline(&self, window: std::time::Duration) -> Option<super::TraceWindow> {
        if !self.tracing() {
            return None;
        }
        nym_unix::trace::recent(u64::try_from(window.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Stops a trace left on, writing it (the session ends).
    pub(super) fn finish_trace(&mut self) {
        if self.trace_file.is_some() {
            let r = self.trace_off();
            self.log.push(&format!("nym: {}", r.text));
        }
    }
}

/// Writes `trace` to `path`: what it holds, or why it was not written.
pub(super) fn write_trace(trace: &nym_unix::trace::Trace, path: &PathBuf, process: &str) -> Reply {
    match std::fs::write(path, trace.json(process)) {
        Ok(()) => Reply::ok(trace.written(path)),
        Err(e) => Reply::err(format!("cannot write the trace to {}: {e}", path.display())),
    }
}
