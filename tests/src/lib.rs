//! Helpers of the end-to-end tests: locate the built binaries, copy tenant
//! trees to scratch directories, run servers, speak HTTP/1.1 over TCP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A binary of the workspace, built by `cargo build` before the tests run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// The shared cache (compiled runtime) of all tests.
pub fn cache_dir() -> PathBuf {
    repo().join("target/wasmpy-test-cache")
}

/// A private cache directory holding a copy of the shared compiled runtime
/// (nothing else: the shared cache is written by servers of other tests).
/// Returns the copied `.cwasm`.
pub fn seed_cache(dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    let mut cwasm = None;
    for entry in std::fs::read_dir(cache_dir()).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("gateway-") {
            std::fs::copy(entry.path(), dest.join(&name)).unwrap();
            if name.to_string_lossy().ends_with(".cwasm") {
                cwasm = Some(dest.join(&name));
            }
        }
    }
    cwasm.expect("no compiled runtime in the shared cache: run `wasmpy prepare` first")
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty scratch directory named after `label`.
    pub fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wasmpy-test-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Copy the tenants of `tests/tenants` (and `examples/tenants`) here.
    pub fn with_tenants(label: &str) -> Scratch {
        let scratch = Scratch::new(label);
        for source in [
            repo().join("tests/tenants"),
            repo().join("examples/tenants"),
        ] {
            copy_tree(&source, &scratch.0);
        }
        scratch
    }

    /// Path of a tenant (or anything) inside the scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Recursive copy (symlinks are not followed: the trees have none).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop, with its output in a log file.
pub struct Process {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Start `command`, sending its output to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).unwrap();
        command
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        Process {
            child: command.spawn().expect("cannot start process"),
            log,
        }
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    wait_until_listening(port, timeout, || format!("nothing listens on port {port}"));
}

/// Wait until something accepts connections on `port`, or fail with
/// `failure()` (the server's output and logs) after `timeout`.
pub fn wait_until_listening(port: u16, timeout: Duration, failure: impl Fn() -> String) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < timeout, "{}", failure());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `wasmpy serve` on the tenants of a scratch directory.
pub struct DevServer {
    /// The server process.
    pub process: Process,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl DevServer {
    /// Serve `tenants_dir` with `extra_env` added to the server's environment.
    pub fn start(tenants_dir: &Path, extra_env: &[(&str, &str)]) -> DevServer {
        let port = free_port();
        let mut command = Command::new(binary("wasmpy"));
        command
            .arg("serve")
            .arg(tenants_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--cache-dir")
            .arg(cache_dir())
            .env("RUST_LOG", "info");
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let log = tenants_dir.join(format!(".serve-{port}.log"));
        let process = Process::spawn(command, log);
        wait_for_port(port, Duration::from_secs(120));
        DevServer { process, port }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }
}

/// Send raw bytes as one HTTP/1.1 request (`Connection: close`) and read the reply.
pub fn raw(port: u16, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut data = Vec::new();
    stream.read_to_end(&mut data).unwrap();
    parse_reply(&data)
}

/// Send a request with the given method, target, extra headers and body.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(port, &bytes)
}

/// GET `target`.
pub fn get(port: u16, target: &str) -> Reply {
    request(port, "GET", target, &[], b"")
}

fn parse_reply(data: &[u8]) -> Reply {
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(data)));
    let head = String::from_utf8_lossy(&data[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = data[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// The Debian Apache running mod_wasmpy, started by `wasmpy apache`.
pub struct Apache {
    /// The `wasmpy apache` process (it execs apache2: this is Apache's parent).
    pub process: Process,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its run directory (httpd.conf, error.log, access.log).
    pub run_dir: PathBuf,
}

impl Apache {
    /// Start Apache with `mpm` ("event" or "prefork") on the tenants of `tenants_dir`.
    pub fn start(tenants_dir: &Path, mpm: &str) -> Apache {
        Apache::start_with(tenants_dir, mpm, &[])
    }

    /// Start Apache with extra `wasmpy apache` arguments.
    pub fn start_with(tenants_dir: &Path, mpm: &str, extra: &[&str]) -> Apache {
        Apache::start_with_env(tenants_dir, mpm, extra, &[])
    }

    /// Start Apache with extra arguments and `env` added to the environment
    /// of `wasmpy apache` (hence of Apache and its children).
    pub fn start_with_env(
        tenants_dir: &Path,
        mpm: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Apache {
        Apache::start_in(tenants_dir, mpm, extra, env, &cache_dir())
    }

    /// Start Apache with its own cache directory `cache` (instead of the
    /// one the tests share).
    pub fn start_with_cache(tenants_dir: &Path, mpm: &str, cache: &Path) -> Apache {
        Apache::start_in(tenants_dir, mpm, &[], &[], cache)
    }

    fn start_in(
        tenants_dir: &Path,
        mpm: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        cache: &Path,
    ) -> Apache {
        let port = free_port();
        let run_dir = tenants_dir.join(format!(".apache-{mpm}-{port}"));
        let mut command = Command::new(binary("wasmpy"));
        command
            .arg("apache")
            .arg(tenants_dir)
            .args(["--port", &port.to_string(), "--mpm", mpm])
            .arg("--run-dir")
            .arg(&run_dir)
            .arg("--cache-dir")
            .arg(cache)
            .args(extra)
            .envs(env.iter().copied());
        // Its own process group: prefork's shutdown signals the whole group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let process = Process::spawn(command, tenants_dir.join(format!(".apache-{port}.out")));
        let apache = Apache {
            process,
            port,
            run_dir,
        };
        wait_until_listening(port, Duration::from_secs(60), || {
            format!(
                "Apache did not start:\n{}\n{}",
                apache.process.log_text(),
                apache.error_log()
            )
        });
        apache
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("error.log")).unwrap_or_default()
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("access.log")).unwrap_or_default()
    }

    /// Pids of Apache's children.
    pub fn children(&self) -> Vec<u32> {
        let parent = self.process.id();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(&parent.to_string()) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // A graceful stop (SIGTERM) lets Apache reap its children.
        self.process.terminate(Duration::from_secs(15));
    }
}

impl Process {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode `text` for a query string (everything but unreserved characters).
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sequential requests to the `neighbour` tenant, `rounds` of them 50 ms
/// apart: each must answer exactly "neighbour ok". Returns the slowest.
pub fn neighbour_answers(port: u16, rounds: u32) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..rounds {
        let started = Instant::now();
        let reply = get(port, "/neighbour/");
        slowest = slowest.max(started.elapsed());
        assert_eq!((reply.status, reply.text().as_str()), (200, "neighbour ok"));
        std::thread::sleep(Duration::from_millis(50));
    }
    slowest
}

/// One answer seen under load: when its request was sent (since the load
/// started), its status (0: the connection failed) and its body.
pub type Seen = (Duration, u16, String);

/// Client threads requesting one path in a loop until [`Load::finish`].
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
    clients: Vec<std::thread::JoinHandle<Vec<Seen>>>,
}

impl Load {
    /// Start `threads` clients on `path`.
    pub fn start(port: u16, path: &'static str, threads: usize) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let clients = (0..threads)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // A connection cut under the client counts as status 0.
                        // The time is when the request was sent: a failing
                        // request's panic report can take long to print.
                        let t = started.elapsed();
                        let reply = std::panic::catch_unwind(|| get(port, path));
                        seen.push(reply.map_or((t, 0, String::new()), |r| (t, r.status, r.text())));
                    }
                    seen
                })
            })
            .collect();
        Load {
            stop,
            started,
            clients,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stop the clients; every answer, in time order.
    pub fn finish(self) -> Vec<Seen> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut seen: Vec<Seen> = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        seen.sort_by_key(|(t, _, _)| *t);
        seen
    }
}

/// Write `conf_text` to a fresh file in `dir` (hidden: never taken for a
/// tenant) and return its path.
pub fn write_conf(dir: &Path, conf_text: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".extra-{}-{n}.conf", std::process::id()));
    std::fs::write(&path, conf_text).unwrap();
    path
}

impl Apache {
    /// Start Apache with `conf_text` included (`wasmpy apache --conf`) after
    /// the module's global directives, before the first `<VirtualHost>`.
    pub fn start_with_conf(tenants_dir: &Path, mpm: &str, conf_text: &str) -> Apache {
        Apache::start_with_conf_args(tenants_dir, mpm, conf_text, &[])
    }

    /// [`Apache::start_with_conf`] with extra `wasmpy apache` arguments.
    pub fn start_with_conf_args(
        tenants_dir: &Path,
        mpm: &str,
        conf_text: &str,
        extra: &[&str],
    ) -> Apache {
        let conf = write_conf(tenants_dir, conf_text);
        let mut args = vec!["--conf", conf.to_str().unwrap()];
        args.extend_from_slice(extra);
        Apache::start_with(tenants_dir, mpm, &args)
    }
}

/// `wasmpy apache --configtest` on the tenants of `tenants_dir` with
/// `conf_text` included (nothing when empty): whether it passed, and
/// Apache's output (stdout and stderr).
pub fn configtest(tenants_dir: &Path, conf_text: &str) -> (bool, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut command = Command::new(binary("wasmpy"));
    command
        .arg("apache")
        .arg(tenants_dir)
        .arg("--configtest")
        .arg("--run-dir")
        .arg(tenants_dir.join(format!(".configtest-{n}")))
        .arg("--cache-dir")
        .arg(cache_dir());
    if !conf_text.is_empty() {
        command
            .arg("--conf")
            .arg(write_conf(tenants_dir, conf_text));
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The real mod_python 3.5 (Debian's libapache2-mod-python) in the Debian
/// Apache, for reference answers: the same handler files under the same
/// configuration (minus `WasmPyTenant`).
pub struct ModPython {
    /// The apache2 process (foreground).
    pub process: Process,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// httpd.conf, error.log.
    pub run_dir: PathBuf,
}

/// Where Debian keeps Apache's modules.
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

impl ModPython {
    /// Whether mod_python is installed.
    pub fn available() -> bool {
        Path::new(APACHE_MODULES).join("mod_python.so").is_file()
    }

    /// Start Apache (event MPM, one child) with mod_python and `conf_text`
    /// (which loads any further modules it needs) in `dir`.
    pub fn start(dir: &Path, conf_text: &str) -> ModPython {
        let port = free_port();
        let run_dir = dir.join(format!(".modpython-{port}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let run = run_dir.display();
        let m = APACHE_MODULES;
        let conf = format!(
            r#"ServerRoot "{run}"
DefaultRuntimeDir "{run}"
PidFile "{run}/httpd.pid"
Mutex file:{run} default
ErrorLog "{run}/error.log"
LogLevel warn
Listen 127.0.0.1:{port}
ServerName localhost
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_host_module {m}/mod_authz_host.so
LoadModule python_module {m}/mod_python.so
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
{conf_text}
"#
        );
        let conf_path = run_dir.join("httpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut command = Command::new("/usr/sbin/apache2");
        command.arg("-f").arg(&conf_path).arg("-DFOREGROUND");
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let process = Process::spawn(command, run_dir.join("apache2.out"));
        let server = ModPython {
            process,
            port,
            run_dir,
        };
        wait_until_listening(port, Duration::from_secs(30), || {
            format!(
                "mod_python's Apache did not start:\n{}\n{}",
                server.process.log_text(),
                server.error_log()
            )
        });
        server
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for ModPython {
    fn drop(&mut self) {
        self.process.terminate(Duration::from_secs(15));
    }
}

/// Poll `check` every 50 ms until it returns `Some`, or panic with `what`
/// after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
