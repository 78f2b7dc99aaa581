//! `wasmpy bench`: the sandbox API's numbers against the project's targets,
//! printed in one run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmpy_sandbox::{Detached, Outcome, Request, Sandbox, SandboxConfig};

const HELLO_APP: &str = r#"def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
"#;

/// A throw-away tenants directory with `count` hello-world tenants.
struct Scratch(PathBuf);

impl Scratch {
    fn new(count: u32) -> anyhow::Result<Scratch> {
        let root = std::env::temp_dir().join(format!("wasmpy-bench-{}", std::process::id()));
        for i in 0..count {
            let app = root.join(format!("t{i}")).join("app");
            std::fs::create_dir_all(&app)?;
            std::fs::write(app.join("wsgi.py"), HELLO_APP)?;
            std::fs::write(app.join("../policy.toml"), "")?;
        }
        Ok(Scratch(root))
    }

    fn tenant(&self, i: u32) -> PathBuf {
        self.0.join(format!("t{i}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hello_request() -> Request {
    Request {
        method: "GET".into(),
        script_name: String::new(),
        path_info: b"/".to_vec(),
        query_string: String::new(),
        request_uri: "/".into(),
        headers: vec![("Host".into(), b"localhost".to_vec())],
        body: Vec::new(),
        body_complete: true,
        remote_addr: "127.0.0.1".into(),
        remote_port: 40000,
        server_name: "localhost".into(),
        server_port: 80,
        server_protocol: "HTTP/1.1".into(),
        url_scheme: "http".into(),
    }
}

/// This process's proportional set size and private memory (clean +
/// dirty), in bytes, from `/proc/self/smaps_rollup`: memory a process
/// really costs, unlike RSS, which counts every shared page in full.
fn pss_and_private() -> (u64, u64) {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

fn add(sandbox: &Sandbox, dir: &Path) -> anyhow::Result<()> {
    let tenant = wasmpy_policies::load_tenant(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    sandbox.add_tenant(tenant);
    Ok(())
}

fn expect_ok(sandbox: &Sandbox, tenant: &str) -> anyhow::Result<()> {
    let response = sandbox.dispatch(tenant, hello_request(), Box::new(Detached));
    anyhow::ensure!(
        response.outcome == Outcome::Ok && response.body == b"Hello, World!",
        "{tenant}: unexpected response {} {:?}",
        response.status,
        response.outcome
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

/// Run the three measurements and print them with their targets.
pub fn run(requests: u32, tenants: u32, config: SandboxConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let sandbox = Sandbox::new(config).context("cannot start the sandbox")?;
    println!(
        "engine + runtime load: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let scratch = Scratch::new(tenants + 1)?;

    // 1. Per-request overhead on a warm instance.
    add(&sandbox, &scratch.tenant(0))?;
    for _ in 0..200 {
        expect_ok(&sandbox, "t0")?;
    }
    let mut times = Vec::with_capacity(requests as usize);
    let all = Instant::now();
    for _ in 0..requests {
        let one = Instant::now();
        let response = sandbox.dispatch("t0", hello_request(), Box::new(Detached));
        times.push(one.elapsed());
        anyhow::ensure!(response.outcome == Outcome::Ok, "request failed");
    }
    let mean = all.elapsed() / requests;
    times.sort();
    println!(
        "per-request overhead (hello world, {requests} requests): mean {:.1} us, p50 {:.1} us, p99 {:.1} us  [target < 50 us: {}]",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        verdict(mean < Duration::from_micros(50)),
    );

    // 2. New tenant to first response, runtime already compiled; and
    // 3. resident memory per extra warm tenant.
    let (pss_before, private_before) = pss_and_private();
    let mut cold = Vec::with_capacity(tenants as usize);
    for i in 1..=tenants {
        let one = Instant::now();
        add(&sandbox, &scratch.tenant(i))?;
        expect_ok(&sandbox, &format!("t{i}"))?;
        cold.push(one.elapsed());
    }
    let (pss_after, private_after) = pss_and_private();
    cold.sort();
    let median = percentile(&cold, 0.5);
    println!(
        "new tenant to first response ({tenants} tenants): median {:.2} ms, max {:.2} ms  [target < 20 ms: {}]",
        median.as_secs_f64() * 1e3,
        cold.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        verdict(median < Duration::from_millis(20)),
    );
    let count = f64::from(tenants.max(1));
    let per_tenant = private_after.saturating_sub(private_before) as f64 / count;
    println!(
        "private memory per extra warm tenant: {:.2} MB, PSS {:.2} MB (private {:.0} -> {:.0} MB)  [target < 10 MB: {}]",
        per_tenant / 1e6,
        pss_after.saturating_sub(pss_before) as f64 / count / 1e6,
        private_before as f64 / 1e6,
        private_after as f64 / 1e6,
        verdict(per_tenant < 10e6),
    );
    Ok(())
}
