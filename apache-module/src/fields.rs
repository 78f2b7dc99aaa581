//! The fields of a `request_rec` (with its server and connection) as
//! mod_python's `req` shows them (docs/live-request.md). Paths are host
//! paths here; the sandbox shows them to the guest under `/app`.

use std::ffi::c_char;

use wasmpy_sandbox::Value;

use crate::ffi::{self, request_rec};
use crate::req::opt_text as text_field;
use crate::text;

fn int(v: impl Into<i64>) -> Value {
    Value::Int(v.into())
}

fn seconds(micros: i64) -> Value {
    Value::Float(micros as f64 / 1e6)
}

unsafe fn t(ptr: *const c_char) -> Value {
    text_field(ptr)
}

/// Every field of `r` (docs/live-request.md).
pub unsafe fn of(r: *mut request_rec) -> Vec<(String, Value)> {
    let q = &*r;
    let mut f: Vec<(&str, Value)> = vec![
        ("method", t(q.method)),
        ("method_number", int(q.method_number)),
        ("the_request", t(q.the_request)),
        ("protocol", t(q.protocol)),
        ("proto_num", int(q.proto_num)),
        ("hostname", t(q.hostname)),
        ("unparsed_uri", t(q.unparsed_uri)),
        ("uri", t(q.uri)),
        ("args", t(q.args)),
        ("path_info", t(q.path_info)),
        ("filename", t(q.filename)),
        ("canonical_filename", t(q.canonical_filename)),
        ("request_time", seconds(q.request_time)),
        ("header_only", int(q.header_only)),
        ("user", t(q.user)),
        ("ap_auth_type", t(q.ap_auth_type)),
        ("range", t(q.range)),
        ("clength", int(q.clength)),
        ("remaining", int(q.remaining)),
        ("read_length", int(q.read_length)),
        ("bytes_sent", int(q.bytes_sent)),
        ("allowed", int(q.allowed)),
        ("status", int(q.status)),
        ("status_line", t(q.status_line)),
        ("content_type", t(q.content_type)),
        ("content_encoding", t(q.content_encoding)),
        ("handler", t(q.handler)),
        ("no_cache", int(q.no_cache)),
        ("mtime", seconds(q.mtime)),
        ("chunked", int(q.chunked)),
        ("assbackwards", int(q.assbackwards)),
        ("useragent_ip", t(q.useragent_ip)),
        ("is_main", Value::Flag(q.main.is_null())),
        ("document_root", t(ffi::ap_document_root(r))),
        ("auth_type", t(ffi::ap_auth_type(r))),
        ("auth_name", t(ffi::ap_auth_name(r))),
        (
            "is_https",
            Value::Flag(text(ffi::ap_run_http_scheme(r)) == "https"),
        ),
    ];
    if let Some(s) = q.server.as_ref() {
        f.extend([
            ("server.server_hostname", t(s.server_hostname)),
            ("server.server_admin", t(s.server_admin)),
            ("server.defn_name", t(s.defn_name)),
            ("server.error_fname", Value::None),
            ("server.path", t(s.path)),
            ("server.port", int(s.port)),
            ("server.defn_line_number", int(s.defn_line_number)),
            ("server.loglevel", int(s.log.level)),
            ("server.timeout", seconds(s.timeout)),
            ("server.keep_alive_timeout", seconds(s.keep_alive_timeout)),
            ("server.keep_alive_max", int(s.keep_alive_max)),
            ("server.limit_req_line", int(s.limit_req_line)),
            ("server.limit_req_fieldsize", int(s.limit_req_fieldsize)),
            ("server.limit_req_fields", int(s.limit_req_fields)),
            ("server.is_virtual", Value::Flag(s.is_virtual != 0)),
            ("server.keep_alive", Value::Flag(s.keep_alive != 0)),
        ]);
    }
    if let Some(c) = q.connection.as_ref() {
        let port = |addr: *mut ffi::apr_sockaddr_t| addr.as_ref().map_or(0, |a| i64::from(a.port));
        f.extend([
            ("connection.remote_ip", t(c.client_ip)),
            ("connection.local_ip", t(c.local_ip)),
            ("connection.remote_host", t(c.remote_host)),
            ("connection.local_host", t(c.local_host)),
            ("connection.remote_port", Value::Int(port(c.client_addr))),
            ("connection.local_port", Value::Int(port(c.local_addr))),
            ("connection.id", int(c.id)),
            ("connection.keepalives", int(c.keepalives)),
            (
                "connection.keepalive",
                Value::Flag(c.keepalive == ffi::ap_conn_keepalive_e_AP_CONN_KEEPALIVE),
            ),
        ]);
    }
    let mut fields: Vec<(String, Value)> = f.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for (prefix, other) in [("main", q.main), ("prev", q.prev), ("next", q.next)] {
        if let Some(o) = other.as_ref() {
            fields.push((format!("{prefix}.uri"), t(o.uri)));
            fields.push((format!("{prefix}.method"), t(o.method)));
            fields.push((format!("{prefix}.status"), int(o.status)));
        }
    }
    fields
}
