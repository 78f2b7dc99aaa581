//! WSGI streaming through the live request (issue 10, section 2), against
//! the real Apache + mod_wasmpy: `tests/tenants/stream/streamer` (a 64 MiB
//! memory cap, max_body 400 MiB) and `capped` (the same app, max_body
//! 1 MiB). One Apache (one event child, so that /wasmpy-status shows the
//! instance that served) for every check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmpy_tests::{copy_tree, get, neighbour_answers, repo, Apache, Scratch};

const MIB: usize = 1 << 20;
/// The big response and the big upload.
const BIG_MIB: usize = 300;
/// How much an instance's memory may grow while streaming.
const FLAT: u64 = 8 << 20;

fn memory(port: u16, tenant: &str) -> u64 {
    let reply = get(port, "/wasmpy-status?json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["tenants"][tenant]["memory_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no memory_bytes for {tenant}: {}", reply.text()))
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream
}

/// Read a whole response, counting the body's bytes without keeping them:
/// (status, head, body bytes, first bytes of the body).
fn count_response(stream: &mut TcpStream) -> (u16, String, u64, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed in the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut first = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("read after {total} body bytes: {e}"),
        };
        if first.len() < 512 {
            first.extend_from_slice(&buf[..n.min(512)]);
        }
        total += n as u64;
    }
    (status, head, total, first)
}

/// 64 KiB chunk `i` of the upload: pseudo-random bytes, index stamped.
fn upload_chunk(base: &[u8], i: u64) -> Vec<u8> {
    let mut chunk = base.to_vec();
    chunk[..8].copy_from_slice(&i.to_le_bytes());
    chunk
}

/// GET `path`: "first\n" must arrive within 800 ms, "second\n" at least
/// 700 ms after it.
fn first_then_second(port: u16, path: &str) -> Result<(), String> {
    let mut stream = connect(port);
    let sent = Instant::now();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (mut first_at, mut second_at) = (None, None);
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if first_at.is_none() && text.contains("first\n") {
            first_at = Some(sent.elapsed());
        }
        if second_at.is_none() && text.contains("second\n") {
            second_at = Some(sent.elapsed());
        }
    }
    match (first_at, second_at) {
        (Some(a), Some(b))
            if a < Duration::from_millis(800) && b >= a + Duration::from_millis(700) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{path}: first at {first_at:?}, second at {second_at:?}: {:?}",
            String::from_utf8_lossy(&data)
        )),
    }
}

#[test]
fn wsgi_streams_out_and_in_beyond_the_memory_cap() {
    let scratch = Scratch::new("streaming");
    copy_tree(&repo().join("tests/tenants/stream"), &scratch.0);
    // `capped` runs the same app as `streamer` with a small max_body.
    copy_tree(&scratch.path("streamer/app"), &scratch.path("capped/app"));
    copy_tree(
        &repo().join("tests/tenants/neighbour"),
        &scratch.path("neighbour"),
    );
    // The file for wsgi.file_wrapper: 32 MiB, half the memory cap.
    let blob: Vec<u8> = (0..32 * MIB).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(scratch.path("streamer/app/blob.bin"), &blob).unwrap();
    let streamer = scratch.path("streamer").canonicalize().unwrap();
    let conf = format!(
        "<Location /mpstream>\n    WasmPyTenant \"{}\"\n    SetHandler mod_python\n    PythonPath \"sys.path+['/app']\"\n    PythonHandler mphandler\n</Location>\n",
        streamer.display()
    );
    let apache = Apache::start_with_conf_args(&scratch.0, "event", &conf, &["--processes", "1"]);
    let port = apache.port;
    let mut failures: Vec<String> = Vec::new();
    let log = || apache.error_log();

    let reply = get(port, "/streamer/ping");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "pong"),
        "{}",
        log()
    );
    let base_memory = memory(port, "streamer");

    // 1. A generator that yields, sleeps 1 s, yields: the first chunk
    //    reaches the client long before the second exists. The same with
    //    a mod_python handler of the same tenant (req.write flushes).
    for path in ["/streamer/slow", "/mpstream/x"] {
        if let Err(e) = first_then_second(port, path) {
            failures.push(e);
        }
    }

    // 2. 300 MB generated chunk by chunk under a 64 MiB cap.
    {
        let mut stream = connect(port);
        stream
            .write_all(format!("GET /streamer/big?{BIG_MIB} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let (status, head, total, first) = count_response(&mut stream);
        let expected_start: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        if status != 200
            || total != (BIG_MIB * MIB) as u64
            || first[..512.min(first.len())] != expected_start[..512.min(first.len())]
        {
            failures.push(format!(
                "big response: {status}, {total} bytes of {}\n{head}",
                BIG_MIB * MIB
            ));
        }
        let after = memory(port, "streamer");
        if after > base_memory + FLAT {
            failures.push(format!("big response: memory {base_memory} -> {after}"));
        }
    }
    let reply = get(port, "/streamer/ping");
    if reply.status != 200 {
        failures.push(format!(
            "after the big response: {} {}",
            reply.status,
            reply.text()
        ));
    }

    // 3. A 300 MB upload hashed by the app (wsgi.input read on demand).
    {
        let base: Vec<u8> = (0..64 * 1024u64)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let chunks = (BIG_MIB * MIB / base.len()) as u64;
        let mut sha = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stream = connect(port);
        stream
            .write_all(
                format!(
                    "POST /streamer/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                    BIG_MIB * MIB
                )
                .as_bytes(),
            )
            .unwrap();
        let mut sha_in = sha.stdin.take().unwrap();
        let mut write_error = None;
        for i in 0..chunks {
            let chunk = upload_chunk(&base, i);
            sha_in.write_all(&chunk).unwrap();
            if write_error.is_none() {
                if let Err(e) = stream.write_all(&chunk) {
                    write_error = Some(format!("after {i} chunks: {e}"));
                }
            }
        }
        drop(sha_in);
        let mut expected = String::new();
        sha.stdout
            .take()
            .unwrap()
            .read_to_string(&mut expected)
            .unwrap();
        sha.wait().unwrap();
        let expected = format!(
            "{} {}",
            BIG_MIB * MIB,
            expected.split_whitespace().next().unwrap()
        );
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        if write_error.is_some()
            || !response.starts_with("HTTP/1.1 200")
            || !response.contains(&expected)
        {
            failures.push(format!(
                "big upload: write error {write_error:?}; expected {expected:?} in\n{response}"
            ));
        }
        let after = memory(port, "streamer");
        if after > base_memory + FLAT {
            failures.push(format!("big upload: memory {base_memory} -> {after}"));
        }
    }

    // 4. max_body: 413 up front for a declared length over it...
    {
        let mut stream = connect(port);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(format!("POST /capped/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", 2 * MIB).as_bytes())
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        if !response.starts_with("HTTP/1.1 413") {
            failures.push(format!(
                "declared length over max_body (no body sent): {response:?}"
            ));
        }
    }
    // ... and for a chunked body as it crosses it.
    {
        let mut stream = connect(port);
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(format!("POST /capped/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes())
            .unwrap();
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0;
        for _ in 0..64 {
            let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
            piece.extend_from_slice(&chunk);
            piece.extend_from_slice(b"\r\n");
            if stream.write_all(&piece).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        if !response.starts_with("HTTP/1.1 413") {
            failures.push(format!(
                "chunked body over max_body ({sent} bytes sent): {response:?}"
            ));
        }
    }
    let reply = get(port, "/capped/ping");
    if reply.status != 200 {
        failures.push(format!(
            "capped after the 413s: {} {}",
            reply.status,
            reply.text()
        ));
    }

    // 5. wsgi.file_wrapper: the exact bytes, sent by the host.
    {
        let before = memory(port, "streamer");
        let reply = get(port, "/streamer/file");
        if reply.status != 200 || reply.body != blob {
            failures.push(format!(
                "file_wrapper: {} {} bytes of {}",
                reply.status,
                reply.body.len(),
                blob.len()
            ));
        }
        let after = memory(port, "streamer");
        if after > before + FLAT {
            failures.push(format!(
                "file_wrapper: memory {before} -> {after} (the file went through the guest)"
            ));
        }
    }
    neighbour_answers(port, 2);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n--- error log:\n{}",
        failures.len(),
        failures.join("\n"),
        log()
    );
}
