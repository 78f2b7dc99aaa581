//! The module's configuration, built from the directives while httpd reads
//! its config (in the parent, before fork) and inherited by every child.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wasmpy_policies::Tenant;
use wasmpy_sandbox::http::prefix_matches;

/// Where the runtime is installed by `make install` / the packaging.
pub const DEFAULT_RUNTIME_DIR: &str = "/usr/share/wasmpy/runtime";
/// Default cache directory (compiled runtime, bytecode).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/apache2/wasmpy";

/// One `WasmPyApp URL-PREFIX TENANT-DIR`.
#[derive(Debug, Clone)]
pub struct AppMount {
    /// The `server_rec` (main server or virtual host) it was declared in.
    pub server: usize,
    /// URL prefix without trailing slash ("" for "/").
    pub prefix: String,
    /// Tenant name (its directory's name).
    pub tenant: String,
}

/// Everything the directives configured.
#[derive(Debug, Default)]
pub struct ModuleConfig {
    /// `WasmPyRuntime`.
    pub runtime: Option<PathBuf>,
    /// `WasmPyCacheDir`.
    pub cache_dir: Option<PathBuf>,
    /// `WasmPyPoolSlots`.
    pub pool_slots: Option<u32>,
    /// `WasmPyMaxMemory`, in bytes.
    pub max_memory: Option<u64>,
    /// Every `WasmPyApp`, in config order.
    pub mounts: Vec<AppMount>,
    /// Every tenant, validated, by name.
    pub tenants: BTreeMap<String, Tenant>,
}

impl ModuleConfig {
    /// The runtime directory in effect.
    pub fn runtime_dir(&self) -> PathBuf {
        self.runtime
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR))
    }

    /// The cache directory in effect.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
    }

    /// Handle `WasmPyApp`: validate the tenant's policy now, so that a bad
    /// policy fails `apachectl configtest` with its file, line and key.
    pub fn add_app(&mut self, server: usize, prefix: &str, dir: &Path) -> Result<(), String> {
        if !prefix.starts_with('/') {
            return Err(format!(
                "WasmPyApp: URL prefix {prefix:?} must start with '/'"
            ));
        }
        let prefix = prefix.trim_end_matches('/').to_string();
        let tenant = wasmpy_policies::load_tenant(dir)
            .map_err(|errors| format!("WasmPyApp: tenant {} refused:\n{errors}", dir.display()))?;
        if let Some(known) = self.tenants.get(&tenant.name) {
            if known.dir != tenant.dir {
                return Err(format!(
                    "WasmPyApp: two tenants named {:?}: {} and {} (a tenant is named after its directory)",
                    tenant.name,
                    known.dir.display(),
                    tenant.dir.display()
                ));
            }
        }
        if self
            .mounts
            .iter()
            .any(|m| m.server == server && m.prefix == prefix)
        {
            return Err(format!(
                "WasmPyApp: URL prefix {:?} is mounted twice",
                prefix_or_root(&prefix)
            ));
        }
        self.mounts.push(AppMount {
            server,
            prefix,
            tenant: tenant.name.clone(),
        });
        self.tenants.insert(tenant.name.clone(), tenant);
        Ok(())
    }

    /// The mount serving `path` on `server`: the longest matching prefix of
    /// the server's own mounts, or else of the main server's.
    pub fn route(&self, server: usize, main_server: usize, path: &str) -> Option<&AppMount> {
        let best = |server: usize| {
            self.mounts
                .iter()
                .filter(|m| m.server == server && prefix_matches(&m.prefix, path))
                .max_by_key(|m| m.prefix.len())
        };
        let own = self.mounts.iter().any(|m| m.server == server);
        if own {
            best(server)
        } else {
            best(main_server)
        }
    }
}

fn prefix_or_root(prefix: &str) -> &str {
    if prefix.is_empty() {
        "/"
    } else {
        prefix
    }
}
