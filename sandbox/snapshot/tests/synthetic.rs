//! The rewrites on small components shaped like the componentize-py runtime
//! (built here with wasm-encoder): outputs validated by wasmparser and run
//! by wasmtime, and every refusal.

use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, CodeSection, Component,
    ComponentAliasSection, ComponentExportKind, ComponentExportSection, ComponentTypeSection,
    ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, InstanceSection, MemArg, MemorySection, MemoryType,
    Module, ModuleArg, ModuleSection, NestedComponentSection, PrimitiveValType, TypeSection,
    ValType,
};
use wasmparser::{Validator, WasmFeatures};
use wasmpy_snapshot::{
    add_reset_exports, memory_module, split_memory_modules, Error, RESET_ADAPTER_EXPORT,
    RESET_PREOPENS_EXPORT,
};

fn memory_type(pages: u64) -> MemoryType {
    MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    }
}

/// A function storing `value` at `address` of memory 0.
fn store(address: i32, value: i32) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .i32_const(address)
        .i32_const(value)
        .i32_store(MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        })
        .end();
    f
}

/// "Module 0": owns the memory (2 pages, 16 bytes of data), a mutable
/// global and an exported function, like wit-component's main module.
fn main_module(extra_memory: bool) -> Module {
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut memories = MemorySection::new();
    memories.memory(memory_type(2));
    if extra_memory {
        memories.memory(memory_type(1));
    }
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(1024),
    );
    let mut exports = ExportSection::new();
    exports
        .export("memory", ExportKind::Memory, 0)
        .export("__stack_pointer", ExportKind::Global, 0)
        .export("seven", ExportKind::Func, 0);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instructions().i32_const(7).end();
    code.function(&f);
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(64), [1u8; 16]);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&funcs)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code)
        .section(&data);
    module
}

/// A module importing `env.memory` and exporting `name`, which stores
/// `value` at `address`; with `stateful`, it also defines a mutable global
/// (like the WASI adapter); `probe` adds an export reading both cells.
fn library(name: &str, address: i32, value: i32, stateful: bool, probe: bool) -> Module {
    let mut types = TypeSection::new();
    types.ty().function([], []);
    types.ty().function([], [ValType::I32]);
    let mut imports = ImportSection::new();
    imports.import("env", "memory", EntityType::Memory(memory_type(1)));
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    if probe {
        funcs.function(1);
    }
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(0),
    );
    let mut exports = ExportSection::new();
    exports.export(name, ExportKind::Func, 0);
    if probe {
        exports.export("probe", ExportKind::Func, 1);
    }
    let mut code = CodeSection::new();
    code.function(&store(address, value));
    if probe {
        let mut f = Function::new([]);
        let load = MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        };
        f.instructions()
            .i32_const(0)
            .i32_load(load)
            .i32_const(4)
            .i32_load(load)
            .i32_add()
            .end();
        code.function(&f);
    }
    let mut module = Module::new();
    module.section(&types).section(&imports).section(&funcs);
    if stateful {
        module.section(&globals);
    }
    module.section(&exports).section(&code);
    module
}

/// Options for [`runtime`].
#[derive(Default, Clone, Copy)]
struct Shape {
    /// Module 0 defines two memories.
    two_memories: bool,
    /// The adapter defines a memory too.
    adapter_memory: bool,
    /// No module defines a memory (module 0 left out).
    no_memory: bool,
    /// libc is not part of the component.
    no_libc: bool,
    /// libc is instantiated twice.
    libc_twice: bool,
    /// libc has an active data segment.
    libc_data: bool,
    /// A nested component with a module of its own.
    nested_module: bool,
    /// Every module but module 0 ends with an empty data section (what a
    /// wasmtime-wizer snapshot looks like).
    empty_data: bool,
}

/// A component shaped like the runtime: module 0 (memory), module 1 (the
/// adapter, exporting `reset_adapter_state`), module 2 (libc, exporting
/// `__wasilibc_reset_preopens` and `probe`), each instantiated once, and a
/// lifted export `probe: func() -> u32` (read memory cells 0 and 4).
fn runtime(shape: Shape) -> Vec<u8> {
    let mut component = Component::new();
    let main = if shape.no_memory {
        // Exports no memory: the others import one from nowhere; only the
        // refusal is tested.
        library("unused", 0, 0, false, false)
    } else {
        main_module(shape.two_memories)
    };
    component.section(&ModuleSection(&main));
    let mut adapter = if shape.adapter_memory {
        main_module(false)
    } else {
        library("reset_adapter_state", 0, 1, true, false)
    };
    if shape.empty_data {
        adapter.section(&DataSection::new());
    }
    component.section(&ModuleSection(&adapter));
    if !shape.no_libc {
        let mut libc = library("__wasilibc_reset_preopens", 4, 2, false, true);
        if shape.libc_data {
            let mut data = DataSection::new();
            data.active(0, &ConstExpr::i32_const(128), [9u8; 4]);
            libc.section(&data);
        } else if shape.empty_data {
            libc.section(&DataSection::new());
        }
        component.section(&ModuleSection(&libc));
    }
    if shape.nested_module {
        let mut nested = Component::new();
        nested.section(&ModuleSection(&Module::new()));
        component.section(&NestedComponentSection(&nested));
    }
    let mut instances = InstanceSection::new();
    instances.instantiate(0, [] as [(&str, ModuleArg); 0]);
    instances.instantiate(1, [("env", ModuleArg::Instance(0))]);
    if !shape.no_libc {
        instances.instantiate(2, [("env", ModuleArg::Instance(0))]);
        if shape.libc_twice {
            instances.instantiate(2, [("env", ModuleArg::Instance(0))]);
        }
    }
    component.section(&instances);
    if !shape.no_libc {
        let mut aliases = ComponentAliasSection::new();
        aliases.alias(Alias::CoreInstanceExport {
            instance: 2,
            kind: ExportKind::Func,
            name: "probe",
        });
        component.section(&aliases);
        let mut types = ComponentTypeSection::new();
        types
            .function()
            .params(std::iter::empty::<(&str, wasm_encoder::ComponentValType)>())
            .result(Some(PrimitiveValType::U32.into()));
        component.section(&types);
        let mut canon = CanonicalFunctionSection::new();
        canon.lift(0, 0, std::iter::empty::<CanonicalOption>());
        component.section(&canon);
        let mut exports = ComponentExportSection::new();
        // The export defines component function 1: the appended lifts must
        // be numbered after it.
        exports.export("probe", ComponentExportKind::Func, 0, None);
        component.section(&exports);
    }
    component.finish()
}

fn validate(bytes: &[u8]) -> wasmparser::types::Types {
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(bytes)
        .unwrap_or_else(|e| panic!("invalid output: {e}"))
}

/// The module sections of a component, as bytes.
fn module_sections(component: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection {
                unchecked_range, ..
            } => {
                if depth == 0 {
                    out.push(component[unchecked_range].to_vec());
                }
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            _ => {}
        }
    }
    out
}

#[test]
fn reset_exports_are_appended_and_valid() {
    let input = runtime(Shape::default());
    let output = add_reset_exports(&input).unwrap();
    assert_eq!(
        &output[..input.len()],
        &input[..],
        "the input is kept as a prefix"
    );
    let types = validate(&output);
    let types = types.as_ref();
    // probe (lift), probe (export), 2 lifts, 2 exports.
    assert_eq!(types.component_function_count(), 6);
    for index in 2..6 {
        let ty = types.get(types.component_function_at(index)).unwrap();
        assert!(
            ty.params.is_empty() && ty.result.is_none(),
            "func {index} is func()"
        );
    }
    // A second time: refused, the exports exist.
    assert!(matches!(
        add_reset_exports(&output),
        Err(Error::ExportExists(RESET_ADAPTER_EXPORT))
    ));
}

#[test]
fn split_takes_out_the_memory_owner_and_the_adapter() {
    let input = add_reset_exports(&runtime(Shape::default())).unwrap();
    let split = split_memory_modules(&input).unwrap();
    let names: Vec<&str> = split.modules.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["wasmpy-module-0", "wasmpy-module-1"]);
    let original = module_sections(&input);
    assert_eq!(split.modules[0].1, original[0]);
    assert_eq!(split.modules[1].1, original[1]);
    assert_eq!(memory_module(&input).unwrap(), original[0]);
    // Only libc is left as a module section.
    assert_eq!(module_sections(&split.shared), vec![original[2].clone()]);
    let types = validate(&split.shared);
    let types = types.as_ref();
    assert_eq!(types.module_count(), 3, "module indices are kept");
    for (name, bytes) in &split.modules {
        validate(bytes);
        assert!(name.starts_with("wasmpy-module-"));
    }
    // The shared component has no memory of its own any more.
    assert!(matches!(
        memory_module(&split.shared),
        Err(Error::ForeignModules { count: 2 })
    ));
    assert!(matches!(
        split_memory_modules(&split.shared),
        Err(Error::ForeignModules { .. })
    ));
}

/// Link the split component with its modules (or the given replacements)
/// and run: probe, both resets, probe.
fn run_split(split: &wasmpy_snapshot::Split, module0: Option<&[u8]>) -> Vec<u32> {
    use wasmtime::component::{Component, Linker};
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, &split.shared).unwrap();
    let mut linker = Linker::<()>::new(&engine);
    for (name, bytes) in &split.modules {
        let bytes = match (name.as_str(), module0) {
            ("wasmpy-module-0", Some(replacement)) => replacement,
            _ => bytes.as_slice(),
        };
        let module = wasmtime::Module::new(&engine, bytes).unwrap();
        linker.root().module(name, &module).unwrap();
    }
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let probe = instance
        .get_typed_func::<(), (u32,)>(&mut store, "probe")
        .unwrap();
    let mut seen = vec![probe.call(&mut store, ()).unwrap().0];
    for name in [RESET_ADAPTER_EXPORT, RESET_PREOPENS_EXPORT] {
        let reset = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        reset.call(&mut store, ()).unwrap();
        seen.push(probe.call(&mut store, ()).unwrap().0);
    }
    seen
}

#[test]
fn split_component_runs_with_its_modules() {
    let input = add_reset_exports(&runtime(Shape::default())).unwrap();
    let split = split_memory_modules(&input).unwrap();
    // The adapter's reset stores 1 at 0, libc's stores 2 at 4.
    assert_eq!(run_split(&split, None), [0, 1, 3]);
}

#[test]
fn snapshot_shaped_input_splits_the_same_way() {
    let input = add_reset_exports(&runtime(Shape {
        empty_data: true,
        ..Shape::default()
    }))
    .unwrap();
    validate(&input);
    let split = split_memory_modules(&input).unwrap();
    let names: Vec<&str> = split.modules.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["wasmpy-module-0", "wasmpy-module-1"]);
    assert_eq!(run_split(&split, None), [0, 1, 3]);
}

#[test]
fn a_larger_heap_image_satisfies_the_import_type() {
    // A "snapshot": module 0 with a bigger memory and a word preset at 0.
    let input = add_reset_exports(&runtime(Shape::default())).unwrap();
    let split = split_memory_modules(&input).unwrap();
    let mut snapshot = Module::new();
    let base = main_module(false);
    // Rebuild module 0 with 5 pages and data at 0 (what a snapshot changes).
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut memories = MemorySection::new();
    memories.memory(memory_type(5));
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(2048),
    );
    let mut exports = ExportSection::new();
    exports
        .export("memory", ExportKind::Memory, 0)
        .export("__stack_pointer", ExportKind::Global, 0)
        .export("seven", ExportKind::Func, 0);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instructions().i32_const(7).end();
    code.function(&f);
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(0), 40u32.to_le_bytes());
    snapshot
        .section(&types)
        .section(&funcs)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code)
        .section(&data);
    assert_ne!(snapshot.as_slice(), base.as_slice());
    // 40 at 0 is overwritten by the adapter's reset (1), then +2.
    assert_eq!(run_split(&split, Some(snapshot.as_slice())), [40, 1, 3]);
}

#[test]
fn refusals() {
    // A core module.
    let module = main_module(false).finish();
    assert!(matches!(
        add_reset_exports(&module),
        Err(Error::NotAComponent)
    ));
    assert!(matches!(
        split_memory_modules(&module),
        Err(Error::NotAComponent)
    ));
    assert!(matches!(memory_module(&module), Err(Error::NotAComponent)));

    // Garbage and truncation.
    assert!(matches!(
        split_memory_modules(b"nope"),
        Err(Error::Parse(_))
    ));
    let whole = runtime(Shape::default());
    let cut = &whole[..whole.len() - 3];
    assert!(split_memory_modules(cut).is_err());
    assert!(add_reset_exports(cut).is_err());

    let shaped = |shape: Shape| runtime(shape);
    let err = split_memory_modules(&shaped(Shape {
        two_memories: true,
        ..Shape::default()
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Memories {
                module: 0,
                count: 2
            }
        ),
        "{err}"
    );

    let err = split_memory_modules(&shaped(Shape {
        adapter_memory: true,
        ..Shape::default()
    }))
    .unwrap_err();
    assert!(
        matches!(&err, Error::MemoryOwners { modules } if modules == &[0, 1]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "expected exactly one core module defining a linear memory, found 2 (modules 0, 1)"
    );

    let err = memory_module(&shaped(Shape {
        no_memory: true,
        ..Shape::default()
    }))
    .unwrap_err();
    assert!(
        matches!(&err, Error::MemoryOwners { modules } if modules.is_empty()),
        "{err}"
    );

    let err = add_reset_exports(&shaped(Shape {
        no_libc: true,
        ..Shape::default()
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ResetFunction {
                name: "__wasilibc_reset_preopens",
                found: 0
            }
        ),
        "{err}"
    );

    let twice = shaped(Shape {
        libc_twice: true,
        ..Shape::default()
    });
    let err = add_reset_exports(&twice).unwrap_err();
    assert!(
        matches!(err, Error::ResetFunction { found: 2, .. }),
        "{err}"
    );
    let err = split_memory_modules(&twice).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Instantiations {
                module: 2,
                count: 2
            }
        ),
        "{err}"
    );

    let err = split_memory_modules(&shaped(Shape {
        libc_data: true,
        ..Shape::default()
    }))
    .unwrap_err();
    assert!(matches!(err, Error::SharedState { module: 2, .. }), "{err}");

    let nested = shaped(Shape {
        nested_module: true,
        ..Shape::default()
    });
    for err in [
        add_reset_exports(&nested).unwrap_err(),
        split_memory_modules(&nested).unwrap_err(),
        memory_module(&nested).unwrap_err(),
    ] {
        assert!(matches!(err, Error::NestedModules { .. }), "{err}");
    }
}
