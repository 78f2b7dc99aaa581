//! A request's CPU time: its deadline, and the demotion of long-running
//! requests so that they cannot delay other tenants' short ones.
//!
//! Guest code runs on the host's request thread. The engine's epoch ticker
//! interrupts it every [`EPOCH_TICK`](crate::EPOCH_TICK) once it has run for
//! [`DEMOTE_AFTER`]: at each tick the deadline is checked, and once the
//! request has used [`DEMOTE_AFTER`] of CPU time the thread's priority is lowered, so that the kernel preempts it
//! at once whenever another request's thread wakes up. The nice value is
//! restored when the request ends (which needs `RLIMIT_NICE`; the Apache
//! module sets it when started as root, elsewhere the thread stays demoted).

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// CPU time after which a request's thread is demoted.
pub const DEMOTE_AFTER: Duration = Duration::from_millis(10);

/// The clock of the request an instance is running.
#[derive(Debug)]
pub(crate) struct RequestClock {
    deadline: Instant,
    /// CPU time of the running thread when the request started.
    cpu_at_start: Duration,
    /// Whether a long run demotes the thread (not while an instance imports
    /// its code: that cost is the tenant's cold start, not a hog).
    may_demote: bool,
    demoted: Option<(libc::pid_t, i32)>,
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
            demoted: None,
        }
    }

    /// A request starts; returns the epoch ticks until the first check. A
    /// `penalized` tenant (one that recently ran into its deadline) is
    /// demoted from the start; otherwise a request that uses
    /// [`DEMOTE_AFTER`] of CPU is, if `may_demote` (false while a new
    /// instance imports the tenant's code).
    pub fn start(&mut self, timeout: Duration, penalized: bool, may_demote: bool) -> u64 {
        self.deadline = Instant::now() + timeout;
        self.cpu_at_start = thread_cpu_time();
        self.may_demote = may_demote || penalized;
        self.finish();
        if penalized {
            self.demote();
        }
        crate::ticks(DEMOTE_AFTER.min(timeout))
    }

    /// Move the calling thread to `SCHED_IDLE` (once per request).
    fn demote(&mut self) {
        if self.demoted.is_some() {
            return;
        }
        // SAFETY: plain system calls on the calling thread.
        unsafe {
            let tid = libc::gettid();
            let policy = libc::sched_getscheduler(tid);
            let param = libc::sched_param { sched_priority: 0 };
            if policy >= 0 && libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) == 0 {
                self.demoted = Some((tid, policy));
            }
        }
    }

    /// Called by the engine at each checked tick.
    pub fn on_tick(&mut self) -> UpdateDeadline {
        if Instant::now() >= self.deadline {
            return UpdateDeadline::Interrupt;
        }
        // CPU time, not wall time: a request that waited for a CPU under
        // load has not taken anything from the others.
        if self.may_demote && thread_cpu_time().saturating_sub(self.cpu_at_start) >= DEMOTE_AFTER {
            self.demote();
        }
        UpdateDeadline::Continue(1)
    }

    /// The request ended: give the thread its priority back.
    pub fn finish(&mut self) {
        if let Some((tid, policy)) = self.demoted.take() {
            // SAFETY: plain system call; failure (no RLIMIT_NICE) leaves the
            // thread demoted, which only costs it priority.
            unsafe {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(tid, policy, &param);
            }
        }
    }
}

impl Drop for RequestClock {
    /// An instance dropped mid-request (a timeout) still gives the thread back.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Let this process restore the nice value of demoted threads: raise
/// `RLIMIT_NICE` to allow nice 0 (it needs privileges; a process started as
/// root calls this before dropping them, and its children inherit it).
/// Returns whether the limit is in place.
pub fn allow_priority_restore() -> bool {
    let wanted = libc::rlimit {
        rlim_cur: 20,
        rlim_max: 20,
    };
    // SAFETY: plain system calls with valid pointers.
    unsafe {
        let mut current = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NICE, &mut current) == 0 && current.rlim_cur >= 20 {
            return true;
        }
        libc::setrlimit(libc::RLIMIT_NICE, &wanted) == 0
    }
}
