//! The lesson pane of `nym tutorial open`: the lesson's steps beside the
//! notebook, the current one checked again in the background after each
//! cell, save, reload or run (and each save from another editor), so the
//! notebook never waits for a check.
use nym_tui::{GuideLine, Mark};
use nym_tutorials::engine::{State, Tutorial, Verdict};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the pane shows; the checking thread keeps it up to date.
#[derive(Default)]
struct Shown {
    title: String,
    steps: Vec<(String, String, State)>,
    current: Option<String>,
    said: Vec<(Mark, String)>,
}

/// The pane, over a checking thread.
pub(crate) struct Guide {
    shown: Arc<Mutex<Shown>>,
    tx: Mutex<mpsc::Sender<String>>,
}

impl Guide {
    /// Starts checking `t` with `nym` in the background.
    pub(crate) fn start(t: Tutorial, nym: PathBuf) -> Guide {
        let shown = Arc::new(Mutex::new(Shown::default()));
        refresh(
            &t,
            &shown,
            vec![(
                Mark::Said,
                "press ^R on a cell, or save: the step is checked".into(),
            )],
        );
        let (tx, rx) = mpsc::channel::<String>();
        let pane = shown.clone();
        std::thread::spawn(move || checker(t, nym, rx, pane));
        Guide {
            shown,
            tx: Mutex::new(tx),
        }
    }
}

fn lock(m: &Mutex<Shown>) -> std::sync::MutexGuard<'_, Shown> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn refresh(t: &Tutorial, shown: &Mutex<Shown>, said: Vec<(Mark, String)>) {
    let mut s = lock(shown);
    s.title = format!("lesson {} · {}", t.lesson.order, t.lesson.title);
    s.steps = t
        .lesson
        .steps
        .iter()
        .map(|st| (st.id.clone(), st.title.clone(), t.state(&st.id)))
        .collect();
    s.current = t.current().map(|st| st.id.clone());
    s.said = said;
}

/// Checks the current step whenever told to, or when a file changes.
fn checker(mut t: Tutorial, nym: PathBuf, rx: mpsc::Receiver<String>, shown: Arc<Mutex<Shown>>) {
    let mut seen = crate::tutorial::fingerprint(&t.dir);
    loop {
        let why = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(why) => why,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = crate::tutorial::fingerprint(&t.dir);
                if now == seen {
                    continue;
                }
                seen = now;
                "a save".to_owned()
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Several events at once are one check.
        while rx.try_recv().is_ok() {}
        let Some(step) = t.current().cloned() else {
            refresh(&t, &shown, vec![(Mark::Said, "every step is done".into())]);
            continue;
        };
        lock(&shown).said = vec![(Mark::Said, format!("checking `{}` ({why})…", step.id))];
        let progress = shown.clone();
        let mut say = move |what: &str| {
            let mut s = lock(&progress);
            s.said.truncate(1);
            s.said.push((Mark::Said, format!("… {what}")));
        };
        let said = match t.check(&nym, &step.id, None, &mut say) {
            Ok(Verdict::Passed) => vec![(Mark::Said, format!("`{}` passed", step.id))],
            Ok(Verdict::Failed { check, failure }) => {
                let mut lines = vec![(Mark::Failed, format!("not yet ({check}):"))];
                lines.extend(
                    failure
                        .to_string()
                        .lines()
                        .map(|l| (Mark::Failed, l.to_owned())),
                );
                lines
            }
            Ok(Verdict::Skipped(missing)) => missing
                .into_iter()
                .map(|(n, why)| (Mark::Said, format!("skipped: needs {}: {why}", n.name())))
                .collect(),
            Err(e) => vec![(Mark::Failed, e.to_string())],
        };
        refresh(&t, &shown, said);
        seen = crate::tutorial::fingerprint(&t.dir);
    }
}

impl nym_tui::Guide for Guide {
    fn title(&self) -> String {
        lock(&self.shown).title.clone()
    }

    fn lines(&self) -> Vec<GuideLine> {
        let s = lock(&self.shown);
        let mut out = Vec::new();
        for (id, title, state) in &s.steps {
            let mark = match state {
                State::Done => Mark::Done,
                State::Skipped => Mark::Skipped,
                State::Todo if s.current.as_ref() == Some(id) => Mark::Current,
                State::Todo => Mark::Todo,
            };
            out.push(GuideLine {
                mark,
                text: format!("{title} ({id})"),
            });
            if mark == Mark::Current {
                out.extend(s.said.iter().map(|(m, text)| GuideLine {
                    mark: *m,
                    text: text.clone(),
                }));
            }
        }
        if s.current.is_none() {
            out.extend(s.said.iter().map(|(m, text)| GuideLine {
                mark: *m,
                text: text.clone(),
            }));
        }
        out
    }

    fn changed(&self, what: &str) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(what.to_owned());
        }
    }
}
