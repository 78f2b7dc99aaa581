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
