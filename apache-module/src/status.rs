//! The status page (`SetHandler wasmpy-status`): per tenant numbers summed
//! over all Apache children, as HTML for people and JSON (`?json`) for
//! machines.
//!
//! Each child publishes its numbers once a second to
//! `<cache>/status/<pid>` (written atomically); the child answering the
//! page adds its own live numbers to those of the other live children.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmpy_sandbox::{Sandbox, TenantStats};

use crate::ffi::{self, request_rec};
use crate::{sandbox, text};

/// Number of counters per tenant (all but the name).
const FIELDS: usize = 15;
/// Names of the counters, in the order of [`values`].
const NAMES: [&str; FIELDS] = [
    "generation",
    "busy",
    "idle",
    "requests",
    "exceptions",
    "memory_errors",
    "timeouts",
    "traps",
    "import_errors",
    "queue_timeouts",
    "too_large",
    "invalid_responses",
    "recycles",
    "instances_created",
    "memory_bytes",
];

fn values(t: &TenantStats) -> [u64; FIELDS] {
    [
        t.generation,
        u64::from(t.busy),
        u64::from(t.idle),
        t.requests,
        t.exceptions,
        t.memory_errors,
        t.timeouts,
        t.traps,
        t.import_errors,
        t.queue_timeouts,
        t.too_large,
        t.invalid_responses,
        t.recycles,
        t.instances_created,
        t.memory_bytes,
    ]
}

/// Where the children of every server using `cache_dir` publish their numbers.
pub fn status_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("status")
}

/// Where the children of this server publish: one directory per Apache
/// parent, so that servers sharing a cache directory do not add up.
pub fn server_status_dir(cache_dir: &Path) -> PathBuf {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    status_dir(cache_dir).join(parent.to_string())
}

/// Remove the directories of servers that are gone.
fn prune(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Ok(pid) = name.to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// One line per tenant: the name, then the counters.
fn encode(stats: &[TenantStats]) -> String {
    let mut out = String::new();
    for t in stats {
        out.push_str(&t.name);
        for v in values(t) {
            let _ = write!(out, " {v}");
        }
        out.push('\n');
    }
    out
}

fn decode(text: &str) -> Vec<(String, [u64; FIELDS])> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next()?.to_string();
            let mut v = [0u64; FIELDS];
            for slot in v.iter_mut() {
                *slot = parts.next()?.parse().ok()?;
            }
            Some((name, v))
        })
        .collect()
}

/// Publish this child's numbers every second until `stop` is set; remove
/// the file on the way out.
pub fn publish_loop(sandbox: Arc<Sandbox>, dir: PathBuf, stop: Arc<AtomicBool>) {
    if let Some(root) = dir.parent() {
        prune(root);
    }
    let _ = std::fs::create_dir_all(&dir);
    let pid = std::process::id();
    let file = dir.join(pid.to_string());
    let tmp = dir.join(format!(".{pid}.tmp"));
    while !stop.load(Ordering::Relaxed) {
        if std::fs::write(&tmp, encode(&sandbox.stats())).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
        for _ in 0..10 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = std::fs::remove_file(&file);
}

/// Numbers of every tenant summed over the live children (generation: the
/// highest), and how many children contributed.
fn collect(dir: &Path, own: &[TenantStats]) -> (usize, BTreeMap<String, [u64; FIELDS]>) {
    let me = std::process::id();
    let mut per_child = vec![own
        .iter()
        .map(|t| (t.name.clone(), values(t)))
        .collect::<Vec<_>>()];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if pid == me || !alive {
            continue;
        }
        per_child.push(decode(
            &std::fs::read_to_string(entry.path()).unwrap_or_default(),
        ));
    }
    let mut totals: BTreeMap<String, [u64; FIELDS]> = BTreeMap::new();
    for (name, v) in per_child.iter().flatten() {
        let total = totals.entry(name.clone()).or_insert([0; FIELDS]);
        total[0] = total[0].max(v[0]);
        for i in 1..FIELDS {
            total[i] += v[i];
        }
    }
    (per_child.len(), totals)
}

fn json(children: usize, totals: &BTreeMap<String, [u64; FIELDS]>) -> String {
    let mut out = format!("{{\"children\":{children},\"tenants\":{{");
    for (i, (name, v)) in totals.iter().enumerate() {
        // Tenant names are DNS labels: nothing to escape.
        let _ = write!(out, "{}\"{name}\":{{", if i > 0 { "," } else { "" });
        for (j, (key, value)) in NAMES.iter().zip(v).enumerate() {
            let _ = write!(out, "{}\"{key}\":{value}", if j > 0 { "," } else { "" });
        }
        out.push('}');
    }
    out.push_str("}}\n");
    out
}

fn html(children: usize, totals: &BTreeMap<String, [u64; FIELDS]>) -> String {
    let mut out = String::from(
        "<!doctype html>\n<title>mod_wasmpy status</title>\n<h1>mod_wasmpy status</h1>\n",
    );
    let _ = writeln!(
        out,
        "<p>{children} Apache children; counters summed over them (up to a second old).</p>"
    );
    out.push_str("<table border=\"1\">\n<tr><th>tenant</th>");
    for key in NAMES {
        let _ = write!(out, "<th>{key}</th>");
    }
    out.push_str("</tr>\n");
    for (name, v) in totals {
        let _ = write!(out, "<tr><td>{name}</td>");
        for value in v {
            let _ = write!(out, "<td>{value}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Serve the status page.
pub unsafe fn serve(r: &mut request_rec) -> Result<c_int, String> {
    let own = sandbox().map(|s| s.stats()).unwrap_or_default();
    let dir = server_status_dir(&crate::config().cache_dir());
    let (children, totals) = collect(&dir, &own);
    let accept = text(ffi::apr_table_get(r.headers_in, c"Accept".as_ptr()));
    let wants_json =
        text(r.args).split('&').any(|a| a == "json") || accept.contains("application/json");
    let (body, content_type) = if wants_json {
        (json(children, &totals), c"application/json")
    } else {
        (html(children, &totals), c"text/html; charset=utf-8")
    };
    ffi::ap_set_content_type(r, content_type.as_ptr());
    ffi::ap_set_content_length(r, body.len() as _);
    ffi::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
    Ok(ffi::OK as c_int)
}
