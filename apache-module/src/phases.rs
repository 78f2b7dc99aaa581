//! mod_python's request phases: a hook per phase runs the phase's Python
//! handlers, from the merged configuration of the request's scope, in the
//! sandbox of the tenant bound to that scope. The first Python phase of a
//! request takes one instance of the tenant ([`Session`]) and keeps it, with
//! the request's state, in `r->request_config`, so that `req` lives across
//! the phases. The instance goes back once no later phase needs it (from the
//! fixups on, when the content handler is known), or at the latest when the
//! request's pool is destroyed, after the `PythonCleanupHandler`s.

use std::ffi::{c_int, c_void, CStr, CString};

use wasmpy_sandbox::{Handler, Outcome, PhaseCall, Session, DECLINED, DONE, OK};

use crate::dirconfig::{
    self, DirConfig, CLEANUP, CONTENT, FIXUP, HEADER_PARSER, INIT, LOG, PHASES, POST_READ, TRANS,
};
use crate::ffi::{self, request_rec};
use crate::req::{ApacheRequest, Body};
use crate::{config, guard, sandbox, text};

/// Handler names that select mod_python's content phase.
const CONTENT_HANDLERS: [&CStr; 2] = [c"mod_python", c"python-program"];

/// Guest entry points in use, by address (a request's phases, a filter's
/// context): a call that would re-enter one (a handler's output passing
/// through `#python` of the same request, a filter reading the body through
/// itself) is refused instead of aliasing its state. Shared by all threads:
/// a long call makes its host calls from a low-priority thread of its own.
static RUNNING: std::sync::Mutex<std::collections::BTreeSet<usize>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A guest entry point held for the duration of a call (see [`RUNNING`]).
pub(crate) struct Running(usize);

impl Running {
    /// Hold `key`; `None` if it is already held (a re-entry).
    pub(crate) fn enter(key: usize) -> Option<Running> {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(key).then_some(Running(key))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Run `f` on the instance `r` holds for `tenant`, if it holds one and no
/// phase of `r` is running (`None` otherwise): server-side includes share
/// the request's `req` with its handlers, as in mod_python.
pub(crate) unsafe fn with_idle_session<R>(
    r: *mut request_rec,
    tenant: &str,
    f: &mut dyn FnMut(&mut Session) -> R,
) -> Option<R> {
    let _running = Running::enter(r as usize)?;
    let state = existing_state(r)?;
    let (_, session) = state.sessions.iter_mut().find(|(t, _)| t == tenant)?;
    Some(f(session))
}

/// What a request keeps between its Python phases.
struct RequestState {
    /// One instance per tenant the request's phases ran in.
    sessions: Vec<(String, Session)>,
    body: Body,
    /// Phases a handler asked to run with `req.add_handler`.
    added: Vec<String>,
    /// The configuration the cleanup phase runs with, kept from the last
    /// per-directory phase: the request's merged configuration may be gone
    /// when the request pool's cleanups run.
    cleanup: Option<DirConfig>,
}

/// The request's state, created (with the cleanup that ends it) on first use.
unsafe fn state<'a>(r: *mut request_rec) -> &'a mut RequestState {
    let existing = ffi::wasmpy_shim_get_module_config((*r).request_config).cast::<RequestState>();
    if let Some(state) = existing.as_mut() {
        return state;
    }
    let state = Box::into_raw(Box::new(RequestState {
        sessions: Vec::new(),
        body: Body::default(),
        added: Vec::new(),
        cleanup: None,
    }));
    ffi::wasmpy_shim_set_module_config((*r).request_config, state.cast());
    ffi::apr_pool_cleanup_register(
        (*r).pool,
        r.cast(),
        Some(end_request),
        Some(ffi::apr_pool_cleanup_null),
    );
    &mut *state
}

unsafe fn existing_state<'a>(r: *mut request_rec) -> Option<&'a mut RequestState> {
    ffi::wasmpy_shim_get_module_config((*r).request_config)
        .cast::<RequestState>()
        .as_mut()
}

/// Cleanup of the request pool: run `PythonCleanupHandler`s, then end the
/// request in every instance it used (their registered cleanups run) and
/// give the instances back.
unsafe extern "C" fn end_request(data: *mut c_void) -> ffi::apr_status_t {
    let r = data.cast::<request_rec>();
    guard((), || {
        let ptr = ffi::wasmpy_shim_get_module_config((*r).request_config).cast::<RequestState>();
        if ptr.is_null() {
            return;
        }
        if let Some(cfg) = (*ptr).cleanup.take() {
            let handlers = handlers(&cfg, CLEANUP, |_| true);
            let added = (*ptr).added.iter().any(|p| p == PHASES[CLEANUP]);
            if !handlers.is_empty() || added {
                run(r, CLEANUP, &cfg, handlers);
            }
        }
        ffi::wasmpy_shim_set_module_config((*r).request_config, std::ptr::null_mut());
        // SAFETY: created by state() with Box::into_raw; the slot is cleared.
        drop(Box::from_raw(ptr));
    });
    0
}

/// The handlers of `phase` in `cfg` that `keep` selects.
fn handlers(
    cfg: &DirConfig,
    phase: usize,
    keep: impl Fn(&dirconfig::Declared) -> bool,
) -> Vec<Handler> {
    cfg.handlers_of(phase)
        .iter()
        .filter(|d| keep(d))
        .map(|d| d.handler.clone())
        .collect()
}

/// `path` as the tenant sees it: under `/app` when inside its `app/`.
fn guest_view(tenant: &str, path: &str) -> String {
    let config = config();
    let app = config
        .tenants
        .get(tenant)
        .map(|t| t.app_dir.to_string_lossy().into_owned());
    match app
        .as_deref()
        .and_then(|app| wasmpy_sandbox::http::below(path, app))
    {
        Some("") => "/app/".to_string(),
        Some(rest) => format!("/app/{rest}"),
        None => path.to_string(),
    }
}

/// The interpreter name mod_python would use (names select within the
/// tenant only: every name runs in the tenant's own sandbox).
pub(crate) unsafe fn interpreter(
    r: *mut request_rec,
    cfg: &DirConfig,
    phase: usize,
    tenant: &str,
) -> String {
    if let Some(name) = cfg.value("PythonInterpreter") {
        return name.to_string();
    }
    match cfg.interp_per {
        Some("PythonInterpPerDirectory") => {
            let file = text((*r).filename);
            let dir = file.rsplit_once('/').map_or("", |(dir, _)| dir);
            guest_view(tenant, &format!("{dir}/"))
        }
        Some(_) => cfg
            .handlers_of(phase)
            .first()
            .and_then(|d| d.section.as_deref())
            .map_or(String::new(), |section| guest_view(tenant, section)),
        None => text((*(*r).server).server_hostname).to_string(),
    }
}

/// The tenant whose sandbox runs `cfg`'s handlers.
pub(crate) unsafe fn tenant_of(r: *mut request_rec, cfg: &DirConfig) -> Option<String> {
    cfg.tenant.clone().or_else(|| {
        config()
            .bound_tenant((*r).server as usize, cfg.path.as_deref())
            .map(str::to_string)
    })
}

/// Run `handlers` of `phase` (configured, or added by `req.add_handler`);
/// returns the Apache status of the phase.
unsafe fn run(r: *mut request_rec, phase: usize, cfg: &DirConfig, handlers: Vec<Handler>) -> c_int {
    let Some(tenant) = tenant_of(r, cfg) else {
        log(
            r,
            &format!("{}: no WasmPyTenant binds this scope", PHASES[phase]),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let Some(sandbox) = sandbox() else {
        log(
            r,
            &format!(
                "no sandbox in this child: {} of tenant {tenant} refused",
                PHASES[phase]
            ),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let Some(_running) = Running::enter(r as usize) else {
        log(
            r,
            &format!(
                "{}: re-entered while a phase of this request runs",
                PHASES[phase]
            ),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let state = state(r);
    if !state.sessions.iter().any(|(t, _)| *t == tenant) {
        match sandbox.session(&tenant) {
            Ok(session) => state.sessions.push((tenant.clone(), session)),
            Err(outcome) => {
                if outcome == Outcome::QueueTimeout {
                    ffi::apr_table_setn(
                        (*r).err_headers_out,
                        c"Retry-After".as_ptr(),
                        c"1".as_ptr(),
                    );
                }
                warn(r, &tenant, phase, outcome, i32::from(outcome.status()));
                return c_int::from(outcome.status());
            }
        }
    }
    let call = PhaseCall {
        phase: PHASES[phase].to_string(),
        interpreter: interpreter(r, cfg, phase, &tenant),
        handlers,
        options: cfg.option_table(),
        config: cfg.config_table(),
        imports: cfg.imports.clone(),
    };
    let finished = phase == LOG || phase == CLEANUP;
    let host = ApacheRequest::new(r, &mut state.body, &mut state.added, finished);
    let Some((_, session)) = state.sessions.iter_mut().find(|(t, _)| *t == tenant) else {
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let result = session.run_phase(&call, Box::new(host));
    if result.outcome != Outcome::Ok {
        warn(r, &tenant, phase, result.outcome, result.status);
    }
    match result.status {
        OK => ffi::OK as c_int,
        DECLINED => ffi::DECLINED as c_int,
        DONE => ffi::DONE as c_int,
        code => code,
    }
}

pub(crate) unsafe fn log(r: *mut request_rec, message: &str) {
    let msg =
        CString::new(format!("mod_wasmpy: {message}").replace('\0', "\\0")).unwrap_or_default();
    ffi::wasmpy_shim_log_request(r, ffi::APLOG_ERR as c_int, msg.as_ptr());
}

unsafe fn warn(r: *mut request_rec, tenant: &str, phase: usize, outcome: Outcome, status: i32) {
    let msg = CString::new(format!(
        "mod_wasmpy: [tenant {tenant}] {} {} {}: {outcome:?} -> {status}",
        PHASES[phase],
        text((*r).method),
        text((*r).uri)
    ))
    .unwrap_or_default();
    ffi::wasmpy_shim_log_request(r, ffi::APLOG_WARNING as c_int, msg.as_ptr());
}

/// Run a phase from the request's merged per-directory configuration.
unsafe fn per_dir_phase(r: *mut request_rec, phase: usize) -> c_int {
    let Some(cfg) = dirconfig::get((*r).per_dir_config) else {
        return ffi::DECLINED as c_int;
    };
    let handlers = handlers(cfg, phase, |_| true);
    let added = existing_state(r).is_some_and(|s| s.added.iter().any(|p| p == PHASES[phase]));
    if handlers.is_empty() && !added {
        return ffi::DECLINED as c_int;
    }
    let status = run(r, phase, cfg, handlers);
    keep_cleanup_config(r, cfg);
    release_if_done(r, phase, cfg);
    status
}

/// Give the request's instances back as soon as no later phase needs them
/// (instead of when Apache destroys the request pool, which under the event
/// MPM can wait for the response to be written to a slow client).
unsafe fn release_if_done(r: *mut request_rec, phase: usize, cfg: &DirConfig) {
    // Before the fixups, whether the content phase is ours is not known yet
    // (SetHandler and AddHandler take effect in the type checker).
    if phase < FIXUP {
        return;
    }
    let Some(state) = existing_state(r) else {
        return;
    };
    let ours = !(*r).handler.is_null() && CONTENT_HANDLERS.contains(&CStr::from_ptr((*r).handler));
    let later = (phase + 1..PHASES.len()).any(|p| {
        let configured = !cfg.handlers_of(p).is_empty() && (p != CONTENT || ours);
        configured || state.added.iter().any(|a| a == PHASES[p])
    });
    if later || state.sessions.iter().any(|(_, s)| s.has_cleanups()) {
        return;
    }
    state.sessions.clear();
}

/// Keep `cfg` for the cleanup phase if the request will have one.
unsafe fn keep_cleanup_config(r: *mut request_rec, cfg: &DirConfig) {
    let Some(state) = existing_state(r) else {
        return;
    };
    let wanted =
        !cfg.handlers_of(CLEANUP).is_empty() || state.added.iter().any(|p| p == PHASES[CLEANUP]);
    if wanted {
        state.cleanup = Some(cfg.clone());
    }
}

/// Run a phase from the server's configuration (before per-directory
/// configuration exists): post-read-request and translate.
unsafe fn server_phase(r: *mut request_rec, phase: usize, also_init: bool) -> c_int {
    let Some(cfg) = dirconfig::get((*(*r).server).lookup_defaults) else {
        return ffi::DECLINED as c_int;
    };
    if also_init {
        let init = handlers(cfg, INIT, |d| !d.in_directory);
        if !init.is_empty() {
            let status = run(r, INIT, cfg, init);
            if status != ffi::OK as c_int && status != ffi::DECLINED as c_int {
                return status;
            }
        }
    }
    let handlers = handlers(cfg, phase, |_| true);
    if handlers.is_empty() {
        return ffi::DECLINED as c_int;
    }
    run(r, phase, cfg, handlers)
}

macro_rules! hook {
    ($(#[$doc:meta])* $name:ident => $body:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(r: *mut request_rec) -> c_int {
            guard(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int, || $body(r))
        }
    };
}

hook!(
    /// `PythonPostReadRequestHandler` (and server-level `PythonInitHandler`).
    wasmpy_phase_post_read => |r| server_phase(r, POST_READ, true)
);
hook!(
    /// `PythonTransHandler`.
    wasmpy_phase_trans => |r| server_phase(r, TRANS, false)
);
hook!(
    /// `PythonInitHandler` of a directory, then `PythonHeaderParserHandler`.
    wasmpy_phase_header_parser => |r: *mut request_rec| {
        if let Some(cfg) = dirconfig::get((*r).per_dir_config) {
            let init = handlers(cfg, INIT, |d| d.in_directory);
            if !init.is_empty() {
                let status = run(r, INIT, cfg, init);
                if status != ffi::OK as c_int && status != ffi::DECLINED as c_int {
                    return status;
                }
            }
        }
        per_dir_phase(r, HEADER_PARSER)
    }
);
hook!(
    /// `PythonAccessHandler`.
    wasmpy_phase_access => |r| per_dir_phase(r, 4)
);
hook!(
    /// `PythonAuthenHandler`.
    wasmpy_phase_authen => |r| per_dir_phase(r, 5)
);
hook!(
    /// `PythonAuthzHandler`.
    wasmpy_phase_authz => |r| per_dir_phase(r, 6)
);
hook!(
    /// `PythonTypeHandler`.
    wasmpy_phase_type => |r| per_dir_phase(r, 7)
);
hook!(
    /// `PythonFixupHandler`; also arms the cleanup of a request that has
    /// `PythonCleanupHandler`s but no other Python phase.
    wasmpy_phase_fixup => |r: *mut request_rec| {
        let Some(cfg) = dirconfig::get((*r).per_dir_config) else {
            return ffi::DECLINED as c_int;
        };
        if !cfg.handlers_of(CLEANUP).is_empty() {
            state(r);
            keep_cleanup_config(r, cfg);
        }
        let status = per_dir_phase(r, FIXUP);
        // Earlier phases' instances go back now if nothing later needs them.
        release_if_done(r, FIXUP, cfg);
        status
    }
);
hook!(
    /// `PythonLogHandler`.
    wasmpy_phase_log => |r| per_dir_phase(r, LOG)
);

/// The content phase, for `SetHandler mod_python` / `python-program` and
/// `AddHandler mod_python .ext`; `None` when the handler is not ours.
pub unsafe fn content(r: *mut request_rec) -> Option<c_int> {
    let handler = (*r).handler;
    if handler.is_null() || !CONTENT_HANDLERS.contains(&CStr::from_ptr(handler)) {
        return None;
    }
    Some(per_dir_phase(r, CONTENT))
}
