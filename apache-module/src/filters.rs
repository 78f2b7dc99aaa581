//! mod_python's filters: `PythonOutputFilter` / `PythonInputFilter` (and the
//! filters a handler registers with `req.register_*_filter`) as Apache
//! filters whose handler runs in the sandbox of the tenant bound to the
//! request's scope.
//!
//! A filter streams: the data passing through is cut into pieces of at
//! most [`PIECE`] bytes, and each piece is one `run-filter` call, so a
//! filter never holds the whole response. It runs in an instance of its own
//! (a [`Session`] kept in the filter's context), because the content it
//! filters may be produced by a handler of the same tenant that is itself
//! inside a call of its instance; that instance goes back at the end of the
//! stream. During a filter call the request refuses output and body reads:
//! the filter's output is its result; a filter that would re-enter itself
//! is refused (`phases::Running`).
//!
//! Failures cut the stream: an instance that fails (deadline, memory, trap)
//! or cannot be had marks the filter failed, its output ends there and it
//! never runs again for the request; a Python exception disables it (the
//! data passes unchanged), as in mod_python. An input filter that ends
//! before the body does closes the connection after the response, so that
//! the unread rest of the body is never taken for a next request.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use wasmpy_sandbox::{FilterCall, Outcome, Session};

use crate::dirconfig::{self, FilterDecl};
use crate::ffi::{self, ap_filter_t, apr_bucket_brigade, request_rec};
use crate::phases::{self, Running};
use crate::req::{ApacheRequest, Body};
use crate::{guard, sandbox, text};

/// The Apache filter that runs the output filters a handler registered.
pub const DYNAMIC_OUTPUT: &CStr = c"WASMPY_DYNAMIC_OUTPUT";
/// The Apache filter that runs the input filters a handler registered.
pub const DYNAMIC_INPUT: &CStr = c"WASMPY_DYNAMIC_INPUT";
/// Most bytes one `run-filter` call gets.
const PIECE: usize = 64 * 1024;

const APR_SUCCESS: ffi::apr_status_t = 0;
/// `APR_EGENERAL`: the stream is aborted.
const APR_EGENERAL: ffi::apr_status_t = 20014;

/// A filter name as configtest checks it.
pub fn check_name(name: &str) -> Result<(), String> {
    if wasmpy_sandbox::http::is_filter_name(name) {
        Ok(())
    } else {
        Err(format!(
            "filter name {name:?}: 1 to 64 characters of A-Z, a-z, 0-9, '_', '-' and '.'"
        ))
    }
}

/// Make `name` an Apache filter run by this module.
pub unsafe fn register(name: &str, input: bool) {
    if let Ok(name) = CString::new(name) {
        ffi::wasmpy_shim_register_filter(name.as_ptr(), c_int::from(input));
    }
}

/// One filter of one request.
pub struct FilterCtx {
    /// A filter a handler registered: its declaration.
    dynamic: Option<FilterDecl>,
    /// What each call carries, and the tenant (resolved at the first call).
    resolved: Option<(FilterCall, String)>,
    session: Option<Session>,
    closed: bool,
    disabled: bool,
    /// The instance failed, or none could be had: nothing more is filtered
    /// (only the end of the stream passes), never in a new instance.
    failed: bool,
    /// Input filters: output not returned yet (a read gets at most the
    /// bytes it asked for), and whether the end of the stream follows it.
    pending: Vec<u8>,
    pending_eos: bool,
    /// Output brigade (output filters) or what was read from below (input).
    brigade: *mut apr_bucket_brigade,
    /// A filter call may not read the body or add handlers: these stay empty.
    body: Body,
    added: Vec<String>,
}

impl FilterCtx {
    fn new(dynamic: Option<FilterDecl>) -> Self {
        FilterCtx {
            dynamic,
            resolved: None,
            session: None,
            closed: false,
            disabled: false,
            failed: false,
            pending: Vec::new(),
            pending_eos: false,
            brigade: std::ptr::null_mut(),
            body: Body::default(),
            added: Vec::new(),
        }
    }
}

/// A context in `r`'s pool (freed, with its instance, by the pool's cleanup).
unsafe fn new_ctx(r: *mut request_rec, dynamic: Option<FilterDecl>) -> *mut FilterCtx {
    crate::pool_box((*r).pool, FilterCtx::new(dynamic))
}

/// Pool user data key of the filters handlers registered for a request.
const REGISTERED: &CStr = c"wasmpy-registered-filters";

/// The filters handlers registered for `r`, kept in its pool apart from
/// the request's other state (a handler registers while its phase holds
/// that state), created on first use.
unsafe fn registered_list<'a>(r: *mut request_rec) -> &'a mut Vec<FilterDecl> {
    let Ok(list) =
        crate::pool_data::<_, std::convert::Infallible>((*r).pool, REGISTERED, || Ok(Vec::new()));
    list
}

/// Register `filter` for the rest of `r` (`req.register_*_filter`).
pub unsafe fn register_for_request(r: *mut request_rec, filter: FilterDecl) {
    let list = registered_list(r);
    list.retain(|f| !(f.input == filter.input && f.name.eq_ignore_ascii_case(&filter.name)));
    list.push(filter);
}

/// Add the filter `name` to `r`: one a handler registered for the request
/// if there is one, else Apache's filter of that name (a Python filter
/// declared in scope, or any other module's).
pub unsafe fn add(r: *mut request_rec, name: &str, input: bool) -> Result<(), String> {
    let c_name = CString::new(name).map_err(|_| "a filter name has no NUL".to_string())?;
    let registered = registered_list(r)
        .iter()
        .find(|f| f.input == input && f.name.eq_ignore_ascii_case(name))
        .cloned();
    let conn = (*r).connection;
    let added = match registered {
        Some(decl) => {
            let ctx = new_ctx(r, Some(decl)).cast::<c_void>();
            if input {
                ffi::ap_add_input_filter(DYNAMIC_INPUT.as_ptr(), ctx, r, conn)
            } else {
                ffi::ap_add_output_filter(DYNAMIC_OUTPUT.as_ptr(), ctx, r, conn)
            }
        }
        None if input => ffi::ap_add_input_filter(c_name.as_ptr(), std::ptr::null_mut(), r, conn),
        None => ffi::ap_add_output_filter(c_name.as_ptr(), std::ptr::null_mut(), r, conn),
    };
    if added.is_null() {
        return Err(format!(
            "no {} filter named {name:?}",
            if input { "input" } else { "output" }
        ));
    }
    Ok(())
}

unsafe fn log(r: *mut request_rec, message: &str) {
    let msg =
        CString::new(format!("mod_wasmpy: {message}").replace('\0', "\\0")).unwrap_or_default();
    ffi::wasmpy_shim_log_request(r, ffi::APLOG_ERR as c_int, msg.as_ptr());
}

/// The filter's context (created at its first call), held against
/// re-entry for as long as the returned guard lives.
unsafe fn ctx_of<'a>(f: *mut ap_filter_t) -> Result<Option<(&'a mut FilterCtx, Running)>, ()> {
    let r = (*f).r;
    if r.is_null() {
        return Ok(None);
    }
    if (*f).ctx.is_null() {
        (*f).ctx = new_ctx(r, None).cast();
    }
    let Some(running) = Running::enter((*f).ctx as usize) else {
        log(r, "a Python filter re-entered itself (refused)");
        return Err(());
    };
    Ok((*f)
        .ctx
        .cast::<FilterCtx>()
        .as_mut()
        .map(|ctx| (ctx, running)))
}

/// Resolve what the filter runs, once: `Err` when it must not run at all.
unsafe fn resolve(f: *mut ap_filter_t, ctx: &mut FilterCtx, input: bool) -> Result<(), String> {
    if ctx.resolved.is_some() {
        return Ok(());
    }
    let r = (*f).r;
    let default = dirconfig::DirConfig::default();
    let cfg = dirconfig::get((*r).per_dir_config).unwrap_or(&default);
    let name = text((*(*f).frec).name).to_string();
    let decl = match &ctx.dynamic {
        Some(decl) => decl.clone(),
        None => cfg
            .filter(&name, input)
            .cloned()
            .ok_or_else(|| format!("the filter {name} is not declared in this scope"))?,
    };
    let tenant = phases::tenant_of(r, cfg)
        .ok_or_else(|| format!("{}: no WasmPyTenant binds this scope", decl.name))?;
    if let Some(owner) = decl.tenant.as_deref().filter(|owner| *owner != tenant) {
        return Err(format!(
            "the filter {} was registered by tenant {owner}; this request is tenant {tenant}'s",
            decl.name
        ));
    }
    let call = FilterCall {
        interpreter: phases::interpreter(r, cfg, dirconfig::CONTENT, &tenant),
        handler: decl.handler,
        name: decl.name,
        input,
        eos: false,
        options: cfg.option_table(),
        config: cfg.config_table(),
    };
    ctx.resolved = Some((call, tenant));
    Ok(())
}

/// What one run of the filter gave: the output, and whether the end of
/// the stream follows it, and whether to flush.
struct Ran {
    output: Vec<u8>,
    end: bool,
    flush: bool,
}

/// Run the filter over `data`. `Err`: the filter failed (now or before):
/// the stream must be cut.
unsafe fn run(r: *mut request_rec, ctx: &mut FilterCtx, data: &[u8], eos: bool) -> Result<Ran, ()> {
    if ctx.failed {
        return Err(());
    }
    if ctx.closed {
        return Ok(Ran {
            output: Vec::new(),
            end: false,
            flush: false,
        });
    }
    if ctx.disabled {
        return Ok(Ran {
            output: data.to_vec(),
            end: eos,
            flush: false,
        });
    }
    let result = run_guest(r, ctx, data, eos);
    if result.is_err() {
        ctx.failed = true;
        ctx.session = None;
    }
    result
}

unsafe fn run_guest(
    r: *mut request_rec,
    ctx: &mut FilterCtx,
    data: &[u8],
    eos: bool,
) -> Result<Ran, ()> {
    let Some((call, tenant)) = ctx.resolved.as_mut() else {
        return Err(());
    };
    if ctx.session.is_none() {
        let Some(sandbox) = sandbox() else {
            log(
                r,
                &format!("no sandbox in this child: filter {} refused", call.name),
            );
            return Err(());
        };
        match sandbox.session(tenant) {
            Ok(session) => ctx.session = Some(session),
            Err(outcome) => {
                log(
                    r,
                    &format!(
                        "[tenant {tenant}] filter {}: no instance: {outcome:?}",
                        call.name
                    ),
                );
                return Err(());
            }
        }
    }
    call.eos = eos;
    let host = ApacheRequest::new(r, &mut ctx.body, &mut ctx.added, false).in_filter();
    let Some(session) = ctx.session.as_mut() else {
        return Err(());
    };
    let result = session.run_filter(call, data, Box::new(host));
    match result.outcome {
        Outcome::Ok | Outcome::Exception | Outcome::ImportFailed => {}
        outcome => {
            log(
                r,
                &format!("[tenant {tenant}] filter {} failed: {outcome:?}", call.name),
            );
            return Err(());
        }
    }
    ctx.disabled |= result.disabled;
    ctx.closed |= result.closed;
    let end = result.closed || eos;
    if end {
        // The stream is over: the instance goes back now.
        ctx.closed = true;
        ctx.session = None;
    }
    Ok(Ran {
        output: result.output,
        end,
        flush: result.flush && !end,
    })
}

/// Take the data buckets at the head of `bb` into `piece`, up to [`PIECE`]
/// bytes; returns the bucket that stopped it: 1 flush, 2 end of stream,
/// 3 other metadata, -1 none left, -2 read error, 0 the piece is full
/// (what did not fit stays in `bb`).
unsafe fn take_data(bb: *mut apr_bucket_brigade, piece: &mut Vec<u8>) -> c_int {
    loop {
        if piece.len() >= PIECE {
            return 0;
        }
        let mut data: *const c_char = std::ptr::null();
        let mut len: ffi::apr_size_t = 0;
        let kind = ffi::wasmpy_shim_brigade_first(bb, &mut data, &mut len);
        if kind != 0 {
            return kind;
        }
        let room = PIECE - piece.len();
        if len > room {
            // The rest stays in the brigade for the next piece.
            ffi::wasmpy_shim_brigade_split_first(bb, room);
            piece.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), room));
        } else if len > 0 {
            piece.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
        }
        ffi::wasmpy_shim_brigade_drop_first(bb);
    }
}

/// Append a copy of `data` to `bb`, then a flush and/or an end of stream.
pub(crate) fn append(bb: *mut apr_bucket_brigade, data: &[u8], flush: bool, eos: bool) {
    // SAFETY: bb is a live brigade; the data is copied into a heap bucket.
    unsafe {
        ffi::wasmpy_shim_brigade_append(
            bb,
            data.as_ptr().cast(),
            data.len(),
            c_int::from(flush),
            c_int::from(eos),
        )
    };
}

/// The output filter: each piece of the response through the guest.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_output_filter(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
) -> ffi::apr_status_t {
    guard(APR_EGENERAL, || output_filter(f, bb))
}

unsafe fn output_filter(f: *mut ap_filter_t, bb: *mut apr_bucket_brigade) -> ffi::apr_status_t {
    let (ctx, _running) = match ctx_of(f) {
        Ok(Some(held)) => held,
        Ok(None) => return ffi::ap_pass_brigade((*f).next, bb),
        Err(()) => return APR_EGENERAL,
    };
    let r = (*f).r;
    if let Err(message) = resolve(f, ctx, false) {
        log(r, &message);
        ffi::ap_remove_output_filter(f);
        return ffi::ap_pass_brigade((*f).next, bb);
    }
    if ctx.brigade.is_null() {
        ctx.brigade = ffi::wasmpy_shim_brigade_create(r);
    }
    let out = ctx.brigade;
    let mut piece = Vec::new();
    loop {
        let stop = take_data(bb, &mut piece);
        if stop == -2 {
            return APR_EGENERAL;
        }
        let eos = stop == 2;
        if !piece.is_empty() || eos {
            match run(r, ctx, &piece, eos) {
                Ok(ran) => append(out, &ran.output, ran.flush, ran.end),
                Err(()) => {
                    // Cut: what was sent stays sent; the stream ends here.
                    ffi::apr_brigade_cleanup(bb.cast());
                    if eos {
                        append(out, &[], false, true);
                        let _ = ffi::ap_pass_brigade((*f).next, out);
                        ffi::apr_brigade_cleanup(out.cast());
                    }
                    return APR_EGENERAL;
                }
            }
            piece.clear();
        }
        match stop {
            1 | 3 => ffi::wasmpy_shim_brigade_move_first(bb, out),
            2 => ffi::wasmpy_shim_brigade_drop_first(bb),
            _ => {}
        }
        let status = ffi::ap_pass_brigade((*f).next, out);
        ffi::apr_brigade_cleanup(out.cast());
        if status != APR_SUCCESS {
            return status;
        }
        if stop == -1 || eos {
            ffi::apr_brigade_cleanup(bb.cast());
            return APR_SUCCESS;
        }
    }
}

/// The input filter: each piece of the request body through the guest.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_input_filter(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    mode: ffi::ap_input_mode_t,
    block: ffi::apr_read_type_e,
    readbytes: ffi::apr_off_t,
) -> ffi::apr_status_t {
    guard(APR_EGENERAL, || input_filter(f, bb, mode, block, readbytes))
}

/// After this response, close the connection: the rest of the body was
/// not read and must not be taken for a next request.
unsafe fn close_after(r: *mut request_rec) {
    (*(*r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
}

unsafe fn input_filter(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    mode: ffi::ap_input_mode_t,
    block: ffi::apr_read_type_e,
    readbytes: ffi::apr_off_t,
) -> ffi::apr_status_t {
    let pass = |f: *mut ap_filter_t| ffi::ap_get_brigade((*f).next, bb, mode, block, readbytes);
    if mode != ffi::ap_input_mode_t_AP_MODE_READBYTES {
        // Lines, speculative reads, EATCRLF...: Apache's own reads of the
        // protocol; a body is read with READBYTES.
        return pass(f);
    }
    let (ctx, _running) = match ctx_of(f) {
        Ok(Some(held)) => held,
        Ok(None) => return pass(f),
        Err(()) => return APR_EGENERAL,
    };
    let r = (*f).r;
    if let Err(message) = resolve(f, ctx, true) {
        log(r, &message);
        ffi::ap_remove_input_filter(f);
        return pass(f);
    }
    if ctx.brigade.is_null() {
        ctx.brigade = ffi::wasmpy_shim_brigade_create(r);
    }
    let below = ctx.brigade;
    let drained = ctx.pending.is_empty() && !ctx.pending_eos;
    if ctx.disabled && drained && ffi::wasmpy_shim_brigade_empty(below) != 0 {
        return pass(f);
    }
    let want = usize::try_from(readbytes).unwrap_or(0).max(1);
    // Run the filter until it has something to return (or the body ends).
    while ctx.pending.is_empty() && !ctx.pending_eos {
        if ctx.failed {
            close_after(r);
            return APR_EGENERAL;
        }
        if ctx.closed {
            // Closed before the end of the body: the rest is never read.
            close_after(r);
            ctx.pending_eos = true;
            break;
        }
        if ffi::wasmpy_shim_brigade_empty(below) != 0 {
            let status = ffi::ap_get_brigade((*f).next, below, mode, block, PIECE as _);
            if status != APR_SUCCESS {
                return status;
            }
        }
        let mut piece = Vec::new();
        let mut eos = false;
        loop {
            match take_data(below, &mut piece) {
                0 | -1 => break,
                -2 => {
                    ffi::apr_brigade_cleanup(below.cast());
                    return APR_EGENERAL;
                }
                2 => {
                    eos = true;
                    ffi::apr_brigade_cleanup(below.cast());
                    break;
                }
                _ => ffi::wasmpy_shim_brigade_drop_first(below),
            }
        }
        if piece.is_empty() && !eos {
            if block != ffi::apr_read_type_e_APR_BLOCK_READ {
                // Nothing yet and the caller does not wait.
                return APR_SUCCESS;
            }
            continue;
        }
        match run(r, ctx, &piece, eos) {
            Ok(ran) => {
                ctx.pending.extend_from_slice(&ran.output);
                ctx.pending_eos |= ran.end;
            }
            Err(()) => {
                close_after(r);
                return APR_EGENERAL;
            }
        }
    }
    // At most what the reader asked for; the rest waits for its next read.
    let n = ctx.pending.len().min(want);
    let rest = ctx.pending.split_off(n);
    let chunk = std::mem::replace(&mut ctx.pending, rest);
    let end = ctx.pending.is_empty() && ctx.pending_eos;
    append(bb, &chunk, false, end);
    APR_SUCCESS
}
