//! End-to-end tests of mod_wasmpy.so in the real Debian Apache, under the
//! event and the prefork MPM: routing, bodies, headers, errors, logs,
//! hostile tenants.

use std::process::Command;
use std::time::{Duration, Instant};

use wasmpy_tests::{binary, get, raw, request, Apache, Scratch};

/// Routing styles, bodies (plain and chunked), query strings, non-ASCII
/// paths, repeated Set-Cookie, Apache's output filters and access log.
fn serves_applications(mpm: &str) {
    let scratch = Scratch::with_tenants(&format!("apache-apps-{mpm}"));
    let apache = Apache::start(&scratch.0, mpm);
    let port = apache.port;

    let hello = get(port, "/hello/");
    assert_eq!(
        hello.status,
        200,
        "{}\n{}",
        hello.text(),
        apache.error_log()
    );
    assert!(hello.text().starts_with("Hello from a sandboxed WSGI app!"));
    let by_host = request(
        port,
        "GET",
        "/",
        &[("Host", &format!("hello.localhost:{port}"))],
        b"",
    );
    assert!(
        by_host
            .text()
            .starts_with("Hello from a sandboxed WSGI app!"),
        "{}",
        by_host.text()
    );

    let flask = get(port, "/flask/?name=Ada");
    assert!(flask.text().contains("Hello, Ada!"), "{}", flask.text());
    let flask_host = request(
        port,
        "GET",
        "/?name=Grace",
        &[("Host", "flask.localhost")],
        b"",
    );
    assert!(
        flask_host.text().contains("Hello, Grace!"),
        "{}",
        flask_host.text()
    );
    let json = request(
        port,
        "POST",
        "/flask/json?x=1&y=%C3%A9",
        &[("Content-Type", "text/plain")],
        b"payload",
    );
    assert_eq!(json.json()["data"], "payload");
    assert_eq!(json.json()["args"]["y"], "é");

    // WSGI environ through Apache.
    let env = request(
        port,
        "POST",
        "/hello/environ/caf%C3%A9?q=1%202",
        &[("X-Custom", "v")],
        b"abc",
    );
    let env = env.json();
    assert_eq!(env["SCRIPT_NAME"], "/hello");
    assert_eq!(env["PATH_INFO"], "/environ/caf\u{c3}\u{a9}");
    assert_eq!(env["QUERY_STRING"], "q=1%202");
    assert_eq!(env["REQUEST_URI"], "/hello/environ/caf%C3%A9?q=1%202");
    assert_eq!(env["CONTENT_LENGTH"], "3");
    assert_eq!(env["HTTP_X_CUSTOM"], "v");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["SERVER_PORT"], port.to_string());
    assert_eq!(env["wsgi.url_scheme"], "http");

    // A POST body, and a chunked upload de-chunked by Apache's input filters.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(request(port, "POST", "/hello/echo", &[], &body).body, body);
    let chunked = raw(
        port,
        b"POST /hello/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    );
    assert_eq!(
        (chunked.status, chunked.text().as_str()),
        (200, "hello, world")
    );

    let cookies = get(port, "/probe/cookies");
    assert_eq!(cookies.header_all("set-cookie"), vec!["a=1", "b=2"]);
    // mod_headers and mod_deflate apply to application responses.
    assert_eq!(cookies.header("x-content-type-options"), Some("nosniff"));
    let gz = request(port, "GET", "/flask/", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(
        gz.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        gz.headers
    );

    // State persists in an instance (per Apache child).
    let counts: Vec<i64> = (0..3)
        .map(|_| get(port, "/probe/count").json().as_i64().unwrap())
        .collect();
    assert!(
        counts.iter().any(|&c| c > 1) || mpm == "prefork",
        "{counts:?}"
    );

    assert!(
        apache
            .access_log()
            .contains("\"GET /flask/?name=Ada HTTP/1.1\" 200"),
        "{}",
        apache.access_log()
    );
}

/// 404, 500 (with the traceback in the error log), 504, 413, CR/LF headers.
fn maps_errors(mpm: &str) {
    let scratch = Scratch::with_tenants(&format!("apache-errors-{mpm}"));
    let apache = Apache::start(&scratch.0, mpm);
    let port = apache.port;
    assert_eq!(get(port, "/nobody/here").status, 404);
    assert_eq!(get(port, "/flask/no-such-page").status, 404);

    let failed = get(port, "/probe/raise");
    assert_eq!(failed.status, 500);
    assert!(!failed.text().contains("probe raised"));
    let bad_header = get(port, "/probe/badheader");
    assert_eq!(bad_header.status, 500);
    assert!(bad_header.header("set-cookie").is_none());

    let started = Instant::now();
    assert_eq!(get(port, "/probe/spin").status, 504);
    assert!(started.elapsed() < Duration::from_secs(5));

    // probe: max_body = 1MiB, declared or chunked.
    assert_eq!(
        request(
            port,
            "POST",
            "/probe/count",
            &[],
            &vec![b'x'; (1 << 20) + 1]
        )
        .status,
        413
    );
    let mut chunked = b"POST /probe/count HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 100_000).as_bytes());
        chunked.extend_from_slice(&vec![b'y'; 100_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(port, &chunked).status, 413);
    let after = get(port, "/probe/count");
    assert_eq!(
        after.status,
        200,
        "{}\n{}",
        after.text(),
        apache.error_log()
    );

    let log = apache.error_log();
    assert!(
        log.contains("[tenant probe] RuntimeError: probe raised on purpose"),
        "{log}"
    );
    assert!(
        log.contains("[tenant probe] Traceback (most recent call last):"),
        "{log}"
    );

    // The status page counts what happened (in the child that answers it).
    let status = get(port, "/wasmpy-status?json");
    assert_eq!(status.status, 200);
    assert!(
        status.json()["tenants"]["probe"]["requests"]
            .as_u64()
            .is_some(),
        "{}",
        status.text()
    );
    assert!(get(port, "/wasmpy-status").text().contains("<table"));
}

/// Memory bombs and infinite loops get 5xx; Apache's children stay up and the
/// neighbour keeps answering.
fn survives_hostile_tenants(mpm: &str) {
    let scratch = Scratch::with_tenants(&format!("apache-hostile-{mpm}"));
    let apache = Apache::start(&scratch.0, mpm);
    let port = apache.port;
    assert_eq!(get(port, "/neighbour/").status, 200);
    let children_before = apache.children();
    assert!(!children_before.is_empty());

    let attacks: Vec<_> = [
        "/probe/bomb",
        "/probe/spin",
        "/probe/bigalloc",
        "/probe/spin",
    ]
    .into_iter()
    .map(|path| std::thread::spawn(move || (path, get(port, path).status)))
    .collect();
    let slowest = wasmpy_tests::neighbour_answers(port, 20);
    assert!(
        slowest < Duration::from_secs(1),
        "neighbour slowed to {slowest:?}"
    );
    for attack in attacks {
        let (path, status) = attack.join().unwrap();
        assert!((500..=504).contains(&status), "{path}: {status}");
    }
    assert_eq!(get(port, "/probe/count").status, 200);
    let log = apache.error_log();
    assert!(!log.contains("exit signal"), "a child crashed:\n{log}");
    for pid in children_before {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} died:\n{log}"
        );
    }
}

macro_rules! under_both_mpms {
    ($($name:ident),*) => {
        mod event {
            $(#[test] fn $name() { super::$name("event") })*
        }
        mod prefork {
            $(#[test] fn $name() { super::$name("prefork") })*
        }
    };
}

under_both_mpms!(serves_applications, maps_errors, survives_hostile_tenants);

#[test]
fn requests_beyond_max_instances_queue_then_get_503() {
    // Event MPM: one child serves concurrent requests, so the tenant's
    // instance limit (probe: max_instances 2, queue_timeout 1s) is reached.
    let scratch = Scratch::with_tenants("apache-queue");
    std::fs::write(
        scratch.path("probe/app/../policy.toml"),
        "[limits]\nmax_instances = 1\nqueue_timeout = \"500ms\"\nrequest_timeout = \"3s\"\n",
    )
    .unwrap();
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    // Warm the children so that the next requests land on a busy sandbox.
    let sleeper = std::thread::spawn(move || get(port, "/probe/sleep").status);
    std::thread::sleep(Duration::from_millis(300));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = get(port, "/probe/count");
        if reply.status == 503 {
            assert_eq!(reply.header("retry-after"), Some("1"));
        }
        statuses.push(reply.status);
    }
    assert_eq!(sleeper.join().unwrap(), 504);
    // Requests that reached the busy child's sandbox waited 500 ms, then 503;
    // any that another child served got 200.
    assert!(
        statuses.iter().all(|s| *s == 503 || *s == 200),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "{statuses:?}\n{}",
        apache.error_log()
    );
}

/// `wasmpy apache --configtest` on the tenants of `scratch`.
fn configtest(scratch: &Scratch, run_dir: &str) -> std::process::Output {
    Command::new(binary("wasmpy"))
        .args([
            "apache",
            scratch.0.to_str().unwrap(),
            "--configtest",
            "--run-dir",
        ])
        .arg(scratch.path(run_dir))
        .output()
        .unwrap()
}

#[test]
fn configtest_rejects_a_bad_policy_with_file_line_and_key() {
    let scratch = Scratch::with_tenants("apache-configtest");
    let ok = configtest(&scratch, "run-ok");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(
        scratch.path("hello/policy.toml"),
        "# comment\n[limits]\nmemory = \"lots\"\n",
    )
    .unwrap();
    let bad = configtest(&scratch, "run-bad");
    assert!(!bad.status.success());
    let text = String::from_utf8_lossy(&bad.stderr);
    let policy = scratch.path("hello/policy.toml").canonicalize().unwrap();
    assert!(text.contains("Syntax error on line"), "{text}");
    assert!(
        text.contains(&format!("{}:3:", policy.display())) && text.contains("limits.memory"),
        "{text}"
    );
}

#[test]
fn the_installed_layout_serves_with_the_shipped_config() {
    let scratch = Scratch::with_tenants("install");
    let dest = scratch.path("root");
    let status = Command::new(wasmpy_tests::repo().join("scripts/install.sh"))
        .env("DESTDIR", &dest)
        .env("PROFILE", "debug")
        .env("SKIP_BUILD", "1")
        .status()
        .unwrap();
    assert!(status.success());
    for file in [
        "usr/lib/apache2/modules/mod_wasmpy.so",
        "usr/bin/wasmpy",
        "usr/share/wasmpy/runtime/gateway.wasm",
        "usr/share/wasmpy/runtime/python/os.py",
        "etc/apache2/mods-available/wasmpy.load",
        "etc/apache2/mods-available/wasmpy.conf",
    ] {
        assert!(dest.join(file).exists(), "{file} not installed");
    }
    // Run Apache on the installed files: the shipped .load and .conf, with
    // their absolute paths moved under DESTDIR.
    let relocate = |name: &str| {
        let text =
            std::fs::read_to_string(dest.join("etc/apache2/mods-available").join(name)).unwrap();
        let root = dest.display().to_string();
        text.replace(" /usr/", &format!(" {root}/usr/"))
            .replace(" /var/", &format!(" {root}/var/"))
    };
    let port = wasmpy_tests::free_port();
    let run = scratch.path("run");
    std::fs::create_dir_all(&run).unwrap();
    let user = if is_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let conf = format!(
        "ServerRoot {run}\nPidFile {run}/httpd.pid\nErrorLog {run}/error.log\nDefaultRuntimeDir {run}\nMutex file:{run} default\n\
         Listen 127.0.0.1:{port}\nServerName localhost\n{user}\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n{}\n{}\n\
         WasmPyApp /hello {}\n",
        relocate("wasmpy.load"),
        relocate("wasmpy.conf"),
        scratch.path("hello").display(),
        run = run.display(),
    );
    std::fs::write(run.join("httpd.conf"), conf).unwrap();
    if is_root() {
        Command::new("chown")
            .args(["-R", "www-data:www-data"])
            .arg(&run)
            .status()
            .unwrap();
    }
    let mut command = Command::new("/usr/sbin/apache2");
    command
        .arg("-f")
        .arg(run.join("httpd.conf"))
        .arg("-DFOREGROUND");
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut apache = wasmpy_tests::Process::spawn(command, scratch.path("apache.out"));
    wasmpy_tests::wait_for_port(port, Duration::from_secs(60));
    let reply = get(port, "/hello/");
    let error_log = std::fs::read_to_string(run.join("error.log")).unwrap_or_default();
    assert_eq!(reply.status, 200, "{}\n{error_log}", reply.text());
    assert!(reply.text().starts_with("Hello from a sandboxed WSGI app!"));
    apache.terminate(Duration::from_secs(15));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn graceful_restart_finishes_requests_in_flight_and_replaces_children() {
    let scratch = Scratch::with_tenants("graceful");
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    assert_eq!(get(port, "/hello/").status, 200);
    let old_children = apache.children();
    let in_flight = std::thread::spawn(move || get(port, "/probe/nap"));
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .arg("-USR1")
        .arg(apache.process.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let nap = in_flight.join().unwrap();
    assert_eq!((nap.status, nap.text().as_str()), (200, "\"rested\""));
    // The old children exit (their sandboxes shut down: threads joined).
    let started = Instant::now();
    while old_children
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "old children still running:\n{}",
            apache.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(port, "/hello/").status, 200);
    let log = apache.error_log();
    assert!(log.contains("Doing graceful restart"), "{log}");
    assert!(
        !log.contains("exit signal") && !log.contains("did not exit"),
        "{log}"
    );
}
