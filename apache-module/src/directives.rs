//! mod_python's directives (`Python*`, with their names and contexts) and
//! `WasmPyTenant`, which binds a scope to a tenant's sandbox. Each fills the
//! [`DirConfig`] of the scope it appears in; `shim.c` holds the table.

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;

use wasmpy_sandbox::http::parse_handler_list as parse_handlers;
use wasmpy_sandbox::Handler;

use crate::dirconfig::{Declared, DirConfig, FilterDecl, PHASES};
use crate::ffi::{self, cmd_parms};
use crate::{config, config_mut, directive_result, guard, server_path, text};

/// The scope's configuration (the `cfg` Apache passes to a directive).
unsafe fn scope<'a>(cfg: *mut c_void) -> &'a mut DirConfig {
    &mut *cfg.cast::<DirConfig>()
}

/// The section path of the directive (`None` at server scope).
unsafe fn section(cmd: *mut cmd_parms) -> Option<String> {
    let path = (*cmd).path;
    (!path.is_null()).then(|| text(path).to_string())
}

/// The sections enclosing the directive, innermost first.
unsafe fn enclosing(cmd: *mut cmd_parms) -> impl Iterator<Item = &'static ffi::ap_directive_t> {
    let first = (*cmd).directive.as_ref().and_then(|d| d.parent.as_ref());
    std::iter::successors(first, |d| d.parent.as_ref())
}

/// The path argument of a section directive (`<Directory "/x">` -> `/x`).
unsafe fn section_arg(section: &ffi::ap_directive_t) -> String {
    text(section.args)
        .trim_end_matches('>')
        .trim()
        .trim_matches('"')
        .to_string()
}

/// Whether a `WasmPyTenant` is among the directives of `section`.
unsafe fn declares_tenant(section: &ffi::ap_directive_t) -> bool {
    let children = section.first_child.as_ref();
    std::iter::successors(children, |d| d.next.as_ref())
        .any(|d| text(d.directive).eq_ignore_ascii_case("WasmPyTenant"))
}

/// The directory a handler declared here is "in" (mod_python puts it on
/// sys.path): the section's own path when it is a directory (`<Directory>`,
/// `.htaccess`), else the nearest enclosing `<Directory>`.
unsafe fn handler_directory(cmd: *mut cmd_parms, cfg: &DirConfig) -> Option<PathBuf> {
    cfg.directory().or_else(|| {
        enclosing(cmd)
            .find(|s| text(s.directive).eq_ignore_ascii_case("<Directory"))
            .map(|s| PathBuf::from(section_arg(s)))
            .filter(|p| p.is_dir())
    })
}

/// Refuse a Python directive in a scope no `WasmPyTenant` binds: its
/// handlers would have no sandbox to run in.
unsafe fn require_tenant(cmd: *mut cmd_parms, cfg: &DirConfig, name: &str) -> Result<(), String> {
    if cfg.tenant.is_some() || enclosing(cmd).any(|s| declares_tenant(s)) {
        return Ok(());
    }
    let server = (*cmd).server as usize;
    if config()
        .bound_tenant(server, section(cmd).as_deref())
        .is_some()
    {
        return Ok(());
    }
    Err(format!(
        "{name}: no WasmPyTenant binds this scope: Python handlers run in a tenant's sandbox; \
         put `WasmPyTenant TENANT-DIR` before it, in this section or an enclosing one"
    ))
}

/// Run a directive body with the checks every Python directive shares.
unsafe fn python_directive(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    name: &str,
    body: impl FnOnce(&mut DirConfig) -> Result<(), String>,
) -> *const c_char {
    let result = guard(Err(format!("{name}: internal error")), || {
        let cfg = scope(cfg);
        require_tenant(cmd, cfg, name)?;
        body(cfg)
    });
    directive_result(cmd, result)
}

/// The directive's own name, as written in the config.
unsafe fn directive_name(cmd: *mut cmd_parms) -> String {
    let command = (*cmd).cmd;
    if command.is_null() {
        return "Python directive".into();
    }
    text((*command).name).to_string()
}

/// `WasmPyTenant TENANT-DIR`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_tenant(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    dir: *const c_char,
) -> *const c_char {
    let result = guard(Err("WasmPyTenant: internal error".into()), || {
        let dir = server_path(cmd, dir);
        let server = (*cmd).server;
        let main = (*server).is_virtual == 0;
        let path = section(cmd);
        let name = config_mut().bind_tenant(server as usize, main, path.as_deref(), &dir)?;
        scope(cfg).tenant = Some(name);
        Ok(())
    });
    directive_result(cmd, result)
}

/// `PythonHandler` and every phase directive (`cmd->info` is the phase).
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_handler(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    let phase = (*cmd).info as usize;
    let name = PHASES.get(phase).copied().unwrap_or("PythonHandler");
    let args = text(args).to_string();
    let section_path = section(cmd);
    let in_directory = section_path.is_some();
    python_directive(cmd, cfg, name, |cfg| {
        let (specs, extensions) = parse_handlers(&args).map_err(|e| format!("{name}: {e}"))?;
        let directory = handler_directory(cmd, cfg);
        let list = cfg.handlers[phase].get_or_insert_with(Vec::new);
        for spec in specs {
            list.push(Declared {
                handler: Handler {
                    spec,
                    directory: directory.clone(),
                    extensions: extensions.clone(),
                    silent: false,
                },
                in_directory,
                section: section_path.clone(),
            });
        }
        Ok(())
    })
}

/// `PythonHandlerModule module`: the module's function of each phase
/// handles that phase, if it has one.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_handler_module(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    module: *const c_char,
) -> *const c_char {
    let module = text(module).to_string();
    let section_path = section(cmd);
    let in_directory = section_path.is_some();
    python_directive(cmd, cfg, "PythonHandlerModule", |cfg| {
        parse_handlers(&module).map_err(|e| format!("PythonHandlerModule: {e}"))?;
        let directory = handler_directory(cmd, cfg);
        for list in cfg.handlers.iter_mut() {
            list.get_or_insert_with(Vec::new).push(Declared {
                handler: Handler {
                    spec: module.clone(),
                    directory: directory.clone(),
                    extensions: Vec::new(),
                    silent: true,
                },
                in_directory,
                section: section_path.clone(),
            });
        }
        Ok(())
    })
}

/// `PythonOption key [value]`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_option(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    key: *const c_char,
    value: *const c_char,
) -> *const c_char {
    let key = text(key).to_string();
    let value = (!value.is_null()).then(|| text(value).to_string());
    python_directive(cmd, cfg, "PythonOption", |cfg| {
        cfg.set_option(&key, value.as_deref());
        Ok(())
    })
}

/// `PythonDebug`, `PythonAutoReload`, `PythonEnablePdb`, `PythonOptimize`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_flag(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    on: c_int,
) -> *const c_char {
    let name = directive_name(cmd);
    python_directive(cmd, cfg, &name.clone(), |cfg| {
        cfg.set_flag(&name, on != 0);
        Ok(())
    })
}

/// `PythonPath expr`, `PythonInterpreter name`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_value(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    value: *const c_char,
) -> *const c_char {
    let name = directive_name(cmd);
    let value = text(value).to_string();
    python_directive(cmd, cfg, &name.clone(), |cfg| {
        if value.len() > 4096 {
            return Err(format!("{name}: longer than 4096 bytes"));
        }
        cfg.set_value(&name, &value);
        Ok(())
    })
}

/// `PythonInterpPerDirectory`, `PythonInterpPerDirective`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_no_args(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
) -> *const c_char {
    let name = directive_name(cmd);
    python_directive(cmd, cfg, &name.clone(), |cfg| {
        cfg.interp_per = Some(if name == "PythonInterpPerDirectory" {
            "PythonInterpPerDirectory"
        } else {
            "PythonInterpPerDirective"
        });
        Ok(())
    })
}

/// `PythonImport module interpreter`.
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_import(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    module: *const c_char,
    _interpreter: *const c_char,
) -> *const c_char {
    let module = text(module).to_string();
    python_directive(cmd, cfg, "PythonImport", |cfg| {
        parse_handlers(&module).map_err(|e| format!("PythonImport: {e}"))?;
        if !cfg.imports.contains(&module) {
            cfg.imports.push(module.clone());
        }
        Ok(())
    })
}

/// `PythonOutputFilter handler NAME` / `PythonInputFilter handler NAME`
/// (`cmd->info` non-null: input): register NAME with Apache; the scope's
/// tenant runs the handler over the data (`filters.rs`).
#[no_mangle]
pub unsafe extern "C" fn wasmpy_cmd_python_filter(
    cmd: *mut cmd_parms,
    cfg: *mut c_void,
    handler: *const c_char,
    name: *const c_char,
) -> *const c_char {
    let input = !(*cmd).info.is_null();
    let directive = if input {
        "PythonInputFilter"
    } else {
        "PythonOutputFilter"
    };
    let spec = text(handler).to_string();
    let filter_name = text(name).to_string();
    python_directive(cmd, cfg, directive, |cfg| {
        let (specs, _) = parse_handlers(&spec).map_err(|e| format!("{directive}: {e}"))?;
        if specs.len() != 1 {
            return Err(format!("{directive}: one handler, then the filter's name"));
        }
        crate::filters::check_name(&filter_name).map_err(|e| format!("{directive}: {e}"))?;
        crate::filters::register(&filter_name, input);
        cfg.add_filter(FilterDecl {
            name: filter_name.clone(),
            input,
            handler: Handler {
                spec: spec.clone(),
                directory: handler_directory(cmd, cfg),
                extensions: Vec::new(),
                silent: false,
            },
            tenant: None,
        });
        Ok(())
    })
}
