//! One persistent sandboxed interpreter: a wasmtime `Store` holding exactly
//! the capabilities a tenant's policy grants.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmpy_policies::Tenant;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::bindings::{Gateway, GatewayPre};
use crate::clock::RequestClock;
use crate::host::state::StateLocks;
use crate::host::HostState;
use crate::logpipe::LogPipe;
use crate::pool::TenantDirs;
use crate::runtime::Runtime;
use crate::LogSink;

/// Guest path of the tenant's code (read-only).
pub const GUEST_APP: &str = "/app";
/// Guest path of the shared standard library (read-only).
pub const GUEST_STDLIB: &str = "/python";
/// Guest path of the tenant's writable bytecode cache.
pub const GUEST_PYCACHE: &str = "/.wasmpy/pycache";
/// Guest path of the tenant's private state directory (read-write).
pub const GUEST_STATE: &str = "/.wasmpy/state";

/// What all instances of the process use together, against the global caps.
#[derive(Debug)]
pub(crate) struct GlobalUsage {
    /// Live instances.
    pub instances: AtomicU32,
    /// Bytes of linear memory held by all instances.
    pub memory: AtomicU64,
    /// Cap on `memory` (bytes).
    pub max_memory: u64,
}

/// Memory accounting, the per-instance cap and the process-wide cap.
pub(crate) struct MemoryLimiter {
    cap: usize,
    global: Arc<GlobalUsage>,
    /// Bytes of linear memory currently allocated by the instance.
    pub in_use: usize,
    /// Set when a growth was refused because of a cap.
    pub refused: bool,
}

impl MemoryLimiter {
    fn new(cap: usize, global: Arc<GlobalUsage>) -> Self {
        global.instances.fetch_add(1, Ordering::Relaxed);
        MemoryLimiter {
            cap,
            global,
            in_use: 0,
            refused: false,
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.global.instances.fetch_sub(1, Ordering::Relaxed);
        self.global
            .memory
            .fetch_sub(self.in_use as u64, Ordering::Relaxed);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = desired.saturating_sub(current);
        let grown = self.in_use + delta;
        let global = &self.global;
        let within_global = global
            .memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + delta as u64 <= global.max_memory).then_some(used + delta as u64)
            })
            .is_ok();
        if grown > self.cap || !within_global {
            if within_global {
                global.memory.fetch_sub(delta as u64, Ordering::Relaxed);
            }
            self.refused = true;
            return Ok(false);
        }
        self.in_use = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A live instance of the runtime bound to one tenant generation.
pub(crate) struct Instance {
    pub store: Store<HostState>,
    pub gateway: Gateway,
    pub log: LogPipe,
    /// Requests served so far.
    pub requests: u64,
    pub last_used: Instant,
}

/// Why an instance could not be created.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The host side failed (a mount missing, the pool exhausted...).
    Host(String),
    /// The tenant's application failed to import; the text is its traceback.
    Import(String),
}

fn preopen(
    builder: &mut WasiCtxBuilder,
    host: &Path,
    guest: &str,
    writable: bool,
) -> Result<(), CreateError> {
    let perms = if writable {
        FsPerms::ReadWrite
    } else {
        FsPerms::ReadOnly
    };
    builder
        .preopened_dir(host, guest, perms)
        .map(|_| ())
        .map_err(|e| {
            CreateError::Host(format!("cannot mount {} at {guest}: {e:#}", host.display()))
        })
}

/// The guest's environment: the policy's `[env]`, and `TMPDIR` inside the
/// tenant's private state (so that `tempfile` writes there) unless the
/// policy sets it.
pub(crate) fn guest_env(tenant: &Tenant, dirs: &TenantDirs) -> Vec<(String, String)> {
    let mut env = tenant.policy.env.clone();
    if dirs.state.is_some() && !env.iter().any(|(key, _)| key == "TMPDIR") {
        env.push(("TMPDIR".to_string(), format!("{GUEST_STATE}/tmp")));
    }
    env
}

/// Build the WASI context for one instance of `tenant`: only `/app`
/// read-only, the stdlib read-only, the bytecode cache, the policy's mounts
/// and env; no host environment, no network, no inherited stdio.
fn wasi_context(
    runtime: &Runtime,
    tenant: &Tenant,
    dirs: &TenantDirs,
    log: &LogPipe,
) -> Result<WasiCtx, CreateError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(log.clone())
        .stderr(log.clone())
        .arg("wasmpy")
        .allow_blocking_current_thread(true)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    preopen(&mut builder, &tenant.app_dir, GUEST_APP, false)?;
    preopen(&mut builder, &runtime.stdlib, GUEST_STDLIB, false)?;
    if let Some(dir) = &dirs.pycache {
        preopen(&mut builder, dir, GUEST_PYCACHE, true)?;
    }
    if let Some(dir) = &dirs.state {
        preopen(&mut builder, dir, GUEST_STATE, true)?;
    }
    for mount in &tenant.policy.mounts {
        preopen(&mut builder, &mount.host, &mount.guest, mount.writable)?;
    }
    for (key, value) in guest_env(tenant, dirs) {
        builder.env(key, value);
    }
    Ok(builder.build())
}

/// A store for one instance of `tenant`: its capabilities, memory cap and
/// log, with the import's deadline running; and its log pipe.
pub(crate) fn new_store(
    runtime: &Runtime,
    tenant: &Tenant,
    dirs: &TenantDirs,
    global: &Arc<GlobalUsage>,
    penalized: bool,
) -> Result<(Store<HostState>, LogPipe), CreateError> {
    let policy = &tenant.policy;
    let log = LogPipe::new(policy.limits.log_limit_bytes as usize);
    let state = HostState {
        wasi: wasi_context(runtime, tenant, dirs, &log)?,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(policy.limits.memory_bytes as usize, Arc::clone(global)),
        clock: RequestClock::idle(),
        request: None,
        locks: StateLocks::new(dirs.locks.as_deref()),
    };
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().clock.on_tick()));
    // Importing the application is bounded by the request deadline too.
    let first_check = store
        .data_mut()
        .clock
        .start(policy.limits.request_timeout, penalized, false);
    store.set_epoch_deadline(first_check);
    Ok((store, log))
}

impl Instance {
    /// Instantiate `pre` (the runtime, or the tenant's snapshot of it) for
    /// `tenant` and import its application (a snapshot has it imported:
    /// `load` then only reseeds).
    pub async fn create(
        runtime: &Runtime,
        pre: &GatewayPre<HostState>,
        tenant: &Tenant,
        dirs: &TenantDirs,
        log_sink: &LogSink,
        global: &Arc<GlobalUsage>,
        penalized: bool,
    ) -> Result<Instance, CreateError> {
        let (mut store, log) = new_store(runtime, tenant, dirs, global, penalized)?;
        let gateway = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CreateError::Host(format!("cannot instantiate the runtime: {e:#}")))?;
        let env = guest_env(tenant, dirs);
        let entry = tenant
            .wsgi_entry()
            .map(ToString::to_string)
            .unwrap_or_default();
        let loaded = gateway.call_load(&mut store, &entry, &env).await;
        store.data_mut().clock.finish();
        let loaded = loaded.map_err(|e| {
            CreateError::Import(format!("the runtime trapped while importing: {e:#}"))
        })?;
        let instance = Instance {
            store,
            gateway,
            log,
            requests: 0,
            last_used: Instant::now(),
        };
        instance.flush_log(log_sink, &tenant.name);
        match loaded {
            Ok(()) => Ok(instance),
            Err(traceback) => Err(CreateError::Import(format!(
                "cannot import {entry}:\n{traceback}"
            ))),
        }
    }

    /// Bytes of linear memory the instance holds.
    pub fn memory_in_use(&self) -> usize {
        self.store.data().limiter.in_use
    }

    /// Write what the guest printed to the log, one event per line, prefixed
    /// with the tenant's name.
    pub fn flush_log(&self, sink: &LogSink, tenant: &str) {
        crate::emit_log(sink, tenant, &self.log);
    }
}
