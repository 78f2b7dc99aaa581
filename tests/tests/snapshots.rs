//! Per-tenant snapshots (issue 12): the `tests/snapshots/snap` tenant's
//! instances are recycled after every request, so each request meets a new
//! instance; once the tenant's snapshot is built, new instances start from
//! it instead of importing the application.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmpy_tests::{copy_tree, get, poll, repo, Apache, Scratch};

/// A scratch tenants root holding only `snap`, with its own cache (so that
/// the snapshot is built by this test).
fn tenants(label: &str) -> (Scratch, std::path::PathBuf) {
    let scratch = Scratch::new(&format!("snapshots-{label}"));
    copy_tree(&repo().join("tests/snapshots/snap"), &scratch.path("snap"));
    let cache = scratch.path("cache");
    copy_tree(&wasmpy_tests::cache_dir(), &cache);
    (scratch, cache)
}

fn snapshot_files(cache: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("snap-") && name.ends_with(".cwasm")
        })
        .collect()
}

fn imports(scratch: &Scratch) -> usize {
    std::fs::read_to_string(scratch.path("snap/scratch/imports.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn start(scratch: &Scratch, cache: &Path) -> Apache {
    Apache::start_with_cache(&scratch.0, "event", cache)
}

#[test]
fn restored_instances_behave_as_freshly_imported_ones() {
    let (scratch, cache) = tenants("restore");
    let apache = start(&scratch, &cache);
    let port = apache.port;
    let first = get(port, "/snap/");
    assert_eq!(first.status, 200, "{}", apache.error_log());
    // The snapshot is built in the background, once for the server.
    poll("the snapshot files", Duration::from_secs(120), || {
        (snapshot_files(&cache).len() == 2).then_some(())
    });
    // Wait until a request is served by a restored instance: no new import.
    let before = imports(&scratch);
    let answers: Vec<Value> = (0..6)
        .map(|_| {
            let reply = get(port, "/snap/");
            assert_eq!(reply.status, 200, "{}", apache.error_log());
            reply.json()
        })
        .collect();
    let after = imports(&scratch);
    assert!(
        after - before <= 2,
        "{} imports for 6 new instances: the snapshot is not used\n{}",
        after - before,
        apache.error_log()
    );
    for answer in &answers {
        // Module state as right after the import, in every instance.
        assert_eq!(answer["counter"], 1, "{answer}");
        assert_eq!(answer["greeting"], "from the policy", "{answer}");
        assert_eq!(
            answer["data"], "data file read after the restore",
            "{answer}"
        );
    }
    // Entropy differs per instance.
    let randoms: std::collections::BTreeSet<String> =
        answers.iter().map(|a| a["random"].to_string()).collect();
    let temp_names: std::collections::BTreeSet<String> =
        answers.iter().map(|a| a["temp_name"].to_string()).collect();
    assert_eq!(randoms.len(), answers.len(), "{answers:?}");
    assert_eq!(temp_names.len(), answers.len(), "{answers:?}");

    // A new instance from the snapshot answers quickly.
    let started = Instant::now();
    assert_eq!(get(port, "/snap/").status, 200);
    let elapsed = started.elapsed();
    eprintln!("new instance from the snapshot answered in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn a_corrupted_snapshot_is_rebuilt_never_run() {
    let (scratch, cache) = tenants("corrupt");
    {
        let apache = start(&scratch, &cache);
        assert_eq!(get(apache.port, "/snap/").status, 200);
        poll("the snapshot files", Duration::from_secs(120), || {
            (snapshot_files(&cache).len() == 2).then_some(())
        });
    }
    // Flip bytes in the middle of the tenant's heap module.
    let files = snapshot_files(&cache);
    let m0 = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-m0.cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(m0).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    std::fs::write(m0, &bytes).unwrap();
    let corrupted = bytes;
    let apache = start(&scratch, &cache);
    let port = apache.port;
    for _ in 0..3 {
        let reply = get(port, "/snap/");
        assert_eq!(reply.status, 200, "{}", apache.error_log());
        assert_eq!(reply.json()["counter"], 1);
    }
    poll("a rebuilt snapshot", Duration::from_secs(120), || {
        let now = std::fs::read(m0).ok()?;
        (now != corrupted).then_some(())
    });
    let reply = get(port, "/snap/");
    assert_eq!(reply.status, 200, "{}", apache.error_log());
    assert!(
        apache.error_log().contains("wrong digest"),
        "{}",
        apache.error_log()
    );
}

#[test]
fn an_import_failure_gives_no_snapshot_and_the_old_generation_keeps_serving() {
    let (scratch, cache) = tenants("failing");
    let apache = start(&scratch, &cache);
    let port = apache.port;
    assert_eq!(get(port, "/snap/").status, 200);
    poll("the snapshot files", Duration::from_secs(120), || {
        (snapshot_files(&cache).len() == 2).then_some(())
    });
    let wsgi = scratch.path("snap/app/wsgi.py");
    let source = std::fs::read_to_string(&wsgi).unwrap();
    std::fs::write(
        &wsgi,
        format!("{source}\nraise RuntimeError('broken deployment')\n"),
    )
    .unwrap();
    // The reload is refused; the old generation serves on.
    poll("the refusal in the log", Duration::from_secs(30), || {
        apache
            .error_log()
            .contains("new deployment refused")
            .then_some(())
    });
    for _ in 0..3 {
        let reply = get(port, "/snap/");
        assert_eq!(reply.status, 200, "{}", apache.error_log());
    }
    assert_eq!(
        snapshot_files(&cache).len(),
        2,
        "no snapshot of the broken deployment"
    );
}
