//! The scheduler's log in a guest on nym's monitor (`nym run --target kvm
//! --trace FILE`): the executor's polls of each job and of the background
//! tasks, its wake-ups, the jobs' sleeps and their device calls (the
//! monitor's hypercalls, timed around the exit), recorded in a buffer and
//! handed to the monitor (`TRACE`) whenever it fills and before the guest
//! exits. The monitor writes them in the Trace Event format.
//!
//! Off (the monitor records no log, or another board), a traced poll or
//! call costs one relaxed atomic load.
use super::{hvt, sys};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nym_hvt_abi as abi;

static ON: AtomicBool = AtomicBool::new(false);

/// How many events wait in the recorder's buffer: the monitor reads it
/// (and them) when the guest is stopped before it hands them over.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// The track being polled now (0: none, the executor's own).
static CURRENT: AtomicU64 = AtomicU64::new(0);

struct Recorder {
    events: Vec<abi::TraceEvent>,
    names: Vec<&'static str>,
}

static RECORDER: spin::Mutex<Recorder> = spin::Mutex::new(Recorder {
    events: Vec::new(),
    names: Vec::new(),
});

/// The executor's own track: its wake-ups.
const EXECUTOR: u64 = 0;

/// Asks the monitor whether it records the log; from now on, events are
/// recorded if it does.
pub fn start() {
    if sys::board() != sys::Board::Hvt || hvt::no_trace() {
        return;
    }
    // The buffer never grows past its room (it is handed over when full),
    // so the address the monitor is given stays the buffer's.
    let mut r = RECORDER.lock();
    r.events.reserve_exact(abi::TRACE_MAX as usize);
    let mut t = abi::Trace {
        data: r.events.as_ptr() as u64,
        pending: PENDING.as_ptr() as u64,
        ..Default::default()
    };
    drop(r);
    hvt::call(abi::nr::TRACE, &mut t);
    if t.on == 1 {
        ON.store(true, Ordering::Relaxed);
        name("executor");
    }
}

/// Whether the log is recorded.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The id of `text` (a track's or a call's name), given to the monitor
/// the first time.
pub fn name(text: &'static str) -> u64 {
    name_locked(&mut RECORDER.lock(), text)
}

fn name_locked(r: &mut Recorder, text: &'static str) -> u64 {
    if let Some(i) = r.names.iter().position(|n| *n == text) {
        return i as u64;
    }
    r.names.push(text);
    let id = r.names.len() as u64 - 1;
    let len = (text.len() as u64).min(abi::TRACE_NAME_MAX);
    let named = abi::TraceEvent::new(abi::TRACE_NAME, id, text.as_ptr() as u64, len, 0);
    push(r, named);
    id
}

fn push(r: &mut Recorder, e: abi::TraceEvent) {
    r.events.push(e);
    PENDING.store(r.events.len() as u64, Ordering::Relaxed);
    if r.events.len() as u64 >= abi::TRACE_MAX {
        flush_locked(r);
    }
}

fn flush_locked(r: &mut Recorder) {
    if r.events.is_empty() {
        // A count of 0 would be asking again.
        return;
    }
    let mut t = abi::Trace {
        data: r.events.as_ptr() as u64,
        count: r.events.len() as u64,
        ..Default::default()
    };
    hvt::call(abi::nr::TRACE, &mut t);
    r.events.clear();
    PENDING.store(0, Ordering::Relaxed);
}

/// Hands what is recorded to the monitor (before the guest exits). A
/// guest ending while it records (a panic there) loses the last batch
/// rather than wait on itself.
pub fn flush() {
    if enabled() {
        if let Some(mut r) = RECORDER.try_lock() {
            flush_locked(&mut r);
        }
    }
}

fn record(kind: u64, track: u64, at: u64, dur: u64, name: u64) {
    push(
        &mut RECORDER.lock(),
        abi::TraceEvent::new(kind, track, at, dur, name),
    );
}

/// Runs `poll`, a poll of `track`'s future, recorded as one.
#[inline]
pub fn poll<R>(track: u64, poll: impl FnOnce() -> R) -> R {
    if !enabled() {
        return poll();
    }
    CURRENT.store(track, Ordering::Relaxed);
    let at = sys::monotime();
    let r = poll();
    let end = sys::monotime();
    CURRENT.store(EXECUTOR, Ordering::Relaxed);
    record(abi::TRACE_POLL, track, at, end - at, 0);
    r
}

/// Runs `call`, a device call named `what`, recorded on the track being
/// polled.
#[inline]
pub fn call<R>(what: &'static str, call: impl FnOnce() -> R) -> R {
    if !enabled() {
        return call();
    }
    let at = sys::monotime();
    let r = call();
    span(what, at, sys::monotime());
    r
}

/// Records a call named `what` from `at` to `end` (a sleep) on the track
/// being polled.
pub fn span(what: &'static str, at: u64, end: u64) {
    if enabled() {
        // One lock for the name and the event.
        let mut r = RECORDER.lock();
        let id = name_locked(&mut r, what);
        let track = CURRENT.load(Ordering::Relaxed);
        let e = abi::TraceEvent::new(abi::TRACE_CALL, track, at, end.saturating_sub(at), id);
        push(&mut r, e);
    }
}

/// Records that the executor woke.
pub fn wake() {
    if enabled() {
        record(abi::TRACE_WAKE, EXECUTOR, sys::monotime(), 0, 0);
    }
}
