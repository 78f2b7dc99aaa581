//! End-to-end tests of the sandbox through `wasmpy serve`: real processes,
//! real HTTP requests, real WSGI applications (plain, Flask, sqlite3).

use std::process::Command;
use std::time::{Duration, Instant};

use wasmpy_tests::{binary, get, request, DevServer, Scratch};

#[test]
fn plain_wsgi_and_flask_answer_by_path_prefix_and_by_host() {
    let scratch = Scratch::with_tenants("routing");
    let server = DevServer::start(&scratch.0, &[]);
    let hello = get(server.port, "/hello/");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert!(hello.text().starts_with("Hello from a sandboxed WSGI app!"));

    let flask = get(server.port, "/flask/?name=Ada");
    assert_eq!(flask.status, 200, "{}", flask.text());
    assert!(
        flask.text().contains("<p>Hello, Ada! Flask is running"),
        "{}",
        flask.text()
    );
    assert_eq!(
        flask.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let by_host = request(
        server.port,
        "GET",
        "/?name=Grace",
        &[("Host", "flask.localhost")],
        b"",
    );
    assert!(
        by_host.text().contains("Hello, Grace!"),
        "{}",
        by_host.text()
    );
    let json = request(
        server.port,
        "POST",
        "/flask/json?x=1",
        &[("Content-Type", "text/plain")],
        b"payload",
    );
    assert_eq!(json.json()["data"], "payload");
    assert_eq!(json.json()["args"]["x"], "1");

    assert_eq!(get(server.port, "/nobody/").status, 404);
    assert_eq!(
        request(
            server.port,
            "GET",
            "/",
            &[("Host", "nobody.localhost")],
            b""
        )
        .status,
        404
    );
}

#[test]
fn the_environ_follows_pep_3333() {
    let scratch = Scratch::with_tenants("environ");
    let server = DevServer::start(&scratch.0, &[]);
    let reply = request(
        server.port,
        "POST",
        "/hello/environ?a=1&b=%C3%A9",
        &[
            ("Content-Type", "text/plain"),
            ("X-Custom", "one"),
            ("X-Custom", "two"),
            ("X_Spoof", "x"),
        ],
        b"body",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let env = reply.json();
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["SCRIPT_NAME"], "/hello");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%C3%A9");
    assert_eq!(env["REQUEST_URI"], "/hello/environ?a=1&b=%C3%A9");
    assert_eq!(env["CONTENT_TYPE"], "text/plain");
    assert_eq!(env["CONTENT_LENGTH"], "4");
    assert_eq!(env["HTTP_X_CUSTOM"], "one, two");
    assert!(
        env.get("HTTP_X_SPOOF").is_none(),
        "headers with '_' must be dropped"
    );
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["SERVER_PORT"], server.port.to_string());
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["wsgi.url_scheme"], "http");

    // Non-ASCII path: PATH_INFO carries the UTF-8 bytes as latin-1 text (PEP 3333).
    let reply = get(server.port, "/hello/caf%C3%A9");
    assert_eq!(reply.status, 200);
    let env = request(server.port, "GET", "/hello/environ/%C3%A9t%C3%A9", &[], b"");
    assert_eq!(
        env.json()["PATH_INFO"],
        "/environ/\u{c3}\u{a9}t\u{c3}\u{a9}"
    );
    let echoed = request(server.port, "POST", "/hello/echo", &[], &[0u8, 1, 2, 255]);
    assert_eq!(echoed.body, vec![0u8, 1, 2, 255]);
}

#[test]
fn state_persists_between_requests_of_one_instance() {
    let scratch = Scratch::with_tenants("state");
    let server = DevServer::start(&scratch.0, &[]);
    let counts: Vec<i64> = (0..5)
        .map(|_| get(server.port, "/probe/count").json().as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    // sqlite3 in a read-write mount keeps data across requests and instances.
    request(
        server.port,
        "POST",
        "/notes/",
        &[],
        "première note".as_bytes(),
    );
    let notes = get(server.port, "/notes/").json();
    let notes = notes["notes"].as_array().unwrap();
    assert_eq!(notes.last().unwrap(), "première note");
    assert!(scratch.path("notes/data/notes.sqlite3").is_file());
}

fn probe(port: u16, what: &str, arg: &str) -> serde_json::Value {
    let reply = get(port, &format!("/probe/{what}?p={arg}"));
    assert_eq!(reply.status, 200, "{what} {arg}: {}", reply.text());
    reply.json()
}

fn assert_denied(port: u16, what: &str, arg: &str) {
    let result = probe(port, what, arg);
    assert_eq!(result["ok"], false, "{what} {arg} must fail, got {result}");
}

#[test]
fn a_tenant_sees_only_what_its_policy_grants() {
    let scratch = Scratch::with_tenants("isolation");
    // A symlink planted in the tenant's own tree, pointing out of it.
    std::os::unix::fs::symlink("/etc", scratch.path("probe/app/etc-link")).unwrap();
    std::os::unix::fs::symlink(
        scratch.path("neighbour/app"),
        scratch.path("probe/app/neighbour-link"),
    )
    .unwrap();
    let server = DevServer::start(
        &scratch.0,
        &[("WASMPY_TEST_HOST_SECRET", "host-secret-1234")],
    );
    let port = server.port;
    let neighbour_file = scratch.path("neighbour/app/secret.txt");

    assert_denied(port, "read", "/etc/passwd");
    assert_denied(port, "list", "/");
    assert_denied(port, "read", &neighbour_file.display().to_string());
    assert_denied(port, "read", "/app/../neighbour/app/secret.txt");
    assert_denied(port, "read", "/app/../../neighbour/app/secret.txt");
    assert_denied(port, "read", "/app/etc-link/passwd");
    assert_denied(port, "read", "/app/neighbour-link/secret.txt");
    assert_denied(port, "read", "/proc/self/environ");
    assert_denied(port, "write", "/app/owned.txt");
    assert_denied(port, "write", "/python/os.py");
    assert_denied(port, "write", "/owned.txt");
    assert_denied(port, "socket", "");
    assert!(!scratch.path("probe/app/owned.txt").exists());

    // Only the policy's environment, nothing of the host's (and TMPDIR,
    // inside the tenant's private state).
    let env = get(port, "/probe/env").json();
    assert_eq!(
        env,
        serde_json::json!({"GREETING": "granted by policy", "TMPDIR": "/.wasmpy/state/tmp"})
    );

    // What is granted works: its own code read-only, its rw mount.
    assert_eq!(probe(port, "read", "/app/wsgi.py")["ok"], true);
    assert_eq!(probe(port, "write", "/scratch/note.txt")["ok"], true);
    assert_eq!(
        std::fs::read_to_string(scratch.path("probe/scratch/note.txt")).unwrap(),
        "owned"
    );
}

#[test]
fn the_whole_usable_standard_library_imports_at_run_time() {
    // C extension modules that CPython's WASI build does not have; every
    // other module of sys.stdlib_module_names must import.
    const ABSENT_ON_WASI: &[&str] = &[
        "_bz2",
        "_ctypes",
        "_curses",
        "_curses_panel",
        "_dbm",
        "_gdbm",
        "_hashlib",
        "_interpchannels",
        "_interpqueues",
        "_interpreters",
        "_lzma",
        "_multiprocessing",
        "_overlapped",
        "_posixshmem",
        "_posixsubprocess",
        "_remote_debugging",
        "_scproxy",
        "_ssl",
        "_tkinter",
        "_uuid",
        "_winapi",
        "_wmi",
        "_zstd",
        "fcntl",
        "grp",
        "mmap",
        "msvcrt",
        "nt",
        "pwd",
        "readline",
        "resource",
        "syslog",
        "termios",
        "winreg",
        "winsound",
    ];
    let scratch = Scratch::with_tenants("stdlib");
    let server = DevServer::start(&scratch.0, &[]);
    let reply = get(server.port, "/stdlib/");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let failed = reply.json();
    let failed = failed.as_object().unwrap();
    for (module, error) in failed {
        let error = error.as_str().unwrap();
        let missing = error
            .strip_prefix("ModuleNotFoundError: No module named '")
            .and_then(|rest| rest.strip_suffix('\''));
        assert!(
            missing.is_some_and(|m| ABSENT_ON_WASI.contains(&m)),
            "stdlib module {module} failed to import: {error}"
        );
    }
    for module in [
        "encodings.idna",
        "__future__",
        "email",
        "sqlite3",
        "json",
        "decimal",
        "zoneinfo",
    ] {
        assert!(!failed.contains_key(module), "{module} must import");
    }
    assert!(failed.len() < 50, "too many failures: {failed:?}");
}

#[test]
fn memory_bombs_and_infinite_loops_fail_alone() {
    let scratch = Scratch::with_tenants("limits");
    let server = DevServer::start(&scratch.0, &[]);
    let port = server.port;
    assert_eq!(get(port, "/probe/count").json(), 1);
    assert_eq!(get(port, "/probe/count").json(), 2);

    let attacks: Vec<_> = [
        "/probe/spin",
        "/probe/bomb",
        "/probe/bigalloc",
        "/probe/sleep",
    ]
    .into_iter()
    .map(|path| {
        std::thread::spawn(move || {
            let started = Instant::now();
            let reply = get(port, path);
            (path, reply.status, started.elapsed())
        })
    })
    .collect();
    // The neighbour keeps answering, quickly, while the attacks run.
    let slowest = wasmpy_tests::neighbour_answers(port, 20);
    assert!(
        slowest < Duration::from_millis(500),
        "neighbour slowed to {slowest:?}"
    );
    for attack in attacks {
        let (path, status, elapsed) = attack.join().unwrap();
        // The probe's request_timeout is 2 s; its queue_timeout 1 s.
        assert!((500..=504).contains(&status), "{path}: {status}");
        assert!(elapsed < Duration::from_secs(6), "{path} took {elapsed:?}");
        if path.ends_with("spin") || path.ends_with("sleep") {
            assert!(status == 504 || status == 503, "{path}: {status}");
        }
    }
    // The instances that timed out or ran out of memory were replaced: the
    // probe answers again, from a fresh instance.
    let count = get(port, "/probe/count");
    assert_eq!(count.status, 200);
    assert!(
        count.json().as_i64().unwrap() <= 2,
        "expected a new instance, got {}",
        count.text()
    );
}

#[test]
fn a_trapped_instance_is_replaced() {
    let scratch = Scratch::with_tenants("trap");
    let server = DevServer::start(&scratch.0, &[]);
    let port = server.port;
    for expected in 1..=3 {
        assert_eq!(get(port, "/probe/count").json(), expected);
    }
    let started = Instant::now();
    assert_eq!(get(port, "/probe/spin").status, 504);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    // A fresh instance starts counting again.
    assert_eq!(get(port, "/probe/count").json(), 1);
    assert!(server.process.log_text().contains("instance replaced"));
}

#[test]
fn application_errors_become_500_with_a_traceback_in_the_tenant_log() {
    let scratch = Scratch::with_tenants("errors");
    let server = DevServer::start(&scratch.0, &[]);
    let port = server.port;
    let reply = get(port, "/probe/raise");
    assert_eq!(reply.status, 500);
    assert!(
        !reply.text().contains("probe raised"),
        "no traceback to the client"
    );
    let bad = get(port, "/probe/badheader");
    assert_eq!(bad.status, 500);
    assert!(bad.header("set-cookie").is_none());
    let cookies = get(port, "/probe/cookies");
    assert_eq!(cookies.header_all("set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(get(port, "/probe/print").status, 200);
    let too_big = request(port, "POST", "/probe/count", &[], &vec![b'x'; 2 << 20]);
    assert_eq!(too_big.status, 413);
    // The instance survived all of it.
    assert_eq!(get(port, "/probe/count").status, 200);
    let log = server.process.log_text();
    assert!(
        log.contains("RuntimeError: probe raised on purpose"),
        "{log}"
    );
    assert!(log.contains("tenant=\"probe\""), "{log}");
    assert!(log.contains("probe says hello on stdout"), "{log}");
}

#[test]
fn tenant_bytecode_is_cached() {
    let scratch = Scratch::with_tenants("pycache");
    let cache = scratch.path("cache");
    wasmpy_tests::seed_cache(&cache);
    let port = wasmpy_tests::free_port();
    let mut command = Command::new(binary("wasmpy"));
    command.args([
        "serve",
        scratch.0.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    command.arg("--cache-dir").arg(&cache);
    let _server = wasmpy_tests::Process::spawn(command, scratch.path("serve.log"));
    wasmpy_tests::wait_for_port(port, Duration::from_secs(120));
    assert_eq!(get(port, "/flask/").status, 200);
    let cached = walk(&cache.join("pycache/flask"));
    assert!(
        cached.iter().any(|p| p.ends_with("wsgi.cpython-314.pyc"))
            && cached.iter().any(|p| p.contains("werkzeug")),
        "no bytecode cached: {cached:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_bad_policy_is_refused_with_file_line_and_key() {
    let scratch = Scratch::with_tenants("badpolicy");
    let policy = scratch.path("hello/policy.toml");
    std::fs::write(
        &policy,
        "entry = \"wsgi:application\"\n\n[limits]\nmemory = \"12 parsecs\"\n",
    )
    .unwrap();
    let output = Command::new(binary("wasmpy"))
        .arg("check")
        .arg(scratch.path("hello"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let canonical = policy.canonicalize().unwrap();
    assert!(
        stderr.contains(&format!("{}:4:", canonical.display())) && stderr.contains("limits.memory"),
        "{stderr}"
    );

    std::fs::write(
        scratch.path("neighbour/policy.toml"),
        "[limits]\nmax_instances = 2\ncolour = \"red\"\n",
    )
    .unwrap();
    let output = Command::new(binary("wasmpy"))
        .arg("check")
        .arg(&scratch.0)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("policy.toml:3:") && stderr.contains("limits.colour"),
        "{stderr}"
    );

    // The server refuses those tenants and serves the others.
    let server = DevServer::start(&scratch.0, &[]);
    assert_eq!(get(server.port, "/hello/").status, 404);
    assert_eq!(get(server.port, "/probe/count").status, 200);
    assert!(server.process.log_text().contains("limits.memory"));
}
