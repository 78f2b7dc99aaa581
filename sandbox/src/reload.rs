//! Noticing a deployment without walking the tenant's tree: the
//! housekeeping thread compares a few file stamps twice a second.
//!
//! Watched: `policy.toml`; the `reload` marker in the tenant directory
//! (`touch <tenant>/reload`, as mod_wsgi's touch-to-reload); the `app/`
//! directory itself (files added, removed or renamed into it, as deploy
//! tools that write-then-rename do); and the entry module's file.

use std::path::PathBuf;
use std::time::SystemTime;

use wasmpy_policies::Tenant;

/// Name of the touch-to-reload marker in a tenant directory.
pub const RELOAD_MARKER: &str = "reload";

/// Modification time and size of the watched files (None: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint(Vec<Option<(SystemTime, u64)>>);

fn watched(tenant: &Tenant) -> Vec<PathBuf> {
    let module = tenant.policy.entry.module.replace('.', "/");
    vec![
        tenant.policy_file.clone(),
        tenant.dir.join(RELOAD_MARKER),
        tenant.app_dir.clone(),
        tenant.app_dir.join(format!("{module}.py")),
        tenant.app_dir.join(&module).join("__init__.py"),
    ]
}

/// The current stamps of `tenant`'s watched files.
pub(crate) fn fingerprint(tenant: &Tenant) -> Fingerprint {
    Fingerprint(
        watched(tenant)
            .iter()
            .map(|path| {
                let meta = std::fs::metadata(path).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect(),
    )
}

/// A digest of what a tenant's snapshot depends on: every file under
/// `app/` (names and contents; bytecode caches skipped), `policy.toml` and
/// the entry. Walks the tree, so it is computed only when a snapshot is
/// looked up (at load and at each redeploy), never per request.
pub(crate) fn deployment_key(tenant: &Tenant) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(&tenant.policy_file).unwrap_or_default());
    hasher.update(tenant.policy.entry.to_string().as_bytes());
    let mut stack = vec![tenant.app_dir.clone()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if entry.file_name() != "__pycache__" {
                    stack.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        hasher.update(
            path.strip_prefix(&tenant.app_dir)
                .unwrap_or(&path)
                .as_os_str()
                .as_encoded_bytes(),
        );
        hasher.update([0]);
        hasher.update(std::fs::read(&path).unwrap_or_default());
        hasher.update([0]);
    }
    hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
