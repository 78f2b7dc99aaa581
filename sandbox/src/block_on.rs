//! A minimal executor for the request path: runs a future to completion on
//! the calling thread. Unlike tokio's `block_on` it may be nested: a guest's
//! `req.internal_redirect` makes Apache run another request, possibly into
//! another instance, from inside a host call of the first one.
//!
//! A request that runs long asks to be demoted (`clock.rs`): the executor
//! then finishes the future on a new thread at `SCHED_IDLE` while the
//! calling thread (an Apache worker) waits, so that the worker never changes
//! its own scheduling policy. wasmtime's async calls are `Send` futures and
//! may be resumed on another thread; host calls made meanwhile run on the
//! new thread, one at a time, while the worker is blocked.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// This thread's waker, made once (the request path runs here often).
    static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    /// Set by the epoch callback of a request that ran long.
    static LOW_PRIORITY: Cell<bool> = const { Cell::new(false) };
}

/// Ask the executor polling on this thread to finish the current future on
/// a low-priority thread (called from the epoch callback, which runs here).
pub(crate) fn request_low_priority() {
    LOW_PRIORITY.with(|flag| flag.set(true));
}

/// Run `future` on this thread until it completes, or until it asks for a
/// low priority: then on a `SCHED_IDLE` thread of its own. Timers inside it
/// need `tokio` (the runtime whose driver serves them).
pub(crate) fn block_on<F>(future: F, tokio: &tokio::runtime::Handle) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = pin!(future);
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if LOW_PRIORITY.with(|flag| flag.replace(false)) {
            if let Some(output) = finish_at_low_priority(future.as_mut(), tokio) {
                return output;
            }
        }
        std::thread::park();
    }
}

/// Run `future` wholly on a `SCHED_IDLE` thread of its own (background
/// work that must never take CPU from requests); `None` if no thread could
/// be started.
pub(crate) fn block_on_low_priority<F>(
    future: F,
    tokio: &tokio::runtime::Handle,
) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    finish_at_low_priority(pin!(future), tokio)
}

/// Poll `future` on this thread until it completes (already at low
/// priority: further requests for it are ignored).
fn poll_to_end<F: Future>(mut future: Pin<&mut F>) -> F::Output {
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        LOW_PRIORITY.with(|flag| flag.set(false));
        std::thread::park();
    }
}

/// Finish `future` on a new `SCHED_IDLE` thread; `None` if no thread could
/// be started (the caller then goes on at its own priority).
fn finish_at_low_priority<F>(
    future: Pin<&mut F>,
    tokio: &tokio::runtime::Handle,
) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("wasmpy-low".into())
            .spawn_scoped(scope, move || {
                // SCHED_IDLE: any other thread that wakes up preempts it at
                // once (nice 19 measured a neighbour's p99 at 2.3x its p99
                // alone, SCHED_IDLE within 1.5x). On a machine that is never
                // idle the request may then reach its deadline.
                // SAFETY: plain system call on this (new) thread only.
                unsafe {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                }
                let _tokio = tokio.enter();
                poll_to_end(future)
            })
            .ok()?;
        match worker.join() {
            Ok(output) => Some(output),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_asking_for_low_priority_finishes_on_another_thread() {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caller = std::thread::current().id();
        let mut asked = false;
        let ran_on = block_on(
            std::future::poll_fn(move |cx| {
                if !asked {
                    asked = true;
                    request_low_priority();
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(std::thread::current().id())
            }),
            tokio.handle(),
        );
        assert_ne!(ran_on, caller);
        // The caller's own policy never changed.
        // SAFETY: plain system call.
        let policy = unsafe { libc::sched_getscheduler(0) };
        assert_ne!(policy, libc::SCHED_IDLE);
    }
}
