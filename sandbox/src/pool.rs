//! A tenant's pool of persistent instances: at most `max_instances` busy at
//! once, a bounded wait for a free one, recycling after a policy's limits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use wasmpy_policies::Tenant;

use crate::host::grants::Grants;
use crate::instance::Instance;
use crate::reload::{fingerprint, Fingerprint};

/// How long a tenant's requests run demoted after one ran into its deadline.
const PENALTY: std::time::Duration = std::time::Duration::from_secs(10);

/// Counters of one tenant generation, as shown by status pages.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub exceptions: AtomicU64,
    pub memory_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub traps: AtomicU64,
    pub import_errors: AtomicU64,
    pub queue_timeouts: AtomicU64,
    pub too_large: AtomicU64,
    pub invalid_responses: AtomicU64,
    pub recycles: AtomicU64,
    pub instances_created: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct PoolState {
    /// Warm instances, most recently used last.
    pub idle: Vec<Instance>,
    /// Instances checked out by requests (or being created for one).
    pub busy: u32,
    /// Linear memory held by busy instances, as of their checkout.
    pub busy_memory: usize,
    /// Requests waiting for a slot, by ticket, first come first served.
    waiting: std::collections::VecDeque<u64>,
    /// The next waiting request's ticket.
    next_ticket: u64,
}

/// The instances of one generation of one tenant.
pub(crate) struct Pool {
    pub tenant: Tenant,
    /// The tenant's name, shared with its requests (log prefixes).
    pub name: Arc<str>,
    /// The tenant's directories as paths the guest may name.
    pub grants: Arc<Grants>,
    pub generation: u64,
    /// The tenant's writable directories on the host.
    pub dirs: TenantDirs,
    /// The runtime linked with this generation's snapshot, once built:
    /// new instances start from it (`snapshot.rs`).
    snapshot: std::sync::RwLock<Option<Arc<crate::bindings::GatewayPre<crate::host::HostState>>>>,
    pub counters: Counters,
    /// The deployment this generation was loaded from.
    pub fingerprint: Fingerprint,
    /// A newer deployment that failed to load (not retried until it changes).
    pub refused: Mutex<Option<Fingerprint>>,
    /// Until when the tenant's requests run demoted, after a timeout.
    penalty_until: Mutex<Option<Instant>>,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A tenant's writable directories on the host; `None`: could not be
/// created (the tenant runs without it).
#[derive(Debug, Default, Clone)]
pub(crate) struct TenantDirs {
    /// Bytecode cache, mounted at `GUEST_PYCACHE`.
    pub pycache: Option<PathBuf>,
    /// Private state (sessions, PSP pages, uploads), mounted at `GUEST_STATE`.
    pub state: Option<PathBuf>,
    /// Lock files of the state capability; never mounted.
    pub locks: Option<PathBuf>,
}

/// Why no instance slot could be had.
pub(crate) struct QueueTimeout;

impl Pool {
    pub fn new(tenant: Tenant, generation: u64, dirs: TenantDirs) -> Self {
        Pool {
            fingerprint: fingerprint(&tenant),
            name: Arc::from(tenant.name.as_str()),
            grants: Arc::new(Grants::of(&tenant)),
            refused: Mutex::default(),
            penalty_until: Mutex::default(),
            tenant,
            generation,
            dirs,
            snapshot: std::sync::RwLock::default(),
            counters: Counters::default(),
            state: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    /// The runtime linked with this generation's snapshot, if built.
    pub fn snapshot(&self) -> Option<Arc<crate::bindings::GatewayPre<crate::host::HostState>>> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New instances start from `pre` from now on.
    pub fn set_snapshot(&self, pre: Arc<crate::bindings::GatewayPre<crate::host::HostState>>) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(pre);
    }

    pub fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a slot, waiting up to the queue timeout; returns a warm instance
    /// if one is idle (`None` means: create one). Waiting requests are served
    /// in arrival order: a request that just arrived never overtakes them
    /// (an unfair queue left some requests waiting for hundreds of ms).
    pub fn checkout(&self) -> Result<Option<Instance>, QueueTimeout> {
        let limits = &self.tenant.policy.limits;
        let mut state = self.lock();
        if state.busy >= limits.max_instances || !state.waiting.is_empty() {
            let deadline = Instant::now() + limits.queue_timeout;
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiting.push_back(ticket);
            while state.busy >= limits.max_instances || state.waiting.front() != Some(&ticket) {
                let now = Instant::now();
                if now >= deadline {
                    state.waiting.retain(|&t| t != ticket);
                    drop(state);
                    // The next in line may be able to go now.
                    self.freed.notify_all();
                    return Err(QueueTimeout);
                }
                state = self
                    .freed
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.waiting.pop_front();
            if state.busy + 1 < limits.max_instances && !state.waiting.is_empty() {
                // A slot is left for the next in line too.
                self.freed.notify_all();
            }
        }
        state.busy += 1;
        let instance = state.idle.pop();
        if let Some(instance) = &instance {
            state.busy_memory += instance.memory_in_use();
        }
        Ok(instance)
    }

    /// Give the slot back, with the instance if it may serve again.
    pub fn checkin(&self, instance: Option<Instance>, memory_at_checkout: usize) {
        let mut state = self.lock();
        state.busy -= 1;
        state.busy_memory -= memory_at_checkout.min(state.busy_memory);
        if let Some(instance) = instance {
            state.idle.push(instance);
        }
        let waiting = !state.waiting.is_empty();
        drop(state);
        if waiting {
            // Only the first in line may take it, whichever wakes.
            self.freed.notify_all();
        }
    }

    /// Whether an instance that just served a request must be replaced.
    pub fn must_recycle(&self, instance: &Instance) -> bool {
        let limits = &self.tenant.policy.limits;
        if limits.recycle_after.is_some_and(|n| instance.requests >= n) {
            return true;
        }
        limits
            .memory_high_water
            .is_some_and(|mark| instance.memory_in_use() as u64 > mark)
    }

    /// Drop instances idle for longer than the policy's idle timeout,
    /// returning them so they are freed outside the lock.
    pub fn take_expired(&self, now: Instant) -> Vec<Instance> {
        let Some(timeout) = self.tenant.policy.limits.idle_timeout else {
            return Vec::new();
        };
        let mut state = self.lock();
        let (expired, kept) = std::mem::take(&mut state.idle)
            .into_iter()
            .partition(|i| now.duration_since(i.last_used) >= timeout);
        state.idle = kept;
        expired
    }

    /// Number of instances to pre-start to keep `min_idle` warm ones.
    pub fn missing_warm(&self) -> u32 {
        let limits = &self.tenant.policy.limits;
        let state = self.lock();
        let live = state.idle.len() as u32 + state.busy;
        let want = limits.min_idle.min(limits.max_instances);
        (want.saturating_sub(state.idle.len() as u32))
            .min(limits.max_instances.saturating_sub(live))
    }

    /// Remove the least recently used idle instance, if any (to make room
    /// under the process-wide instance cap), with its last use.
    pub fn take_oldest_idle(&self) -> Option<Instance> {
        let mut state = self.lock();
        let oldest = (0..state.idle.len()).min_by_key(|&i| state.idle[i].last_used)?;
        Some(state.idle.remove(oldest))
    }

    /// When the least recently used idle instance was last used.
    pub fn oldest_idle(&self) -> Option<Instant> {
        self.lock().idle.iter().map(|i| i.last_used).min()
    }

    /// The tenant ran into its deadline: demote its requests for a while, so
    /// that a tenant spinning again and again (and re-importing its code
    /// each time) cannot take CPU from the others.
    pub fn penalize(&self) {
        *self.penalty_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + PENALTY);
    }

    /// Whether the tenant's requests currently start demoted.
    pub fn penalized(&self) -> bool {
        self.penalty_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// Add a pre-started instance to the idle set.
    pub fn add_idle(&self, instance: Instance) {
        self.lock().idle.push(instance);
        self.freed.notify_one();
    }
}
