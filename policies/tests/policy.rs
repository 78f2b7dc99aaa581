//! policy.toml parsing and validation against real files in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use wasmpy_policies::{
    discover_tenants, load_tenant, parse_policy, EntryPoint, Limits, Mount, Policy, PolicyError,
};

/// A tenants root with one tenant directory (`alice`, with `app/`) in it.
struct Fixture {
    _root: TempDir,
    tenant: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let tenant = root.path().join("alice");
        fs::create_dir_all(tenant.join("app")).unwrap();
        Self {
            _root: root,
            tenant,
        }
    }

    fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.tenant.join(rel)).unwrap();
        self
    }

    fn policy(&self, text: &str) -> &Self {
        fs::write(self.tenant.join("policy.toml"), text).unwrap();
        self
    }

    fn file(&self) -> PathBuf {
        self.tenant.join("policy.toml")
    }

    /// Parses `text` as this tenant's policy, expecting errors.
    fn errors(&self, text: &str) -> Vec<PolicyError> {
        match parse_policy(text, &self.file(), &self.tenant) {
            Ok(policy) => panic!("expected errors, got {policy:#?}"),
            Err(errors) => errors.0,
        }
    }
}

/// Asserts that exactly one error mentions `key`, is at `line`, and contains `fragment`.
#[track_caller]
fn assert_error(errors: &[PolicyError], line: usize, key: &str, fragment: &str) {
    let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let found: Vec<&PolicyError> = errors.iter().filter(|e| e.key == key).collect();
    assert_eq!(found.len(), 1, "one error for {key:?} expected in {all:#?}");
    let error = found[0];
    let text = error.to_string();
    assert_eq!(error.line, line, "{text}");
    assert!(
        text.contains(&format!("policy.toml:{line}:")),
        "line {line} not in {text}"
    );
    assert!(text.contains(&format!(": {key}: ")), "{key} not in {text}");
    assert!(text.contains(fragment), "{fragment:?} not in {text}");
}

#[track_caller]
fn single_error(fixture: &Fixture, text: &str, line: usize, key: &str, fragment: &str) {
    let errors = fixture.errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, line, key, fragment);
}

#[test]
fn empty_policy_means_defaults() {
    let f = Fixture::new();
    f.policy("");
    let tenant = load_tenant(&f.tenant).unwrap();
    assert_eq!(tenant.name, "alice");
    assert_eq!(tenant.dir, fs::canonicalize(&f.tenant).unwrap());
    assert_eq!(tenant.app_dir, tenant.dir.join("app"));
    assert_eq!(tenant.policy_file, tenant.dir.join("policy.toml"));
    assert_eq!(tenant.policy, Policy::default());

    let limits = &tenant.policy.limits;
    assert_eq!(tenant.policy.entry.to_string(), "wsgi:application");
    assert_eq!(limits.memory_bytes, 256 << 20);
    assert_eq!(limits.request_timeout, Duration::from_secs(30));
    assert_eq!(limits.max_instances, 2);
    assert_eq!(limits.queue_timeout, Duration::from_secs(5));
    assert_eq!(limits.max_body_bytes, 10 << 20);
    assert_eq!(limits.recycle_after, Some(10_000));
    assert_eq!(limits.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(limits.min_idle, 0);
    assert_eq!(limits.memory_high_water, None);
    assert_eq!(limits.log_limit_bytes, 64 << 10);
    assert!(tenant.policy.env.is_empty() && tenant.policy.mounts.is_empty());

    // Comments and empty tables are still all defaults.
    f.policy("# nothing to see\n[limits]\n[env]\n");
    assert_eq!(load_tenant(&f.tenant).unwrap().policy, Policy::default());
}

#[test]
fn full_valid_policy() {
    let f = Fixture::new();
    f.dir("data").dir("var/cache").policy(
        r#"
entry = "mysite.wsgi:app"

[limits]
memory = "512 MiB"
request_timeout = "500ms"
max_instances = 8
queue_timeout = "0s"
max_body = 1048576
recycle_after = 0
idle_timeout = "0s"
min_idle = 8
max_memory_high_water = "400MB"
log_limit = "1KB"

[env]
ZED = "last"
DJANGO_SETTINGS_MODULE = "mysite.settings"
_private = ""

[[mount]]
path = "data"
guest = "/data"
mode = "rw"

[[mount]]
path = "var/cache"
guest = "/srv/cache"
"#,
    );
    let tenant = load_tenant(&f.tenant).unwrap();
    let dir = &tenant.dir;
    let expected = Policy {
        entry: EntryPoint {
            module: "mysite.wsgi".into(),
            callable: "app".into(),
        },
        entry_set: true,
        limits: Limits {
            memory_bytes: 512 << 20,
            request_timeout: Duration::from_millis(500),
            max_instances: 8,
            queue_timeout: Duration::ZERO,
            max_body_bytes: 1 << 20,
            recycle_after: None,
            idle_timeout: None,
            min_idle: 8,
            memory_high_water: Some(400_000_000),
            log_limit_bytes: 1000,
        },
        env: vec![
            ("DJANGO_SETTINGS_MODULE".into(), "mysite.settings".into()),
            ("ZED".into(), "last".into()),
            ("_private".into(), "".into()),
        ],
        mounts: vec![
            Mount {
                host: dir.join("data"),
                guest: "/data".into(),
                writable: true,
            },
            Mount {
                host: dir.join("var/cache"),
                guest: "/srv/cache".into(),
                writable: false,
            },
        ],
    };
    assert_eq!(tenant.policy, expected);
    assert!(tenant.policy.mounts.iter().all(|m| m.host.is_absolute()));
}

#[test]
fn alternative_toml_spellings() {
    let f = Fixture::new();
    f.dir("data");
    let text = r#"
limits.memory = "1GiB"
limits.request_timeout = "1h"
env = { A = "1" }
mount = [{ path = "data", guest = "/data" }]
"#;
    let policy = parse_policy(text, &f.file(), &f.tenant).unwrap();
    assert_eq!(policy.limits.memory_bytes, 1 << 30);
    assert_eq!(policy.limits.request_timeout, Duration::from_secs(3600));
    assert_eq!(policy.env, vec![("A".into(), "1".into())]);
    assert_eq!(policy.mounts.len(), 1);
    assert!(!policy.mounts[0].writable);
}

#[test]
fn entry_point_round_trip() {
    let entry: EntryPoint = "pkg.sub.wsgi:create_app".parse().unwrap();
    assert_eq!(entry.module, "pkg.sub.wsgi");
    assert_eq!(entry.callable, "create_app");
    assert_eq!(entry.to_string(), "pkg.sub.wsgi:create_app");
    for bad in [
        "",
        "wsgi",
        ":app",
        "wsgi:",
        "my-app:app",
        "wsgi:app()",
        "a..b:app",
        "1x:app",
        "a:b:c",
    ] {
        assert!(bad.parse::<EntryPoint>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn bad_unit_reports_file_line_column_and_key() {
    let f = Fixture::new();
    let text = "# alice's policy\n\nentry = \"wsgi:application\"\n\n[limits]\nmax_instances = 2\nmemory = \"10MB2\"\n";
    let errors = f.errors(text);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:7:10: limits.memory: unknown unit \"MB2\" (expected B, KB, MB, GB, KiB, MiB, GiB)",
            f.file().display()
        )
    );
    assert_eq!((errors[0].line, errors[0].column), (7, 10));
}

#[test]
fn unknown_keys_report_their_line() {
    let f = Fixture::new();
    let text = "entry = \"wsgi:app\"\nentrypoint = \"x:y\"\n\n[limits]\nmemory = \"64MiB\"\nmemroy = \"1GiB\"\n\n[limit]\n\n[[mount]]\npath = \"data\"\nguest = \"/data\"\nreadonly = true\n";
    f.dir("data");
    let errors = f.errors(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(&errors, 2, "entrypoint", "unknown key");
    assert_error(&errors, 6, "limits.memroy", "unknown key");
    assert_error(&errors, 8, "limit", "did you mean `limits`?");
    assert_error(&errors, 13, "mount[0].readonly", "unknown key");
    assert_eq!(errors[0].column, 1);
}

#[test]
fn top_level_key_after_a_table_gets_a_hint() {
    let f = Fixture::new();
    single_error(
        &f,
        "[limits]\nmemory = \"64MiB\"\nentry = \"app:app\"\n",
        3,
        "limits.entry",
        "move `entry` above the first [table]",
    );
}

#[test]
fn wrong_types() {
    let f = Fixture::new();
    let text = r#"entry = 5
[limits]
max_instances = "2"
memory = true
request_timeout = 30
min_idle = 1.5
[env]
PORT = 8000
"#;
    let errors = f.errors(text);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert_error(&errors, 1, "entry", "expected a string");
    assert_error(
        &errors,
        3,
        "limits.max_instances",
        "expected an integer, found string",
    );
    assert_error(&errors, 4, "limits.memory", "found boolean");
    assert_error(
        &errors,
        5,
        "limits.request_timeout",
        "needs a unit, e.g. \"30s\"",
    );
    assert_error(&errors, 6, "limits.min_idle", "found float");
    assert_error(&errors, 8, "env.PORT", "quote it");

    single_error(&f, "\nlimits = 5\n", 2, "limits", "expected a table");
    single_error(&f, "\n\n[mount]\npath = \"x\"\n", 3, "mount", "[[mount]]");
    single_error(&f, "when = 1979-05-27\n", 1, "when", "unknown key");
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let f = Fixture::new();
    let errors = f.errors("[limits]\nmax_instances = 2\nmemory = 256MiB\n");
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert_eq!(errors[0].line, 3, "{text}");
    assert!(text.contains("policy.toml:3:"), "{text}");
    assert!(text.contains("invalid TOML"), "{text}");
    assert!(text.contains("quote them"), "{text}");

    let errors = f.errors("entry = \"wsgi:app\"\n[env\n");
    assert_eq!(errors[0].line, 2, "{}", errors[0]);
    let errors = f.errors("a = 1\n\na = 2\n");
    assert_eq!(errors[0].line, 3, "{}", errors[0]);
    assert!(errors[0].message.contains("duplicate key"));
}

#[test]
fn out_of_range_values() {
    let f = Fixture::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "memory = \"8MiB\"",
            "limits.memory",
            "at least 16MiB (got 8MiB)",
        ),
        ("memory = \"5GiB\"", "limits.memory", "at most 4GiB"),
        ("memory = 1024", "limits.memory", "at least 16MiB"),
        ("memory = -1", "limits.memory", "negative"),
        ("memory = \"-1MiB\"", "limits.memory", "negative"),
        ("memory = \"0.5GiB\"", "limits.memory", "whole number"),
        (
            "memory = \"99999999999999GiB\"",
            "limits.memory",
            "too large",
        ),
        ("memory = \"256\"", "limits.memory", "needs a unit"),
        (
            "request_timeout = \"5ms\"",
            "limits.request_timeout",
            "at least 10ms",
        ),
        (
            "request_timeout = \"2h\"",
            "limits.request_timeout",
            "at most 1h",
        ),
        (
            "request_timeout = \"1.5s\"",
            "limits.request_timeout",
            "whole number",
        ),
        (
            "request_timeout = \"30sec\"",
            "limits.request_timeout",
            "unknown unit \"sec\"",
        ),
        (
            "max_instances = 0",
            "limits.max_instances",
            "at least 1 (got 0)",
        ),
        (
            "max_instances = 65",
            "limits.max_instances",
            "at most 64 (got 65)",
        ),
        ("max_instances = -2", "limits.max_instances", "negative"),
        (
            "queue_timeout = \"11min\"",
            "limits.queue_timeout",
            "at most 10min",
        ),
        ("max_body = \"2GiB\"", "limits.max_body", "at most 1GiB"),
        ("recycle_after = -1", "limits.recycle_after", "negative"),
        ("idle_timeout = 300", "limits.idle_timeout", "needs a unit"),
        ("log_limit = \"17MiB\"", "limits.log_limit", "at most 16MiB"),
        (
            "min_idle = 3",
            "limits.min_idle",
            "at most max_instances (2) (got 3)",
        ),
        (
            "max_memory_high_water = \"300MiB\"",
            "limits.max_memory_high_water",
            "at most memory (256MiB) (got 300MiB)",
        ),
    ];
    for (line, key, fragment) in cases {
        single_error(&f, &format!("[limits]\n\n{line}\n"), 3, key, fragment);
    }
    // Cross-field checks use the final values, whatever the order.
    let policy = parse_policy(
        "[limits]\nmin_idle = 4\nmax_instances = 4\nmax_memory_high_water = \"1GiB\"\nmemory = \"2GiB\"\n",
        &f.file(),
        &f.tenant,
    )
    .unwrap();
    assert_eq!(policy.limits.min_idle, 4);
}

#[test]
fn all_errors_of_a_file_are_reported() {
    let f = Fixture::new();
    let text = "entry = \"nope\"\n[limits]\nmemory = \"1KiB\"\nmax_instances = 100\n[env]\nWASMPY_X = \"1\"\n[[mount]]\npath = \"/etc\"\nguest = \"/app\"\n";
    let errors = f.errors(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 3, 4, 6, 8, 9], "{errors:#?}");
    let rendered = wasmpy_policies::PolicyErrors(errors).to_string();
    assert_eq!(rendered.lines().count(), 6);
}

#[test]
fn env_errors() {
    let f = Fixture::new();
    let text = "[env]\nOK = \"fine\"\n\"1BAD\" = \"x\"\n\"MY-VAR\" = \"x\"\nWASMPY_TOKEN = \"x\"\nNUL = \"a\\u0000b\"\n";
    let errors = f.errors(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(&errors, 3, "env.1BAD", "invalid variable name");
    assert_error(&errors, 4, "env.MY-VAR", "invalid variable name");
    assert_error(&errors, 5, "env.WASMPY_TOKEN", "reserved");
    assert_error(&errors, 6, "env.NUL", "NUL");
    single_error(&f, "env = \"A=1\"\n", 1, "env", "expected a table");
}

#[test]
fn entry_errors() {
    let f = Fixture::new();
    single_error(&f, "\nentry = \"wsgi\"\n", 2, "entry", "module:callable");
    single_error(&f, "entry = \"my-site.wsgi:app\"\n", 1, "entry", "module");
    single_error(&f, "entry = \"wsgi:app.x\"\n", 1, "entry", "callable");
}

/// A `[[mount]]` section starting at line 1 with the given path and guest.
fn mount(path: &str, guest: &str) -> String {
    format!("[[mount]]\npath = {path:?}\nguest = {guest:?}\n")
}

#[test]
fn mount_host_paths_are_confined_to_the_tenant_dir() {
    let f = Fixture::new();
    f.dir("data/sub").dir("app/static");
    fs::write(f.tenant.join("notes.txt"), "x").unwrap();
    let cases = [
        ("/etc", "absolute"),
        ("../bob", "\"..\""),
        ("data/../../bob", "\"..\""),
        ("data/./sub", "\"..\""),
        (".", "\"..\""),
        ("./data", "\"..\""),
        ("", "must not be empty"),
        ("data/", "trailing slash"),
        ("data//sub", "empty components"),
        ("app", "code directory"),
        ("app/static", "code directory"),
        ("missing", "does not exist"),
        ("notes.txt", "not a directory"),
    ];
    for (path, fragment) in cases {
        single_error(&f, &mount(path, "/data"), 2, "mount[0].path", fragment);
    }
    // The valid ones, for contrast.
    assert!(parse_policy(&mount("data/sub", "/data"), &f.file(), &f.tenant).is_ok());
}

#[cfg(unix)]
#[test]
fn symlinked_mounts_are_refused() {
    use std::os::unix::fs::symlink;
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    f.dir("real");
    symlink(outside.path(), f.tenant.join("escape")).unwrap();
    symlink(f.tenant.join("real"), f.tenant.join("alias")).unwrap();
    fs::create_dir(outside.path().join("inner")).unwrap();

    single_error(
        &f,
        &mount("escape", "/data"),
        2,
        "mount[0].path",
        "is a symlink",
    );
    single_error(
        &f,
        &mount("escape/inner", "/data"),
        2,
        "mount[0].path",
        "is a symlink",
    );
    // Even a symlink that stays inside the tenant directory.
    single_error(
        &f,
        &mount("alias", "/data"),
        2,
        "mount[0].path",
        "is a symlink",
    );
}

#[cfg(unix)]
#[test]
fn app_must_be_a_real_directory() {
    use std::os::unix::fs::symlink;
    let f = Fixture::new();
    f.policy("");
    f.dir("code");
    fs::remove_dir(f.tenant.join("app")).unwrap();

    let errors = load_tenant(&f.tenant).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    let canonical = fs::canonicalize(&f.tenant).unwrap();
    assert_eq!(errors[0].file, canonical);
    assert_eq!(errors[0].key, "app");
    assert!(errors[0].to_string().contains("missing"), "{}", errors[0]);

    symlink(f.tenant.join("code"), f.tenant.join("app")).unwrap();
    let errors = load_tenant(&f.tenant).unwrap_err().0;
    assert!(errors[0].to_string().contains("symlink"), "{}", errors[0]);

    fs::remove_file(f.tenant.join("app")).unwrap();
    fs::write(f.tenant.join("app"), "").unwrap();
    let errors = load_tenant(&f.tenant).unwrap_err().0;
    assert!(
        errors[0].message.contains("not a directory"),
        "{}",
        errors[0]
    );
}

#[test]
fn mount_guest_paths() {
    let f = Fixture::new();
    f.dir("data");
    let cases = [
        ("data", "absolute"),
        ("/", "sandbox root"),
        ("/data/", "normalised"),
        ("/a/../data", "normalised"),
        ("/a/./data", "normalised"),
        ("/app", "reserved"),
        ("/app/data", "reserved"),
        ("/python", "reserved"),
        ("/python/lib", "reserved"),
        ("/.wasmpy", "reserved"),
    ];
    for (guest, fragment) in cases {
        single_error(&f, &mount("data", guest), 3, "mount[0].guest", fragment);
    }
    for fine in ["/application", "/pythonic", "/srv/app"] {
        assert!(
            parse_policy(&mount("data", fine), &f.file(), &f.tenant).is_ok(),
            "{fine}"
        );
    }
}

#[test]
fn overlapping_guest_paths() {
    let f = Fixture::new();
    f.dir("a").dir("b");
    let same = format!("{}{}", mount("a", "/data"), mount("b", "/data"));
    single_error(&f, &same, 6, "mount[1].guest", "the same as mount[0].guest");
    let nested = format!("{}{}", mount("a", "/data"), mount("b", "/data/sub"));
    single_error(
        &f,
        &nested,
        6,
        "mount[1].guest",
        "nested with mount[0].guest",
    );
    let outer = format!("{}{}", mount("a", "/data/sub"), mount("b", "/data"));
    single_error(&f, &outer, 6, "mount[1].guest", "nested");
    let siblings = format!("{}{}", mount("a", "/data"), mount("b", "/database"));
    assert_eq!(
        parse_policy(&siblings, &f.file(), &f.tenant)
            .unwrap()
            .mounts
            .len(),
        2
    );
}

#[test]
fn mount_fields() {
    let f = Fixture::new();
    f.dir("data");
    single_error(
        &f,
        "[[mount]]\npath = \"data\"\nguest = \"/data\"\nmode = \"wr\"\n",
        4,
        "mount[0].mode",
        "\"ro\" or \"rw\"",
    );
    single_error(
        &f,
        "\n[[mount]]\nguest = \"/data\"\n",
        2,
        "mount[0].path",
        "missing",
    );
    single_error(
        &f,
        "[[mount]]\npath = 5\nguest = \"/data\"\n",
        2,
        "mount[0].path",
        "expected a string",
    );
    let errors = f.errors(&format!(
        "{}[[mount]]\nguest = \"/x\"\n",
        mount("data", "/data")
    ));
    assert_error(&errors, 4, "mount[1].path", "missing");
}

#[test]
fn missing_policy_file_names_the_file() {
    let f = Fixture::new();
    let errors = load_tenant(&f.tenant).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    let error = &errors[0];
    assert_eq!(error.line, 0);
    assert_eq!(
        error.file,
        fs::canonicalize(&f.tenant).unwrap().join("policy.toml")
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}: ", error.file.display())),
        "{text}"
    );
    assert!(text.contains("missing"), "{text}");
}

#[test]
fn errors_from_dir_and_policy_are_combined() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("Bad_Name");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("policy.toml"), "[limits]\nmemory = \"1B\"\n").unwrap();
    let errors = load_tenant(&dir).unwrap_err().0;
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].message.contains("not a DNS label"));
    assert_eq!(errors[1].key, "app");
    assert_eq!(
        (errors[2].line, errors[2].key.as_str()),
        (2, "limits.memory")
    );
}

#[test]
fn tenant_names() {
    use wasmpy_policies::is_valid_tenant_name;
    for good in ["alice", "a", "shop-2", "0", &"a".repeat(63)] {
        assert!(is_valid_tenant_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", "Alice", "a_b", "a.b", "ä", &"a".repeat(64)] {
        assert!(!is_valid_tenant_name(bad), "{bad}");
    }
}

#[test]
fn discover_finds_tenant_dirs_sorted() {
    let root = tempfile::tempdir().unwrap();
    let make = |name: &str, app: bool, policy: Option<&str>| {
        let dir = root.path().join(name);
        fs::create_dir(&dir).unwrap();
        if app {
            fs::create_dir(dir.join("app")).unwrap();
        }
        if let Some(text) = policy {
            fs::write(dir.join("policy.toml"), text).unwrap();
        }
    };
    make("zoe", true, Some(""));
    make("alice", true, Some("entry = \"main:app\"\n"));
    make("bob", true, None); // app/ but no policy.toml -> listed, with an error
    make("carol", false, Some("")); // policy.toml but no app/ -> listed, with an error
    make("notes", false, None); // neither -> not a tenant
    make(".hidden", true, Some(""));
    fs::write(root.path().join("README"), "").unwrap();

    let found = discover_tenants(root.path()).unwrap();
    let names: Vec<&str> = found
        .iter()
        .map(|(dir, _)| dir.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol", "zoe"]);
    assert_eq!(
        found[0].1.as_ref().unwrap().policy.entry.to_string(),
        "main:app"
    );
    assert!(found[1].1.as_ref().unwrap_err().0[0]
        .file
        .ends_with("bob/policy.toml"));
    assert_eq!(found[2].1.as_ref().unwrap_err().0[0].key, "app");
    assert!(found[3].1.is_ok());

    assert!(discover_tenants(&root.path().join("nope")).is_err());
}

#[test]
fn parse_policy_resolves_mounts_against_the_given_dir() {
    let f = Fixture::new();
    f.dir("data");
    let policy = parse_policy(&mount("data", "/data"), Path::new("x.toml"), &f.tenant).unwrap();
    assert_eq!(
        policy.mounts[0].host,
        fs::canonicalize(f.tenant.join("data")).unwrap()
    );
}

/// A `[[mount]]` section (4 lines) with an explicit mode.
fn mount_mode(path: &str, guest: &str, mode: &str) -> String {
    format!("{}mode = {mode:?}\n", mount(path, guest))
}

#[test]
fn mounts_nested_in_a_writable_mount_are_refused() {
    let f = Fixture::new();
    f.dir("data/sub");
    let inner_after = format!(
        "{}{}",
        mount_mode("data", "/data", "rw"),
        mount_mode("data/sub", "/sub", "ro")
    );
    single_error(&f, &inner_after, 6, "mount[1].path", "writable");
    let outer_after = format!(
        "{}{}",
        mount_mode("data/sub", "/sub", "ro"),
        mount_mode("data", "/data", "rw")
    );
    single_error(&f, &outer_after, 6, "mount[1].path", "symlink");
    // Nested read-only mounts, and the same directory twice, are fine.
    for text in [
        format!("{}{}", mount("data", "/data"), mount("data/sub", "/sub")),
        format!(
            "{}{}",
            mount_mode("data", "/data", "rw"),
            mount("data", "/data-ro")
        ),
    ] {
        assert!(parse_policy(&text, &f.file(), &f.tenant).is_ok(), "{text}");
    }
}

#[test]
fn conflicts_name_the_mount_by_its_index_in_the_file() {
    let f = Fixture::new();
    f.dir("a").dir("b");
    let text = format!(
        "{}{}{}",
        mount("missing", "/x"),
        mount("a", "/data"),
        mount("b", "/data")
    );
    let errors = f.errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(&errors, 9, "mount[2].guest", "mount[1].guest");
}
