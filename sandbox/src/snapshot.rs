//! Per-tenant snapshots: a tenant's application imported once in a builder
//! instance, its linear memory captured, and every later instance of that
//! tenant started from the capture instead of importing again.
//!
//! The runtime is split once per process (`wasmpy-snapshot`): the component
//! without its memory-owning core modules (0, the main module with the heap
//! image, and 1, the WASI adapter), which import them instead, is compiled
//! and shared by every tenant; each tenant links its own modules 0 and 1 (a
//! copy-on-write heap image compiled in tens of milliseconds). A tenant
//! without a snapshot links the runtime's own modules 0 and 1.
//!
//! Building (`build`): the runtime with two reset exports added, instrumented
//! by `wasmtime-wizer`, is instantiated for the tenant; `load` imports the
//! application; the WASI handles libc and the adapter cached in linear memory
//! are reset (as componentize-py's own pre-initialisation does), and wizer
//! captures memory and globals. A restored instance calls `load` again, which
//! finds the application imported and only reseeds what must differ per
//! instance (`random`, `tempfile` names).
//!
//! Files (in `<cache>/snapshots/`): the tenant's two compiled modules, named
//! after the runtime, the engine and the tenant's deployment, each with the
//! SHA-256 recorded when it was written; a file whose digest does not match
//! is rebuilt, never run.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::cache::{check, digest_path, hex, write_checked, Checked};
use wasmtime::component::{Component, Linker};
use wasmtime::component::{Instance as ComponentInstance, Lift, WasmList};
use wasmtime::{Engine, Module};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::bindings::{Gateway, GatewayPre};
use crate::host::HostState;

/// Names under which the shared runtime imports the memory-owning modules.
const MODULE_NAMES: [&str; 2] = ["wasmpy-module-0", "wasmpy-module-1"];

/// Snapshot files no process has loaded for this long are removed (every
/// load touches its files; servers sharing the cache keep theirs alive).
pub const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Why a snapshot could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The runtime could not be split or instrumented.
    #[error("runtime: {0}")]
    Runtime(String),
    /// Compiling or linking failed.
    #[error("wasmtime: {0}")]
    Wasmtime(String),
    /// The tenant's application failed to import in the builder.
    #[error("the application did not import: {0}")]
    Import(String),
    /// Reading or writing the cache.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn wasmtime_err(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Wasmtime(format!("{e:#}"))
}

/// The split runtime, shared by every tenant of the process.
pub(crate) struct SplitRuntime {
    /// The runtime (with reset exports) whose modules 0 and 1 are imports.
    shared: Component,
    /// WASI and the gateway's host interfaces (no modules yet).
    linker: Linker<HostState>,
    /// The runtime with reset exports, as bytes (the builder instruments it).
    with_resets: Vec<u8>,
    /// Where compiled snapshots live.
    dir: PathBuf,
    /// Names the runtime and the engine in snapshot file names.
    key: String,
}

/// A compiled artifact of the snapshot cache: a core module or a component.
trait Artifact: Sized {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// `path` must hold what `compile` produced with an engine of the same
    /// compatibility hash.
    unsafe fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
}

impl Artifact for Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_module(wasm)
    }
    unsafe fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        Module::deserialize_file(engine, path)
    }
}

impl Artifact for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_component(wasm)
    }
    unsafe fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        Component::deserialize_file(engine, path)
    }
}

/// The artifact in `path` if its recorded digest matches (its files are
/// touched: in use, they are never pruned).
fn load_checked<T: Artifact>(engine: &Engine, path: &Path) -> Option<T> {
    touch(path);
    touch(&digest_path(path));
    match check(path) {
        Checked::Intact => {}
        Checked::Mismatch => {
            tracing::warn!(path = %path.display(), "snapshot file has a wrong digest: rebuilt");
            return None;
        }
        Checked::Missing => return None,
    }
    // SAFETY: written by `cached` (`Artifact::compile`) with an engine of the
    // same compatibility hash (in every file name); the digest matches.
    unsafe { T::deserialize(engine, path) }
        .inspect_err(|e| tracing::warn!(path = %path.display(), "snapshot file rejected: {e:#}"))
        .ok()
}

/// `wasm` compiled, through the digest-checked cache file `path`; loaded
/// from the file, so that its memory image is mapped copy-on-write.
fn cached<T: Artifact>(engine: &Engine, path: &Path, wasm: &[u8]) -> Result<T, SnapshotError> {
    if let Some(artifact) = load_checked(engine, path) {
        return Ok(artifact);
    }
    let compiled = T::compile(engine, wasm).map_err(wasmtime_err)?;
    write_checked(path, &compiled).map_err(|e| SnapshotError::Io(path.to_path_buf(), e))?;
    load_checked(engine, path).ok_or_else(|| {
        SnapshotError::Wasmtime(format!("{}: unusable after writing", path.display()))
    })
}

impl SplitRuntime {
    /// Split the runtime `wasm` (compiled pieces cached in `cache_dir`).
    pub fn load(
        engine: &Engine,
        wasm: &[u8],
        cache_dir: &Path,
        linker: Linker<HostState>,
    ) -> Result<Self, SnapshotError> {
        let started = Instant::now();
        let with_resets = wasmpy_snapshot::add_reset_exports(wasm)
            .map_err(|e| SnapshotError::Runtime(e.to_string()))?;
        let split = wasmpy_snapshot::split_memory_modules(&with_resets)
            .map_err(|e| SnapshotError::Runtime(e.to_string()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let key = format!(
            "{}-{:016x}",
            &hex(&Sha256::digest(wasm))[..16],
            std::hash::Hasher::finish(&hasher)
        );
        let dir = cache_dir.join("snapshots");
        let pruned = prune(&dir, PRUNE_AFTER);
        if pruned > 0 {
            tracing::info!(pruned, "unused snapshot files removed");
        }
        let shared_path = dir.join(format!("shared-{key}.cwasm"));
        let shared = cached::<Component>(engine, &shared_path, &split.shared)?;
        let base = [0, 1].map(|i| {
            cached::<Module>(
                engine,
                &dir.join(format!("base{i}-{key}.cwasm")),
                &split.modules[i].1,
            )
        });
        let [base0, base1] = base;
        let split = SplitRuntime {
            shared,
            linker,
            with_resets,
            dir,
            key,
        };
        // The split runtime must link with the runtime's own modules.
        split.pre(&[base0?, base1?])?;
        tracing::info!(elapsed = ?started.elapsed(), "runtime split for tenant snapshots");
        Ok(split)
    }

    /// The pre-linked runtime for instances starting from `modules`.
    pub fn pre(&self, modules: &[Module; 2]) -> Result<GatewayPre<HostState>, SnapshotError> {
        let mut linker = self.linker.clone();
        for (name, module) in MODULE_NAMES.iter().zip(modules) {
            linker.root().module(name, module).map_err(wasmtime_err)?;
        }
        let pre = linker.instantiate_pre(&self.shared).map_err(wasmtime_err)?;
        GatewayPre::new(pre).map_err(wasmtime_err)
    }

    /// Files of the snapshot of a deployment named `deployment`.
    fn paths(&self, tenant: &str, deployment: &str) -> [PathBuf; 2] {
        [0, 1].map(|i| {
            self.dir
                .join(format!("{tenant}-{deployment}-{}-m{i}.cwasm", self.key))
        })
    }

    /// The tenant's snapshot if it is on disk and intact.
    pub fn cached(&self, engine: &Engine, tenant: &str, deployment: &str) -> Option<[Module; 2]> {
        let [p0, p1] = self.paths(tenant, deployment);
        Some([load_checked(engine, &p0)?, load_checked(engine, &p1)?])
    }

    /// Build the tenant's snapshot with `run` (which instantiates the
    /// instrumented runtime, imports the application and snapshots it),
    /// once per server: other processes wait on the lock and then find it.
    pub async fn build<F>(
        &self,
        engine: &Engine,
        tenant: &str,
        deployment: &str,
        run: F,
    ) -> Result<[Module; 2], SnapshotError>
    where
        F: AsyncFnOnce(
            &Component,
            &wasmtime_wizer::ComponentContext<'_>,
            &Wizer,
        ) -> Result<Vec<u8>, SnapshotError>,
    {
        let [p0, p1] = self.paths(tenant, deployment);
        let lock_path = self
            .dir
            .join(format!("{tenant}-{deployment}-{}.lock", self.key));
        std::fs::create_dir_all(&self.dir).map_err(|e| SnapshotError::Io(self.dir.clone(), e))?;
        let lock = File::create(&lock_path).map_err(|e| SnapshotError::Io(lock_path.clone(), e))?;
        // SAFETY: a plain system call on a descriptor we own; blocks until
        // another process building the same snapshot is done.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        if let Some(modules) = self.cached(engine, tenant, deployment) {
            return Ok(modules);
        }
        let started = Instant::now();
        let wizer = Wizer::new();
        let (cx, instrumented) = wizer
            .instrument_component(&self.with_resets)
            .map_err(|e| SnapshotError::Runtime(format!("{e:#}")))?;
        let instrumented_path = self.dir.join(format!(
            "instrumented-{}-{}.cwasm",
            &hex(&Sha256::digest(&instrumented))[..16],
            self.key
        ));
        let component = cached::<Component>(engine, &instrumented_path, &instrumented)?;
        let snapshot = run(&component, &cx, &wizer).await?;
        let split = wasmpy_snapshot::split_memory_modules(&snapshot)
            .map_err(|e| SnapshotError::Runtime(e.to_string()))?;
        let m0 = cached::<Module>(engine, &p0, &split.modules[0].1)?;
        let m1 = cached::<Module>(engine, &p1, &split.modules[1].1)?;
        tracing::info!(tenant, elapsed = ?started.elapsed(), "tenant snapshot built");
        Ok([m0, m1])
    }

    /// Instantiate the instrumented runtime in `store`, import the tenant's
    /// application, reset the cached WASI handles and capture the result.
    pub async fn capture(
        store: &mut wasmtime::Store<HostState>,
        linker: &Linker<HostState>,
        component: &Component,
        cx: &wasmtime_wizer::ComponentContext<'_>,
        wizer: &Wizer,
        entry: &str,
        env: &[(String, String)],
    ) -> Result<Vec<u8>, SnapshotError> {
        let instance = linker
            .instantiate_async(&mut *store, component)
            .await
            .map_err(wasmtime_err)?;
        let gateway = Gateway::new(&mut *store, &instance).map_err(wasmtime_err)?;
        gateway
            .call_load(&mut *store, entry, env)
            .await
            .map_err(wasmtime_err)?
            .map_err(SnapshotError::Import)?;
        for reset in ["wasmpy-reset-adapter", "wasmpy-reset-preopens"] {
            let func = instance
                .get_typed_func::<(), ()>(&mut *store, reset)
                .map_err(wasmtime_err)?;
            func.call_async(&mut *store, ())
                .await
                .map_err(wasmtime_err)?;
        }
        wizer
            .snapshot_component(cx, &mut Captured { store, instance })
            .await
            .map_err(|e| SnapshotError::Runtime(format!("{e:#}")))
    }

    /// The linker (WASI and the gateway's interfaces).
    pub fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}

/// Mark `path` as in use now.
fn touch(path: &Path) {
    if let Ok(file) = File::options().append(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Remove the files of `dir` last touched more than `older_than` ago
/// (snapshots of gone tenants, of old deployments or of an old runtime, and
/// their digests and locks); returns how many went.
pub fn prune(dir: &Path, older_than: std::time::Duration) -> usize {
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > older_than);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What wizer reads the instrumented instance through (its own
/// implementation needs wasmtime features this engine does not enable).
struct Captured<'a> {
    store: &'a mut wasmtime::Store<HostState>,
    instance: ComponentInstance,
}

impl Captured<'_> {
    async fn call<R, R2>(
        &mut self,
        instance: &str,
        func: &str,
        use_ret: impl FnOnce(&wasmtime::Store<HostState>, R) -> R2,
    ) -> R2
    where
        R: Lift + Send + Sync + 'static,
    {
        // Wizer's own accessors, added by its instrumentation: present.
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance");
        let (_, func) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .expect("wizer's accessor");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func)
            .expect("wizer's accessor type");
        let ret = func
            .call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessor call")
            .0;
        use_ret(self.store, ret)
    }
}

impl ComponentInstanceState for Captured<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store));
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, r| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, r: f64| r.to_bits()).await
    }
}

impl crate::Inner {
    /// Have the snapshot thread find or build `pool`'s snapshot; its
    /// instances import the application until it is there.
    pub(crate) fn queue_snapshot(&self, pool: &std::sync::Arc<crate::pool::Pool>) {
        if self.runtime.split.is_some() && pool.tenant.wsgi_entry().is_some() {
            self.snapshot_queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(std::sync::Arc::downgrade(pool));
        }
    }

    /// The snapshot thread's work: every queued generation still alive, in
    /// turn (one build at a time per process).
    pub(crate) fn build_snapshots(&self) {
        loop {
            let next = {
                let mut queue = self
                    .snapshot_queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if queue.is_empty() {
                    return;
                }
                queue.remove(0)
            };
            if let Some(pool) = next.upgrade() {
                if let Some(pre) = self.snapshot_for(&pool) {
                    pool.set_snapshot(pre);
                }
            }
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
        }
    }

    /// The runtime linked with `pool`'s snapshot: from the cache, or built
    /// now (blocking: call it from a background thread). `None` for a tenant
    /// without a WSGI entry (nothing to import), with snapshots off, or when
    /// the build failed (logged under the tenant's name; its instances then
    /// import as before).
    pub(crate) fn snapshot_for(
        &self,
        pool: &crate::pool::Pool,
    ) -> Option<std::sync::Arc<GatewayPre<HostState>>> {
        let split = self.runtime.split.as_ref()?;
        let tenant = &pool.tenant;
        let entry = tenant.wsgi_entry()?.to_string();
        let engine = &self.runtime.engine;
        let deployment = crate::reload::deployment_key(tenant);
        let modules = match split.cached(engine, &tenant.name, &deployment) {
            Some(modules) => Ok(modules),
            None => {
                let env = crate::instance::guest_env(tenant, &pool.dirs);
                let build = split.build(
                    engine,
                    &tenant.name,
                    &deployment,
                    async |component, cx, wizer| {
                        let (mut store, log) = crate::instance::new_store(
                            &self.runtime,
                            tenant,
                            &pool.dirs,
                            &self.global,
                            false,
                        )
                        .map_err(|e| SnapshotError::Runtime(format!("{e:?}")))?;
                        let captured = SplitRuntime::capture(
                            &mut store,
                            split.linker(),
                            component,
                            cx,
                            wizer,
                            &entry,
                            &env,
                        )
                        .await;
                        crate::emit_log(&self.log_sink, &tenant.name, &log);
                        captured
                    },
                );
                // Background work: on a SCHED_IDLE thread of its own, so that
                // it never takes CPU from requests (a penalized tenant's own
                // imports run at that priority too).
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::block_on::block_on_low_priority(build, self.tokio.handle())
                }))
                .unwrap_or_else(|_| {
                    Some(Err(SnapshotError::Runtime("the builder panicked".into())))
                })
                .unwrap_or_else(|| Err(SnapshotError::Runtime("no builder thread".into())))
            }
        };
        let pre = modules.and_then(|modules| split.pre(&modules));
        match pre {
            Ok(pre) => Some(std::sync::Arc::new(pre)),
            Err(e) => {
                self.log(
                    &tenant.name,
                    &format!("mod_wasmpy: no snapshot, instances import the application: {e}"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_not_touched_for_a_while_are_pruned_the_others_kept() {
        let dir = std::env::temp_dir().join(format!("wasmpy-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("gone-tenant-m0.cwasm");
        let fresh = dir.join("live-tenant-m0.cwasm");
        for path in [&old, &fresh] {
            std::fs::write(path, b"x").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - 2 * PRUNE_AFTER;
        File::options()
            .append(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(prune(&dir, PRUNE_AFTER), 1);
        assert!(!old.exists() && fresh.exists());
        // Touching marks a file as in use.
        File::options()
            .append(true)
            .open(&fresh)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        touch(&fresh);
        assert_eq!(prune(&dir, PRUNE_AFTER), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
