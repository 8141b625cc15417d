//! The running stack: the task that owns it (re-wires, `:inspect`, hot
//! reloads of `src/` edits) and the watcher of a guest booted on a target.
use super::{Reply, RunState, Session, Status};
use crate::log::Log;
use nym_driver::build::key_values;
use nym_driver::live::{Live, Reloaded};
use nym_driver::project::Project;
use nym_driver::Error;
use nym_graph::diagnostic;
use nym_graph::{analyze, Graph, Target};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Requests to the task that owns the running stack.
pub(super) enum Request {
    Reload(
        Graph,
        nym_unix::keys::Keys,
        oneshot::Sender<Result<Reloaded, Error>>,
    ),
    Inspect(usize, oneshot::Sender<Vec<String>>),
    /// A device call: the device's node by label, the method, its values.
    Call(
        String,
        &'static str,
        Vec<libos::Value>,
        oneshot::Sender<Result<libos::call::Answer, String>>,
    ),
    /// A copy of a device's state for a Rust cell, by the node's label.
    Snapshot(
        String,
        oneshot::Sender<Result<libos::snapshot::Snapshot, String>>,
    ),
    /// A question to a store's history, by the node's label (none: every
    /// store's).
    History(
        Option<String>,
        super::history::Ask,
        oneshot::Sender<Result<String, String>>,
    ),
    Stop(oneshot::Sender<()>),
}

/// How long a device call may take before the session stops waiting (a
/// store on a slow disk, a long `sleep`).
pub(super) const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The running stack, owned by its own task.
pub(super) struct Running {
    pub(super) requests: mpsc::UnboundedSender<Request>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

/// A guest booted on a target (`:boot`): built and booted on a thread of
/// the driver's, in this process.
pub(super) use nym_driver::guest::Booted;

pub(super) fn rewired_text(done: &Reloaded) -> String {
    let mut t = String::new();
    if !done.rewired.kept.is_empty() {
        t += &format!("kept {}", done.rewired.kept.join(", "));
    }
    if !done.rewired.made.is_empty() {
        if !t.is_empty() {
            t += "; ";
        }
        t += &format!("new {}", done.rewired.made.join(", "));
    }
    format!(
        "{t} (build {} ms, swap {:.2} ms)",
        done.build.as_millis(),
        done.swap.as_secs_f64() * 1e3
    )
}

impl Session {
    /// Re-wires the running stack to the current graph.
    pub(super) fn rewire(&mut self) -> Reply {
        let analysis = analyze(&self.source(), Target::Unix, self.krate().as_ref());
        let Some(graph) = analysis.checked.graph else {
            let first = analysis
                .diagnostics()
                .iter()
                .find(|d| d.is_error())
                .map_or_else(String::new, |d| format!(": {}", d.message));
            return Reply::ok(format!(
                "the stack keeps running the previous graph (this one does not run yet{first})"
            ));
        };
        match self.reload(graph) {
            Ok(done) => Reply::ok(format!("re-wired: {}", rewired_text(&done))),
            Err(e) => Reply::err(format!("{e}; the previous graph keeps running")),
        }
    }

    pub(super) fn reload(&mut self, graph: Graph) -> Result<Reloaded, Error> {
        let keys = key_values(&graph, &self.key_args)?;
        let running = self.running.as_ref().ok_or_else(|| Error::Io {
            what: "re-wiring".into(),
            source: std::io::Error::other("the stack is not running"),
        })?;
        let (tx, rx) = oneshot::channel();
        let _ = running.requests.send(Request::Reload(graph, keys, tx));
        self.wait(rx)?
    }

    /// Runs a device call (`store.get("k")`, written `text`) on the live
    /// device of the running stack: its answer, or why there is none.
    pub(super) fn device_call(&mut self, call: &nym_graph::check::DeviceCall, text: &str) -> Reply {
        self.poll();
        let Some(running) = &self.running else {
            return Reply::err(match &self.booted {
                Some(_) => format!(
                    "`{text}`: calls reach the devices of the stack running in-process (`:run`); a booted guest's cannot be called"
                ),
                None => format!(
                    "`{text}` calls a device of the running stack, and nothing runs: `:run` starts it"
                ),
            });
        };
        let (tx, rx) = oneshot::channel();
        let request = Request::Call(call.node.clone(), call.method.name, call.args.clone(), tx);
        if running.requests.send(request).is_err() {
            return Reply::err(format!("`{text}`: the running stack is gone"));
        }
        match self.wait(rx) {
            Ok(Ok(answer)) => Reply::ok(answer.to_string()),
            Ok(Err(e)) => Reply::err(format!("`{text}`: {e}")),
            Err(e) => Reply::err(format!("`{text}`: {e}")),
        }
    }

    /// Blocks on `rx`, or until Ctrl-C when interruptible.
    pub(super) fn wait<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, Error> {
        let gone = || Error::Io {
            what: "the running stack".into(),
            source: std::io::Error::other("it stopped"),
        };
        let interruptible = self.interruptible;
        self.runtime.block_on(async move {
            if interruptible {
                tokio::select! {
                    r = rx => r.map_err(|_| gone()),
                    _ = tokio::signal::ctrl_c() => Err(Error::Io {
                        what: "waiting".into(),
                        source: std::io::Error::other("interrupted"),
                    }),
                }
            } else {
                rx.await.map_err(|_| gone())
            }
        })
    }

    /// Forgets a booted guest that has ended.
    pub(super) fn poll(&mut self) {
        if self.booted.as_ref().is_some_and(Booted::finished) {
            self.booted = None;
        }
    }

    pub(super) fn set_state(&self, state: RunState) {
        set_state(&self.status, state);
    }
}

/// What the task owning the running stack holds.
pub(super) struct Supervised {
    pub(super) live: Live,
    pub(super) requests: mpsc::UnboundedReceiver<Request>,
    pub(super) project: Project,
    pub(super) source: Arc<Mutex<String>>,
    pub(super) key_args: Vec<String>,
    pub(super) log: Log,
    pub(super) status: Arc<Mutex<Status>>,
}

/// Owns the running stack: serves the session's requests, reports how the
/// jobs end, and hot-reloads when the application's sources change.
pub(super) async fn supervise(mut s: Supervised) {
    let out = s.log.out();
    let (tx, mut changes) = mpsc::unbounded_channel();
    let watcher = nym_driver::watch::watch(&s.project.root, &s.project.graph_path, tx);
    if let Err(e) = &watcher {
        s.log.push(&format!("nym: {e}; edits will not reload"));
    }
    loop {
        tokio::select! {
            req = s.requests.recv() => match req {
                None => break,
                Some(Request::Stop(done)) => {
                    s.live.stop().await;
                    drop(s.live);
                    let _ = done.send(());
                    return;
                }
                Some(Request::Reload(graph, keys, done)) => {
                    let r = s.live.reload(&s.project, graph, keys, &out).await;
                    if let Ok(d) = &r {
                        reloaded(&s, d);
                    }
                    let _ = done.send(r);
                }
                Some(Request::Inspect(node, done)) => {
                    let _ = done.send(inspect(&s.live, node).await);
                }
                Some(Request::Call(node, method, args, done)) => call(&s.live, &node, method, args, done),
                Some(Request::Snapshot(node, done)) => {
                    let _ = done.send(snapshot(&s.live, &node).await);
                }
                Some(Request::History(node, ask, done)) => history(&s.live, node, ask, done),
            },
            ended = s.live.ended() => {
                let how = match &ended {
                    nym_unix::jobs::Ended::Finished => "the jobs finished".to_owned(),
                    nym_unix::jobs::Ended::Failed { job, error } => format!("job {job} failed: {error}"),
                    nym_unix::jobs::Ended::Interrupted => "interrupted".to_owned(),
                };
                s.log.push(&format!("nym: {how}"));
                set_state(&s.status, RunState::Ended(how));
            }
            Some(changed) = nym_driver::watch::next_change(&mut changes, &s.project.root) => {
                let graph_file = nym_driver::watch::short(&s.project.root, &s.project.graph_path);
                if changed.iter().all(|c| *c == graph_file) {
                    s.log.push(&format!("nym: {graph_file} changed on disk; the session's graph is in memory (`:load {graph_file}` takes the file's)"));
                    continue;
                }
                s.log.push(&format!("nym: {} changed; rebuilding", changed.join(", ")));
                let src = s.source.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let krate = s.project.krate();
                let analysis = analyze(&src, Target::Unix, krate.as_ref());
                let Some(graph) = analysis.checked.graph else {
                    let errors: Vec<_> = analysis.diagnostics().iter().filter(|d| d.is_error()).cloned().collect();
                    s.log.push(&diagnostic::render_short(&errors, "session", &src));
                    s.log.push("nym: the previous version keeps running");
                    continue;
                };
                let keys = match key_values(&graph, &s.key_args) {
                    Ok(k) => k,
                    Err(e) => { s.log.push(&format!("nym: {e}")); continue; }
                };
                match s.live.reload(&s.project, graph, keys, &out).await {
                    Ok(d) => reloaded(&s, &d),
                    Err(e) => s.log.push(&format!("nym: {e}; the previous version keeps running")),
                }
            }
        }
    }
    s.live.stop().await;
}

/// What a booted guest's thread reports when it ends: a line in the log
/// and the session's state.
pub(super) fn guest_ended(
    target: Target,
    log: Log,
    status: Arc<Mutex<Status>>,
) -> impl FnOnce(Result<u8, nym_driver::Error>) + Send + 'static {
    move |result| {
        let how = match result {
            Ok(130) => format!("the {target} guest was stopped"),
            Ok(code) => format!("the {target} guest exited with {code}"),
            Err(e) => format!("the {target} guest did not run: {e}"),
        };
        log.push(&format!("nym: {how}"));
        set_state(&status, RunState::Ended(how));
    }
}

fn set_state(status: &Mutex<Status>, state: RunState) {
    status.lock().unwrap_or_else(|p| p.into_inner()).state = state;
}

/// Reports a reload in the log and the status, whoever asked for it.
fn reloaded(s: &Supervised, d: &Reloaded) {
    s.log.push(&format!("nym: {d}"));
    let mut st = s.status.lock().unwrap_or_else(|p| p.into_inner());
    st.reloads += 1;
    st.last_build = Some(d.build);
    st.last_swap = Some(d.swap);
    st.last_reload = Some(d.to_string());
    st.state = RunState::Running;
}

/// Runs a device call on its own task, so that a slow device holds up
/// neither the supervisor nor the jobs; a panic in the device ends that
/// task alone.
fn call(
    live: &Live,
    node: &str,
    method: &'static str,
    args: Vec<libos::Value>,
    done: oneshot::Sender<Result<libos::call::Answer, String>>,
) {
    let found = live.graph().nodes.iter().position(|n| n.label == node);
    let Some(dev) = found.and_then(|i| live.devices().node(i)).cloned() else {
        let _ = done.send(Err(format!(
            "`{node}` is not in the running stack (no registered job reaches it, or the stack runs an older graph)"
        )));
        return;
    };
    let node = node.to_owned();
    tokio::spawn(async move {
        let work = tokio::spawn(async move {
            // On the session's track of a trace, when one is on.
            let answer = nym_unix::trace::call(
                &node.as_str().into(),
                method,
                libos::call::call(&dev, method, &args),
            )
            .await;
            answer.map_err(|e| e.to_string())
        });
        let answer = match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_panic() => Err("the device panicked; the stack runs on".into()),
            Ok(Err(_)) => Err("the call was cancelled".into()),
            Err(_) => Err(format!(
                "no answer within {} s; the call goes on in the background",
                CALL_TIMEOUT.as_secs()
            )),
        };
        let _ = done.send(answer);
    });
}

/// Answers a question to a store's history (a revert writes through the
/// live store) on a task of its own, as a device call.
fn history(
    live: &Live,
    node: Option<String>,
    ask: super::history::Ask,
    done: oneshot::Sender<Result<String, String>>,
) {
    let labels = &live.graph().nodes;
    let Some(node) = node else {
        let all: Vec<_> = (labels.iter().enumerate())
            .filter_map(|(i, n)| Some((n.label.clone(), live.devices().history(i)?.clone())))
            .collect();
        let _ = done.send(Ok(super::history::stores(&all, &ask)));
        return;
    };
    let found = labels.iter().position(|n| n.label == node);
    let Some(h) = found.and_then(|i| live.devices().history(i)).cloned() else {
        let _ = done.send(Err(match found {
            None => format!("`{node}` is not in the running stack (no registered job reaches it, or the stack runs an older graph)"),
            Some(i) if labels[i].imp.provides == nym_graph::Kind::Stack => format!(
                "`{node}` keeps no history: only `stack::direct` records its neighbours and sockets (this is `{}`)",
                labels[i].imp.name
            ),
            Some(_) => format!("`{node}` keeps no history: it was made before histories were recorded"),
        }));
        return;
    };
    tokio::spawn(async move {
        let work = tokio::spawn(async move { super::history::answer(&node, &h, ask).await });
        let answer = match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the store panicked; the stack runs on".into()),
            Err(_) => Err(format!(
                "no answer within {} s; the writes go on in the background",
                CALL_TIMEOUT.as_secs()
            )),
        };
        let _ = done.send(answer);
    });
}

/// The most keys a snapshot copies.
const SNAPSHOT_KEYS: usize = 10_000;

/// A copy of the state of the device labelled `node`: what `:inspect`
/// shows, and a store's keys and values.
async fn snapshot(live: &Live, node: &str) -> Result<libos::snapshot::Snapshot, String> {
    use libos::abi::Arg;
    let index = (live.graph().nodes.iter())
        .position(|n| n.label == node)
        .ok_or_else(|| format!("`{node}` is not in the running stack"))?;
    let dev = live.devices().node(index).ok_or("the device is gone")?;
    let store: Option<&dyn libos::KvRo> = match dev {
        Arg::Kv(kv) => Some(&**kv),
        Arg::KvRo(kv) => Some(&**kv),
        _ => None,
    };
    let mut entries = Vec::new();
    if let Some(kv) = store {
        let keys = kv
            .list("")
            .await
            .map_err(|e| format!("cannot list it: {e}"))?;
        for k in keys.into_iter().take(SNAPSHOT_KEYS) {
            if let Ok(v) = kv.get(&k).await {
                entries.push((k, v));
            }
        }
    }
    Ok(libos::snapshot::Snapshot {
        name: node.to_owned(),
        kind: libos::call::kind_name(dev).to_owned(),
        lines: inspect(live, index).await,
        entries,
    })
}

/// A device's live state, a line per fact, and the size of its history.
async fn inspect(live: &Live, node: usize) -> Vec<String> {
    let Some(dev) = live.devices().node(node) else {
        return vec!["(not in the running graph: it is re-wired on the next change)".into()];
    };
    let mut lines = nym_unix::runner::describe(dev).await;
    if let Some(h) = live.devices().history(node) {
        let (n, oldest) = h.kept();
        lines.push(match n {
            0 => format!(
                "history: no changes yet (keeps {}; `:history NAME`)",
                h.bound()
            ),
            n => format!(
                "history: {n} change(s) kept, #{oldest}–#{} (keeps {}; `:history NAME`)",
                h.latest(),
                h.bound()
            ),
        });
    }
    lines
}
