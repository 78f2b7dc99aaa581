//! The wasmtime [`Engine`] and the compiled runtime component, loaded once per
//! process and shared by every tenant.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::GatewayPre;
use crate::cache::{check, hex, write_checked, Checked};
use crate::host::HostState;
use crate::SandboxError;

/// Largest memory cap a policy may grant (4 GiB, the wasm32 limit).
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// Where the runtime's files are: the component and its standard library.
#[derive(Debug, Clone)]
pub struct RuntimeFiles {
    /// The runtime component built by `python-wasm/build.sh` (`gateway.wasm`).
    pub component: PathBuf,
    /// The matching CPython standard library, mounted read-only at `/python`.
    pub stdlib: PathBuf,
}

impl RuntimeFiles {
    /// The files of a runtime directory as `python-wasm/build.sh` lays it out.
    pub fn in_dir(dir: &Path) -> Self {
        RuntimeFiles {
            component: dir.join("gateway.wasm"),
            stdlib: dir.join("python"),
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instance slots of the pooling allocator (all tenants of one process).
    pub pool_slots: u32,
    /// Most instances alive at once, all tenants together (at most `pool_slots`).
    pub max_instances: u32,
    /// Most linear memory of all instances together, in bytes.
    pub max_memory: u64,
    /// Start the instances of tenants with a WSGI entry from a per-tenant
    /// snapshot of their imported application (`snapshot.rs`).
    pub snapshots: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pool_slots: 256,
            max_instances: 256,
            max_memory: 16 << 30,
            // On unless the environment says WASMPY_SNAPSHOTS=0 (to compare,
            // or to rule snapshots out while investigating a tenant).
            snapshots: std::env::var("WASMPY_SNAPSHOTS").map_or(true, |v| v != "0"),
        }
    }
}

/// The engine plus the pre-linked runtime component.
pub(crate) struct Runtime {
    pub engine: Engine,
    pub pre: GatewayPre<HostState>,
    pub stdlib: PathBuf,
    /// The runtime split for tenant snapshots (`None`: snapshots are off,
    /// or the runtime could not be split: every instance imports).
    pub split: Option<crate::snapshot::SplitRuntime>,
}

fn engine_config(settings: &EngineSettings) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    // Python's MemoryError needs memory.grow to fail, not trap.
    let mut pool = PoolingAllocationConfig::default();
    let slots = settings.pool_slots.max(1);
    // A componentize-py component holds a handful of core instances, memories
    // and tables; size the pool for that shape.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 16)
        .total_stacks(slots)
        .max_core_instances_per_component(32)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .max_memory_size(MAX_MEMORY_BYTES as usize)
        .linear_memory_keep_resident(0)
        .max_unused_warm_slots(slots / 8);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}

impl Runtime {
    /// Create the engine and load the runtime, compiling it only when no valid
    /// `.cwasm` for this engine configuration is cached in `cache_dir`.
    pub fn load(
        files: &RuntimeFiles,
        cache_dir: &Path,
        settings: &EngineSettings,
    ) -> Result<Self, SandboxError> {
        let engine = Engine::new(&engine_config(settings)).map_err(SandboxError::engine)?;
        let component = load_component(&engine, &files.component, cache_dir)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(SandboxError::engine)?;
        crate::bindings::Gateway::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(SandboxError::engine)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::Runtime(files.component.clone(), format!("{e:#}")))?;
        let pre = GatewayPre::new(instance_pre)
            .map_err(|e| SandboxError::Runtime(files.component.clone(), format!("{e:#}")))?;
        if !files.stdlib.join("os.py").is_file() {
            return Err(SandboxError::Runtime(
                files.stdlib.clone(),
                "not a Python standard library (no os.py)".into(),
            ));
        }
        let split = if settings.snapshots {
            std::fs::read(&files.component)
                .map_err(|e| e.to_string())
                .and_then(|wasm| {
                    crate::snapshot::SplitRuntime::load(&engine, &wasm, cache_dir, linker.clone())
                        .map_err(|e| e.to_string())
                })
                .inspect_err(|e| tracing::warn!("tenant snapshots off: {e}"))
                .ok()
        } else {
            None
        };
        Ok(Runtime {
            engine,
            pre,
            stdlib: files.stdlib.clone(),
            split,
        })
    }
}

/// Name of the cached `.cwasm` for this component and engine configuration.
fn cache_name(engine: &Engine, wasm_sha: &str) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("gateway-{}-{:016x}.cwasm", &wasm_sha[..16], hasher.finish())
}

/// Load the compiled component from the cache, or compile and cache it.
///
/// A cached file is used only if its SHA-256 matches the digest recorded when
/// it was written, so a truncated or corrupted cache is recompiled, never run.
fn load_component(
    engine: &Engine,
    wasm: &Path,
    cache_dir: &Path,
) -> Result<Component, SandboxError> {
    let wasm_sha =
        sha256_file(wasm).map_err(|e| SandboxError::Runtime(wasm.to_path_buf(), e.to_string()))?;
    let cwasm = cache_dir.join(cache_name(engine, &wasm_sha));
    match check(&cwasm) {
        Checked::Intact => {
            let started = Instant::now();
            // SAFETY: the file was produced by `Engine::precompile_component` of an
            // engine with the same compatibility hash (it is in the file name) and
            // its digest matches the one recorded when it was written.
            match unsafe { Component::deserialize_file(engine, &cwasm) } {
                Ok(component) => {
                    tracing::debug!(path = %cwasm.display(), elapsed = ?started.elapsed(), "loaded compiled runtime");
                    return Ok(component);
                }
                Err(e) => {
                    tracing::warn!(path = %cwasm.display(), "cached runtime rejected, recompiling: {e:#}")
                }
            }
        }
        Checked::Mismatch => {
            tracing::warn!(path = %cwasm.display(), "cached runtime has a wrong digest, recompiling")
        }
        Checked::Missing => {}
    }
    let started = Instant::now();
    let bytes = std::fs::read(wasm)
        .map_err(|e| SandboxError::Runtime(wasm.to_path_buf(), e.to_string()))?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| SandboxError::Runtime(wasm.to_path_buf(), format!("{e:#}")))?;
    tracing::info!(path = %wasm.display(), elapsed = ?started.elapsed(), "compiled runtime");
    if let Err(e) = write_cache(cache_dir, &cwasm, &compiled) {
        tracing::warn!(path = %cwasm.display(), "cannot cache compiled runtime: {e}");
    }
    // SAFETY: the bytes were just produced by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
        .map_err(|e| SandboxError::Runtime(wasm.to_path_buf(), format!("{e:#}")))
}

/// Write the compiled runtime and its digest, then remove older runtimes'.
fn write_cache(dir: &Path, cwasm: &Path, compiled: &[u8]) -> std::io::Result<()> {
    write_checked(cwasm, compiled)?;
    // Older runtimes' compiled code is of no further use (processes that
    // still map it keep their mapping).
    let keep = cwasm.file_name();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let stale = text.starts_with("gateway-")
            && text.contains(".cwasm")
            && !keep.is_some_and(|k| text.starts_with(&*k.to_string_lossy()));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}
