//! Python in server-side includes: mod_include's `<!--#python exec="..." -->`
//! and `<!--#python eval="..." -->` (`shim.c` registers the element and
//! parses its argument), run in the sandbox of the tenant bound to the
//! page's scope.
//!
//! The code runs in the request's instance when one is held and idle (so a
//! fixup handler's `req.ssi_globals` are the page's globals, as in
//! mod_python); otherwise in an instance kept for the page's directives in
//! the INCLUDES filter's pool (the page's content may be produced by a
//! handler of the same tenant that is inside a call of its own instance).

use std::ffi::{c_char, c_int, CStr};

use wasmpy_sandbox::{FilterCall, FilterOutcome, Handler, Outcome, Session};

use crate::dirconfig::{self, DirConfig, CONTENT};
use crate::ffi::{ap_filter_t, apr_bucket_brigade, request_rec};
use crate::phases;
use crate::req::{ApacheRequest, Body};
use crate::{guard, sandbox};

/// Pool user data key of the page's own instance.
const KEY: &CStr = c"wasmpy-ssi-session";

/// Run one `#python` element; its output is appended to `bb`. Non-zero:
/// mod_include inserts its error text.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_ssi_python(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    eval: c_int,
    code: *const c_char,
) -> c_int {
    guard(-1, || match run(f, bb, eval != 0, code) {
        Ok(()) => 0,
        Err(message) => {
            if !(*f).r.is_null() {
                phases::log((*f).r, &message);
            }
            -1
        }
    })
}

unsafe fn run(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    eval: bool,
    code: *const c_char,
) -> Result<(), String> {
    let r = (*f).r;
    if r.is_null() || code.is_null() {
        return Err("#python outside a request".into());
    }
    let code = CStr::from_ptr(code).to_bytes();
    let default = DirConfig::default();
    let cfg = dirconfig::get((*r).per_dir_config).unwrap_or(&default);
    let tenant =
        phases::tenant_of(r, cfg).ok_or("#python: no WasmPyTenant binds this page's scope")?;
    let call = FilterCall {
        handler: Handler {
            spec: if eval {
                "wasmpy.ssi::eval_code"
            } else {
                "wasmpy.ssi::exec_code"
            }
            .to_string(),
            directory: None,
            extensions: Vec::new(),
            silent: false,
        },
        name: "python".to_string(),
        input: false,
        eos: true,
        options: cfg.option_table(),
        config: cfg.config_table(),
        interpreter: phases::interpreter(r, cfg, CONTENT, &tenant),
    };
    let mut body = Body::default();
    let mut added = Vec::new();
    let mut run_in = |session: &mut Session| {
        let host = ApacheRequest::new(r, &mut body, &mut added, false).in_filter();
        session.run_filter(&call, code, Box::new(host))
    };
    let result = match phases::with_idle_session(r, &tenant, &mut run_in) {
        Some(result) => result,
        None => run_in(page_session(r, &tenant)?),
    };
    let FilterOutcome {
        outcome, output, ..
    } = result;
    // What the code wrote, and with PythonDebug the traceback of a failure
    // (then in place of mod_include's error text).
    crate::filters::append(bb, &output, false, false);
    let debug = cfg
        .config_table()
        .iter()
        .any(|(k, v)| k == "PythonDebug" && v == "1");
    match outcome {
        Outcome::Ok => Ok(()),
        Outcome::Exception | Outcome::ImportFailed if debug => Ok(()),
        outcome => Err(format!(
            "[tenant {tenant}] #python in {}: {outcome:?}",
            crate::text((*r).uri)
        )),
    }
}

/// The instance kept for this page's directives (created at the first).
unsafe fn page_session<'a>(r: *mut request_rec, tenant: &str) -> Result<&'a mut Session, String> {
    crate::pool_data((*r).pool, KEY, || {
        let sandbox = sandbox().ok_or("no sandbox in this child")?;
        sandbox
            .session(tenant)
            .map_err(|outcome| format!("[tenant {tenant}] #python: no instance: {outcome:?}"))
    })
}
