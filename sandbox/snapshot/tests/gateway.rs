//! The rewrites on the real runtime, `build/runtime/gateway.wasm` (built by
//! `python-wasm/build.sh`; the test is skipped when it is absent): the
//! shared component and its two modules are compiled separately, linked
//! with `LinkerInstance::module`, instantiated with WASI, and run: both
//! resets, then `load` of a small application from `/app` (which needs the
//! preopens that the resets made the guest forget).
//!
//! Run with `--nocapture` to see sizes and timings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmpy_snapshot::{
    add_reset_exports, memory_module, split_memory_modules, RESET_ADAPTER_EXPORT,
    RESET_PREOPENS_EXPORT,
};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Module, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

fn runtime_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/runtime")
}

/// The runtime component, or `None` (and a message) when it is not built.
fn gateway() -> Option<Vec<u8>> {
    let path = runtime_dir().join("gateway.wasm");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot read {} ({e}); build it with python-wasm/build.sh",
                path.display()
            );
            None
        }
    }
}

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The appended definitions are numbered right after the input's own, as
/// wasmparser's validator counts them, and lift the two reset functions.
fn check_appended_indices(input: &[u8], output: &[u8]) {
    use wasmparser::{CanonicalFunction, ComponentAlias, Payload};
    let features = wasmparser::WasmFeatures::default();
    let before = wasmparser::Validator::new_with_features(features)
        .validate_all(input)
        .unwrap();
    let before = before.as_ref();
    let mut aliased = Vec::new();
    let mut lifts = Vec::new();
    let mut exports = Vec::new();
    let appended = |range: std::ops::Range<usize>| range.start >= input.len();
    for payload in wasmparser::Parser::new(0).parse_all(output) {
        match payload {
            Ok(Payload::ComponentAliasSection(reader)) if appended(reader.range()) => {
                for alias in reader {
                    if let ComponentAlias::CoreInstanceExport { name, .. } = alias.unwrap() {
                        aliased.push(name.to_string());
                    }
                }
            }
            Ok(Payload::ComponentCanonicalSection(reader)) if appended(reader.range()) => {
                for func in reader {
                    if let CanonicalFunction::Lift {
                        core_func_index,
                        type_index,
                        ..
                    } = func.unwrap()
                    {
                        lifts.push((core_func_index, type_index));
                    }
                }
            }
            Ok(Payload::ComponentExportSection(reader)) if appended(reader.range()) => {
                for export in reader {
                    let export = export.unwrap();
                    exports.push((export.name.name.to_string(), export.index));
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        aliased,
        ["reset_adapter_state", "__wasilibc_reset_preopens"]
    );
    let core_funcs = before.function_count();
    let types = before.component_type_count();
    assert_eq!(lifts, [(core_funcs, types), (core_funcs + 1, types)]);
    let funcs = before.component_function_count();
    assert_eq!(
        exports,
        [
            (RESET_ADAPTER_EXPORT.to_string(), funcs),
            (RESET_PREOPENS_EXPORT.to_string(), funcs + 1)
        ]
    );
}

fn mb(bytes: usize) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// Define every function of the component's `wasmpy:` instance imports as a
/// function that fails.
fn stub_gateway_imports(linker: &mut Linker<Host>, component: &Component) {
    let engine = component.engine().clone();
    let ty = component.component_type();
    let mut stubbed = Vec::new();
    for (name, import) in ty.imports(&engine) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        if !name.starts_with("wasmpy:") {
            continue;
        }
        let mut linker = linker.instance(name).unwrap();
        for (func, item) in instance.exports(&engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let what = format!("{name}#{func}");
                linker
                    .func_new(func, move |_, _, _, _| {
                        Err(wasmtime::Error::msg(format!(
                            "stub host import {what} called"
                        )))
                    })
                    .unwrap();
            }
        }
        stubbed.push(name.to_string());
    }
    for wanted in ["wasmpy:gateway/request@", "wasmpy:gateway/state@"] {
        assert!(
            stubbed.iter().any(|n| n.starts_with(wanted)),
            "stubbed {stubbed:?}"
        );
    }
}

#[test]
fn gateway_split_validates_and_runs() {
    let Some(bytes) = gateway() else { return };

    let started = Instant::now();
    let with_resets = add_reset_exports(&bytes).expect("add_reset_exports");
    let reset_time = started.elapsed();
    let started = Instant::now();
    let split = split_memory_modules(&with_resets).expect("split_memory_modules");
    let split_time = started.elapsed();
    let started = Instant::now();
    let heap = memory_module(&with_resets).expect("memory_module");
    let memory_module_time = started.elapsed();
    eprintln!(
        "input {}; add_reset_exports {:?} (+{} bytes); split_memory_modules {:?}; memory_module {:?}",
        mb(bytes.len()),
        reset_time,
        with_resets.len() - bytes.len(),
        split_time,
        memory_module_time
    );
    eprintln!(
        "shared component: {} ({} bytes)",
        mb(split.shared.len()),
        split.shared.len()
    );
    for (name, module) in &split.modules {
        eprintln!("{name}: {} ({} bytes)", mb(module.len()), module.len());
    }

    let names: Vec<&str> = split.modules.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["wasmpy-module-0", "wasmpy-module-1"]);
    assert_eq!(heap, split.modules[0].1);
    assert_eq!(
        memory_module(&bytes).unwrap(),
        heap,
        "same module before the resets"
    );
    // Sizes add up: the shared part plus the modules is about the input.
    let total = split.shared.len() + split.modules.iter().map(|(_, m)| m.len()).sum::<usize>();
    assert!(
        total.abs_diff(with_resets.len()) < 200_000,
        "{total} vs {}",
        with_resets.len()
    );

    // wasmparser: the outputs are valid components / modules.
    let started = Instant::now();
    let features = wasmparser::WasmFeatures::default();
    wasmparser::Validator::new_with_features(features)
        .validate_all(&with_resets)
        .expect("component with reset exports is valid");
    let types = wasmparser::Validator::new_with_features(features)
        .validate_all(&split.shared)
        .expect("shared component is valid");
    assert_eq!(types.as_ref().module_count(), 14, "module indices are kept");
    check_appended_indices(&bytes, &with_resets);
    for (name, module) in &split.modules {
        wasmparser::Validator::new_with_features(features)
            .validate_all(module)
            .unwrap_or_else(|e| panic!("{name} is invalid: {e}"));
    }
    eprintln!(
        "wasmparser validation of all outputs: {:?}",
        started.elapsed()
    );

    // wasmtime: compile separately, link, instantiate, run.
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    let engine = Engine::new(&config).unwrap();
    let started = Instant::now();
    let component = Component::new(&engine, &split.shared).expect("compile the shared component");
    eprintln!(
        "compile shared component: {:?}, serialized {}",
        started.elapsed(),
        mb(component.serialize().unwrap().len())
    );
    let mut modules = Vec::new();
    for (name, bytes) in &split.modules {
        let started = Instant::now();
        let module =
            Module::new(&engine, bytes).unwrap_or_else(|e| panic!("compile {name}: {e:#}"));
        eprintln!(
            "compile {name}: {:?}, serialized {}",
            started.elapsed(),
            mb(module.serialize().unwrap().len())
        );
        modules.push((name.clone(), module));
    }

    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    for (name, module) in &modules {
        linker.root().module(name, module).unwrap();
    }
    // The world's own imports (`wasmpy:gateway/request`, `state`): stubs
    // that trap, nothing here calls them. (`define_unknown_imports_as_traps`
    // is not usable: it shadows the semver-matched WASI instances with traps.)
    stub_gateway_imports(&mut linker, &component);
    let started = Instant::now();
    let pre = linker
        .instantiate_pre(&component)
        .expect("the modules satisfy the imports of the shared component");
    eprintln!("instantiate_pre: {:?}", started.elapsed());

    let app = std::env::temp_dir().join(format!("wasmpy-snapshot-test-{}", std::process::id()));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("snapapp.py"),
        "import os\nprint('snapapp imported', sorted(os.listdir('/app')))\n\
         def application(environ, start_response):\n    return []\n",
    )
    .unwrap();
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .arg("wasmpy")
        .allow_blocking_current_thread(true)
        .preopened_dir(&app, "/app", FsPerms::ReadOnly)
        .unwrap()
        .preopened_dir(runtime_dir().join("python"), "/python", FsPerms::ReadOnly)
        .unwrap();
    let mut store = Store::new(
        &engine,
        Host {
            wasi: builder.build(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = tokio.block_on(async {
        let started = Instant::now();
        let instance = pre.instantiate_async(&mut store).await?;
        eprintln!("instantiate: {:?}", started.elapsed());
        for name in [RESET_ADAPTER_EXPORT, RESET_PREOPENS_EXPORT] {
            let reset = instance.get_typed_func::<(), ()>(&mut store, name)?;
            let started = Instant::now();
            reset.call_async(&mut store, ()).await?;
            eprintln!("{name}: {:?}", started.elapsed());
        }
        let load = instance
            .get_func(&mut store, "load")
            .ok_or_else(|| anyhow::anyhow!("no export `load`"))?;
        let mut results = [Val::Bool(false)];
        let started = Instant::now();
        load.call_async(
            &mut store,
            &[
                Val::String("snapapp:application".into()),
                Val::List(Vec::new()),
            ],
            &mut results,
        )
        .await?;
        eprintln!("load: {:?}", started.elapsed());
        anyhow::Ok(results[0].clone())
    });
    let _ = std::fs::remove_dir_all(&app);
    let stdout = String::from_utf8_lossy(&stdout.contents()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
    let loaded = result.unwrap_or_else(|e| panic!("trapped: {e:#}\nstderr:\n{stderr}"));
    assert_eq!(
        loaded,
        Val::Result(Ok(None)),
        "load failed:\n{loaded:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("snapapp imported ['snapapp.py']"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
