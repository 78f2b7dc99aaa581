//! [`RequestHost`] over Apache's `request_rec`: the live request a guest
//! talks to. Every call runs on the request's thread while the request is
//! in the phase that called into the sandbox; arguments arrive checked by
//! the sandbox (no CR/LF/NUL, paths inside the tenant's grants).

use std::ffi::{c_char, c_int, CString};
use std::path::Path;

use wasmpy_sandbox::{Entries, ErrorKind, HostError, RequestHost, Table, Value};

use crate::ffi::{self, apr_table_t, request_rec};
use crate::request::{bytes, table_entries};
use crate::{pool_str, text};

/// Where the request body stands: `ap_setup_client_block` is called once
/// per request, whichever phase reads first.
#[derive(Debug, Default)]
pub struct Body {
    /// `None`: not set up yet; `Some(false)`: no body to read.
    pub readable: Option<bool>,
    /// Bytes read so far.
    pub total: u64,
    /// The end of the body was reached.
    pub done: bool,
}

impl Body {
    /// Read and drop the rest of the body, up to `limit` bytes in all;
    /// returns whether the body fits in `limit`.
    pub unsafe fn drain_within(&mut self, r: *mut request_rec, limit: u64) -> bool {
        if self.done || self.readable != Some(true) {
            return true;
        }
        let mut buf = vec![0u8; 64 * 1024];
        while self.total <= limit {
            let n = ffi::ap_get_client_block(r, buf.as_mut_ptr().cast(), buf.len() as _);
            if n <= 0 {
                self.done = true;
                return true;
            }
            self.total += n as u64;
        }
        false
    }
}

/// A request seen by a guest during one phase (or one WSGI call).
pub struct ApacheRequest {
    r: *mut request_rec,
    body: *mut Body,
    /// The response is complete (log and cleanup phases): no more output.
    finished: bool,
    /// Phases a guest asked to run with `add_handler`.
    added: *mut Vec<String>,
    /// Serving a filter call: no output, no body reads (the data passes
    /// through the filter's result; anything else would re-enter it).
    filter: bool,
}

// SAFETY: the sandbox calls the host only on the thread that called into it,
// during that call, while Apache keeps the request (and `body`, `added`)
// alive; the value is moved into the instance's store only for that call.
unsafe impl Send for ApacheRequest {}

/// Content handlers a guest may choose with `req.handler`: mod_python's own
/// and Apache's default (it serves `r->filename`, which is kept inside the
/// tenant's grants). Any other module's handler (a proxy, the status page,
/// the WSGI handler of another tenant) is not the tenant's to invoke.
const GUEST_HANDLERS: [&str; 3] = ["mod_python", "python-program", "default-handler"];

/// Prefix of the request notes the module routes by (`wasmpy-tenant`...):
/// guests may not write them.
const RESERVED_NOTES: &[u8] = b"wasmpy-";

fn denied(message: String) -> HostError {
    HostError::new(ErrorKind::Denied, message)
}

fn io(what: &str) -> HostError {
    HostError::new(
        ErrorKind::Io,
        format!("{what} failed (the client may have gone away)"),
    )
}

fn cstring(bytes: &[u8]) -> CString {
    // The sandbox refused NUL; a stray one would only cut the string.
    CString::new(bytes.split(|&b| b == 0).next().unwrap_or_default()).unwrap_or_default()
}

pub(crate) unsafe fn opt_text(ptr: *const c_char) -> Value {
    if ptr.is_null() {
        Value::None
    } else {
        Value::Text(String::from_utf8_lossy(bytes(ptr)).into_owned())
    }
}

impl ApacheRequest {
    /// The live view of `r`; `body` and `added` outlive every call made
    /// through it; `finished` refuses output (log and cleanup phases).
    pub unsafe fn new(
        r: *mut request_rec,
        body: *mut Body,
        added: *mut Vec<String>,
        finished: bool,
    ) -> Self {
        ApacheRequest {
            r,
            body,
            finished,
            added,
            filter: false,
        }
    }

    /// The same view for a filter call.
    pub fn in_filter(mut self) -> Self {
        self.filter = true;
        self
    }

    fn r(&self) -> &request_rec {
        // SAFETY: see the Send impl: r is alive and ours during the call.
        unsafe { &*self.r }
    }

    fn table(&self, table: Table) -> *mut apr_table_t {
        let r = self.r();
        match table {
            Table::HeadersIn => r.headers_in,
            Table::HeadersOut => r.headers_out,
            Table::ErrHeadersOut => r.err_headers_out,
            Table::SubprocessEnv => r.subprocess_env,
            Table::Notes => r.notes,
        }
    }

    fn output_allowed(&self) -> Result<(), HostError> {
        if self.filter {
            return Err(HostError::new(
                ErrorKind::Invalid,
                "a filter sends its output with filter.write, not through req",
            ));
        }
        if self.finished {
            return Err(HostError::new(
                ErrorKind::Invalid,
                "the response is complete: nothing more can be sent in this phase",
            ));
        }
        Ok(())
    }

    fn pstr(&self, text: &str) -> *mut c_char {
        // SAFETY: r.pool lives as long as the request.
        unsafe { pool_str(self.r().pool, text.as_bytes()) }
    }
}

impl RequestHost for ApacheRequest {
    fn read(&mut self, max: usize) -> Result<Vec<u8>, HostError> {
        if self.filter {
            return Err(HostError::new(
                ErrorKind::Invalid,
                "a filter reads its data with filter.read, not req.read",
            ));
        }
        if self.finished {
            return Err(HostError::new(
                ErrorKind::Invalid,
                "the request body can no longer be read",
            ));
        }
        // SAFETY: body outlives the call (see new()).
        let body = unsafe { &mut *self.body };
        let r = self.r;
        let readable = match body.readable {
            Some(readable) => readable,
            None => unsafe {
                let status = ffi::ap_setup_client_block(r, ffi::REQUEST_CHUNKED_DECHUNK as c_int);
                let readable = status == ffi::OK as c_int && ffi::ap_should_client_block(r) != 0;
                body.readable = Some(readable);
                readable
            },
        };
        if !readable || body.done {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; max];
        // SAFETY: buf has max bytes.
        let n = unsafe { ffi::ap_get_client_block(r, buf.as_mut_ptr().cast(), max as _) };
        if n < 0 {
            return Err(io("reading the request body"));
        }
        buf.truncate(n as usize);
        body.total += n as u64;
        body.done = n == 0;
        Ok(buf)
    }

    fn start_response(
        &mut self,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), HostError> {
        self.output_allowed()?;
        // SAFETY: r is alive and ours; strings are copied into its pool.
        unsafe { crate::request::set_head(&mut *self.r, status, headers) };
        Ok(())
    }

    fn write(&mut self, data: &[u8], flush: bool) -> Result<(), HostError> {
        self.output_allowed()?;
        let r = self.r;
        // SAFETY: r is alive; ap_rwrite copies the bytes.
        unsafe {
            for chunk in data.chunks(1 << 30) {
                if ffi::ap_rwrite(chunk.as_ptr().cast(), chunk.len() as c_int, r) < 0 {
                    return Err(io("writing the response"));
                }
            }
            if flush && ffi::ap_rflush(r) < 0 {
                return Err(io("flushing the response"));
            }
        }
        Ok(())
    }

    fn sendfile(
        &mut self,
        file: &Path,
        offset: u64,
        length: Option<u64>,
    ) -> Result<u64, HostError> {
        self.output_allowed()?;
        let size = std::fs::metadata(file)
            .map_err(|e| HostError::new(ErrorKind::Io, format!("sendfile: {e}")))?
            .len();
        let length = length.unwrap_or(u64::MAX).min(size.saturating_sub(offset));
        let r = self.r;
        let path = cstring(file.as_os_str().as_encoded_bytes());
        // SAFETY: r and its pool are alive; the file stays open until the pool goes.
        unsafe {
            let mut fd = std::ptr::null_mut();
            let flags = (ffi::APR_FOPEN_READ | ffi::APR_FOPEN_SENDFILE_ENABLED) as i32;
            if ffi::apr_file_open(
                &mut fd,
                path.as_ptr(),
                flags,
                ffi::APR_OS_DEFAULT as i32,
                (*r).pool,
            ) != 0
            {
                return Err(HostError::new(
                    ErrorKind::Io,
                    "sendfile: cannot open the file",
                ));
            }
            if ffi::ap_rflush(r) < 0 {
                return Err(io("flushing the response"));
            }
            if length > 0 && ffi::wasmpy_shim_send_file(r, fd, offset as _, length as _) != 0 {
                return Err(io("sending the file"));
            }
        }
        Ok(length)
    }

    fn log(&mut self, level: u8, line: &str) {
        let msg = cstring(line.as_bytes());
        // SAFETY: r is alive.
        unsafe { ffi::wasmpy_shim_log_request(self.r, c_int::from(level), msg.as_ptr()) };
    }

    fn table_entries(&mut self, table: Table) -> Result<Entries, HostError> {
        // SAFETY: the table belongs to the live request.
        let entries = unsafe { table_entries(self.table(table)) };
        Ok(entries
            .iter()
            .filter(|e| !e.key.is_null())
            .map(|e| unsafe { (bytes(e.key).to_vec(), bytes(e.val).to_vec()) })
            .collect())
    }

    fn table_get(&mut self, table: Table, key: &[u8]) -> Result<Vec<Vec<u8>>, HostError> {
        Ok(self
            .table_entries(table)?
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
            .collect())
    }

    fn table_put(
        &mut self,
        table: Table,
        key: &[u8],
        value: Option<&[u8]>,
        add: bool,
    ) -> Result<(), HostError> {
        let reserved = key.len() >= RESERVED_NOTES.len()
            && key[..RESERVED_NOTES.len()].eq_ignore_ascii_case(RESERVED_NOTES);
        if table == Table::Notes && reserved {
            return Err(denied(format!(
                "notes named {}* belong to mod_wasmpy",
                String::from_utf8_lossy(RESERVED_NOTES)
            )));
        }
        let t = self.table(table);
        let key = cstring(key);
        // SAFETY: apr_table_set/add/unset copy key and value into the table's pool.
        unsafe {
            match value {
                Some(value) => {
                    let value = cstring(value);
                    if add {
                        ffi::apr_table_add(t, key.as_ptr(), value.as_ptr());
                    } else {
                        ffi::apr_table_set(t, key.as_ptr(), value.as_ptr());
                    }
                }
                None => ffi::apr_table_unset(t, key.as_ptr()),
            }
        }
        Ok(())
    }

    fn table_clear(&mut self, table: Table) -> Result<(), HostError> {
        // SAFETY: the table belongs to the live request.
        unsafe { ffi::apr_table_clear(self.table(table)) };
        Ok(())
    }

    fn fields(&mut self) -> Result<Vec<(String, Value)>, HostError> {
        // SAFETY: r, its server and connection are alive.
        Ok(unsafe { crate::fields::of(self.r) })
    }

    fn set_field(&mut self, name: &str, value: Value) -> Result<(), HostError> {
        let text_value = |v: &Value| match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        };
        let raw = self.r;
        let pool = self.r().pool;
        // SAFETY: the pool lives as long as the request; the copy is in it.
        let ptr = |v: &Value| {
            text_value(v).map_or(std::ptr::null_mut(), |t| unsafe {
                pool_str(pool, t.as_bytes())
            })
        };
        // SAFETY: r is alive and ours during the call; nothing else borrows it.
        let r = unsafe { &mut *raw };
        match (name, &value) {
            ("status", Value::Int(code)) => r.status = *code as c_int,
            ("status_line", v) => r.status_line = ptr(v),
            ("content_type", v) => {
                let p = ptr(v);
                // SAFETY: p is in r's pool (or null).
                unsafe { ffi::ap_set_content_type(r, p) };
            }
            ("content_encoding", v) => r.content_encoding = ptr(v),
            ("handler", v) => {
                if let Value::Text(name) = v {
                    if !GUEST_HANDLERS.contains(&name.as_str()) {
                        return Err(denied(format!(
                            "req.handler may be one of {GUEST_HANDLERS:?}, not {name:?}"
                        )));
                    }
                }
                r.handler = ptr(v)
            }
            ("user", v) => r.user = ptr(v),
            ("ap_auth_type", v) => r.ap_auth_type = ptr(v),
            ("uri", v) => r.uri = ptr(v),
            ("args", v) => r.args = ptr(v),
            ("path_info", v) => r.path_info = ptr(v),
            ("filename", v) => r.filename = ptr(v),
            ("canonical_filename", v) => r.canonical_filename = ptr(v),
            ("no_cache", Value::Flag(b)) => r.no_cache = c_int::from(*b),
            ("mtime", Value::Float(seconds)) => r.mtime = (*seconds * 1e6) as i64,
            _ => {
                return Err(HostError::new(
                    ErrorKind::Invalid,
                    format!("req.{name} cannot be set so"),
                ))
            }
        }
        Ok(())
    }

    fn call(&mut self, op: &str, args: &[String]) -> Result<Vec<String>, HostError> {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let r = self.r;
        let none = Ok(Vec::new());
        // SAFETY: r is alive; strings passed are NUL-terminated copies.
        unsafe {
            match op {
                "internal_redirect" => {
                    self.output_allowed()?;
                    let uri = self.pstr(arg(0));
                    ffi::ap_internal_redirect(uri, r);
                    none
                }
                "meets_conditions" => Ok(vec![ffi::ap_meets_conditions(r).to_string()]),
                "set_etag" => {
                    ffi::ap_set_etag(r);
                    none
                }
                "set_last_modified" => {
                    ffi::ap_set_last_modified(r);
                    none
                }
                "update_mtime" => {
                    let seconds: f64 = arg(0)
                        .parse()
                        .map_err(|_| invalid("update_mtime needs seconds"))?;
                    ffi::ap_update_mtime(r, (seconds * 1e6) as i64);
                    none
                }
                "set_content_length" => {
                    let n: i64 = arg(0)
                        .parse()
                        .map_err(|_| invalid("set_content_length needs a length"))?;
                    if n < 0 {
                        return Err(invalid("a negative length"));
                    }
                    ffi::ap_set_content_length(r, n);
                    none
                }
                "discard_request_body" => {
                    if self.filter {
                        return Err(invalid("a filter cannot discard the request body"));
                    }
                    Ok(vec![ffi::ap_discard_request_body(r).to_string()])
                }
                "get_basic_auth_pw" => {
                    let mut pw: *const c_char = std::ptr::null();
                    if ffi::ap_get_basic_auth_pw(r, &mut pw) != ffi::OK as c_int || pw.is_null() {
                        return Err(invalid("no Basic credentials in this request"));
                    }
                    Ok(vec![text(pw).to_string()])
                }
                "construct_url" => {
                    let uri = self.pstr(arg(0));
                    Ok(vec![
                        text(ffi::ap_construct_url((*r).pool, uri, r)).to_string()
                    ])
                }
                "get_remote_host" => {
                    let kind: c_int = arg(0).parse().unwrap_or(0).clamp(0, 3);
                    let mut is_ip = 0;
                    let host = ffi::ap_get_remote_host(
                        (*r).connection,
                        (*r).per_dir_config.cast(),
                        kind,
                        &mut is_ip,
                    );
                    Ok(if host.is_null() {
                        vec![]
                    } else {
                        vec![text(host).to_string()]
                    })
                }
                "add_common_vars" => {
                    ffi::ap_add_common_vars(r);
                    none
                }
                "add_cgi_vars" => {
                    ffi::ap_add_cgi_vars(r);
                    // As mod_python 3.5 shows it: the path, without the query.
                    ffi::apr_table_set((*r).subprocess_env, c"REQUEST_URI".as_ptr(), (*r).uri);
                    none
                }
                "allow_methods" => {
                    if arg(0) == "1" {
                        (*r).allowed = 0;
                    }
                    for method in args.iter().skip(1) {
                        let number = ffi::ap_method_number_of(self.pstr(method));
                        if (0..64).contains(&number) {
                            (*r).allowed |= 1i64 << number;
                        }
                    }
                    none
                }
                "get_addhandler_exts" => Ok(vec![String::new()]),
                "add_output_filter" | "add_input_filter" => {
                    crate::filters::add(r, arg(0), op == "add_input_filter")
                        .map_err(|e| invalid(&e))?;
                    none
                }
                "register_output_filter" | "register_input_filter" => {
                    // (name, handler, host directory or "", the registering
                    // tenant): the sandbox checked and mapped them.
                    crate::filters::register_for_request(
                        r,
                        crate::dirconfig::FilterDecl {
                            name: arg(0).to_string(),
                            input: op == "register_input_filter",
                            handler: wasmpy_sandbox::Handler {
                                spec: arg(1).to_string(),
                                directory: (!arg(2).is_empty())
                                    .then(|| std::path::PathBuf::from(arg(2))),
                                extensions: Vec::new(),
                                silent: false,
                            },
                            tenant: Some(arg(3).to_string()),
                        },
                    );
                    none
                }
                "add_handler" if self.added.is_null() => Err(HostError::unsupported(op)),
                "add_handler" => {
                    let phase = arg(0).to_string();
                    if !crate::dirconfig::PHASES.contains(&phase.as_str()) {
                        return Err(invalid("add_handler: unknown phase"));
                    }
                    let added = &mut *self.added;
                    if !added.contains(&phase) {
                        added.push(phase);
                    }
                    none
                }
                "exists_config_define" => {
                    let name = cstring(arg(0).as_bytes());
                    Ok(vec![if ffi::ap_exists_config_define(name.as_ptr()) != 0 {
                        "1"
                    } else {
                        "0"
                    }
                    .to_string()])
                }
                "mpm_query" => {
                    let code: c_int = arg(0)
                        .parse()
                        .map_err(|_| invalid("mpm_query needs a code"))?;
                    let mut result: c_int = 0;
                    if ffi::ap_mpm_query(code, &mut result) != 0 {
                        return Err(invalid("unknown mpm_query code"));
                    }
                    Ok(vec![result.to_string()])
                }
                "note_basic_auth_failure" => {
                    ffi::ap_note_auth_failure(r);
                    none
                }
                "flush" => {
                    self.output_allowed()?;
                    if ffi::ap_rflush(r) < 0 {
                        return Err(io("flushing the response"));
                    }
                    none
                }
                _ => Err(HostError::unsupported(op)),
            }
        }
    }
}

fn invalid(message: &str) -> HostError {
    HostError::new(ErrorKind::Invalid, message)
}
