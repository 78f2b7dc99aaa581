//! Live operations against real Apache: hot swap under load, recycling,
//! pre-warming, fair sharing, and the status page's numbers.
//!
//! These tests measure latencies and count requests, so they run one at a
//! time (a lock), each bounded in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmpy_tests::{get, Apache, Load, Scratch};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn status(port: u16) -> serde_json::Value {
    let reply = get(port, "/wasmpy-status?json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn tenant_status(port: u16, tenant: &str) -> serde_json::Value {
    status(port)["tenants"][tenant].clone()
}

/// Wait until `check` holds (polling), or fail with `what` and Apache's log.
fn eventually(apache: &Apache, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for {what}; error log:\n{}",
            apache.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const V2: &str = r#"def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"version 2"]
"#;

#[test]
fn changing_code_under_load_fails_no_request_and_is_live_within_two_seconds() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("hotswap");
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    assert_eq!(get(port, "/hello/").status, 200);

    let load = Load::start(port, "/hello/", 4);
    std::thread::sleep(Duration::from_millis(1500));
    let changed_at = load.elapsed();
    std::fs::write(scratch.path("hello/app/wsgi.py"), V2).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let seen = load.finish();

    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    // From some moment at most 2 s after the change, every answer is new.
    let last_old = seen
        .iter()
        .filter(|(_, _, body)| body != "version 2")
        .map(|(t, _, _)| *t)
        .max()
        .unwrap();
    assert!(
        last_old <= changed_at + Duration::from_secs(2),
        "old code still served {:?} after the change; last answers {:?}; error log:\n{}",
        last_old - changed_at,
        &seen[seen.len() - 3..],
        apache.error_log()
    );
    assert!(seen.iter().any(|(_, _, body)| body == "version 2"));
    assert!(seen.len() > 100, "only {} requests under load", seen.len());
}

#[test]
fn a_deployment_that_does_not_load_keeps_the_old_generation_serving() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("badreload");
    let apache = Apache::start_with(&scratch.0, "event", &["--processes", "1"]);
    let port = apache.port;
    assert!(get(port, "/hello/").text().starts_with("Hello"));
    let generation = tenant_status(port, "hello")["generation"].as_u64().unwrap();

    // A policy that no longer validates.
    std::fs::write(
        scratch.path("hello/policy.toml"),
        "[limits]\nmemory = \"huge\"\n",
    )
    .unwrap();
    eventually(
        &apache,
        "the refusal in the error log",
        Duration::from_secs(5),
        || apache.error_log().contains("new deployment refused"),
    );
    assert!(
        apache.error_log().contains("policy.toml:2:")
            && apache.error_log().contains("limits.memory")
    );
    assert!(get(port, "/hello/").text().starts_with("Hello"));

    // Code that does not import.
    std::fs::write(scratch.path("hello/policy.toml"), "").unwrap();
    std::fs::write(
        scratch.path("hello/app/wsgi.py"),
        "raise ImportError('broken deploy')\n",
    )
    .unwrap();
    eventually(
        &apache,
        "the import failure in the error log",
        Duration::from_secs(5),
        || apache.error_log().contains("ImportError: broken deploy"),
    );
    let reply = get(port, "/hello/");
    assert_eq!(reply.status, 200);
    assert!(reply.text().starts_with("Hello"), "{}", reply.text());
    assert_eq!(
        tenant_status(port, "hello")["generation"].as_u64().unwrap(),
        generation
    );

    // A good deployment is picked up, with touch-to-reload for a module
    // other than the entry point.
    std::fs::write(
        scratch.path("hello/app/greeting.py"),
        "TEXT = b'from greeting v1'\n",
    )
    .unwrap();
    std::fs::write(
        scratch.path("hello/app/wsgi.py"),
        "import greeting\n\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return [greeting.TEXT]\n",
    )
    .unwrap();
    eventually(&apache, "the fixed code", Duration::from_secs(5), || {
        get(port, "/hello/").text() == "from greeting v1"
    });
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime second for the marker
    std::fs::write(
        scratch.path("hello/app/greeting.py"),
        "TEXT = b'from greeting v2'\n",
    )
    .unwrap();
    std::fs::write(scratch.path("hello/reload"), "").unwrap();
    eventually(&apache, "touch-to-reload", Duration::from_secs(5), || {
        get(port, "/hello/").text() == "from greeting v2"
    });
}

#[test]
fn instances_are_recycled_after_n_requests_memory_high_water_and_idle_timeout() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("recycle");
    std::fs::write(
        scratch.path("probe/policy.toml"),
        "[limits]\nmax_instances = 1\nrecycle_after = 3\nidle_timeout = \"1s\"\n",
    )
    .unwrap();
    std::fs::write(
        scratch.path("neighbour/policy.toml"),
        "[limits]\nmin_idle = 1\n",
    )
    .unwrap();
    let apache = Apache::start_with(&scratch.0, "event", &["--processes", "1"]);
    let port = apache.port;

    // Pre-warming: the neighbour has an idle instance before any request.
    eventually(
        &apache,
        "a pre-started neighbour instance",
        Duration::from_secs(5),
        || tenant_status(port, "neighbour")["idle"] == 1,
    );
    assert_eq!(tenant_status(port, "neighbour")["requests"], 0);

    // After N requests.
    let counts: Vec<i64> = (0..7)
        .map(|_| get(port, "/probe/count").json().as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 2, 3, 1, 2, 3, 1]);

    // After the idle timeout, the instance and its memory are gone.
    assert!(
        tenant_status(port, "probe")["memory_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    eventually(
        &apache,
        "the idle probe instance to be dropped",
        Duration::from_secs(5),
        || {
            let probe = tenant_status(port, "probe");
            probe["idle"] == 0 && probe["memory_bytes"] == 0
        },
    );
    assert_eq!(get(port, "/probe/count").json(), 1);

    // Past the memory high-water mark: a leaking tenant keeps answering.
    for _ in 0..30 {
        let reply = get(port, "/leaky/");
        assert_eq!(
            reply.status,
            200,
            "{}\n{}",
            reply.text(),
            apache.error_log()
        );
    }
    let leaky = tenant_status(port, "leaky");
    assert!(leaky["recycles"].as_u64().unwrap() >= 3, "{leaky}");
    assert_eq!(leaky["memory_errors"], 0, "{leaky}");
    let probe = tenant_status(port, "probe");
    assert!(probe["recycles"].as_u64().unwrap() >= 2, "{probe}");
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) * 99 / 100]
}

/// Sequential requests to the neighbour for `duration`; their latencies.
fn latencies(port: u16, path: &str, duration: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        let t = Instant::now();
        let reply = get(port, path);
        samples.push(t.elapsed());
        assert_eq!(reply.status, 200);
    }
    samples
}

#[test]
fn a_spinning_tenant_gets_504_without_slowing_its_neighbour() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("fairness");
    std::fs::write(
        scratch.path("probe/policy.toml"),
        "[limits]\nmax_instances = 1\nrequest_timeout = \"1s\"\nqueue_timeout = \"10s\"\n",
    )
    .unwrap();
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    // Two well-behaved neighbours: a Flask page (a realistic app) and a
    // hello world (the worst case for a ratio: its p99 alone is ~0.4 ms).
    latencies(port, "/flask/", Duration::from_secs(3)); // warm both children
    latencies(port, "/neighbour/", Duration::from_millis(500));
    let flask_alone = p99(latencies(port, "/flask/", Duration::from_secs(3)));
    let alone = p99(latencies(port, "/neighbour/", Duration::from_secs(3)));

    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..1)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    statuses.push(get(port, "/probe/spin").status);
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let flask_loaded = p99(latencies(port, "/flask/", Duration::from_secs(3)));
    let loaded = p99(latencies(port, "/neighbour/", Duration::from_secs(3)));
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = spinners
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    assert!(statuses.contains(&504), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 504 || *s == 503),
        "{statuses:?}"
    );
    // The Flask neighbour's p99 stays within 2x of its p99 alone. The
    // hello world's sub-millisecond p99 is held to 2x plus 2 ms: at that
    // scale the 2-core machine's scheduling noise (the spinning request is
    // demoted to SCHED_IDLE, its instance torn down and re-created every
    // request_timeout) dominates any ratio.
    assert!(
        flask_loaded <= flask_alone * 2,
        "Flask neighbour p99 {flask_loaded:?} under a spinning tenant vs {flask_alone:?} alone"
    );
    assert!(
        loaded <= alone * 2 + Duration::from_millis(2),
        "hello neighbour p99 {loaded:?} under a spinning tenant vs {alone:?} alone"
    );
    eprintln!(
        "p99 alone / next to a spinning tenant: Flask {flask_alone:?} / {flask_loaded:?}, hello {alone:?} / {loaded:?}"
    );
}

#[test]
fn the_status_page_counts_requests_errors_and_generations() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("status");
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    for _ in 0..5 {
        assert_eq!(get(port, "/probe/count").status, 200);
    }
    assert_eq!(get(port, "/probe/raise").status, 500);
    assert_eq!(get(port, "/probe/spin").status, 504);
    assert_eq!(get(port, "/probe/bigalloc").status, 500);
    // Every child publishes within a second.
    eventually(
        &apache,
        "the counters of all children",
        Duration::from_secs(5),
        || {
            let probe = tenant_status(port, "probe");
            probe["requests"] == 8 && probe["timeouts"] == 1
        },
    );
    let page = status(port);
    assert_eq!(page["children"], 2, "{page}");
    let probe = &page["tenants"]["probe"];
    assert_eq!(probe["exceptions"], 1, "{probe}");
    assert_eq!(probe["memory_errors"], 1, "{probe}");
    assert!(probe["recycles"].as_u64().unwrap() >= 2, "{probe}");
    assert!(page["tenants"]["hello"]["requests"] == 0);
    // Memory in use shows up while an instance lives.
    assert_eq!(get(port, "/probe/count").status, 200);
    eventually(&apache, "memory in use", Duration::from_secs(5), || {
        tenant_status(port, "probe")["memory_bytes"]
            .as_u64()
            .unwrap()
            > 0
    });
    let html = get(port, "/wasmpy-status").text();
    assert!(
        html.contains("<td>probe</td>") && html.contains("<th>timeouts</th>"),
        "{html}"
    );
    // Not reachable where it is not configured: only /wasmpy-status.
    assert!(!get(port, "/hello/wasmpy-status?json")
        .text()
        .contains("tenants"));
}

#[test]
fn the_process_wide_instance_cap_evicts_idle_instances_and_then_refuses() {
    let _serial = serial();
    let scratch = Scratch::with_tenants("global-cap");
    let apache = Apache::start_with(
        &scratch.0,
        "event",
        &["--processes", "1", "--pool-slots", "2"],
    );
    let port = apache.port;
    // Two tenants hold the two slots...
    assert_eq!(get(port, "/hello/").status, 200);
    assert_eq!(get(port, "/neighbour/").status, 200);
    // ...a third one gets a slot by evicting the least recently used idle one.
    assert_eq!(get(port, "/probe/count").status, 200);
    let page = status(port);
    let idle: u64 = ["hello", "neighbour", "probe"]
        .iter()
        .map(|t| page["tenants"][t]["idle"].as_u64().unwrap())
        .sum();
    assert_eq!(idle, 2, "{page}");
    assert_eq!(
        page["tenants"]["hello"]["idle"], 0,
        "hello was the least recently used: {page}"
    );
    // With both slots busy, a request needing a new instance gets 503.
    let sleepers: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(port, "/probe/nap").status))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = get(port, "/hello/");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    for sleeper in sleepers {
        assert_eq!(sleeper.join().unwrap(), 200);
    }
    assert_eq!(get(port, "/hello/").status, 200);
}
