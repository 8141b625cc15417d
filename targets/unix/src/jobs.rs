//! Running a unikernel's jobs on the host's tokio runtime: all at once,
//! until they all finish, one fails, or the user presses Ctrl-C.
use libos::abi::JobFuture;
use std::process::ExitCode;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every job returned successfully.
    Finished,
    /// A job returned an error or panicked; the others were stopped.
    Failed {
        /// The job.
        job: String,
        /// Its error.
        error: String,
    },
    /// Ctrl-C; every job was stopped.
    Interrupted,
}

impl Ended {
    /// The process exit status for this ending: 0, 1, or 130 as shells use for SIGINT.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Ended::Finished => ExitCode::SUCCESS,
            Ended::Failed { .. } => ExitCode::from(1),
            Ended::Interrupted => ExitCode::from(130),
        }
    }
}

/// Runs `jobs` concurrently on the current tokio runtime until they all
/// finish, one fails, or `stop` completes (pass Ctrl-C for an interactive run).
pub async fn run(
    jobs: Vec<(String, JobFuture)>,
    stop: impl std::future::Future<Output = ()>,
) -> Ended {
    let mut running = Running::start(jobs);
    tokio::select! {
        ended = running.ended() => ended,
        () = stop => {
            running.stop().await;
            Ended::Interrupted
        }
    }
}

/// Jobs running on the current tokio runtime, each as its own task.
pub struct Running {
    set: tokio::task::JoinSet<Result<(), String>>,
    names: std::collections::HashMap<tokio::task::Id, String>,
}

impl Running {
    /// Spawns `jobs`.
    pub fn start(jobs: Vec<(String, JobFuture)>) -> Running {
        let mut set = tokio::task::JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (name, fut) in jobs {
            // Polls and wake-ups recorded while tracing is on (`--trace`).
            let handle = if crate::trace::installed() {
                set.spawn(crate::trace::Traced::new(&format!("job {name}"), fut))
            } else {
                set.spawn(fut)
            };
            names.insert(handle.id(), name);
        }
        Running { set, names }
    }

    /// Waits until every job has finished ([`Ended::Finished`]) or one
    /// fails, which stops the others. With no jobs left it never completes.
    /// Cancel-safe: a job that ends while this is not awaited is seen next time.
    pub async fn ended(&mut self) -> Ended {
        if self.set.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let failed = match self.set.join_next_with_id().await {
                None => return Ended::Finished,
                Some(Ok((_, Ok(())))) => continue,
                Some(Ok((id, Err(error)))) => (id, error),
                Some(Err(e)) if e.is_cancelled() => continue,
                Some(Err(e)) => {
                    let id = e.id();
                    let error = if e.is_panic() {
                        panic_message(e.into_panic())
                    } else {
                        "cancelled".into()
                    };
                    (id, error)
                }
            };
            self.stop().await;
            return Ended::Failed {
                job: self.names.remove(&failed.0).unwrap_or_default(),
                error: failed.1,
            };
        }
    }

    /// Stops every job and waits until their futures are dropped (so code
    /// they came from may be unloaded).
    pub async fn stop(&mut self) {
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("panicked: {msg}")
}

/// Watches for Ctrl-C (SIGINT) and SIGTERM from this call on, and completes
/// on the first (never, if neither can be watched). The handlers are in
/// place when it returns, before the future is first polled: call it
/// before starting what it guards, or a signal in between would end the
/// process instead. Call it inside the runtime.
pub fn interrupted() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let watched = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut int), Ok(mut term)) = watched else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// Whether `stop` (from [`interrupted`]) has fired, without waiting.
pub async fn fired(stop: &mut (impl std::future::Future<Output = ()> + Unpin)) -> bool {
    tokio::select! {
        biased;
        () = stop => true,
        () = std::future::ready(()) => false,
    }
}

/// Tells the user how the run ended, as `program` (on stderr, so stdout is
/// the jobs' alone).
pub fn report(program: &str, ended: &Ended) {
    match ended {
        Ended::Finished => {}
        Ended::Failed { job, error } => eprintln!("{program}: job {job} failed: {error}"),
        Ended::Interrupted => eprintln!("{program}: interrupted; jobs stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(f: impl std::future::Future<Output = Result<(), String>> + Send + 'static) -> JobFuture {
        Box::pin(f)
    }

    #[tokio::test]
    async fn all_finish() {
        let jobs = vec![
            ("a".into(), job(async { Ok(()) })),
            ("b".into(), job(async { Ok(()) })),
        ];
        assert_eq!(run(jobs, std::future::pending()).await, Ended::Finished);
    }

    #[tokio::test]
    async fn a_failure_stops_the_others() {
        let jobs = vec![
            ("forever".into(), job(std::future::pending())),
            ("bad".into(), job(async { Err("disk on fire".into()) })),
        ];
        let ended = run(jobs, std::future::pending()).await;
        assert_eq!(
            ended,
            Ended::Failed {
                job: "bad".into(),
                error: "disk on fire".into()
            }
        );
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_with_its_message() {
        let jobs = vec![("p".into(), job(async { panic!("boom") }))];
        let ended = run(jobs, std::future::pending()).await;
        assert_eq!(
            ended,
            Ended::Failed {
                job: "p".into(),
                error: "panicked: boom".into()
            }
        );
    }

    #[tokio::test]
    async fn stop_interrupts_running_jobs() {
        let jobs = vec![("forever".into(), job(std::future::pending()))];
        assert_eq!(run(jobs, async {}).await, Ended::Interrupted);
    }
}
