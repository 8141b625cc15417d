//! The scheduler's log: while on, every poll of a job or background task,
//! every wake-up and every device call the jobs make (a sleep is a call of
//! `time.sleep`) is recorded with its time, and [`Trace::json`] writes
//! them in the Trace Event format that Perfetto (ui.perfetto.dev) and
//! chrome://tracing open: a thread per job with its polls and wake-ups,
//! and beside it the job's device calls, on as many lanes as were in
//! flight at once.
//!
//! While it records, [`recent`] copies what the tracks did in the last
//! stretch of time (the calls still waiting included) without stopping
//! it: the notebook's timeline pane draws that.
//!
//! Off (the default), a traced poll or call costs one relaxed atomic load.
//! `nym run --trace FILE` and a session's `:trace on` turn it on. One
//! process runs one stack, so the recorder is process-wide.
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
// tokio's clock, which is the host's but for a runtime whose clock is
// paused (`nym sim`): there a trace is on simulated time, as its runs are.
use tokio::time::Instant;

/// The most events kept; later ones are counted, not kept.
pub const MAX_EVENTS: usize = 4_000_000;

static ON: AtomicBool = AtomicBool::new(false);
static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);
/// Names of the tracks (jobs, background tasks), by id, kept across traces.
static TRACKS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Numbers the device calls begun, across traces, for the ones in flight.
static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The track whose poll runs on this thread now, if any.
    static CURRENT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// A session's own calls (`store.get("k")` typed at the prompt) are
/// recorded on this track.
pub const SESSION_TRACK: &str = "session";

/// One event of a trace: on a track (its id), at nanoseconds since the
/// trace started, lasting `dur` nanoseconds.
#[derive(Debug, Clone)]
pub enum Event {
    /// A poll of the track's future.
    Poll {
        /// The track.
        track: u32,
        /// When.
        at: u64,
        /// How long.
        dur: u64,
    },
    /// The track was woken.
    Wake {
        /// The track.
        track: u32,
        /// When.
        at: u64,
    },
    /// A device call (a sleep is `time.sleep`).
    Call {
        /// The track that made it.
        track: u32,
        /// `device.method`.
        name: Arc<str>,
        /// When it began.
        at: u64,
        /// How long it took.
        dur: u64,
        /// Whether it was answered (else dropped before).
        done: bool,
    },
}

impl Event {
    /// The track it is on.
    pub fn track(&self) -> u32 {
        match self {
            Event::Poll { track, .. } | Event::Wake { track, .. } | Event::Call { track, .. } => {
                *track
            }
        }
    }

    /// When it ended (a wake-up: when it happened).
    pub fn end_ns(&self) -> u64 {
        match self {
            Event::Poll { at, dur, .. } | Event::Call { at, dur, .. } => at + dur,
            Event::Wake { at, .. } => *at,
        }
    }
}

struct Recorder {
    start: Instant,
    events: Vec<Event>,
    dropped: u64,
    /// The calls begun and not ended yet, by number: track, name, start.
    open: HashMap<u64, (u32, Arc<str>, u64)>,
}

/// Whether the tracing code is in the path at all: `NYM_TRACE_CODE=0`
/// leaves jobs and devices unwrapped (for measuring what the wrappers
/// cost while off), and then nothing can be traced.
pub fn installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| std::env::var_os("NYM_TRACE_CODE").is_none_or(|v| v != "0"))
}

/// Whether tracing is on.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Starts recording (dropping what an earlier trace left unread).
pub fn start() {
    let mut r = lock(&RECORDER);
    *r = Some(Recorder {
        start: Instant::now(),
        events: Vec::new(),
        dropped: 0,
        open: HashMap::new(),
    });
    ON.store(true, Ordering::Release);
}

/// Stops recording: what was recorded, if it was on.
pub fn stop() -> Option<Trace> {
    ON.store(false, Ordering::Release);
    let r = lock(&RECORDER).take()?;
    Some(Trace {
        events: r.events,
        dropped: r.dropped,
        tracks: lock(&TRACKS).clone(),
        duration_ns: r.start.elapsed().as_nanos() as u64,
    })
}

/// How many events the trace running now has (0 when off).
pub fn recorded() -> usize {
    lock(&RECORDER).as_ref().map_or(0, |r| r.events.len())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The id of the track named `name` (a job, `task: …`), made on first use.
pub fn track(name: &str) -> u32 {
    let mut t = lock(&TRACKS);
    if let Some(i) = t.iter().position(|n| n == name) {
        return i as u32;
    }
    t.push(name.to_owned());
    (t.len() - 1) as u32
}

fn record(make: impl FnOnce(u64) -> Event) {
    let mut r = lock(&RECORDER);
    let Some(r) = r.as_mut() else { return };
    if r.events.len() >= MAX_EVENTS {
        r.dropped += 1;
        return;
    }
    let now = r.start.elapsed().as_nanos() as u64;
    r.events.push(make(now));
}

/// Nanoseconds since the trace started (0 when off).
fn now() -> u64 {
    lock(&RECORDER)
        .as_ref()
        .map_or(0, |r| r.start.elapsed().as_nanos() as u64)
}

/// A job's or task's future, traced on track `track`: each poll a span,
/// each wake-up an instant, and device calls made while it is polled
/// attributed to it.
pub struct Traced<F> {
    inner: Pin<Box<F>>,
    track: u32,
}

impl<F: Future> Traced<F> {
    /// `inner` on the track named `name`.
    pub fn new(name: &str, inner: F) -> Self {
        Traced {
            inner: Box::pin(inner),
            track: track(name),
        }
    }
}

struct TracedWaker {
    inner: Waker,
    track: u32,
}

impl Wake for TracedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if enabled() {
            let track = self.track;
            record(|at| Event::Wake { track, at });
        }
        self.inner.wake_by_ref();
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !enabled() {
            return self.inner.as_mut().poll(cx);
        }
        let track = self.track;
        let waker = Waker::from(Arc::new(TracedWaker {
            inner: cx.waker().clone(),
            track,
        }));
        let mut traced = Context::from_waker(&waker);
        let outer = CURRENT.with(|c| c.replace(Some(track)));
        let at = now();
        let r = self.inner.as_mut().poll(&mut traced);
        let end = now();
        CURRENT.with(|c| c.set(outer));
        record(|_| Event::Poll {
            track,
            at,
            dur: end.saturating_sub(at),
        });
        r
    }
}

/// A device call's future, a span from its first poll to its answer on
/// the track polling it (or the session's).
pub struct Call<'a, T> {
    inner: libos::BoxFuture<'a, T>,
    name: &'static str,
    device: Arc<str>,
    /// Once polled: its track, its start and its number, with its name.
    begun: Option<(u32, u64, u64, Arc<str>)>,
}

/// `fut`, the future of `device.name(…)`, traced.
pub fn call<'a, T: 'a>(
    device: &Arc<str>,
    name: &'static str,
    fut: libos::BoxFuture<'a, T>,
) -> libos::BoxFuture<'a, T> {
    if !enabled() {
        return fut;
    }
    Box::pin(Call {
        inner: fut,
        name,
        device: device.clone(),
        begun: None,
    })
}

impl<T> Call<'_, T> {
    fn begin(&mut self, track: u32) {
        let name: Arc<str> = format!("{}.{}", self.device, self.name).into();
        let id = CALLS.fetch_add(1, Ordering::Relaxed);
        let mut r = lock(&RECORDER);
        let at = r
            .as_ref()
            .map_or(0, |r| r.start.elapsed().as_nanos() as u64);
        if let Some(r) = r.as_mut() {
            r.open.insert(id, (track, name.clone(), at));
        }
        self.begun = Some((track, at, id, name));
    }

    fn end(&mut self, done: bool) {
        if let Some((track, at, id, name)) = self.begun.take() {
            if let Some(r) = lock(&RECORDER).as_mut() {
                r.open.remove(&id);
            }
            record(|now| Event::Call {
                track,
                name,
                at,
                dur: now.saturating_sub(at),
                done,
            });
        }
    }
}

impl<T> Future for Call<'_, T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.begun.is_none() && enabled() {
            let track = CURRENT
                .with(Cell::get)
                .unwrap_or_else(|| track(SESSION_TRACK));
            self.begin(track);
        }
        let r = self.inner.as_mut().poll(cx);
        if r.is_ready() {
            self.end(true);
        }
        r
    }
}

impl<T> Drop for Call<'_, T> {
    fn drop(&mut self) {
        // Dropped before its answer: the span ends here, marked.
        self.end(false);
    }
}

/// How far before a window's start [`recent`] still reads: events are
/// appended in about the order they end, not exactly (a poll's end is
/// taken before the recorder's lock).
const WINDOW_SLACK_NS: u64 = 1_000_000_000;

/// What the tracks did over a stretch of the trace running now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Its start, in nanoseconds since the trace started.
    pub from_ns: u64,
    /// Its end: when it was read.
    pub to_ns: u64,
    /// The tracks that did anything in it (or wait on a call), by id.
    pub tracks: Vec<TrackActivity>,
    /// Events the trace had to drop: past [`MAX_EVENTS`] it records no more.
    pub dropped: u64,
}

/// What one track (a job, a background task) did in a [`Window`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackActivity {
    /// The track's name (`job app`, `task: …`, `session`).
    pub name: String,
    /// Its polls, start and end in nanoseconds since the trace started,
    /// in order.
    pub polls: Vec<(u64, u64)>,
    /// Its wake-ups, in order.
    pub wakes: Vec<u64>,
    /// Its device calls, in the order they began.
    pub calls: Vec<CallSpan>,
}

/// A device call in a [`Window`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpan {
    /// `device.method`.
    pub name: String,
    /// When it began, in nanoseconds since the trace started.
    pub from_ns: u64,
    /// When it ended, or the window's end if it waits still.
    pub to_ns: u64,
    /// How it ended.
    pub end: CallEnd,
}

/// How a device call in a [`Window`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered.
    Answered,
    /// Dropped before its answer (a `select!` took another branch).
    Dropped,
    /// Not yet: it waits still.
    Waiting,
}

/// What the tracks did in the last `window_ns` of the trace running now
/// (`None` when off). A copy: the trace goes on.
pub fn recent(window_ns: u64) -> Option<Window> {
    let mut by_track: HashMap<u32, TrackActivity> = HashMap::new();
    let (from, to, dropped) = {
        let r = lock(&RECORDER);
        let r = r.as_ref()?;
        let to = r.start.elapsed().as_nanos() as u64;
        let from = to.saturating_sub(window_ns);
        for e in r.events.iter().rev() {
            let (track, end) = (e.track(), e.end_ns());
            if end.saturating_add(WINDOW_SLACK_NS) < from {
                break;
            }
            if end < from {
                continue;
            }
            let a = by_track.entry(track).or_default();
            match e {
                Event::Poll { at, dur, .. } => a.polls.push((*at, at + dur)),
                Event::Wake { at, .. } => a.wakes.push(*at),
                Event::Call {
                    name,
                    at,
                    dur,
                    done,
                    ..
                } => a.calls.push(CallSpan {
                    name: name.to_string(),
                    from_ns: *at,
                    to_ns: at + dur,
                    end: if *done {
                        CallEnd::Answered
                    } else {
                        CallEnd::Dropped
                    },
                }),
            }
        }
        for (track, name, at) in r.open.values() {
            by_track.entry(*track).or_default().calls.push(CallSpan {
                name: name.to_string(),
                from_ns: *at,
                to_ns: to,
                end: CallEnd::Waiting,
            });
        }
        (from, to, r.dropped)
    };
    let names = lock(&TRACKS).clone();
    let mut ids: Vec<u32> = by_track.keys().copied().collect();
    ids.sort_unstable();
    let tracks = ids
        .into_iter()
        .filter_map(|id| {
            let mut a = by_track.remove(&id)?;
            a.name = names.get(id as usize).cloned().unwrap_or_default();
            a.polls.sort_unstable();
            a.wakes.sort_unstable();
            a.calls.sort_by_key(|c| c.from_ns);
            Some(a)
        })
        .collect();
    Some(Window {
        from_ns: from,
        to_ns: to,
        tracks,
        dropped,
    })
}

/// What one trace recorded.
#[derive(Debug, Clone)]
pub struct Trace {
    events: Vec<Event>,
    dropped: u64,
    tracks: Vec<String>,
    duration_ns: u64,
}

/// Per track: polls, wake-ups, device calls and time polled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The track's name.
    pub name: String,
    /// Polls.
    pub polls: u64,
    /// Wake-ups.
    pub wakes: u64,
    /// Device calls.
    pub calls: u64,
    /// Time spent in polls, in nanoseconds.
    pub polled_ns: u64,
}

impl Trace {
    /// A trace recorded elsewhere (a guest's, collected by its monitor):
    /// `tracks` names the tracks by id, `dropped` events were not kept.
    pub fn from_events(tracks: Vec<String>, events: Vec<Event>, dropped: u64) -> Trace {
        let duration_ns = events.iter().map(Event::end_ns).max().unwrap_or(0);
        Trace {
            events,
            dropped,
            tracks,
            duration_ns,
        }
    }

    /// What a user is told once it is written to `path`: its summary and
    /// where to open it.
    pub fn written(&self, path: &std::path::Path) -> String {
        format!(
            "trace: {}\nwritten to {} (open it in ui.perfetto.dev or chrome://tracing)",
            self.summary(),
            path.display()
        )
    }

    /// How many events it holds, and how many it had to drop.
    pub fn len(&self) -> (usize, u64) {
        (self.events.len(), self.dropped)
    }

    /// Whether it recorded nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How long it ran, in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.duration_ns
    }

    /// What each track did, for the tracks that did anything, in order.
    pub fn counts(&self) -> Vec<Counts> {
        let mut out: Vec<Counts> = self
            .tracks
            .iter()
            .map(|n| Counts {
                name: n.clone(),
                ..Counts::default()
            })
            .collect();
        for e in &self.events {
            match e {
                Event::Poll { track, dur, .. } => {
                    let c = &mut out[*track as usize];
                    c.polls += 1;
                    c.polled_ns += dur;
                }
                Event::Wake { track, .. } => out[*track as usize].wakes += 1,
                Event::Call { track, .. } => out[*track as usize].calls += 1,
            }
        }
        out.retain(|c| c.polls + c.wakes + c.calls > 0);
        out
    }

    /// One line per track: what `:trace off` and `nym run --trace` say.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} event(s) in {:.1} s",
            self.events.len(),
            self.duration_ns as f64 / 1e9
        );
        if self.dropped > 0 {
            out += &format!(" ({} more dropped past {MAX_EVENTS})", self.dropped);
        }
        for c in self.counts() {
            out += &format!(
                "\n  {}: {} poll(s) ({:.1} ms), {} wake-up(s), {} device call(s)",
                c.name,
                c.polls,
                c.polled_ns as f64 / 1e6,
                c.wakes,
                c.calls
            );
        }
        out
    }

    /// The trace in the Trace Event format (JSON object form).
    pub fn json(&self, process: &str) -> String {
        let us = |ns: u64| format!("{}.{:03}", ns / 1000, ns % 1000);
        let mut out = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
        let _ = write!(
            out,
            "{{\"ph\":\"M\",\"pid\":1,\"tid\":0,\"name\":\"process_name\",\"args\":{{\"name\":{}}}}}",
            quote(process)
        );
        let used = self.counts();
        // A thread per track (tid = id + 1), and lanes for its calls.
        let mut lanes: Vec<Vec<u64>> = vec![Vec::new(); self.tracks.len()];
        let mut calls: Vec<(&Event, usize)> = Vec::new();
        let mut sorted: Vec<&Event> = self.events.iter().collect();
        sorted.sort_by_key(|e| match e {
            Event::Poll { at, .. } | Event::Wake { at, .. } | Event::Call { at, .. } => *at,
        });
        for e in &sorted {
            if let Event::Call { track, at, dur, .. } = e {
                let free = &mut lanes[*track as usize];
                let lane = match free.iter().position(|end| *end <= *at) {
                    Some(l) => l,
                    None => {
                        free.push(0);
                        free.len() - 1
                    }
                };
                free[lane] = at + dur;
                calls.push((e, lane));
            }
        }
        let call_tid = |track: u32, lane: usize| 100_000 + track as usize * 100 + lane.min(99);
        for (id, name) in self.tracks.iter().enumerate() {
            if !used.iter().any(|c| c.name == *name) {
                continue;
            }
            let _ = write!(
                out,
                ",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":{}}}}}",
                id + 1,
                quote(name)
            );
            let _ = write!(
                out,
                ",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                id + 1,
                id * 100
            );
            for lane in 0..lanes[id].len().min(100) {
                let _ = write!(
                    out,
                    ",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":{}}}}}",
                    call_tid(id as u32, lane),
                    quote(&format!("{name} · devices{}", if lane > 0 { format!(" {}", lane + 1) } else { String::new() }))
                );
                let _ = write!(
                    out,
                    ",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                    call_tid(id as u32, lane),
                    id * 100 + 1 + lane
                );
            }
        }
        for e in &sorted {
            match e {
                Event::Poll { track, at, dur } => {
                    let _ = write!(
                        out,
                        ",\n{{\"ph\":\"X\",\"cat\":\"poll\",\"name\":\"poll\",\"pid\":1,\"tid\":{},\"ts\":{},\"dur\":{}}}",
                        track + 1,
                        us(*at),
                        us(*dur)
                    );
                }
                Event::Wake { track, at } => {
                    let _ = write!(
                        out,
                        ",\n{{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"wake\",\"name\":\"wake\",\"pid\":1,\"tid\":{},\"ts\":{}}}",
                        track + 1,
                        us(*at)
                    );
                }
                Event::Call { .. } => {}
            }
        }
        for (e, lane) in calls {
            if let Event::Call {
                track,
                name,
                at,
                dur,
                done,
            } = e
            {
                let _ = write!(
                    out,
                    ",\n{{\"ph\":\"X\",\"cat\":\"device\",\"name\":{},\"pid\":1,\"tid\":{},\"ts\":{},\"dur\":{},\"args\":{{\"answered\":{done}}}}}",
                    quote(name),
                    call_tid(*track, lane),
                    us(*at),
                    us(*dur)
                );
            }
        }
        out.push_str("\n]}\n");
        out
    }
}

/// `s` as a JSON string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorder is process-wide: tests that turn it on take turns.
    pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn polls_wakes_and_calls_land_on_their_jobs_tracks_as_trace_events() {
        let _one = lock(&SERIAL);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        start();
        let device: Arc<str> = "clock".into();
        rt.block_on(Traced::new("job ticker", async {
            for _ in 0..3 {
                let sleep: libos::BoxFuture<'_, ()> =
                    Box::pin(tokio::time::sleep(std::time::Duration::from_millis(2)));
                call(&device, "sleep", sleep).await;
            }
        }));
        // Two calls at once on one job: two lanes.
        rt.block_on(Traced::new("job pair", async {
            let a: libos::BoxFuture<'_, ()> =
                Box::pin(tokio::time::sleep(std::time::Duration::from_millis(2)));
            let b: libos::BoxFuture<'_, ()> =
                Box::pin(tokio::time::sleep(std::time::Duration::from_millis(3)));
            tokio::join!(call(&device, "a", a), call(&device, "b", b));
        }));
        let t = stop().unwrap();
        assert!(!enabled());
        let counts = t.counts();
        let ticker = counts.iter().find(|c| c.name == "job ticker").unwrap();
        assert_eq!(
            (ticker.polls, ticker.wakes, ticker.calls),
            (4, 3, 3),
            "{t:?}"
        );
        let json = t.json("nym: test");
        assert!(json.contains("\"name\":\"clock.sleep\""), "{json}");
        assert!(
            json.contains("\"args\":{\"name\":\"job pair · devices 2\"}"),
            "{json}"
        );
        assert!(json.starts_with("{\"displayTimeUnit\":\"ms\",\"traceEvents\":["));
        assert!(
            t.summary().contains("job ticker: 4 poll(s)"),
            "{}",
            t.summary()
        );
        // Off, nothing is recorded and a call is the future itself.
        rt.block_on(Traced::new("job ticker", async {}));
        assert!(stop().is_none());
        assert_eq!(quote("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }

    #[test]
    fn recent_copies_the_last_polls_and_calls_and_the_calls_still_waiting() {
        let _one = lock(&SERIAL);
        assert!(recent(1_000_000_000).is_none(), "off: nothing to copy");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        start();
        let device: Arc<str> = "store".into();
        rt.block_on(Traced::new("job writer", async {
            let set: libos::BoxFuture<'_, ()> =
                Box::pin(tokio::time::sleep(std::time::Duration::from_millis(1)));
            call(&device, "set", set).await;
        }));
        // A job polled once, its call left waiting.
        let net: Arc<str> = "net".into();
        let mut waiting = Box::pin(Traced::new("job server", async move {
            let accept: libos::BoxFuture<'_, ()> = Box::pin(std::future::pending());
            call(&net, "accept", accept).await;
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());

        let w = recent(60_000_000_000).unwrap();
        assert!(enabled(), "reading does not stop the trace");
        let names: Vec<&str> = w.tracks.iter().map(|t| t.name.as_str()).collect();
        assert!(
            names.contains(&"job writer") && names.contains(&"job server"),
            "{w:?}"
        );
        let writer = w.tracks.iter().find(|t| t.name == "job writer").unwrap();
        assert!(writer.polls.len() >= 2, "{writer:?}");
        assert!(writer.polls.iter().all(|(a, b)| a <= b && *b <= w.to_ns));
        assert_eq!(writer.calls.len(), 1, "{writer:?}");
        assert_eq!(
            (writer.calls[0].name.as_str(), writer.calls[0].end),
            ("store.set", CallEnd::Answered)
        );
        let server = w.tracks.iter().find(|t| t.name == "job server").unwrap();
        assert_eq!(server.calls.len(), 1, "{server:?}");
        let accept = &server.calls[0];
        assert_eq!(
            (accept.name.as_str(), accept.end),
            ("net.accept", CallEnd::Waiting)
        );
        assert_eq!(accept.to_ns, w.to_ns, "a waiting call lasts until now");

        // Dropped, the call ends, marked; a window past it is empty.
        drop(waiting);
        let w = recent(60_000_000_000).unwrap();
        let server = w.tracks.iter().find(|t| t.name == "job server").unwrap();
        assert_eq!(server.calls[0].end, CallEnd::Dropped);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(recent(1_000).unwrap().tracks.is_empty());
        let t = stop().unwrap();
        let calls = |name: &str| t.counts().iter().find(|c| c.name == name).map(|c| c.calls);
        assert_eq!(
            (calls("job writer"), calls("job server")),
            (Some(1), Some(1))
        );
    }
}
