//! Getting the vCPU thread out of `KVM_RUN` from another thread: a signal
//! (SIGUSR1) whose handler does nothing, installed without `SA_RESTART`,
//! so `KVM_RUN` returns `EINTR` and the loop looks at why. The debugger
//! kicks to see gdb's Ctrl-C; a [`Stopper`] kicks to end a guest (the
//! REPL's `:stop`).
#![allow(unsafe_code)] // a signal handler and pthread_kill
use crate::net::Link;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

extern "C" fn on_kick(_: libc::c_int) {}

/// Installs the kick's handler, once per process.
pub(crate) fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installs a handler that does nothing, for SIGUSR1 only,
        // without SA_RESTART, so the signal makes KVM_RUN return EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_kick as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        }
    });
}

/// Kicks `thread` (a pthread of this process that is still running).
pub(crate) fn kick(thread: libc::pthread_t) {
    // SAFETY: the caller guarantees `thread` has not ended; the handler
    // for SIGUSR1 is installed (by `install_handler`) before any kick.
    unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
}

/// Ends a running guest from another thread: give a clone to
/// [`Config::stop`](crate::Config::stop), call [`Stopper::stop`], and the
/// guest ends with [`Outcome::Stopped`](crate::Outcome::Stopped) at its
/// next exit.
#[derive(Clone, Default)]
pub struct Stopper(Arc<Inner>);

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    /// The vCPU thread, while it runs the guest.
    thread: Mutex<Option<libc::pthread_t>>,
    /// The guest's network link, whose waits a stop must end too.
    link: Mutex<Option<Arc<Link>>>,
    /// Where the vCPU sleeps in WAIT when it has no network.
    sleep: (Mutex<()>, Condvar),
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("requested", &self.requested())
            .finish()
    }
}

impl Stopper {
    /// A stopper for one guest.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Asks the guest to stop. The vCPU is kicked out of `KVM_RUN` and
    /// out of its waits; a kick that lands just before the vCPU enters
    /// `KVM_RUN` is lost, so call again until the run has ended.
    pub fn stop(&self) {
        self.0.requested.store(true, Ordering::Release);
        if let Some(link) = lock(&self.0.link).as_ref() {
            link.interrupt();
        }
        let _guard = lock(&self.0.sleep.0);
        self.0.sleep.1.notify_all();
        drop(_guard);
        if let Some(thread) = *lock(&self.0.thread) {
            kick(thread);
        }
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::Acquire)
    }

    /// The calling thread runs the guest (until [`Stopper::detach`]).
    pub(crate) fn attach(&self, link: Option<Arc<Link>>) {
        install_handler();
        // SAFETY: pthread_self has no preconditions.
        *lock(&self.0.thread) = Some(unsafe { libc::pthread_self() });
        *lock(&self.0.link) = link;
    }

    /// The vCPU thread no longer runs the guest: nothing may kick it.
    pub(crate) fn detach(&self) {
        *lock(&self.0.thread) = None;
        *lock(&self.0.link) = None;
    }

    /// Sleeps for at most `d`, less if a stop is asked for.
    pub(crate) fn sleep(&self, d: Duration) {
        let guard = lock(&self.0.sleep.0);
        if !self.requested() {
            let _ = self.0.sleep.1.wait_timeout(guard, d);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
