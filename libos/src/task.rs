//! Running several futures inside one job, without a spawner.
//!
//! A job is one future; a server job wants a task per connection. A
//! [`Group`] holds those tasks and polls them while the job awaits something
//! else (its next `accept`), so a slow or vanished client never stalls the
//! others, on tokio and on a unikernel's executor alike.
//!
//! ```
//! # use libos::task::Group;
//! # async fn serve(n: u32) {}
//! # async fn next() -> u32 { 1 }
//! # async fn job() {
//! let mut conns = Group::new();
//! for _ in 0..3 {
//!     let n = conns.alongside(next()).await;
//!     conns.push(serve(n));
//! }
//! conns.join().await;
//! # }
//! ```
use alloc::{boxed::Box, vec::Vec};
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Context, Poll};

/// Tasks polled together; see the [module](self).
#[derive(Default)]
pub struct Group<'a> {
    tasks: Vec<crate::BoxFuture<'a, ()>>,
}

impl<'a> Group<'a> {
    /// An empty group.
    pub fn new() -> Self {
        Group { tasks: Vec::new() }
    }

    /// Adds a task; it first runs at the next `alongside` or `join`.
    pub fn push(&mut self, task: impl Future<Output = ()> + Send + 'a) {
        self.tasks.push(Box::pin(task));
    }

    /// How many tasks have not finished.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether every task has finished.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Awaits `fut` while running the group's tasks.
    pub async fn alongside<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            self.poll_tasks(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }

    /// Runs the tasks until all have finished.
    pub async fn join(&mut self) {
        poll_fn(|cx| {
            self.poll_tasks(cx);
            if self.tasks.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn poll_tasks(&mut self, cx: &mut Context<'_>) {
        self.tasks.retain_mut(|t| t.as_mut().poll(cx).is_pending());
    }
}

/// Returns once after letting every other ready task run: a long loop whose
/// awaits all complete at once must not starve the rest of its executor.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Runs `fut` to completion on this thread, parking it while the future
/// waits: for host code outside a job, such as a Rust cell in `nym repl`
/// that builds a device and uses it.
///
/// ```
/// use libos::{Kv, KvRo};
/// let kv = libos::kv::Mem::new();
/// libos::task::block_on(kv.set("greeting", b"hello")).unwrap();
/// assert_eq!(libos::task::block_on(kv.get("greeting")).unwrap(), b"hello");
/// ```
#[cfg(feature = "std")]
pub fn block_on<F: Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::Wake;
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
