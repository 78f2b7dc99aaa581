//! `wasmpy_policies::parse_policy` on arbitrary text (bytes decoded as lossy
//! UTF-8). It must never panic, and its results must keep their promises:
//!
//! - every error names the given file, has a non-empty message, and a line
//!   that is 0 (no position) or within the input (at most lines + 1), with a
//!   column exactly when it has a line;
//! - an accepted policy satisfies the documented rules (docs/policy.md),
//!   checked here independently of the parser: ranges of every limit,
//!   `min_idle <= max_instances`, `max_memory_high_water <= memory`, env
//!   names, and mounts (guest paths absolute, normalised, not at or under
//!   `/app`, `/python`, `/.wasmpy`, not overlapping; host directories inside
//!   the tenant directory and outside `app/`).
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wasmpy_policies::{parse_policy, Policy, PolicyErrors};

const FILE: &str = "/fuzz/t/policy.toml";

/// A real tenant directory, shared by all fuzzing processes (`-jobs`,
/// `-fork`) and created on first use; nothing writes to it afterwards:
///
/// ```text
/// $TMPDIR/wasmpy-fuzz-tenant/  app/  data/  data/sub/  media/  notes.txt  link -> data
/// ```
///
/// so that valid mounts (`data`, `data/sub`, `media`), nested mounts, files
/// and symlinks are all reachable by the fuzzer.
fn tenant_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("wasmpy-fuzz-tenant");
        for sub in ["app", "data/sub", "media"] {
            fs::create_dir_all(dir.join(sub)).expect("create tenant directory");
        }
        fs::write(dir.join("notes.txt"), "not a directory\n").expect("create file");
        match std::os::unix::fs::symlink("data", dir.join("link")) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => other.expect("create symlink"),
        }
        let link = fs::symlink_metadata(dir.join("link")).expect("stat link");
        assert!(
            link.file_type().is_symlink(),
            "{}/link must be a symlink",
            dir.display()
        );
        fs::canonicalize(&dir).expect("canonicalize tenant directory")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = Path::new(FILE);
    let tenant = tenant_dir();
    match parse_policy(&text, file, tenant) {
        Ok(policy) => check_policy(&policy, tenant),
        Err(errors) => check_errors(&errors, &text, file),
    }
});

fn check_errors(errors: &PolicyErrors, text: &str, file: &Path) {
    assert!(!errors.0.is_empty(), "Err with no errors");
    let max_line = text.lines().count() + 1;
    for error in &errors.0 {
        assert!(!error.message.is_empty(), "empty message: {error:?}");
        assert_eq!(error.file, file, "wrong file: {error:?}");
        assert!(
            error.line <= max_line,
            "line {} beyond the input ({} lines): {error:?}",
            error.line,
            max_line - 1
        );
        assert_eq!(
            error.line == 0,
            error.column == 0,
            "line and column must both be set or both be 0: {error:?}"
        );
        // Rendering must not panic and must start with the file.
        assert!(error.to_string().starts_with(FILE));
    }
    let _ = errors.to_string();
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const MIB: u64 = 1 << 20;
const RESERVED: [&str; 3] = ["/app", "/python", "/.wasmpy"];

/// `a` equals `b` or is below it, on path-segment boundaries.
fn at_or_under(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
}

fn check_policy(policy: &Policy, tenant: &Path) {
    let entry = &policy.entry;
    assert!(entry.module.split('.').all(is_identifier), "{entry:?}");
    assert!(is_identifier(&entry.callable), "{entry:?}");

    let l = &policy.limits;
    assert!(l.min_idle <= l.max_instances, "{l:?}");
    if let Some(high_water) = l.memory_high_water {
        assert!(high_water <= l.memory_bytes, "{l:?}");
    }
    assert!((16 * MIB..=4096 * MIB).contains(&l.memory_bytes), "{l:?}");
    assert!(
        (Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&l.request_timeout),
        "{l:?}"
    );
    assert!((1..=64).contains(&l.max_instances), "{l:?}");
    assert!(l.queue_timeout <= Duration::from_secs(600), "{l:?}");
    assert!(l.max_body_bytes <= 1024 * MIB, "{l:?}");
    assert!(l.log_limit_bytes <= 16 * MIB, "{l:?}");
    assert_ne!(l.recycle_after, Some(0), "0 must mean never: {l:?}");
    assert_ne!(
        l.idle_timeout,
        Some(Duration::ZERO),
        "0s must mean never: {l:?}"
    );

    for (i, (name, value)) in policy.env.iter().enumerate() {
        assert!(is_identifier(name), "env name {name:?}");
        assert!(!name.starts_with("WASMPY_"), "env name {name:?}");
        assert!(!value.contains('\0'), "env value of {name:?} has a NUL");
        if i > 0 {
            assert!(
                policy.env[i - 1] < policy.env[i],
                "env not sorted / duplicate"
            );
        }
    }

    let app = tenant.join("app");
    for (i, mount) in policy.mounts.iter().enumerate() {
        let guest = mount.guest.as_str();
        assert!(guest.starts_with('/') && guest.len() > 1, "guest {guest:?}");
        assert!(
            guest[1..].split('/').all(|c| !matches!(c, "" | "." | "..")),
            "guest not normalised: {guest:?}"
        );
        assert!(!guest.contains('\0'), "guest {guest:?}");
        for reserved in RESERVED {
            assert!(
                !at_or_under(guest, reserved),
                "guest {guest:?} under {reserved}"
            );
            assert!(
                !at_or_under(reserved, guest),
                "guest {guest:?} hides {reserved}"
            );
        }
        let host = &mount.host;
        assert!(host.is_absolute(), "host {host:?}");
        assert!(
            host.starts_with(tenant) && host != tenant,
            "host {host:?} outside {tenant:?}"
        );
        assert!(
            !host.starts_with(&app),
            "host {host:?} is the code directory"
        );
        assert_eq!(
            fs::canonicalize(host).ok().as_deref(),
            Some(host.as_path()),
            "host not canonical"
        );
        assert!(host.is_dir(), "host {host:?} not a directory");
        for earlier in &policy.mounts[..i] {
            assert!(
                !at_or_under(guest, &earlier.guest) && !at_or_under(&earlier.guest, guest),
                "overlapping guests {guest:?} and {:?}",
                earlier.guest
            );
            let nested = |a: &Path, b: &Path| a != b && a.starts_with(b);
            assert!(
                !(nested(host, &earlier.host) && earlier.writable)
                    && !(nested(&earlier.host, host) && mount.writable),
                "nested mounts with a writable outer one: {host:?}, {:?}",
                earlier.host
            );
        }
    }
}
