//! The per-directory configuration of mod_python's directives: one
//! [`DirConfig`] per `<Directory>`, `<Location>`, `<Files>`, `.htaccess` and
//! server scope, merged by Apache for each request (the child's values win,
//! as in mod_python).

use std::ffi::{c_char, c_void};
use std::path::PathBuf;

use wasmpy_sandbox::Handler;

use crate::ffi::{self, apr_pool_t};
use crate::{guard, text};

/// mod_python's phases, by the index `shim.c` gives each directive.
pub const PHASES: [&str; 12] = [
    "PythonPostReadRequestHandler",
    "PythonTransHandler",
    "PythonHeaderParserHandler",
    "PythonInitHandler",
    "PythonAccessHandler",
    "PythonAuthenHandler",
    "PythonAuthzHandler",
    "PythonTypeHandler",
    "PythonFixupHandler",
    "PythonHandler",
    "PythonLogHandler",
    "PythonCleanupHandler",
];

/// Index of `PythonPostReadRequestHandler` in [`PHASES`].
pub const POST_READ: usize = 0;
/// Index of `PythonTransHandler`.
pub const TRANS: usize = 1;
/// Index of `PythonHeaderParserHandler`.
pub const HEADER_PARSER: usize = 2;
/// Index of `PythonInitHandler`.
pub const INIT: usize = 3;
/// Index of `PythonFixupHandler`.
pub const FIXUP: usize = 8;
/// Index of `PythonHandler` (the content phase).
pub const CONTENT: usize = 9;
/// Index of `PythonLogHandler`.
pub const LOG: usize = 10;
/// Index of `PythonCleanupHandler`.
pub const CLEANUP: usize = 11;

/// One declared handler, with where it was declared.
#[derive(Debug, Clone)]
pub struct Declared {
    /// What the sandbox needs.
    pub handler: Handler,
    /// Declared inside a directory scope (matters for `PythonInitHandler`).
    pub in_directory: bool,
    /// The path of the section it was declared in (`PythonInterpPerDirective`).
    pub section: Option<String>,
}

/// One `PythonOutputFilter` / `PythonInputFilter` (or a filter a handler
/// registered for its request).
#[derive(Debug, Clone)]
pub struct FilterDecl {
    /// The filter's name as Apache knows it (case-insensitive).
    pub name: String,
    /// An input filter.
    pub input: bool,
    /// Its handler (`module[::object]`, where declared).
    pub handler: Handler,
    /// Registered by a handler of this tenant (`req.register_*_filter`):
    /// it runs only for requests of that tenant. `None`: declared in the
    /// configuration (it runs in the tenant of the request's scope).
    pub tenant: Option<String>,
}

/// The directives of one scope, or the merge of several.
#[derive(Debug, Clone, Default)]
pub struct DirConfig {
    /// The scope's path (`<Directory>` path, `<Location>` URL, .htaccess dir).
    pub path: Option<String>,
    /// `WasmPyTenant`: the tenant's name.
    pub tenant: Option<String>,
    /// Handlers per phase (index of [`PHASES`]); `None`: not declared here.
    pub handlers: [Option<Vec<Declared>>; 12],
    /// `PythonOption`s: `None` values unset an inherited key.
    pub options: Vec<(String, Option<String>)>,
    /// `PythonDebug`, `PythonAutoReload`, `PythonEnablePdb`, `PythonOptimize`.
    pub flags: Vec<(String, bool)>,
    /// `PythonPath`, `PythonInterpreter`.
    pub values: Vec<(String, String)>,
    /// `PythonInterpPerDirectory` / `PythonInterpPerDirective`.
    pub interp_per: Option<&'static str>,
    /// `PythonImport` modules.
    pub imports: Vec<String>,
    /// `PythonOutputFilter` / `PythonInputFilter`, by name and direction.
    pub filters: Vec<FilterDecl>,
}

fn set_keyed<V: Clone>(list: &mut Vec<(String, V)>, key: &str, value: V) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

impl DirConfig {
    /// The merge of `base` (outer scope) and `add` (inner scope).
    pub fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        let mut merged = base.clone();
        merged.path = add.path.clone().or(merged.path);
        if add.tenant.is_some() {
            merged.tenant = add.tenant.clone();
        }
        for (phase, handlers) in add.handlers.iter().enumerate() {
            if handlers.is_some() {
                merged.handlers[phase] = handlers.clone();
            }
        }
        for (key, value) in &add.options {
            set_keyed(&mut merged.options, key, value.clone());
        }
        for (key, value) in &add.flags {
            set_keyed(&mut merged.flags, key, *value);
        }
        for (key, value) in &add.values {
            set_keyed(&mut merged.values, key, value.clone());
        }
        if add.interp_per.is_some() {
            merged.interp_per = add.interp_per;
        }
        for module in &add.imports {
            if !merged.imports.contains(module) {
                merged.imports.push(module.clone());
            }
        }
        for filter in &add.filters {
            merged.add_filter(filter.clone());
        }
        merged
    }

    /// Declare `filter`, replacing one of the same name and direction.
    pub fn add_filter(&mut self, filter: FilterDecl) {
        match self
            .filters
            .iter_mut()
            .find(|f| f.input == filter.input && f.name.eq_ignore_ascii_case(&filter.name))
        {
            Some(existing) => *existing = filter,
            None => self.filters.push(filter),
        }
    }

    /// The filter named `name` in the direction `input`, if declared.
    pub fn filter(&self, name: &str, input: bool) -> Option<&FilterDecl> {
        self.filters
            .iter()
            .find(|f| f.input == input && f.name.eq_ignore_ascii_case(name))
    }

    /// Set a flag directive.
    pub fn set_flag(&mut self, name: &str, on: bool) {
        set_keyed(&mut self.flags, name, on);
    }

    /// Set a value directive.
    pub fn set_value(&mut self, name: &str, value: &str) {
        set_keyed(&mut self.values, name, value.to_string());
    }

    /// Set or unset a `PythonOption`.
    pub fn set_option(&mut self, key: &str, value: Option<&str>) {
        set_keyed(&mut self.options, key, value.map(str::to_string));
    }

    /// A value directive's value, if set.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The handlers declared for `phase` (none when not declared).
    pub fn handlers_of(&self, phase: usize) -> &[Declared] {
        self.handlers[phase].as_deref().unwrap_or_default()
    }

    /// `req.get_config()`: the directives in effect, as mod_python shows them.
    pub fn config_table(&self) -> Vec<(String, String)> {
        let mut table: Vec<(String, String)> = self
            .flags
            .iter()
            .map(|(k, v)| (k.clone(), if *v { "1" } else { "0" }.to_string()))
            .collect();
        table.extend(self.values.iter().cloned());
        if let Some(per) = self.interp_per {
            table.push((per.to_string(), "1".to_string()));
        }
        table
    }

    /// `req.get_options()`.
    pub fn option_table(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    /// The scope's directory on disk, if its path is one.
    pub fn directory(&self) -> Option<PathBuf> {
        let path = PathBuf::from(self.path.as_deref()?);
        path.is_dir().then_some(path)
    }
}

/// `create_dir_config` of the module record.
pub unsafe extern "C" fn create_dir_config(pool: *mut apr_pool_t, dir: *mut c_char) -> *mut c_void {
    let config = DirConfig {
        path: (!dir.is_null()).then(|| text(dir).to_string()),
        ..DirConfig::default()
    };
    crate::pool_box(pool, config).cast()
}

/// `merge_dir_config` of the module record.
pub unsafe extern "C" fn merge_dir_config(
    pool: *mut apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    let merged = guard(DirConfig::default(), || {
        DirConfig::merge(&*base.cast::<DirConfig>(), &*add.cast::<DirConfig>())
    });
    crate::pool_box(pool, merged).cast()
}

/// The configuration of `vector` (a request's or a server's), if any.
pub unsafe fn get<'a>(vector: *mut ffi::ap_conf_vector_t) -> Option<&'a DirConfig> {
    if vector.is_null() {
        return None;
    }
    ffi::wasmpy_shim_get_module_config(vector)
        .cast::<DirConfig>()
        .as_ref()
}
