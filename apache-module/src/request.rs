//! One application request: from `request_rec` to the sandbox's `Request`,
//! and the sandbox's `Response` back through Apache's output filters.

use std::ffi::{c_char, c_int, CString};

use wasmpy_sandbox::{Outcome, Request, Response};

use crate::ffi::{self, apr_array_header_t, apr_table_entry_t, apr_table_t, request_rec};
use crate::req::{ApacheRequest, Body};
use crate::{pool_str, sandbox, text, NOTE_SCRIPT_NAME, NOTE_TENANT};

/// Bytes read from the client per `ap_get_client_block` call.
const READ_CHUNK: usize = 64 * 1024;

/// The entries of an APR table, in order (what the `apr_table_elts` macro does).
pub(crate) unsafe fn table_entries<'a>(table: *const apr_table_t) -> &'a [apr_table_entry_t] {
    let array = &*(table as *const apr_array_header_t);
    if array.nelts <= 0 || array.elts.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(array.elts as *const apr_table_entry_t, array.nelts as usize)
}

/// The bytes of a C string borrowed from httpd, empty for null.
pub(crate) unsafe fn bytes<'a>(ptr: *const c_char) -> &'a [u8] {
    if ptr.is_null() {
        &[]
    } else {
        std::ffi::CStr::from_ptr(ptr).to_bytes()
    }
}

/// Bytes of the body read before the guest is called: a small body then
/// crosses the boundary in the request record, a large one is read on demand.
const PREFETCH: usize = 64 * 1024;

/// Check the declared length against `max`, set up body reading (chunked
/// uploads de-chunked) and read up to [`PREFETCH`] bytes. Returns the bytes
/// and whether they are the whole body.
unsafe fn prefetch_body(
    r: &mut request_rec,
    body: &mut Body,
    max: u64,
) -> Result<(Vec<u8>, bool), c_int> {
    let declared = text(ffi::apr_table_get(r.headers_in, c"Content-Length".as_ptr()));
    if declared.parse::<u64>().is_ok_and(|n| n > max) {
        return Err(ffi::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int);
    }
    let status = ffi::ap_setup_client_block(r, ffi::REQUEST_CHUNKED_DECHUNK as c_int);
    if status != ffi::OK as c_int {
        return Err(status);
    }
    let readable = ffi::ap_should_client_block(r) != 0;
    body.readable = Some(readable);
    let mut data = Vec::new();
    if !readable {
        body.done = true;
        return Ok((data, true));
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    while data.len() < PREFETCH {
        let n = ffi::ap_get_client_block(r, chunk.as_mut_ptr().cast(), chunk.len() as _);
        body.total = data.len() as u64 + n.max(0) as u64;
        match n {
            0 => {
                body.done = true;
                return Ok((data, true));
            }
            n if n < 0 => return Err(ffi::HTTP_BAD_REQUEST as c_int),
            n => {
                data.extend_from_slice(&chunk[..n as usize]);
                if data.len() as u64 > max {
                    return Err(ffi::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int);
                }
            }
        }
    }
    Ok((data, false))
}

/// Build the sandbox request from `r`.
unsafe fn to_request(
    r: &request_rec,
    script_name: &str,
    body: Vec<u8>,
    body_complete: bool,
) -> Request {
    let uri = bytes(r.uri);
    let path_info = uri.get(script_name.len()..).unwrap_or_default().to_vec();
    let headers = table_entries(r.headers_in)
        .iter()
        .map(|e| (text(e.key).to_string(), bytes(e.val).to_vec()))
        .collect();
    let port = if r.useragent_addr.is_null() {
        0
    } else {
        (*r.useragent_addr).port
    };
    Request {
        method: text(r.method).to_string(),
        script_name: script_name.to_string(),
        path_info,
        query_string: text(r.args).to_string(),
        request_uri: String::from_utf8_lossy(bytes(r.unparsed_uri)).into_owned(),
        headers,
        body,
        body_complete,
        remote_addr: text(r.useragent_ip).to_string(),
        remote_port: port,
        server_name: text(ffi::ap_get_server_name(r as *const _ as *mut _)).to_string(),
        server_port: ffi::ap_get_server_port(r),
        server_protocol: text(r.protocol).to_string(),
        url_scheme: text(ffi::ap_run_http_scheme(r)).to_string(),
    }
}

/// Set the status and headers of `r` (repeated ones kept; the content
/// type through Apache; `Content-Length` left to Apache unless `keep_length`).
pub(crate) unsafe fn set_head(r: &mut request_rec, status: u16, headers: &[(String, Vec<u8>)]) {
    r.status = c_int::from(status);
    for (name, value) in headers {
        let value = pool_str(r.pool, value);
        if name.eq_ignore_ascii_case("content-type") {
            ffi::ap_set_content_type(r, value);
        } else {
            ffi::apr_table_add(r.headers_out, pool_str(r.pool, name.as_bytes()), value);
        }
    }
}

/// Hand the response to Apache: status, headers, body through the output
/// filter chain (or, when the guest streamed, the rest of the body).
unsafe fn write_response(r: &mut request_rec, response: Response) -> c_int {
    if response.streamed {
        if response.outcome != Outcome::Ok {
            // The status is on the wire: cut the response short so that the
            // client sees it incomplete rather than a truncated success.
            (*r.connection).aborted = 1;
            return ffi::OK as c_int;
        }
        if !response.body.is_empty() {
            ffi::ap_rwrite(
                response.body.as_ptr().cast(),
                response.body.len() as c_int,
                r,
            );
        }
        return ffi::OK as c_int;
    }
    if response.outcome != Outcome::Ok {
        if response.outcome == Outcome::QueueTimeout {
            ffi::apr_table_setn(r.err_headers_out, c"Retry-After".as_ptr(), c"1".as_ptr());
        }
        // Apache writes the error page (ErrorDocument applies).
        return response.status as c_int;
    }
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .collect();
    set_head(r, response.status, &headers);
    ffi::ap_set_content_length(r, response.body.len() as _);
    if !response.body.is_empty()
        && ffi::ap_rwrite(
            response.body.as_ptr().cast(),
            response.body.len() as c_int,
            r,
        ) < 0
    {
        // The client went away; nothing more to send.
        return ffi::OK as c_int;
    }
    ffi::OK as c_int
}

/// Serve an application request (handler `wasmpy-app`).
pub unsafe fn serve(r: &mut request_rec) -> Result<c_int, String> {
    let tenant = text(ffi::apr_table_get(r.notes, NOTE_TENANT.as_ptr())).to_string();
    let script_name = text(ffi::apr_table_get(r.notes, NOTE_SCRIPT_NAME.as_ptr())).to_string();
    let Some(sandbox) = sandbox() else {
        return Err(format!(
            "no sandbox in this child: request for tenant {tenant} refused"
        ));
    };
    let Some(max_body) = sandbox.max_body(&tenant) else {
        return Ok(ffi::HTTP_NOT_FOUND as c_int);
    };
    let mut body_state = Body::default();
    let (body, complete) = match prefetch_body(r, &mut body_state, max_body) {
        Ok(body) => body,
        Err(status) => return Ok(status),
    };
    let request = to_request(r, &script_name, body, complete);
    let host = ApacheRequest::new(r, &mut body_state, std::ptr::null_mut(), false);
    let response = sandbox.dispatch(&tenant, request, Box::new(host));
    // A body the application left unread still may not cross max_body: it
    // is read (and dropped) up to the limit, as Apache would discard it.
    if !response.streamed && !body_state.drain_within(r, max_body) {
        return Ok(ffi::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int);
    }
    if response.outcome != Outcome::Ok {
        let msg = CString::new(format!(
            "mod_wasmpy: [tenant {tenant}] {} {}: {:?} -> {}",
            text(r.method),
            text(r.uri),
            response.outcome,
            response.status
        ))
        .unwrap_or_default();
        ffi::wasmpy_shim_log_request(r, ffi::APLOG_WARNING as c_int, msg.as_ptr());
    }
    Ok(write_response(r, response))
}
