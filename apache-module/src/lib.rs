//! `mod_wasmpy.so`: runs each tenant's Python WSGI application in its own
//! persistent WebAssembly sandbox, inside Apache httpd.
//!
//! Lifecycle: directives are parsed in the parent (policies validated there,
//! so `apachectl configtest` catches bad ones); `post_config` compiles the
//! runtime into the cache in a short-lived forked helper; `child_init`
//! creates the [`Sandbox`] (engine, threads) in each child; a cleanup on the
//! child's pool shuts it down. C glue lives in `shim.c`.

#![allow(clippy::missing_safety_doc)]

mod config;
mod dirconfig;
mod directives;
mod ffi;
mod fields;
mod filters;
mod phases;
mod req;
mod request;
mod ssi;
mod status;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use wasmpy_sandbox::{EngineSettings, RuntimeFiles, Sandbox, SandboxConfig};

use config::ModuleConfig;
use ffi::{apr_pool_t, cmd_parms, request_rec, server_rec};

/// Handler name of application requests (set by our translate_name hook).
const APP_HANDLER: &CStr = c"wasmpy-app";
/// Handler name of the status page (`SetHandler wasmpy-status`).
const STATUS_HANDLER: &CStr = c"wasmpy-status";
/// Request note carrying the tenant name.
const NOTE_TENANT: &CStr = c"wasmpy-tenant";
/// Request note carrying SCRIPT_NAME.
const NOTE_SCRIPT_NAME: &CStr = c"wasmpy-script-name";

/// The module record httpd looks up (`LoadModule wasmpy_module ...`): what
/// `STANDARD20_MODULE_STUFF` fills in, the directive table and hook
/// registration of `shim.c`. Defined here so that the cdylib exports it.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut wasmpy_module: ffi::module = ffi::module {
    version: ffi::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: c"mod_wasmpy.c".as_ptr(),
    dynamic_load_handle: std::ptr::null_mut(),
    next: std::ptr::null_mut(),
    magic: ffi::MODULE_MAGIC_COOKIE as _,
    rewrite_args: None,
    create_dir_config: Some(dirconfig::create_dir_config),
    merge_dir_config: Some(dirconfig::merge_dir_config),
    create_server_config: None,
    merge_server_config: None,
    cmds: (&raw const ffi::wasmpy_shim_cmds).cast(),
    register_hooks: Some(ffi::wasmpy_shim_register_hooks),
    flags: 0,
};

/// Written while httpd reads its configuration, read-only in the children.
static CONFIG: RwLock<ModuleConfig> = RwLock::new(ModuleConfig {
    runtime: None,
    cache_dir: None,
    state_dir: None,
    pool_slots: None,
    max_memory: None,
    mounts: Vec::new(),
    tenants: std::collections::BTreeMap::new(),
    bindings: Vec::new(),
});
/// The child's sandbox (none in the parent).
static SANDBOX: RwLock<Option<Arc<Sandbox>>> = RwLock::new(None);
/// The child's status publisher: its stop flag and thread.
type Publisher = (Arc<AtomicBool>, std::thread::JoinHandle<()>);
static PUBLISHER: Mutex<Option<Publisher>> = Mutex::new(None);
/// The main server_rec, for logging from sandbox threads.
static MAIN_SERVER: AtomicUsize = AtomicUsize::new(0);

/// The configuration, for the directives (parent, single-threaded).
fn config_mut() -> RwLockWriteGuard<'static, ModuleConfig> {
    CONFIG.write().unwrap_or_else(|e| e.into_inner())
}

/// The configuration, for hooks and requests.
fn config() -> RwLockReadGuard<'static, ModuleConfig> {
    CONFIG.read().unwrap_or_else(|e| e.into_inner())
}

fn sandbox() -> Option<Arc<Sandbox>> {
    SANDBOX.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Log `msg` to the error log of `server` at `level` (APLOG_*).
fn log_server(server: *const server_rec, level: u32, msg: &str) {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: server is a live server_rec (or null: httpd then uses the main log).
    unsafe { ffi::wasmpy_shim_log_server(server, level as c_int, msg.as_ptr()) }
}

fn main_server() -> *const server_rec {
    MAIN_SERVER.load(Ordering::Relaxed) as *const server_rec
}

/// A C string borrowed from httpd, or "" for null.
pub(crate) unsafe fn text<'a>(ptr: *const c_char) -> &'a str {
    if ptr.is_null() {
        ""
    } else {
        std::str::from_utf8(CStr::from_ptr(ptr).to_bytes()).unwrap_or("")
    }
}

/// Copy `s` into `pool` (NUL bytes cut the string).
pub(crate) unsafe fn pool_str(pool: *mut apr_pool_t, s: &[u8]) -> *mut c_char {
    ffi::apr_pstrndup(pool, s.as_ptr().cast(), s.len())
}

/// Box `value` into memory that `pool`'s cleanup frees (with `value`).
pub(crate) unsafe fn pool_box<T>(pool: *mut apr_pool_t, value: T) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    ffi::apr_pool_cleanup_register(
        pool,
        ptr.cast(),
        Some(drop_box::<T>),
        Some(ffi::apr_pool_cleanup_null),
    );
    ptr
}

/// The value boxed under `key` in `pool`'s user data, created with `make`
/// on first use (`None` when `make` fails); freed with the pool.
pub(crate) unsafe fn pool_data<'a, T, E>(
    pool: *mut apr_pool_t,
    key: &'static CStr,
    make: impl FnOnce() -> Result<T, E>,
) -> Result<&'a mut T, E> {
    let mut data: *mut c_void = std::ptr::null_mut();
    ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), pool);
    if let Some(value) = data.cast::<T>().as_mut() {
        return Ok(value);
    }
    let ptr = Box::into_raw(Box::new(make()?));
    ffi::apr_pool_userdata_set(ptr.cast(), key.as_ptr(), Some(drop_box::<T>), pool);
    Ok(&mut *ptr)
}

/// The cleanup of [`pool_box`] and [`pool_data`].
unsafe extern "C" fn drop_box<T>(ptr: *mut c_void) -> ffi::apr_status_t {
    // SAFETY: registered with a pointer from Box::into_raw of a T; run once.
    guard((), || drop(Box::from_raw(ptr.cast::<T>())));
    0
}

/// Run `f`, turning a panic into `fallback` so that no unwind crosses into C.
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// A directive's result: NULL for success, or an error copied into the pool.
unsafe fn directive_result(cmd: *mut cmd_parms, result: Result<(), String>) -> *const c_char {
    match result {
        Ok(()) => std::ptr::null(),
        Err(message) => pool_str((*cmd).pool, message.as_bytes()),
    }
}

/// A path argument, relative to ServerRoot.
unsafe fn server_path(cmd: *mut cmd_parms, arg: *const c_char) -> PathBuf {
    let resolved = ffi::ap_server_root_relative((*cmd).pool, arg);
    PathBuf::from(text(if resolved.is_null() { arg } else { resolved }))
}

/// `WasmPyApp URL-PREFIX TENANT-DIR`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_app(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    prefix: *const c_char,
    dir: *const c_char,
) -> *const c_char {
    let result = guard(Err("WasmPyApp: internal error".into()), || {
        let dir = server_path(cmd, dir);
        config_mut().add_app((*cmd).server as usize, text(prefix), &dir)
    });
    directive_result(cmd, result)
}

/// Reject a global-only directive inside `<VirtualHost>`.
unsafe fn global_only(cmd: *mut cmd_parms, name: &str) -> Result<(), String> {
    if (*(*cmd).server).is_virtual != 0 {
        return Err(format!(
            "{name} is not allowed in <VirtualHost>: it applies to the whole server"
        ));
    }
    Ok(())
}

/// `WasmPyRuntime PATH`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_runtime(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    path: *const c_char,
) -> *const c_char {
    let result = global_only(cmd, "WasmPyRuntime").and_then(|()| {
        let dir = server_path(cmd, path);
        let files = RuntimeFiles::in_dir(&dir);
        if !files.component.is_file() || !files.stdlib.is_dir() {
            return Err(format!(
                "WasmPyRuntime: {} has no gateway.wasm and python/ (build it with python-wasm/build.sh)",
                dir.display()
            ));
        }
        config_mut().runtime = Some(dir);
        Ok(())
    });
    directive_result(cmd, result)
}

/// `WasmPyCacheDir PATH`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_cache_dir(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    path: *const c_char,
) -> *const c_char {
    let result = global_only(cmd, "WasmPyCacheDir").map(|()| {
        config_mut().cache_dir = Some(server_path(cmd, path));
    });
    directive_result(cmd, result)
}

/// `WasmPyStateDir PATH`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_state_dir(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    path: *const c_char,
) -> *const c_char {
    let result = global_only(cmd, "WasmPyStateDir").map(|()| {
        config_mut().state_dir = Some(server_path(cmd, path));
    });
    directive_result(cmd, result)
}

/// `WasmPyPoolSlots N`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_pool_slots(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    count: *const c_char,
) -> *const c_char {
    let result = global_only(cmd, "WasmPyPoolSlots").and_then(|()| {
        let n: u32 = text(count)
            .parse()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                format!(
                    "WasmPyPoolSlots: {:?} is not a number from 1 to 10000",
                    text(count)
                )
            })?;
        config_mut().pool_slots = Some(n);
        Ok(())
    });
    directive_result(cmd, result)
}

/// `WasmPyMaxMemory SIZE`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_max_memory(
    cmd: *mut cmd_parms,
    _cfg: *mut c_void,
    size: *const c_char,
) -> *const c_char {
    let result = global_only(cmd, "WasmPyMaxMemory").and_then(|()| {
        let bytes = wasmpy_policies::units::parse_size(text(size))
            .map_err(|e| format!("WasmPyMaxMemory: {e}"))?;
        if bytes < 16 << 20 {
            return Err(format!("WasmPyMaxMemory: {:?} is below 16MiB", text(size)));
        }
        config_mut().max_memory = Some(bytes);
        Ok(())
    });
    directive_result(cmd, result)
}

/// Start of every config read: forget the previous one (graceful restart).
#[no_mangle]
pub unsafe extern "C" fn wasmpy_pre_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    guard((), || *config_mut() = ModuleConfig::default());
    ffi::OK as c_int
}

fn sandbox_config(config: &ModuleConfig) -> SandboxConfig {
    let mut engine = EngineSettings::default();
    if let Some(slots) = config.pool_slots {
        engine.pool_slots = slots;
        engine.max_instances = slots;
    }
    if let Some(bytes) = config.max_memory {
        engine.max_memory = bytes;
    }
    SandboxConfig {
        runtime: RuntimeFiles::in_dir(&config.runtime_dir()),
        cache_dir: config.cache_dir(),
        state_dir: config.state_dir(),
        engine,
        log_sink: Some(Arc::new(|tenant: &str, line: &str| {
            log_server(
                main_server(),
                ffi::APLOG_ERR,
                &format!("[tenant {tenant}] {line}"),
            );
        })),
    }
}

/// After the config is read (parent, as root when started as root): make
/// the cache directory usable by the children's user and compile the
/// runtime into it in a forked helper, so the parent never creates an
/// engine or threads and the children find the compiled code.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_post_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guard(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int, || {
        let config = config();
        if config.tenants.is_empty() {
            return ffi::OK as c_int;
        }
        let settings = sandbox_config(&config);
        let tenants: Vec<String> = config.tenants.keys().cloned().collect();
        drop(config);
        if let Err(message) = prepare_cache(&settings, &tenants) {
            log_server(s, ffi::APLOG_EMERG, &format!("mod_wasmpy: {message}"));
            return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
        }
        ffi::OK as c_int
    })
}

/// The directories the children write to: the cache, its per-tenant
/// bytecode directories, the status directory and each tenant's state.
fn writable_dirs(settings: &SandboxConfig, tenants: &[String]) -> Vec<PathBuf> {
    let cache = &settings.cache_dir;
    let pycache = cache.join("pycache");
    let state = &settings.state_dir;
    let mut dirs = vec![
        cache.clone(),
        pycache.clone(),
        status::status_dir(cache),
        // Tenant snapshots (built by the children, sandbox/src/snapshot.rs).
        cache.join("snapshots"),
        state.clone(),
    ];
    for tenant in tenants {
        dirs.push(pycache.join(tenant));
        dirs.push(state.join(tenant));
        dirs.push(state.join(tenant).join("data"));
        dirs.push(state.join(tenant).join("locks"));
    }
    dirs
}

unsafe fn prepare_cache(settings: &SandboxConfig, tenants: &[String]) -> Result<(), String> {
    for dir in writable_dirs(settings, tenants) {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if libc::geteuid() == 0 {
            // Started as root: the children run as User/Group.
            let user = &raw const ffi::ap_unixd_config;
            let path = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
            if libc::chown(path.as_ptr(), (*user).user_id, (*user).group_id) != 0 {
                return Err(format!(
                    "cannot give {} to the server's user",
                    dir.display()
                ));
            }
        }
    }
    match libc::fork() {
        -1 => Err("cannot fork the runtime compiler".into()),
        0 => {
            let code = match Sandbox::prepare(settings) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mod_wasmpy: {e}");
                    1
                }
            };
            libc::_exit(code)
        }
        pid => {
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(format!(
                    "cannot load or compile the runtime {} (see the error above)",
                    settings.runtime.component.display()
                ))
            }
        }
    }
}

/// Pool cleanup of the child: stop the sandbox's threads, free instances.
unsafe extern "C" fn child_exit(_data: *mut c_void) -> ffi::apr_status_t {
    guard((), || {
        let publisher = PUBLISHER.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, thread)) = publisher {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        let sandbox = SANDBOX.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sandbox) = sandbox {
            sandbox.shutdown();
        }
    });
    0
}

/// In each child, after fork: create the engine, load the runtime and the
/// tenants.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_child_init(pchild: *mut apr_pool_t, s: *mut server_rec) {
    MAIN_SERVER.store(s as usize, Ordering::Relaxed);
    guard((), || {
        // The sandbox's own diagnostics: children's stderr is the error log.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("WASMPY_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
        let config = config();
        if config.tenants.is_empty() {
            return;
        }
        let settings = sandbox_config(&config);
        let status_dir = status::server_status_dir(&settings.cache_dir);
        let tenants: Vec<_> = config.tenants.values().cloned().collect();
        drop(config);
        let sandbox = match Sandbox::new(settings) {
            Ok(sandbox) => Arc::new(sandbox),
            Err(e) => {
                log_server(
                    s,
                    ffi::APLOG_ERR,
                    &format!("mod_wasmpy: cannot start the sandbox: {e}"),
                );
                return;
            }
        };
        for tenant in tenants {
            sandbox.add_tenant(tenant);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let (sandbox, stop) = (Arc::clone(&sandbox), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("wasmpy-status".into())
                .spawn(move || status::publish_loop(sandbox, status_dir, stop))
        };
        match publisher {
            Ok(thread) => {
                *PUBLISHER.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, thread))
            }
            Err(e) => log_server(
                s,
                ffi::APLOG_WARNING,
                &format!("mod_wasmpy: no status publisher: {e}"),
            ),
        }
        *SANDBOX.write().unwrap_or_else(|e| e.into_inner()) = Some(sandbox);
        ffi::apr_pool_cleanup_register(
            pchild,
            std::ptr::null(),
            Some(child_exit),
            Some(ffi::apr_pool_cleanup_null),
        );
    });
}

/// Map URLs under a `WasmPyApp` prefix to the application handler.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_translate_name(r: *mut request_rec) -> c_int {
    guard(ffi::DECLINED as c_int, || {
        let r = &mut *r;
        let uri = text(r.uri);
        let (tenant, prefix) = {
            let config = config();
            let base = main_server() as usize;
            match config.route(r.server as usize, base, uri) {
                Some(mount) => (mount.tenant.clone(), mount.prefix.clone()),
                None => return ffi::DECLINED as c_int,
            }
        };
        r.handler = APP_HANDLER.as_ptr();
        ffi::apr_table_setn(
            r.notes,
            NOTE_TENANT.as_ptr(),
            pool_str(r.pool, tenant.as_bytes()),
        );
        ffi::apr_table_setn(
            r.notes,
            NOTE_SCRIPT_NAME.as_ptr(),
            pool_str(r.pool, prefix.as_bytes()),
        );
        ffi::OK as c_int
    })
}

/// Application URLs are not files: skip the `<Directory>` walk.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_map_to_storage(r: *mut request_rec) -> c_int {
    if !(*r).handler.is_null() && CStr::from_ptr((*r).handler) == APP_HANDLER {
        ffi::OK as c_int
    } else {
        ffi::DECLINED as c_int
    }
}

/// The content handler: applications and the status page.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_handler(r: *mut request_rec) -> c_int {
    if (*r).handler.is_null() {
        return ffi::DECLINED as c_int;
    }
    if let Some(status) = guard(Some(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int), || {
        phases::content(r)
    }) {
        return status;
    }
    let handler = CStr::from_ptr((*r).handler);
    let served = if handler == APP_HANDLER {
        guard(Err("panic while serving".to_string()), || {
            request::serve(&mut *r)
        })
    } else if handler == STATUS_HANDLER {
        guard(Err("panic on the status page".to_string()), || {
            status::serve(&mut *r)
        })
    } else {
        return ffi::DECLINED as c_int;
    };
    match served {
        Ok(code) => code,
        Err(message) => {
            let msg = CString::new(format!("mod_wasmpy: {message}")).unwrap_or_default();
            ffi::wasmpy_shim_log_request(r, ffi::APLOG_ERR as c_int, msg.as_ptr());
            ffi::HTTP_INTERNAL_SERVER_ERROR as c_int
        }
    }
}
