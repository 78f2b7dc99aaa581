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
    /// `WasmPyStateDir`.
    pub state_dir: Option<PathBuf>,
    /// `WasmPyPoolSlots`.
    pub pool_slots: Option<u32>,
    /// `WasmPyMaxMemory`, in bytes.
    pub max_memory: Option<u64>,
    /// Every `WasmPyApp`, in config order.
    pub mounts: Vec<AppMount>,
    /// Every tenant, validated, by name.
    pub tenants: BTreeMap<String, Tenant>,
    /// Every `WasmPyTenant`, in config order.
    pub bindings: Vec<Binding>,
}

/// One `WasmPyTenant`: the scope it binds.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The `server_rec` it was declared in.
    pub server: usize,
    /// Declared in the main server (then it reaches the virtual hosts too).
    pub main: bool,
    /// The section's path (`None`: server scope).
    pub path: Option<String>,
    /// The tenant's name.
    pub tenant: String,
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

    /// The state directory in effect (default: `state` in the cache directory).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.cache_dir().join("state"))
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
        let tenant = Self::load_tenant("WasmPyApp", dir, &self.tenants)?;
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

    /// Load and validate the tenant in `dir` for `directive`; two tenants
    /// of one name (a tenant is named after its directory) are refused.
    fn load_tenant(
        directive: &str,
        dir: &Path,
        known: &BTreeMap<String, Tenant>,
    ) -> Result<Tenant, String> {
        let tenant = wasmpy_policies::load_tenant(dir).map_err(|errors| {
            format!("{directive}: tenant {} refused:\n{errors}", dir.display())
        })?;
        if let Some(known) = known.get(&tenant.name) {
            if known.dir != tenant.dir {
                return Err(format!(
                    "{directive}: two tenants named {:?}: {} and {} (a tenant is named after its directory)",
                    tenant.name,
                    known.dir.display(),
                    tenant.dir.display()
                ));
            }
        }
        Ok(tenant)
    }

    /// Handle `WasmPyTenant`: validate the tenant now (configtest) and
    /// remember the scope it binds. Returns the tenant's name.
    pub fn bind_tenant(
        &mut self,
        server: usize,
        main: bool,
        path: Option<&str>,
        dir: &Path,
    ) -> Result<String, String> {
        let tenant = Self::load_tenant("WasmPyTenant", dir, &self.tenants)?;
        let name = tenant.name.clone();
        self.bindings.push(Binding {
            server,
            main,
            path: path.map(str::to_string),
            tenant: name.clone(),
        });
        self.tenants.insert(name.clone(), tenant);
        Ok(name)
    }

    /// The tenant bound to a scope at `path` of `server` by an enclosing
    /// `WasmPyTenant` (server scope, or a section whose path contains it).
    pub fn bound_tenant(&self, server: usize, path: Option<&str>) -> Option<&str> {
        self.bindings
            .iter()
            .rev()
            .filter(|b| b.server == server || b.main)
            .find(|b| match (&b.path, path) {
                (None, _) => true,
                (Some(outer), Some(inner)) => {
                    inner == outer
                        || inner.starts_with(&format!("{}/", outer.trim_end_matches('/')))
                }
                (Some(_), None) => false,
            })
            .map(|b| b.tenant.as_str())
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
