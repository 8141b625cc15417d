//! A single-threaded executor: polls the jobs that were woken, and when
//! none is runnable sleeps in the platform's wait primitive until the
//! earliest timer deadline, so an idle guest costs the host nothing.
#![allow(unsafe_code)] // the executor's raw waker
use super::{sys, trace};
use alloc::{string::String, vec::Vec};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use core::time::Duration;
use libos::abi::JobFuture;
use libos::BoxFuture;

/// Set by any wake-up; the executor polls again when it is.
static WOKEN: AtomicBool = AtomicBool::new(true);

/// Timers: (deadline in monotonic ns, who to wake).
static TIMERS: spin::Mutex<Vec<(u64, Waker)>> = spin::Mutex::new(Vec::new());

/// Tasks waiting for I/O (a frame): woken after every WAIT, which the
/// monitor ends early when there is some.
static IO: spin::Mutex<Vec<Waker>> = spin::Mutex::new(Vec::new());

/// Background tasks of devices (a stack's driver), run beside the jobs.
static BACKGROUND: spin::Mutex<Vec<BoxFuture<'static, ()>>> = spin::Mutex::new(Vec::new());

/// One job as a debugger sees it: four plain 64-bit words (its name's
/// address and length, its [`state`](TaskSlot::state), how often it was
/// polled), read by `info nym-tasks` in nym's gdb extension while the
/// guest is stopped.
#[repr(C)]
pub struct TaskSlot {
    name: AtomicU64,
    name_len: AtomicU64,
    /// 0 unused, 1 waiting, 2 finished, 3 failed, 4 being polled.
    state: AtomicU64,
    polls: AtomicU64,
}

impl TaskSlot {
    const fn empty() -> TaskSlot {
        TaskSlot {
            name: AtomicU64::new(0),
            name_len: AtomicU64::new(0),
            state: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }
    }

    fn set(&self, state: u64) {
        self.state.store(state, Ordering::Relaxed);
    }
}

/// How many jobs [`NYM_TASKS`] describes; later ones run but are not listed.
const TASK_SLOTS: usize = 16;

/// The jobs, for debuggers (see [`TaskSlot`]); unmangled, so that gdb finds
/// them by name in any image.
#[no_mangle]
pub static NYM_TASKS: [TaskSlot; TASK_SLOTS] = [const { TaskSlot::empty() }; TASK_SLOTS];

/// The executor beside the jobs, for debuggers: background tasks (a
/// stack's driver), their polls, timers pending, tasks waiting for I/O,
/// and the earliest deadline (monotonic ns; 0 for none).
#[no_mangle]
pub static NYM_EXECUTOR: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Wakes `waker` after the executor next waits.
pub fn wake_after_wait(waker: &Waker) {
    let mut io = IO.lock();
    // Every waker of this executor is the same: one is enough.
    if io.is_empty() {
        io.push(waker.clone());
    }
}

/// Runs `task` beside the jobs until they end.
pub fn spawn(task: BoxFuture<'static, ()>) {
    BACKGROUND.lock().push(task);
    WOKEN.store(true, Ordering::Release);
}

/// How long to wait when only I/O can wake a task.
const IO_POLL: u64 = 1_000_000_000;

const VTABLE: RawWakerVTable =
    RawWakerVTable::new(|p| RawWaker::new(p, &VTABLE), wake, wake, |_| {});

fn wake(_: *const ()) {
    WOKEN.store(true, Ordering::Release);
}

fn waker() -> Waker {
    // SAFETY: the vtable's functions ignore the data pointer and are sound
    // for any number of clones.
    unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) }
}

/// How a run ended.
pub enum Ended {
    /// Every job returned.
    Finished,
    /// A job failed.
    Failed {
        /// The job.
        job: &'static str,
        /// Its error.
        error: String,
    },
    /// Every job waits on something that can never happen.
    Stuck,
}

/// Runs `jobs` until all finish or one fails.
pub fn run(jobs: Vec<(&'static str, JobFuture)>) -> Ended {
    let mut jobs: Vec<Option<(&'static str, JobFuture)>> = jobs.into_iter().map(Some).collect();
    for (slot, (name, _)) in NYM_TASKS.iter().zip(jobs.iter().flatten()) {
        slot.name.store(name.as_ptr() as u64, Ordering::Relaxed);
        slot.name_len.store(name.len() as u64, Ordering::Relaxed);
        slot.set(1);
    }
    let no_slot = TaskSlot::empty();
    trace::start();
    // Each job's trace track (none untraced: `tracks.get` then gives 0).
    let tracks: Vec<u64> = match trace::enabled() {
        true => jobs
            .iter()
            .flatten()
            .map(|(name, _)| {
                trace::name(alloc::boxed::Box::leak(
                    alloc::format!("job {name}").into_boxed_str(),
                ))
            })
            .collect(),
        false => Vec::new(),
    };
    let devices = if trace::enabled() {
        trace::name("devices (background tasks)")
    } else {
        0
    };
    let mut background: Vec<BoxFuture<'static, ()>> = Vec::new();
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if WOKEN.swap(false, Ordering::AcqRel) {
            background.append(&mut BACKGROUND.lock());
            trace::poll(devices, || {
                background.retain_mut(|t| t.as_mut().poll(&mut cx).is_pending())
            });
            NYM_EXECUTOR[0].store(background.len() as u64, Ordering::Relaxed);
            NYM_EXECUTOR[1].fetch_add(1, Ordering::Relaxed);
            for (i, slot) in jobs.iter_mut().enumerate() {
                let Some((name, fut)) = slot else { continue };
                let shown = NYM_TASKS.get(i).unwrap_or(&no_slot);
                shown.set(4);
                shown.polls.fetch_add(1, Ordering::Relaxed);
                let track = tracks.get(i).copied().unwrap_or(0);
                match trace::poll(track, || fut.as_mut().poll(&mut cx)) {
                    Poll::Pending => shown.set(1),
                    Poll::Ready(Ok(())) => {
                        shown.set(2);
                        *slot = None
                    }
                    Poll::Ready(Err(error)) => {
                        shown.set(3);
                        return Ended::Failed { job: name, error };
                    }
                }
            }
            if jobs.iter().all(Option::is_none) {
                return Ended::Finished;
            }
            continue;
        }
        let next = {
            let timers = TIMERS.lock();
            NYM_EXECUTOR[2].store(timers.len() as u64, Ordering::Relaxed);
            timers.iter().map(|(d, _)| *d).min()
        };
        let io = !IO.lock().is_empty();
        NYM_EXECUTOR[3].store(u64::from(io), Ordering::Relaxed);
        NYM_EXECUTOR[4].store(next.unwrap_or(0), Ordering::Relaxed);
        let deadline = match (next, io) {
            (Some(d), _) => d,
            (None, true) => sys::monotime().saturating_add(IO_POLL),
            (None, false) => return Ended::Stuck,
        };
        if sys::monotime() < deadline {
            sys::wait(deadline);
        }
        trace::wake();
        let ready: Vec<Waker> = core::mem::take(&mut *IO.lock());
        ready.into_iter().for_each(Waker::wake);
        let now = sys::monotime();
        let due: Vec<Waker> = {
            let mut timers = TIMERS.lock();
            let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(d, _)| *d <= now);
            *timers = later;
            due.into_iter().map(|(_, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

/// A future that completes at a monotonic deadline.
pub struct Sleep {
    duration: Duration,
    deadline: Option<u64>,
    /// Whether the timer is in [`TIMERS`]: once is enough, every waker of
    /// this executor being the same.
    registered: bool,
}

impl Sleep {
    /// Completes `duration` after its first poll.
    pub fn new(duration: Duration) -> Sleep {
        Sleep {
            duration,
            deadline: None,
            registered: false,
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = sys::monotime();
        let nanos = u64::try_from(self.duration.as_nanos()).unwrap_or(u64::MAX);
        let deadline = *self.deadline.get_or_insert(now.saturating_add(nanos));
        if now >= deadline {
            trace::span("time.sleep", deadline.saturating_sub(nanos), now);
            return Poll::Ready(());
        }
        if !self.registered {
            // Registering at every poll grew the list without bound while
            // a busy guest polled a pending sleep again and again.
            TIMERS.lock().push((deadline, cx.waker().clone()));
            self.registered = true;
        }
        Poll::Pending
    }
}
