//! The mod_wasmpy sandbox: persistent per-tenant CPython-on-WASI instances.
//!
//! One [`Sandbox`] per process holds the wasmtime engine, the compiled
//! runtime component and one pool of instances per tenant. Hosts (the Apache
//! module, the `wasmpy` dev server) call [`Sandbox::dispatch`] from any
//! number of threads; nothing here knows about Apache.
//!
//! Create the sandbox after any `fork()` (in Apache: `child_init`): it starts
//! threads (the epoch ticker, housekeeping, a small tokio runtime) and the
//! engine installs signal handlers.

mod api;
mod bindings;
mod block_on;
mod cache;
mod clock;
mod dispatch;
mod host;
mod instance;
mod logpipe;
mod pool;
mod reload;
mod runtime;
mod session;
mod snapshot;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmpy_policies::Tenant;

pub use clock::DEMOTE_AFTER;
use logpipe::LogPipe;
pub use reload::RELOAD_MARKER;
pub use runtime::{EngineSettings, RuntimeFiles, MAX_MEMORY_BYTES};
pub use wasmpy_http as http;

use instance::{GlobalUsage, Instance};
use pool::{Pool, TenantDirs};

pub use api::{
    FilterCall, FilterOutcome, Handler, Outcome, PhaseCall, PhaseOutcome, Request, Response,
    TenantStats, DECLINED, DONE, OK,
};
pub use host::grants::{Grants, PathRefused};
pub use host::request::{Detached, Entries, ErrorKind, HostError, RequestHost, Table, Value};
pub use session::Session;

/// Granularity of request deadlines: the epoch ticker's period.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How often deployments are checked, idle instances expired and warm
/// instances pre-started.
pub const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(500);

/// Epoch ticks that cover `timeout` (at least one).
pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / EPOCH_TICK.as_micros()) as u64 + 1
}

/// Errors of the sandbox's set-up (never of a request: those are responses).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The wasmtime engine could not be configured.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// The runtime component or its standard library is missing or invalid.
    #[error("runtime {path}: {1}", path = .0.display())]
    Runtime(PathBuf, String),
    /// A cache directory could not be prepared.
    #[error("cache directory {path}: {1}", path = .0.display())]
    Cache(PathBuf, std::io::Error),
    /// A helper thread could not be started.
    #[error("cannot start a sandbox thread: {0}")]
    Thread(std::io::Error),
}

impl SandboxError {
    fn engine(e: impl std::fmt::Display) -> Self {
        SandboxError::Engine(format!("{e:#}"))
    }
}

/// Where tenant output (stdout, stderr, tracebacks) goes: `(tenant, line)`.
pub type LogSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Everything a [`Sandbox`] needs to start.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The runtime component and its standard library.
    pub runtime: RuntimeFiles,
    /// Compiled runtime (`.cwasm`) and per-tenant bytecode caches.
    pub cache_dir: PathBuf,
    /// Per-tenant private state (`<state_dir>/<tenant>/data` mounted at
    /// `/.wasmpy/state`, lock files in `<state_dir>/<tenant>/locks`).
    pub state_dir: PathBuf,
    /// Engine-wide settings.
    pub engine: EngineSettings,
    /// Receiver of tenant output; `None` logs through `tracing`.
    pub log_sink: Option<LogSink>,
}

struct Inner {
    runtime: runtime::Runtime,
    tokio: tokio::runtime::Runtime,
    tenants: RwLock<HashMap<String, Arc<Pool>>>,
    cache_dir: PathBuf,
    state_dir: PathBuf,
    log_sink: LogSink,
    stop: AtomicBool,
    /// Generations whose snapshot is to be found or built (`snapshot.rs`),
    /// by the snapshot thread.
    snapshot_queue: Mutex<Vec<std::sync::Weak<Pool>>>,
    next_generation: std::sync::atomic::AtomicU64,
    next_request: std::sync::atomic::AtomicU64,
    global: Arc<GlobalUsage>,
    max_instances: u32,
}

/// The process-wide sandbox: the engine, the runtime and all tenant pools.
pub struct Sandbox {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn tracing_sink() -> LogSink {
    Arc::new(|tenant: &str, line: &str| tracing::info!(target: "wasmpy::tenant", tenant, "{line}"))
}

/// Send what a guest printed to the log sink, line by line.
pub(crate) fn emit_log(sink: &LogSink, tenant: &str, pipe: &LogPipe) {
    let (bytes, dropped) = pipe.take();
    if !bytes.is_empty() {
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            sink(tenant, line);
        }
    }
    if dropped > 0 {
        sink(
            tenant,
            &format!("[mod_wasmpy: {dropped} bytes of output dropped: over log_limit]"),
        );
    }
}

impl Sandbox {
    /// Create the engine, load (or compile and cache) the runtime and start
    /// the sandbox's threads. Call once per process, after any fork.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| SandboxError::Cache(config.cache_dir.clone(), e))?;
        let runtime = runtime::Runtime::load(&config.runtime, &config.cache_dir, &config.engine)?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmpy-io")
            .enable_all()
            .build()
            .map_err(SandboxError::Thread)?;
        let inner = Arc::new(Inner {
            runtime,
            tokio,
            tenants: RwLock::default(),
            cache_dir: config.cache_dir,
            state_dir: config.state_dir,
            log_sink: config.log_sink.unwrap_or_else(tracing_sink),
            stop: AtomicBool::new(false),
            snapshot_queue: Mutex::default(),
            next_generation: 1.into(),
            next_request: 1.into(),
            global: Arc::new(GlobalUsage {
                instances: 0.into(),
                memory: 0.into(),
                max_memory: config.engine.max_memory,
            }),
            max_instances: config.engine.max_instances.min(config.engine.pool_slots),
        });
        let sandbox = Sandbox {
            inner,
            threads: Mutex::default(),
        };
        sandbox.spawn("wasmpy-epoch", |inner| {
            while !inner.stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                inner.runtime.engine.increment_epoch();
            }
        })?;
        sandbox.spawn("wasmpy-housekeeping", |inner| {
            inner.every(HOUSEKEEPING_PERIOD, Inner::housekeeping)
        })?;
        sandbox.spawn("wasmpy-prewarm", |inner| {
            inner.every(HOUSEKEEPING_PERIOD, Inner::prewarm)
        })?;
        if sandbox.inner.runtime.split.is_some() {
            sandbox.spawn("wasmpy-snapshots", |inner| {
                inner.every(HOUSEKEEPING_PERIOD, Inner::build_snapshots)
            })?;
        }
        Ok(sandbox)
    }

    fn spawn(&self, name: &str, body: fn(&Inner)) -> Result<(), SandboxError> {
        let inner = Arc::clone(&self.inner);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(&inner))
            .map_err(SandboxError::Thread)?;
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(())
    }

    /// Load the runtime, compiling it into the cache if needed, and return
    /// without starting threads or keeping the engine: for a process that
    /// prepares the cache (e.g. a helper forked by Apache's parent).
    pub fn prepare(config: &SandboxConfig) -> Result<(), SandboxError> {
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| SandboxError::Cache(config.cache_dir.clone(), e))?;
        runtime::Runtime::load(&config.runtime, &config.cache_dir, &config.engine).map(drop)
    }

    /// Add a tenant, or replace it with a new generation: new requests go to
    /// the new generation; requests in flight finish on the old one, whose
    /// instances are dropped when the last of them returns.
    pub fn add_tenant(&self, tenant: Tenant) -> u64 {
        let pool = self.inner.new_pool(tenant);
        let generation = pool.generation;
        self.inner.install(Arc::clone(&pool));
        self.inner.queue_snapshot(&pool);
        generation
    }

    /// Names of the tenants, sorted.
    pub fn tenant_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.tenants().keys().cloned().collect();
        names.sort();
        names
    }

    /// The request-body limit of a tenant (`None`: no such tenant): what a
    /// host needs before reading a body, without copying the policy.
    pub fn max_body(&self, name: &str) -> Option<u64> {
        self.inner
            .tenants()
            .get(name)
            .map(|pool| pool.tenant.policy.limits.max_body_bytes)
    }

    /// Numbers of every tenant, sorted by name.
    pub fn stats(&self) -> Vec<TenantStats> {
        let tenants = self.inner.tenants();
        let mut stats: Vec<TenantStats> = tenants.values().map(|pool| pool_stats(pool)).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Stop the sandbox's threads and drop every instance. Idempotent; also
    /// done on drop.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
        self.inner
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn pool_stats(pool: &Pool) -> TenantStats {
    let c = &pool.counters;
    let get = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    let state = pool.lock();
    let idle_memory: usize = state.idle.iter().map(Instance::memory_in_use).sum();
    TenantStats {
        name: pool.tenant.name.clone(),
        generation: pool.generation,
        busy: state.busy,
        idle: state.idle.len() as u32,
        requests: get(&c.requests),
        exceptions: get(&c.exceptions),
        memory_errors: get(&c.memory_errors),
        timeouts: get(&c.timeouts),
        traps: get(&c.traps),
        import_errors: get(&c.import_errors),
        queue_timeouts: get(&c.queue_timeouts),
        too_large: get(&c.too_large),
        invalid_responses: get(&c.invalid_responses),
        recycles: get(&c.recycles),
        instances_created: get(&c.instances_created),
        memory_bytes: (idle_memory + state.busy_memory) as u64,
    }
}

impl Inner {
    fn tenants(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Pool>>> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.tenants().get(name).cloned()
    }

    /// Run `work` every `period` until the sandbox stops (checking the stop
    /// flag often, so that shutdown is quick).
    fn every(&self, period: Duration, work: fn(&Inner)) {
        let mut last = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= period {
                last = Instant::now();
                work(self);
            }
        }
    }

    fn log(&self, tenant: &str, line: &str) {
        (self.log_sink)(tenant, line);
    }

    fn new_pool(&self, tenant: Tenant) -> Arc<Pool> {
        // Without a directory the tenant still runs: without a bytecode
        // cache it recompiles its modules; without state, sessions and
        // uploads fail with a clear error in the guest.
        let writable = |dir: PathBuf, what: &str| match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, "no {what} in {}: {e}", dir.display());
                None
            }
        };
        let state = self.state_dir.join(&tenant.name);
        let dirs = TenantDirs {
            pycache: writable(
                self.cache_dir.join("pycache").join(&tenant.name),
                "bytecode cache",
            ),
            state: writable(state.join("data"), "state directory").inspect(|data| {
                // TMPDIR of the guest (instance.rs): tempfile needs it to exist.
                let _ = std::fs::create_dir_all(data.join("tmp"));
            }),
            locks: writable(state.join("locks"), "lock directory"),
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        Arc::new(Pool::new(tenant, generation, dirs))
    }

    /// Make `pool` the one serving its tenant; the previous generation
    /// finishes its requests and is dropped with its last reference.
    fn install(&self, pool: Arc<Pool>) {
        let name = pool.tenant.name.clone();
        let generation = pool.generation;
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), pool);
        tracing::info!(tenant = %name, generation, "tenant loaded");
    }

    /// Load a new generation of `pool`'s tenant if its deployment changed,
    /// warm one instance of it, and switch to it. On any failure the
    /// current generation keeps serving and the reason is logged (once per
    /// change). A tenant whose directory is gone is unloaded.
    fn reload(&self, pool: &Arc<Pool>) {
        let name = &pool.tenant.name;
        let now = reload::fingerprint(&pool.tenant);
        {
            let refused = pool.refused.lock().unwrap_or_else(|e| e.into_inner());
            if now == pool.fingerprint || refused.as_ref() == Some(&now) {
                return;
            }
        }
        if !pool.tenant.dir.exists() {
            // The operator removed the tenant: stop serving it (404), once.
            let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
            if tenants.get(name).is_some_and(|p| Arc::ptr_eq(p, pool)) {
                tenants.remove(name);
                drop(tenants);
                self.log(
                    name,
                    "mod_wasmpy: tenant directory removed: tenant unloaded",
                );
            }
            return;
        }
        let loaded = wasmpy_policies::load_tenant(&pool.tenant.dir)
            .map_err(|errors| errors.to_string())
            .and_then(|tenant| {
                let next = self.new_pool(tenant);
                // Warm the new generation before it takes requests: no request
                // pays its cold start, and code that does not import never
                // serves. Its snapshot follows in the background.
                let _tokio = self.tokio.enter();
                let instance = block_on::block_on(self.create(&next), self.tokio.handle())
                    .map_err(|(_, why)| why)?;
                next.add_idle(instance);
                Ok(next)
            });
        match loaded {
            Ok(next) => {
                let generation = next.generation;
                self.queue_snapshot(&next);
                self.install(next);
                self.log(
                    name,
                    &format!("mod_wasmpy: reloaded, generation {generation} serves"),
                );
            }
            Err(why) => {
                *pool.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                let message = format!(
                    "mod_wasmpy: new deployment refused, generation {} keeps serving: {why}",
                    pool.generation
                );
                for line in message.lines() {
                    self.log(name, line);
                }
            }
        }
    }

    /// Make room under the process-wide instance cap by dropping the least
    /// recently used idle instance of any tenant.
    fn evict_idle(&self) -> bool {
        let pools: Vec<Arc<Pool>> = self.tenants().values().cloned().collect();
        let oldest = pools
            .iter()
            .filter_map(|p| p.oldest_idle().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t);
        match oldest.and_then(|(_, pool)| pool.take_oldest_idle()) {
            Some(instance) => {
                drop(instance);
                true
            }
            None => false,
        }
    }

    /// Periodic work: notice deployments (and warm their new generation),
    /// drop expired idle instances.
    fn housekeeping(&self) {
        let pools = || -> Vec<Arc<Pool>> { self.tenants().values().cloned().collect() };
        for pool in pools() {
            self.reload(&pool);
        }
        let now = Instant::now();
        for pool in pools() {
            let expired = pool.take_expired(now);
            if !expired.is_empty() {
                tracing::debug!(tenant = %pool.tenant.name, count = expired.len(), "idle instances dropped");
            }
        }
    }

    /// Pre-start instances up to each tenant's `min_idle`, one per tenant
    /// and pass (its own thread: a slow import never delays housekeeping).
    fn prewarm(&self) {
        let pools: Vec<Arc<Pool>> = self.tenants().values().cloned().collect();
        for pool in pools {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if pool.missing_warm() == 0 {
                continue;
            }
            let _tokio = self.tokio.enter();
            match block_on::block_on(self.create(&pool), self.tokio.handle()) {
                Ok(instance) => pool.add_idle(instance),
                Err((_, text)) => {
                    for line in text.lines() {
                        self.log(&pool.tenant.name, line);
                    }
                }
            }
        }
    }
}
