//! Checks for `[[mount]]` entries: host directories inside the tenant
//! directory, guest paths that do not shadow what the sandbox provides.
//!
//! Deny by default: the guest sees `/app` (read-only code), `/python` (the
//! shared read-only standard library) and exactly the mounts listed. A mount
//! may therefore never reach outside the tenant directory (absolute paths,
//! `..`, symlinks), never expose the code directory writable, and never hide
//! or replace the reserved guest paths.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Guest paths owned by the sandbox; mounts may not be at or under them.
pub const RESERVED_GUEST_PATHS: [&str; 3] = ["/app", "/python", "/.wasmpy"];

/// Validates `path` (as written, relative to `tenant_dir`) and returns the
/// absolute, canonical host directory. `tenant_dir` must be canonical.
pub(crate) fn check_host_path(tenant_dir: &Path, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} is absolute; mounts must be directories inside the tenant directory, \
             written relative to it (e.g. \"data\")"
        ));
    }
    let components: Vec<&str> = path.split('/').collect();
    if components.iter().any(|c| matches!(*c, "" | "." | "..")) {
        return Err(format!(
            "{path:?} must be a plain relative path inside the tenant directory \
             (no \".\" or \"..\" components, no empty components or trailing slash)"
        ));
    }
    if components[0] == crate::APP_DIR_NAME {
        return Err(format!(
            "{path:?} is the code directory or inside it; app/ is always mounted read-only at /app \
             and cannot be mounted again"
        ));
    }
    let mut host = tenant_dir.to_path_buf();
    for component in components {
        host.push(component);
        match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(format!("{} does not exist", host.display()))
            }
            Err(e) => return Err(format!("cannot access {}: {e}", host.display())),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink; mounts must be real directories inside the tenant directory",
                    host.display()
                ))
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(format!("{} is not a directory", host.display()))
            }
            Ok(_) => {}
        }
    }
    // Defence in depth: built from a canonical base with no symlinks, so it
    // must already be canonical.
    match fs::canonicalize(&host) {
        Ok(canonical) if canonical == host => Ok(host),
        Ok(canonical) => Err(format!(
            "{} resolves to {}, outside the tenant directory",
            host.display(),
            canonical.display()
        )),
        Err(e) => Err(format!("cannot access {}: {e}", host.display())),
    }
}

/// Validates a guest path: absolute, normalised, not `/`, not reserved.
pub(crate) fn check_guest_path(guest: &str) -> Result<(), String> {
    let Some(rest) = guest.strip_prefix('/') else {
        return Err(format!(
            "{guest:?} must be an absolute path in the sandbox, e.g. \"/data\""
        ));
    };
    if rest.is_empty() {
        return Err("\"/\" cannot be mounted over: the sandbox root is not configurable".into());
    }
    if guest.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if rest.split('/').any(|c| matches!(c, "" | "." | "..")) {
        return Err(format!(
            "{guest:?} must be normalised (no \".\" or \"..\" components, no empty components \
             or trailing slash)"
        ));
    }
    if let Some(reserved) = RESERVED_GUEST_PATHS
        .iter()
        .find(|reserved| overlaps(reserved, guest))
    {
        return Err(format!(
            "{guest:?} is at or under {reserved}, which is reserved by the sandbox \
             (reserved: {})",
            RESERVED_GUEST_PATHS.join(", ")
        ));
    }
    Ok(())
}

/// True if the guest paths are equal or one is inside the other.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    fn inside(inner: &str, outer: &str) -> bool {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
    }
    a == b || inside(a, b) || inside(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths() {
        assert!(check_guest_path("/data").is_ok());
        assert!(check_guest_path("/srv/data").is_ok());
        assert!(check_guest_path("/application").is_ok());
        for bad in [
            "data",
            "",
            "/",
            "/data/",
            "//data",
            "/a/./b",
            "/a/../b",
            "/app",
            "/app/x",
            "/python",
            "/python/lib",
            "/.wasmpy",
            "/.wasmpy/sock",
        ] {
            assert!(check_guest_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn overlap() {
        assert!(overlaps("/data", "/data"));
        assert!(overlaps("/data", "/data/x"));
        assert!(overlaps("/data/x", "/data"));
        assert!(!overlaps("/data", "/database"));
        assert!(!overlaps("/a/b", "/a/c"));
    }
}
