//! The per-tenant `policy.toml` format of mod_wasmpy: parsing, validation and
//! clear errors.
//!
//! Layout: `<tenants-root>/<tenant>/policy.toml` plus the code in
//! `<tenant>/app/`. The tenant name is the directory name and must be a DNS
//! label. See `docs/policy.md` for the reference of every key.
//!
//! Everything is validated up front and every problem of a file is reported
//! with file, line, column and dotted key, e.g.
//! `/srv/t/alice/policy.toml:7:10: limits.memory: unknown unit "MB2" (...)`.

#![warn(missing_docs)]

mod error;
mod mounts;
mod parse;
pub mod units;

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use error::{PolicyError, PolicyErrors};
pub use mounts::RESERVED_GUEST_PATHS;
use units::format_size;

/// Name of the policy file inside a tenant directory.
pub const POLICY_FILE_NAME: &str = "policy.toml";
/// Name of the code directory inside a tenant directory (mounted read-only at `/app`).
pub const APP_DIR_NAME: &str = "app";
/// Largest `policy.toml` accepted, in bytes.
pub const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

/// A tenant directory whose policy is valid.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant name: the directory name, a DNS label (`<name>.localhost`, log prefixes).
    pub name: String,
    /// Canonical tenant directory.
    pub dir: PathBuf,
    /// Canonical code directory (`<dir>/app`), mounted read-only at `/app`.
    pub app_dir: PathBuf,
    /// Path of the policy file (`<dir>/policy.toml`).
    pub policy_file: PathBuf,
    /// The validated policy.
    pub policy: Policy,
}

impl Tenant {
    /// The WSGI application to import, if the tenant has one: the policy's
    /// `entry`, or the default `wsgi:application` when `app/wsgi.py` exists.
    pub fn wsgi_entry(&self) -> Option<&EntryPoint> {
        let default_exists = || {
            let module = self.policy.entry.module.replace('.', "/");
            self.app_dir.join(format!("{module}.py")).is_file()
                || self.app_dir.join(&module).join("__init__.py").is_file()
        };
        (self.policy.entry_set || default_exists()).then_some(&self.policy.entry)
    }
}

/// A validated `policy.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// WSGI entry point (`entry`; `wsgi:application` when absent).
    pub entry: EntryPoint,
    /// Whether `entry` was written: a tenant used only through mod_python
    /// handlers has none and no `wsgi.py`, and imports no WSGI application.
    pub entry_set: bool,
    /// Resource limits (`[limits]`).
    pub limits: Limits,
    /// Environment of the app (`[env]`), sorted by name; nothing else from the host.
    pub env: Vec<(String, String)>,
    /// Extra directories (`[[mount]]`), in file order.
    pub mounts: Vec<Mount>,
}

/// A WSGI entry point `module:callable`, e.g. `wsgi:application`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryPoint {
    /// Dotted Python module path, e.g. `mysite.wsgi`.
    pub module: String,
    /// Name of the WSGI callable in that module, e.g. `application`.
    pub callable: String,
}

impl Default for EntryPoint {
    /// `wsgi:application`.
    fn default() -> Self {
        Self {
            module: "wsgi".into(),
            callable: "application".into(),
        }
    }
}

impl fmt::Display for EntryPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.callable)
    }
}

/// Why a string is not a `module:callable` entry point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEntryPoint(pub String);

impl FromStr for EntryPoint {
    type Err = InvalidEntryPoint;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((module, callable)) = text.split_once(':') else {
            return Err(InvalidEntryPoint(format!(
                "{text:?} is not of the form \"module:callable\", e.g. \"wsgi:application\""
            )));
        };
        if !module.split('.').all(is_identifier) {
            return Err(InvalidEntryPoint(format!(
                "module {module:?} is not a dotted Python module path, e.g. \"mysite.wsgi\""
            )));
        }
        if !is_identifier(callable) {
            return Err(InvalidEntryPoint(format!(
                "callable {callable:?} is not a Python identifier, e.g. \"application\""
            )));
        }
        Ok(Self {
            module: module.into(),
            callable: callable.into(),
        })
    }
}

/// Resource limits of one tenant (`[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `memory`: linear memory cap per instance. Default 256MiB; 16MiB..=4GiB.
    pub memory_bytes: u64,
    /// `request_timeout`: deadline per request. Default 30s; 10ms..=1h.
    pub request_timeout: Duration,
    /// `max_instances`: concurrent busy instances. Default 2; 1..=64.
    pub max_instances: u32,
    /// `queue_timeout`: wait for a free instance before 503. Default 5s; 0s..=10min.
    pub queue_timeout: Duration,
    /// `max_body`: largest request body, larger ones get 413. Default 10MiB; at most 1GiB.
    pub max_body_bytes: u64,
    /// `recycle_after`: replace an instance after this many requests; `None` = never. Default 10000.
    pub recycle_after: Option<u64>,
    /// `idle_timeout`: drop instances idle this long; `None` = never. Default 5min.
    pub idle_timeout: Option<Duration>,
    /// `min_idle`: instances kept warm. Default 0; at most `max_instances`.
    pub min_idle: u32,
    /// `max_memory_high_water`: recycle after a request once memory exceeds this. Default none; at most `memory_bytes`.
    pub memory_high_water: Option<u64>,
    /// `log_limit`: bytes of stdout/stderr logged per request, the rest truncated. Default 64KiB; at most 16MiB.
    pub log_limit_bytes: u64,
}

impl Default for Limits {
    /// The documented safe defaults.
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            request_timeout: Duration::from_secs(30),
            max_instances: 2,
            queue_timeout: Duration::from_secs(5),
            max_body_bytes: 10 << 20,
            recycle_after: Some(10_000),
            idle_timeout: Some(Duration::from_secs(300)),
            min_idle: 0,
            memory_high_water: None,
            log_limit_bytes: 64 << 10,
        }
    }
}

/// An extra directory visible to the app (`[[mount]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute, canonical host directory inside the tenant directory.
    pub host: PathBuf,
    /// Absolute, normalised guest path, e.g. `/data`.
    pub guest: String,
    /// `mode = "rw"`; read-only otherwise.
    pub writable: bool,
}

/// True if `name` is a DNS label: 1-63 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn is_valid_tenant_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Loads and validates the tenant in `dir`: its name, `app/` and `policy.toml`.
///
/// All problems found are returned together.
pub fn load_tenant(dir: &Path) -> Result<Tenant, PolicyErrors> {
    let canonical = fs::canonicalize(dir)
        .map_err(|e| PolicyError::new(dir, "", format!("cannot access tenant directory: {e}")))?;
    if !canonical.is_dir() {
        return Err(PolicyError::new(dir, "", "tenant path is not a directory").into());
    }
    let mut errors = Vec::new();

    let name = dir
        .file_name()
        .or(canonical.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_valid_tenant_name(&name) {
        errors.push(PolicyError::new(
            &canonical,
            "",
            format!(
                "tenant name {name:?} is not a DNS label: 1-63 characters of a-z, 0-9 and '-', \
                 not starting or ending with '-'"
            ),
        ));
    }

    let app_dir = canonical.join(APP_DIR_NAME);
    let app_problem = match fs::symlink_metadata(&app_dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Some("missing: the tenant's code directory app/ must exist".to_string())
        }
        Err(e) => Some(format!("cannot access: {e}")),
        Ok(meta) if meta.file_type().is_symlink() => {
            Some("is a symlink; it must be a real directory".to_string())
        }
        Ok(meta) if !meta.is_dir() => Some("is not a directory".to_string()),
        Ok(_) => None,
    };
    if let Some(problem) = app_problem {
        errors.push(PolicyError::new(&canonical, APP_DIR_NAME, problem));
    }

    let policy_file = canonical.join(POLICY_FILE_NAME);
    let policy = read_policy_file(&policy_file)
        .map_err(PolicyErrors::from)
        .and_then(|text| parse_policy(&text, &policy_file, &canonical));
    match policy {
        Ok(policy) if errors.is_empty() => Ok(Tenant {
            name,
            dir: canonical,
            app_dir,
            policy_file,
            policy,
        }),
        Ok(_) => Err(PolicyErrors(errors)),
        Err(PolicyErrors(more)) => {
            errors.extend(more);
            Err(PolicyErrors(errors))
        }
    }
}

/// Finds the tenants under `root`: every non-hidden subdirectory that contains
/// a `policy.toml` or an `app` entry, sorted by name, each with its load result.
#[allow(clippy::type_complexity)]
pub fn discover_tenants(
    root: &Path,
) -> Result<Vec<(PathBuf, Result<Tenant, PolicyErrors>)>, std::io::Error> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let exists = |name: &str| fs::symlink_metadata(path.join(name)).is_ok();
        if !hidden && path.is_dir() && (exists(POLICY_FILE_NAME) || exists(APP_DIR_NAME)) {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let tenant = load_tenant(&dir);
            (dir, tenant)
        })
        .collect())
}

/// Reads a policy file: must exist, be a regular file of sane size, and be UTF-8.
fn read_policy_file(file: &Path) -> Result<String, PolicyError> {
    let fail = |message: String| PolicyError::new(file, "", message);
    let meta = fs::metadata(file).map_err(|e| match e.kind() {
        ErrorKind::NotFound => fail(
            "missing: every tenant needs a policy.toml (an empty file means all defaults)".into(),
        ),
        _ => fail(format!("cannot read: {e}")),
    })?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".into()));
    }
    let mut bytes = Vec::new();
    fs::File::open(file)
        .and_then(|f| f.take(MAX_POLICY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(fail(format!(
            "is larger than {}",
            format_size(MAX_POLICY_FILE_BYTES)
        )));
    }
    String::from_utf8(bytes).map_err(|_| fail("is not valid UTF-8".into()))
}

/// Parses and validates the text of a `policy.toml`.
///
/// `file` is only used in error messages; mount paths are resolved against
/// (and must stay inside) `tenant_dir`.
pub fn parse_policy(text: &str, file: &Path, tenant_dir: &Path) -> Result<Policy, PolicyErrors> {
    parse::parse(text, file, tenant_dir)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a Python identifier (ASCII) or environment variable name.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
