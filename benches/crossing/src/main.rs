//! Cost of one request across the host/guest boundary: the runtime's own
//! `gateway` world (one call, plain records in and out) against the standard
//! `wasi:http/incoming-handler` (resources, streams and an out-parameter).
//!
//! Both guests are CPython 3.14 components built by componentize-py (see
//! `build.sh`); both do the same hello-world work. One engine, one persistent
//! instance of each, requests alternated in blocks so that drift of a shared
//! machine hits both sides alike. Times include the host's conversions: from
//! a list of header pairs to the guest, back to status, headers and body bytes.
//!
//! ```text
//! benches/crossing/build.sh
//! cargo run -p wasmpy-crossing-bench -- [--n 20000] [--warmup 500] [--body BYTES]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{bail, format_err, Result};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bindings of the runtime's world, as the sandbox generates them.
mod records {
    wasmtime::component::bindgen!({
        path: "../../python-wasm/wit",
        world: "gateway",
        exports: { default: async },
    });
}

/// Requests per block: the two sides alternate block by block.
const BLOCK: usize = 1000;

/// The request both guests get (besides the body): `GET /hello?x=1` with these headers.
const HEADERS: [(&str, &str); 8] = [
    ("host", "localhost"),
    ("user-agent", "wasmpy-crossing-bench/0.1"),
    ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.7"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cookie", "session=0123456789abcdef; theme=dark"),
    ("x-forwarded-for", "192.0.2.10"),
    ("x-request-id", "5f0c6b2e-8d1a-4c77-9d0e-3f2b1a6c9e41"),
];

/// Store data of both instances: WASI, wasi:http and their resource table.
struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Command-line settings.
struct Args {
    n: usize,
    warmup: usize,
    body: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        n: 20_000,
        warmup: 500,
        body: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().context("missing value")?.parse()?;
        match flag.as_str() {
            "--n" => args.n = value,
            "--warmup" => args.warmup = value,
            "--body" => args.body = value,
            _ => bail!("usage: [--n N] [--warmup N] [--body BYTES]"),
        }
    }
    Ok(args)
}

/// The engine configuration of the sandbox, less the pooling allocator.
fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    Engine::new(&config)
}

/// A store with no deadline in practice (the ticker still runs, as in the sandbox).
fn store(engine: &Engine, wasi: WasiCtx) -> Store<Host> {
    let mut store = Store::new(
        engine,
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    let started = Instant::now();
    let component = Component::from_file(engine, path)
        .with_context(|| format!("cannot load {}", path.display()))?;
    eprintln!("compiled {} in {:?}", path.display(), started.elapsed());
    Ok(component)
}

/// One persistent instance of the gateway world, its app loaded.
struct Records {
    store: Store<Host>,
    gateway: records::Gateway,
}

impl Records {
    async fn new(engine: &Engine, linker: &Linker<Host>, top: &Path) -> Result<Self> {
        let component = compile(engine, &top.join("build/crossing/records.wasm"))?;
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().allow_blocking_current_thread(true);
        for (host, guest) in [
            (top.join("benches/crossing/app"), "/app"),
            (top.join("build/runtime/python"), "/python"),
        ] {
            wasi.preopened_dir(&host, guest, FsPerms::ReadOnly)
                .with_context(|| format!("cannot mount {}", host.display()))?;
        }
        let mut store = store(engine, wasi.build());
        let pre = records::GatewayPre::new(linker.instantiate_pre(&component)?)?;
        let gateway = pre.instantiate_async(&mut store).await?;
        if let Err(traceback) = gateway
            .call_load(&mut store, "wsgi:application", &[])
            .await?
        {
            bail!("load failed:\n{traceback}");
        }
        Ok(Records { store, gateway })
    }

    /// One request: build the record, call `handle`, check the answer.
    /// Returns the time spent inside the call.
    async fn request(&mut self, body: &[u8]) -> Result<Duration> {
        let req = records::Request {
            method: "GET".into(),
            script_name: String::new(),
            path_info: b"/hello".to_vec(),
            query_string: "x=1".into(),
            request_uri: "/hello?x=1".into(),
            headers: HEADERS
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
            remote_addr: "192.0.2.10".into(),
            remote_port: 50000,
            server_name: "localhost".into(),
            server_port: 80,
            server_protocol: "HTTP/1.1".into(),
            url_scheme: "http".into(),
        };
        let started = Instant::now();
        let resp = self.gateway.call_handle(&mut self.store, &req).await?;
        let call = started.elapsed();
        check(resp.status, &resp.body)?;
        Ok(call)
    }
}

/// One persistent instance of the wasi:http/proxy world.
struct Http {
    store: Store<Host>,
    proxy: Proxy,
}

impl Http {
    async fn new(engine: &Engine, linker: &Linker<Host>, top: &Path) -> Result<Self> {
        let component = compile(engine, &top.join("build/crossing/http.wasm"))?;
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().allow_blocking_current_thread(true);
        let mut store = store(engine, wasi.build());
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        let proxy = pre.instantiate_async(&mut store).await?;
        Ok(Http { store, proxy })
    }

    /// One request: a hyper request in, `handle`, the whole body collected.
    /// Returns the time spent inside the call.
    async fn request(&mut self, body: &[u8]) -> Result<Duration> {
        let mut builder = hyper::Request::builder()
            .method("GET")
            .uri("http://localhost/hello?x=1");
        for (name, value) in HEADERS {
            builder = builder.header(name, value);
        }
        let req = builder.body(Full::new(Bytes::copy_from_slice(body)))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = self.store.data_mut().http();
        let req = http.new_incoming_request(Scheme::Http, req)?;
        let out = http.new_response_outparam(tx)?;
        let started = Instant::now();
        self.proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut self.store, req, out)
            .await?;
        let call = started.elapsed();
        let resp = rx.await?.map_err(|code| format_err!("{code:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        check(status, &body)?;
        Ok(call)
    }
}

fn check(status: u16, body: &[u8]) -> Result<()> {
    if status != 200 || body != b"Hello, World!\n" {
        bail!(
            "unexpected answer {status} {:?}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

/// Mean, p50 and p99 in microseconds.
fn stats(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = times.iter().copied().map(us).sum::<f64>() / times.len() as f64;
    let pick = |q: f64| us(times[((times.len() - 1) as f64 * q).round() as usize]);
    (mean, pick(0.50), pick(0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let top = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let engine = engine()?;
    let ticker = engine.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(5));
        ticker.increment_epoch();
    });
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;

    let mut records = Records::new(&engine, &linker, &top).await?;
    let mut http = Http::new(&engine, &linker, &top).await?;
    let body = vec![b'x'; args.body];
    for _ in 0..args.warmup {
        records.request(&body).await?;
        http.request(&body).await?;
    }
    // Whole request (with the host's conversions), and the call alone.
    let [mut r, mut r_call, mut h, mut h_call] = [(); 4].map(|_| Vec::new());
    while r.len() < args.n {
        let block = BLOCK.min(args.n - r.len());
        for _ in 0..block {
            let started = Instant::now();
            r_call.push(records.request(&body).await?);
            r.push(started.elapsed());
        }
        for _ in 0..block {
            let started = Instant::now();
            h_call.push(http.request(&body).await?);
            h.push(started.elapsed());
        }
    }
    let rows = [
        ("records (gateway)", stats(&mut r)),
        ("  of which in `handle`", stats(&mut r_call)),
        ("wasi:http (proxy)", stats(&mut h)),
        ("  of which in `handle`", stats(&mut h_call)),
    ];
    println!(
        "GET, {} headers, {}-byte body; N={} per side after {} warm-up, same instance throughout",
        HEADERS.len(),
        args.body,
        args.n,
        args.warmup
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9}",
        "us/request", "mean", "p50", "p99"
    );
    for (name, (mean, p50, p99)) in rows {
        println!("{name:<26} {mean:>9.1} {p50:>9.1} {p99:>9.1}");
    }
    let (r, h) = (rows[0].1, rows[2].1);
    println!(
        "{:<26} {:>9.2} {:>9.2} {:>9.2}",
        "ratio wasi:http/records",
        h.0 / r.0,
        h.1 / r.1,
        h.2 / r.2
    );
    Ok(())
}
