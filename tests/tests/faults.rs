//! Fault tests: a killed Apache child, a corrupted or foreign compiled
//! runtime, a tenant directory removed while serving.

use std::process::Command;
use std::time::{Duration, Instant};

use wasmpy_tests::{binary, get, seed_cache, Apache, Load, Scratch};

#[test]
fn killing_an_apache_child_under_load_leaves_the_others_serving() {
    let scratch = Scratch::with_tenants("kill-child");
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    assert_eq!(get(port, "/hello/").status, 200);
    let children = apache.children();
    assert!(children.len() >= 2, "{children:?}");

    let load = Load::start(port, "/hello/", 4);
    std::thread::sleep(Duration::from_millis(1000));
    let killed_at = load.elapsed();
    Command::new("kill")
        .arg("-KILL")
        .arg(children[0].to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let seen = load.finish();
    let after: Vec<_> = seen
        .iter()
        .filter(|(t, _, _)| *t > killed_at + Duration::from_millis(200))
        .collect();
    assert!(
        after.len() > 50,
        "only {} requests after the kill",
        after.len()
    );
    assert!(
        after.iter().all(|(_, s, _)| *s == 200),
        "failures after the kill: {:?}",
        after
            .iter()
            .filter(|(_, s, _)| *s != 200)
            .collect::<Vec<_>>()
    );
    // Apache replaces the child.
    let started = Instant::now();
    while apache.children().len() < children.len() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no replacement child"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(port, "/neighbour/").text(), "neighbour ok");
}

/// `wasmpy prepare` on a private copy of the cache; its log.
fn prepare(cache: &std::path::Path) -> String {
    let output = Command::new(binary("wasmpy"))
        .arg("prepare")
        .arg("--cache-dir")
        .arg(cache)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sha256_hex(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_corrupted_or_foreign_compiled_runtime_is_recompiled_never_run() {
    let scratch = Scratch::new("cwasm");
    let cache = scratch.path("cache");
    let cwasm = seed_cache(&cache);
    assert!(prepare(&cache).contains("loaded compiled runtime"));

    // Corrupted: bytes flipped in the middle of the machine code.
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4096] {
        *b ^= 0xff;
    }
    std::fs::write(&cwasm, &bytes).unwrap();
    let log = prepare(&cache);
    assert!(
        log.contains("wrong digest, recompiling") && log.contains("compiled runtime"),
        "{log}"
    );
    assert_eq!(
        sha256_hex(&cwasm),
        std::fs::read_to_string(cwasm.with_extension("cwasm.sha256"))
            .unwrap()
            .trim()
    );

    // Foreign: another wasmtime version's header, with a matching digest
    // (as if written by another build): wasmtime's own check refuses it.
    let mut bytes = std::fs::read(&cwasm).unwrap();
    // The `.wasmtime.engine` section starts with the length-prefixed
    // wasmtime major version, then the target triple.
    let header = b"\x0248\x18x86_64-unknown-linux-gnu";
    let at = bytes
        .windows(header.len())
        .position(|w| w == header)
        .expect("no engine header in the .cwasm");
    bytes[at + 1..at + 3].copy_from_slice(b"47");
    std::fs::write(&cwasm, &bytes).unwrap();
    std::fs::write(cwasm.with_extension("cwasm.sha256"), sha256_hex(&cwasm)).unwrap();
    let log = prepare(&cache);
    assert!(
        log.contains("cached runtime rejected, recompiling"),
        "{log}"
    );
    assert!(prepare(&cache).contains("loaded compiled runtime"));
}

#[test]
fn a_tenant_directory_removed_while_serving_gets_404_without_a_crash() {
    let scratch = Scratch::with_tenants("removed");
    let apache = Apache::start(&scratch.0, "event");
    let port = apache.port;
    assert_eq!(get(port, "/hello/").status, 200);
    std::fs::remove_dir_all(scratch.path("hello")).unwrap();
    let started = Instant::now();
    loop {
        let status = get(port, "/hello/").status;
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "while the removal is noticed");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still served after 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(port, "/neighbour/").text(), "neighbour ok");
    let log = apache.error_log();
    assert!(
        log.contains("[tenant hello] mod_wasmpy: tenant directory removed"),
        "{log}"
    );
    assert!(!log.contains("exit signal"), "{log}");
}
