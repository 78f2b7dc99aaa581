//! The status page (`SetHandler wasmpy-status`): per tenant numbers of this
//! Apache child, as HTML for people and JSON (`?json`) for machines.

use std::ffi::c_int;
use std::fmt::Write;

use wasmpy_sandbox::TenantStats;

use crate::ffi::{self, request_rec};
use crate::{sandbox, text};

/// Columns: (JSON key / header, value).
fn fields(t: &TenantStats) -> [(&'static str, u64); 16] {
    [
        ("generation", t.generation),
        ("busy", u64::from(t.busy)),
        ("idle", u64::from(t.idle)),
        ("requests", t.requests),
        ("exceptions", t.exceptions),
        ("memory_errors", t.memory_errors),
        ("timeouts", t.timeouts),
        ("traps", t.traps),
        ("import_errors", t.import_errors),
        ("queue_timeouts", t.queue_timeouts),
        ("too_large", t.too_large),
        ("invalid_responses", t.invalid_responses),
        ("recycles", t.recycles),
        ("instances_created", t.instances_created),
        ("memory_bytes", t.memory_bytes),
        ("pid", u64::from(std::process::id())),
    ]
}

fn json(stats: &[TenantStats]) -> String {
    let mut out = format!("{{\"pid\":{},\"tenants\":{{", std::process::id());
    for (i, t) in stats.iter().enumerate() {
        // Tenant names are DNS labels: nothing to escape.
        let _ = write!(out, "{}\"{}\":{{", if i > 0 { "," } else { "" }, t.name);
        let values = fields(t);
        for (j, (key, value)) in values.iter().take(values.len() - 1).enumerate() {
            let _ = write!(out, "{}\"{key}\":{value}", if j > 0 { "," } else { "" });
        }
        out.push('}');
    }
    out.push_str("}}\n");
    out
}

fn html(stats: &[TenantStats]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<title>mod_wasmpy status</title>\n<h1>mod_wasmpy status</h1>\n",
    );
    let _ = writeln!(
        out,
        "<p>Apache child {} (numbers are per child)</p>",
        std::process::id()
    );
    out.push_str("<table border=\"1\">\n<tr><th>tenant</th>");
    if let Some(first) = stats.first() {
        for (key, _) in fields(first).iter().take(15) {
            let _ = write!(out, "<th>{key}</th>");
        }
    }
    out.push_str("</tr>\n");
    for t in stats {
        let _ = write!(out, "<tr><td>{}</td>", t.name);
        for (_, value) in fields(t).iter().take(15) {
            let _ = write!(out, "<td>{value}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Serve the status page.
pub unsafe fn serve(r: &mut request_rec) -> Result<c_int, String> {
    let stats = sandbox().map(|s| s.stats()).unwrap_or_default();
    let accept = text(ffi::apr_table_get(r.headers_in, c"Accept".as_ptr()));
    let wants_json =
        text(r.args).split('&').any(|a| a == "json") || accept.contains("application/json");
    let (body, content_type) = if wants_json {
        (json(&stats), c"application/json")
    } else {
        (html(&stats), c"text/html; charset=utf-8")
    };
    ffi::ap_set_content_type(r, content_type.as_ptr());
    ffi::ap_set_content_length(r, body.len() as _);
    ffi::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
    Ok(ffi::OK as c_int)
}
