//! A request's CPU time: its deadline, and moving long-running requests off
//! the host's thread so that they cannot delay other tenants' short ones.
//!
//! Guest code runs on the host's request thread (an Apache worker). The
//! engine's epoch ticker interrupts it every [`EPOCH_TICK`](crate::EPOCH_TICK)
//! once it has run for [`DEMOTE_AFTER`]: at each tick the deadline is
//! checked, and once the request has used [`DEMOTE_AFTER`] of *CPU* time
//! (waiting for a CPU under load does not count) it is demoted: the guest
//! yields to the executor, which finishes the call on a thread of its own
//! at `SCHED_IDLE` (see `block_on.rs`) while the host's thread waits. The
//! host's thread never changes its scheduling policy, so nothing needs
//! restoring (which an unprivileged process could not do), and the
//! low-priority thread ends with the call.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// CPU time after which a request is moved to a low-priority thread.
pub const DEMOTE_AFTER: Duration = Duration::from_millis(10);

/// The clock of the request an instance is running.
#[derive(Debug)]
pub(crate) struct RequestClock {
    deadline: Instant,
    /// CPU time of the running thread when the request started.
    cpu_at_start: Duration,
    /// Whether a long run is demoted (not while an instance imports its
    /// code: that cost is the tenant's cold start, not a hog).
    may_demote: bool,
    /// Demote at the first tick (a penalized tenant).
    at_once: bool,
    /// The request was handed to a low-priority thread.
    demoted: bool,
}

/// CPU time used by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain system call with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl RequestClock {
    /// A clock with no request running.
    pub fn idle() -> Self {
        RequestClock {
            deadline: Instant::now(),
            cpu_at_start: Duration::ZERO,
            may_demote: false,
            at_once: false,
            demoted: false,
        }
    }

    /// A request starts; returns the epoch ticks until the first check. A
    /// `penalized` tenant (one that recently ran into its deadline) is
    /// demoted at the first check; otherwise a request that uses
    /// [`DEMOTE_AFTER`] of CPU is, if `may_demote` (false while a new
    /// instance imports the tenant's code).
    pub fn start(&mut self, timeout: Duration, penalized: bool, may_demote: bool) -> u64 {
        self.deadline = Instant::now() + timeout;
        self.cpu_at_start = thread_cpu_time();
        self.may_demote = may_demote || penalized;
        self.at_once = penalized;
        self.demoted = false;
        if penalized {
            1
        } else {
            crate::ticks(DEMOTE_AFTER.min(timeout))
        }
    }

    /// When the running request must end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Called by the engine at each checked tick.
    pub fn on_tick(&mut self) -> UpdateDeadline {
        if Instant::now() >= self.deadline {
            return UpdateDeadline::Interrupt;
        }
        let long =
            self.at_once || thread_cpu_time().saturating_sub(self.cpu_at_start) >= DEMOTE_AFTER;
        if self.may_demote && !self.demoted && long {
            self.demoted = true;
            // The executor sees the request and moves the call (block_on.rs).
            crate::block_on::request_low_priority();
            return UpdateDeadline::Yield(1);
        }
        UpdateDeadline::Continue(1)
    }

    /// The request ended.
    pub fn finish(&mut self) {
        self.may_demote = false;
    }
}
