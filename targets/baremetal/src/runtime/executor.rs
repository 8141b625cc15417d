//! A single-threaded executor: polls the jobs that were woken, and when
//! none is runnable sleeps in the platform's wait primitive until the
//! earliest timer deadline, so an idle guest costs the host nothing.
#![allow(unsafe_code)] // the executor's raw waker
use super::sys;
use alloc::{string::String, vec::Vec};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
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
    let mut background: Vec<BoxFuture<'static, ()>> = Vec::new();
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if WOKEN.swap(false, Ordering::AcqRel) {
            background.append(&mut BACKGROUND.lock());
            background.retain_mut(|t| t.as_mut().poll(&mut cx).is_pending());
            for slot in jobs.iter_mut() {
                let Some((name, fut)) = slot else { continue };
                match fut.as_mut().poll(&mut cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) => *slot = None,
                    Poll::Ready(Err(error)) => return Ended::Failed { job: name, error },
                }
            }
            if jobs.iter().all(Option::is_none) {
                return Ended::Finished;
            }
            continue;
        }
        let next = TIMERS.lock().iter().map(|(d, _)| *d).min();
        let io = !IO.lock().is_empty();
        let deadline = match (next, io) {
            (Some(d), _) => d,
            (None, true) => sys::monotime().saturating_add(IO_POLL),
            (None, false) => return Ended::Stuck,
        };
        if sys::monotime() < deadline {
            sys::wait(deadline);
        }
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
