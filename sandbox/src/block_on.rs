//! A minimal executor for the request path: runs a future to completion on
//! the calling thread. Unlike tokio's `block_on` it may be nested: a guest's
//! `req.internal_redirect` makes Apache run another request, possibly into
//! another instance, from inside a host call of the first one.

use std::future::Future;
use std::pin::pin;
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
}

/// Run `future` on this thread until it completes. Timers inside it need a
/// tokio runtime entered (`Runtime::enter`) for their driver.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
