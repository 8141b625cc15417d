//! The session's log: what the running stack's console prints, cargo's
//! output, reload reports and booted guests' output, line by line. The
//! REPL prints new lines above its prompt; the notebook shows them in its
//! log pane.
use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};

/// Lines kept; older ones are dropped.
const KEEP: usize = 10_000;

/// A shared log. Clones are the same log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    lines: VecDeque<String>,
    total: u64,
    subscribers: Vec<mpsc::Sender<String>>,
}

impl Log {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `text`, one line per line of it.
    pub fn push(&self, text: &str) {
        let mut inner = self.inner();
        for line in text.lines() {
            if inner.lines.len() == KEEP {
                inner.lines.pop_front();
            }
            inner.lines.push_back(line.to_owned());
            inner.total += 1;
            inner
                .subscribers
                .retain(|s| s.send(line.to_owned()).is_ok());
        }
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let inner = self.inner();
        let skip = inner.lines.len().saturating_sub(n);
        inner.lines.iter().skip(skip).cloned().collect()
    }

    /// How many lines were ever pushed (to notice new ones).
    pub fn total(&self) -> u64 {
        self.inner().total
    }

    /// An [`Out`](nym_driver::Out) that writes into this log: cargo's
    /// output and nym's messages while a session builds and runs.
    pub fn out(&self) -> nym_driver::Out {
        let log = self.clone();
        nym_driver::Out::to(move |l| log.push(l))
    }

    /// Every line pushed from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel();
        self.inner().subscribers.push(tx);
        rx
    }
}

/// A console device writing into a [`Log`]: what `console::default()` is
/// for a stack the session runs. Partial lines wait for their newline.
pub struct Console {
    log: Log,
    partial: Mutex<String>,
}

impl Console {
    /// A console for `log`.
    pub fn new(log: Log) -> Console {
        Console {
            log,
            partial: Mutex::default(),
        }
    }
}

impl Console {
    /// Adds `text`; whole lines go to the log.
    fn add(&self, text: &str) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        partial.push_str(text);
        if let Some(end) = partial.rfind('\n') {
            let done: String = partial.drain(..=end).collect();
            self.log.push(&done);
        }
    }
}

impl libos::Console for Console {
    fn write<'a>(&'a self, text: &'a str) -> libos::BoxFuture<'a, Result<(), libos::ConsoleError>> {
        self.add(text);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A guest's console (a booted image's) writes bytes: invalid UTF-8 is
/// shown with replacement characters rather than lost.
impl std::io::Write for Console {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.add(&String::from_utf8_lossy(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos::Console as _;

    #[test]
    fn lines_are_kept_in_order_and_subscribers_see_new_ones() {
        let log = Log::default();
        log.push("one");
        let rx = log.subscribe();
        log.push("two\nthree");
        assert_eq!(log.tail(2), ["two", "three"]);
        assert_eq!(log.total(), 3);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["two", "three"]);
    }

    #[test]
    fn old_lines_go_first() {
        let log = Log::default();
        for i in 0..KEEP + 5 {
            log.push(&i.to_string());
        }
        assert_eq!(log.tail(1), [(KEEP + 4).to_string()]);
        assert_eq!(log.tail(usize::MAX).len(), KEEP);
        assert_eq!(log.tail(usize::MAX)[0], "5");
    }

    #[test]
    fn the_console_waits_for_whole_lines() {
        let log = Log::default();
        let c = Console::new(log.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            c.write("hel").await.unwrap();
            assert!(log.tail(9).is_empty());
            c.write("lo\nwor").await.unwrap();
            c.log("ld").await.unwrap();
        });
        assert_eq!(log.tail(9), ["hello", "world"]);
    }
}
