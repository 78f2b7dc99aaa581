//! Rewrites of the runtime component (`build/runtime/gateway.wasm`,
//! componentize-py) for per-tenant snapshots:
//!
//! - [`add_reset_exports`] exports two functions, `wasmpy-reset-adapter` and
//!   `wasmpy-reset-preopens`, lifting the WASI adapter's
//!   `reset_adapter_state` and libc's `__wasilibc_reset_preopens`. A host
//!   calls both before capturing a snapshot so that no WASI handle of the
//!   capturing instance stays cached in linear memory (componentize-py's own
//!   pre-initialisation makes the same two calls).
//! - [`split_memory_modules`] turns the core modules holding per-instance
//!   state (the one owning the linear memory, and those defining mutable
//!   globals: the adapter) into core-module *imports* of the component. The
//!   rest (libpython, libc, glue) is compiled once and shared by every
//!   tenant; a tenant supplies its own snapshot of the imported modules
//!   (`wasmtime::component::LinkerInstance::module`).
//! - [`memory_module`] extracts the memory-owning module (the heap image)
//!   from a component, e.g. from a tenant's snapshot.
//!
//! All three are pure functions over component bytes: every section they
//! do not replace is copied byte for byte, and no index of the input
//! changes. Inputs of another shape than the one componentize-py produces
//! (one memory-owning module, modules defined at the top level and
//! instantiated once, ...) are refused with an [`Error`] rather than
//! rewritten approximately.

use std::collections::HashMap;
use std::ops::Range;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, ComponentAliasSection, ComponentExportKind,
    ComponentExportSection, ComponentImportSection, ComponentSection, ComponentTypeRef,
    ComponentTypeSection, ComponentValType, CoreTypeSection, EntityType, ExportKind, ModuleType,
    TagKind,
};
use wasmparser::{
    CanonicalFunction, Chunk, ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind,
    CompositeInnerType, DataKind, Encoding, Export, ExternalKind, GlobalType, Import, Instance,
    MemoryType, Parser, Payload, SubType, TableType, TagType, TypeRef,
};

/// Export of [`add_reset_exports`]: `func()`, lifts the WASI adapter's
/// `reset_adapter_state`.
pub const RESET_ADAPTER_EXPORT: &str = "wasmpy-reset-adapter";
/// Export of [`add_reset_exports`]: `func()`, lifts libc's
/// `__wasilibc_reset_preopens`.
pub const RESET_PREOPENS_EXPORT: &str = "wasmpy-reset-preopens";
/// The core function of the WASI p1→p2 adapter that forgets its cached state.
pub const ADAPTER_RESET_FUNC: &str = "reset_adapter_state";
/// The core function of libc that forgets its cached preopens.
pub const PREOPENS_RESET_FUNC: &str = "__wasilibc_reset_preopens";
/// Prefix of the names under which [`split_memory_modules`] imports modules.
pub const MODULE_IMPORT_PREFIX: &str = "wasmpy-module-";

/// The name under which [`split_memory_modules`] imports core module `index`
/// (`wasmpy-module-0` for module 0).
pub fn module_import_name(index: u32) -> String {
    format!("{MODULE_IMPORT_PREFIX}{index}")
}

/// A component split by [`split_memory_modules`].
#[derive(Debug, Clone)]
pub struct Split {
    /// The component with the stateful core modules replaced by imports.
    pub shared: Vec<u8>,
    /// The import names and the original bytes of the modules taken out, in
    /// module index order: `[("wasmpy-module-0", …), ("wasmpy-module-1", …)]`
    /// for the componentize-py runtime (memory owner, then WASI adapter).
    pub modules: Vec<(String, Vec<u8>)>,
}

/// Why a component cannot be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid WebAssembly.
    #[error("invalid WebAssembly: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// A core module, not a component.
    #[error("not a component (a core wasm module?)")]
    NotAComponent,
    /// Something the parser accepts but a component may not hold.
    #[error("malformed component at byte {offset}: {what}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What.
        what: String,
    },
    /// A section extends past the end of the input.
    #[error("truncated input: a section at byte {offset} extends past the end")]
    Truncated {
        /// Where the section starts.
        offset: usize,
    },
    /// A nested component defines core modules of its own.
    #[error("the nested component at byte {offset} contains core modules; only modules of the top-level component are supported")]
    NestedModules {
        /// Where the nested component starts.
        offset: usize,
    },
    /// Core modules imported, aliased or exported: module indices would not
    /// follow module sections (an input already split?).
    #[error("the component imports, aliases or exports core modules ({count}); only modules defined in place are supported (was it split already?)")]
    ForeignModules {
        /// How many.
        count: u32,
    },
    /// The component has core type definitions, which inserted ones would renumber.
    #[error("the component defines {count} core type(s); new core types would renumber them")]
    CoreTypes {
        /// How many.
        count: u32,
    },
    /// A component start function.
    #[error("the component has a start function")]
    ComponentStart,
    /// A core module instantiated more or less than once.
    #[error("core module {module} is instantiated {count} time(s); each module must be instantiated exactly once")]
    Instantiations {
        /// The module index.
        module: u32,
        /// How many times.
        count: usize,
    },
    /// Not exactly one core module owns a linear memory.
    #[error("expected exactly one core module defining a linear memory, found {}{}", .modules.len(), list(.modules))]
    MemoryOwners {
        /// The modules defining memories.
        modules: Vec<u32>,
    },
    /// The memory-owning module defines several memories.
    #[error("core module {module} defines {count} memories; expected one")]
    Memories {
        /// The module index.
        module: u32,
        /// How many memories.
        count: u32,
    },
    /// A reset function not found in exactly one core instance.
    #[error("expected exactly one core instance exporting the function `{name}`, found {found}")]
    ResetFunction {
        /// The core function's name.
        name: &'static str,
        /// How many instances export it.
        found: usize,
    },
    /// The component already has an export of that name.
    #[error("the component already exports `{0}`")]
    ExportExists(&'static str),
    /// A module uses what a core module type cannot express here (GC types...).
    #[error("core module {module}: {reason}")]
    UnsupportedModule {
        /// The module index.
        module: u32,
        /// What is not supported.
        reason: String,
    },
    /// A module that would stay in the shared component holds or changes
    /// per-instance state that a snapshot must own.
    #[error("core module {module} would stay in the shared component but {reason}")]
    SharedState {
        /// The module index.
        module: u32,
        /// What state.
        reason: &'static str,
    },
}

fn list(modules: &[u32]) -> String {
    if modules.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = modules.iter().map(u32::to_string).collect();
        format!(" (modules {})", names.join(", "))
    }
}

// ---------------------------------------------------------------------------
// The top level of a component.

/// One top-level section of the input, as raw bytes (header included).
struct Section {
    range: Range<usize>,
    /// The module index, for a core module section.
    module: Option<u32>,
}

/// What the rewrites need to know of a component's top level.
struct Layout<'a> {
    bytes: &'a [u8],
    /// The preamble (magic, version, layer).
    header: Range<usize>,
    sections: Vec<Section>,
    /// Byte range of each core module (module index order).
    modules: Vec<Range<usize>>,
    /// For each core instance, the module it instantiates (`None`: built
    /// from exports).
    core_instances: Vec<Option<u32>>,
    /// Sizes of the index spaces the new definitions are appended to.
    core_funcs: u32,
    component_types: u32,
    component_funcs: u32,
    core_types: u32,
    /// Core modules imported, aliased or exported.
    foreign_modules: u32,
    has_start: bool,
    export_names: Vec<&'a str>,
}

impl<'a> Layout<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut layout = Layout {
            bytes,
            header: 0..0,
            sections: Vec::new(),
            modules: Vec::new(),
            core_instances: Vec::new(),
            core_funcs: 0,
            component_types: 0,
            component_funcs: 0,
            core_types: 0,
            foreign_modules: 0,
            has_start: false,
            export_names: Vec::new(),
        };
        let mut parser = Parser::new(0);
        let mut pos = 0;
        loop {
            let start = pos;
            let (consumed, payload) = match parser.parse(&bytes[pos..], true)? {
                Chunk::Parsed { consumed, payload } => (consumed, payload),
                // Not returned when `eof` is true.
                Chunk::NeedMoreData(_) => return Err(Error::Truncated { offset: pos }),
            };
            pos += consumed;
            let mut module = None;
            match payload {
                Payload::Version { encoding, .. } => {
                    if encoding != Encoding::Component {
                        return Err(Error::NotAComponent);
                    }
                    layout.header = start..pos;
                    continue;
                }
                Payload::ModuleSection {
                    unchecked_range, ..
                } => {
                    if unchecked_range.end > bytes.len() {
                        return Err(Error::Truncated { offset: start });
                    }
                    // The parser has moved past the module; so do we.
                    pos = unchecked_range.end;
                    module = Some(layout.modules.len() as u32);
                    layout.modules.push(unchecked_range);
                }
                Payload::ComponentSection {
                    unchecked_range, ..
                } => {
                    if unchecked_range.end > bytes.len() {
                        return Err(Error::Truncated { offset: start });
                    }
                    pos = unchecked_range.end;
                    let nested = &bytes[unchecked_range.clone()];
                    for payload in Parser::new(unchecked_range.start as u64).parse_all(nested) {
                        if let Payload::ModuleSection { .. } = payload? {
                            return Err(Error::NestedModules { offset: start });
                        }
                    }
                }
                Payload::InstanceSection(reader) => {
                    for instance in reader {
                        layout.core_instances.push(match instance? {
                            Instance::Instantiate { module_index, .. } => Some(module_index),
                            Instance::FromExports(_) => None,
                        });
                    }
                }
                Payload::CoreTypeSection(reader) => layout.core_types += reader.count(),
                Payload::ComponentTypeSection(reader) => layout.component_types += reader.count(),
                Payload::ComponentInstanceSection(_) => {}
                Payload::ComponentAliasSection(reader) => {
                    for alias in reader {
                        match alias? {
                            ComponentAlias::InstanceExport { kind, .. } => layout.count(kind),
                            ComponentAlias::CoreInstanceExport { kind, .. } => {
                                if matches!(kind, ExternalKind::Func | ExternalKind::FuncExact) {
                                    layout.core_funcs += 1;
                                }
                            }
                            ComponentAlias::Outer { kind, .. } => match kind {
                                ComponentOuterAliasKind::CoreModule => layout.foreign_modules += 1,
                                ComponentOuterAliasKind::CoreType => layout.core_types += 1,
                                ComponentOuterAliasKind::Type => layout.component_types += 1,
                                ComponentOuterAliasKind::Component => {}
                            },
                        }
                    }
                }
                Payload::ComponentCanonicalSection(reader) => {
                    for func in reader {
                        // `canon lift` defines a component function; every
                        // other canonical definition a core function.
                        match func? {
                            CanonicalFunction::Lift { .. } => layout.component_funcs += 1,
                            _ => layout.core_funcs += 1,
                        }
                    }
                }
                Payload::ComponentStartSection { .. } => layout.has_start = true,
                Payload::ComponentImportSection(reader) => {
                    for import in reader {
                        match import?.ty {
                            wasmparser::ComponentTypeRef::Module(_) => layout.foreign_modules += 1,
                            wasmparser::ComponentTypeRef::Func(_) => layout.component_funcs += 1,
                            wasmparser::ComponentTypeRef::Type(_) => layout.component_types += 1,
                            _ => {}
                        }
                    }
                }
                Payload::ComponentExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        layout.export_names.push(export.name.name);
                        // An export defines a new index in its sort.
                        layout.count(export.kind);
                    }
                }
                Payload::CustomSection(_) => {}
                Payload::End(_) => break,
                // Anything else is either rejected by the parser in a
                // component or unknown to it.
                other => {
                    let what = match other.as_section() {
                        Some((id, _)) => format!("unexpected section {id} in a component"),
                        None => "unexpected payload in a component".to_string(),
                    };
                    return Err(Error::Malformed {
                        offset: start,
                        what,
                    });
                }
            }
            layout.sections.push(Section {
                range: start..pos,
                module,
            });
        }
        Ok(layout)
    }

    /// Count a definition of `kind` in the index spaces tracked.
    fn count(&mut self, kind: ComponentExternalKind) {
        match kind {
            ComponentExternalKind::Module => self.foreign_modules += 1,
            ComponentExternalKind::Func => self.component_funcs += 1,
            ComponentExternalKind::Type => self.component_types += 1,
            _ => {}
        }
    }

    fn module_bytes(&self, module: u32) -> &'a [u8] {
        &self.bytes[self.modules[module as usize].clone()]
    }

    fn require_own_modules(&self) -> Result<(), Error> {
        if self.foreign_modules > 0 {
            return Err(Error::ForeignModules {
                count: self.foreign_modules,
            });
        }
        Ok(())
    }

    /// Parse every core module.
    fn core_modules(&self) -> Result<Vec<CoreModule<'a>>, Error> {
        (0..self.modules.len() as u32)
            .map(|m| CoreModule::parse(self.module_bytes(m)))
            .collect()
    }

    /// The core instances of each module.
    fn instances_of(&self, module: u32) -> Vec<u32> {
        (0..)
            .zip(&self.core_instances)
            .filter(|(_, m)| **m == Some(module))
            .map(|(i, _)| i)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Core modules.

/// One entry of a module's type section.
struct TypeEntry {
    /// Types in its recursion group.
    group_len: usize,
    ty: SubType,
}

/// What the rewrites need to know of a core module.
struct CoreModule<'a> {
    types: Vec<TypeEntry>,
    imports: Vec<Import<'a>>,
    /// Type index of every function (imported first).
    funcs: Vec<u32>,
    tables: Vec<TableType>,
    memories: Vec<MemoryType>,
    globals: Vec<GlobalType>,
    tags: Vec<TagType>,
    defined_memories: u32,
    defined_mutable_globals: u32,
    active_data: u32,
    has_start: bool,
    exports: Vec<Export<'a>>,
}

impl<'a> CoreModule<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut module = CoreModule {
            types: Vec::new(),
            imports: Vec::new(),
            funcs: Vec::new(),
            tables: Vec::new(),
            memories: Vec::new(),
            globals: Vec::new(),
            tags: Vec::new(),
            defined_memories: 0,
            defined_mutable_globals: 0,
            active_data: 0,
            has_start: false,
            exports: Vec::new(),
        };
        let mut parser = Parser::new(0);
        let mut pos = 0;
        loop {
            let (consumed, payload) = match parser.parse(&bytes[pos..], true)? {
                Chunk::Parsed { consumed, payload } => (consumed, payload),
                Chunk::NeedMoreData(_) => return Err(Error::Truncated { offset: pos }),
            };
            pos += consumed;
            match payload {
                Payload::Version { encoding, .. } if encoding != Encoding::Module => {
                    return Err(Error::Malformed {
                        offset: 0,
                        what: "a core module section holds a component".to_string(),
                    });
                }
                Payload::TypeSection(reader) => {
                    for group in reader {
                        let group = group?;
                        let group_len = group.types().len();
                        for ty in group.into_types() {
                            module.types.push(TypeEntry { group_len, ty });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        match import.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => module.funcs.push(ty),
                            TypeRef::Table(ty) => module.tables.push(ty),
                            TypeRef::Memory(ty) => module.memories.push(ty),
                            TypeRef::Global(ty) => module.globals.push(ty),
                            TypeRef::Tag(ty) => module.tags.push(ty),
                        }
                        module.imports.push(import);
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        module.funcs.push(ty?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        module.tables.push(table?.ty);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        module.memories.push(memory?);
                        module.defined_memories += 1;
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let ty = global?.ty;
                        module.defined_mutable_globals += u32::from(ty.mutable);
                        module.globals.push(ty);
                    }
                }
                Payload::TagSection(reader) => {
                    for tag in reader {
                        module.tags.push(tag?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        module.exports.push(export?);
                    }
                }
                Payload::StartSection { .. } => module.has_start = true,
                Payload::DataSection(reader) => {
                    for data in reader {
                        if let DataKind::Active { .. } = data?.kind {
                            module.active_data += 1;
                        }
                    }
                }
                Payload::CodeSectionStart { size, .. } => {
                    parser.skip_section();
                    pos += size as usize;
                }
                Payload::End(_) => break,
                _ => {}
            }
        }
        Ok(module)
    }

    fn exports_func(&self, name: &str) -> bool {
        self.exports.iter().any(|e| {
            e.name == name && matches!(e.kind, ExternalKind::Func | ExternalKind::FuncExact)
        })
    }
}

/// Converts value types for a module type; refuses references to concrete
/// types (GC), which would need their whole type graph copied.
struct NoConcreteTypes;

impl Reencode for NoConcreteTypes {
    type Error = u32;

    fn type_index(&mut self, ty: u32) -> Result<u32, reencode::Error<u32>> {
        Err(reencode::Error::UserError(ty))
    }
}

fn reencode_error(module: u32, error: reencode::Error<u32>) -> Error {
    let reason = match error {
        reencode::Error::UserError(ty) => {
            format!("a value type refers to type {ty} (GC reference types are not supported)")
        }
        other => format!("cannot convert a type: {other}"),
    };
    Error::UnsupportedModule { module, reason }
}

/// The core module type of `module` (index `index`): all its imports and
/// exports with their types.
fn module_type(index: u32, module: &CoreModule<'_>) -> Result<ModuleType, Error> {
    let unsupported = |reason: String| Error::UnsupportedModule {
        module: index,
        reason,
    };
    // The function types imports and exports use, declared first in the
    // module type, numbered in order of first use.
    let mut used: Vec<u32> = Vec::new();
    let mut local: HashMap<u32, u32> = HashMap::new();
    let mut use_type = |ty: u32| {
        local.entry(ty).or_insert_with(|| {
            used.push(ty);
            used.len() as u32 - 1
        });
    };
    let entity_type_index = |kind: ExternalKind, at: u32| -> Result<Option<u32>, Error> {
        let lookup = |list: Option<u32>| {
            list.map(Some)
                .ok_or_else(|| unsupported(format!("export of {kind:?} {at} out of bounds")))
        };
        match kind {
            ExternalKind::Func | ExternalKind::FuncExact => {
                lookup(module.funcs.get(at as usize).copied())
            }
            ExternalKind::Tag => lookup(module.tags.get(at as usize).map(|t| t.func_type_idx)),
            _ => Ok(None),
        }
    };
    for import in &module.imports {
        match import.ty {
            TypeRef::Func(ty) => use_type(ty),
            TypeRef::Tag(tag) => use_type(tag.func_type_idx),
            TypeRef::FuncExact(_) => {
                return Err(unsupported(format!(
                    "import {}.{} has an exact function type",
                    import.module, import.name
                )))
            }
            _ => {}
        }
    }
    for export in &module.exports {
        if export.kind == ExternalKind::FuncExact {
            return Err(unsupported(format!(
                "export {} has an exact function type",
                export.name
            )));
        }
        if let Some(ty) = entity_type_index(export.kind, export.index)? {
            use_type(ty);
        }
    }

    let mut module_type = ModuleType::new();
    for &ty in &used {
        let entry = module
            .types
            .get(ty as usize)
            .ok_or_else(|| unsupported(format!("type {ty} out of bounds")))?;
        let plain = entry.group_len == 1
            && entry.ty.is_final
            && entry.ty.supertype_idx.is_none()
            && !entry.ty.composite_type.shared
            && entry.ty.composite_type.descriptor_idx.is_none()
            && entry.ty.composite_type.describes_idx.is_none();
        let CompositeInnerType::Func(func) = &entry.ty.composite_type.inner else {
            return Err(unsupported(format!("type {ty} is not a function type")));
        };
        if !plain {
            return Err(unsupported(format!(
                "function type {ty} is part of a recursion group, shared or subtyped (GC types are not supported)"
            )));
        }
        let func = NoConcreteTypes
            .func_type(func.clone())
            .map_err(|e| reencode_error(index, e))?;
        module_type.ty().func_type(&func);
    }

    let entity = |ty: TypeRef| -> Result<EntityType, Error> {
        Ok(match ty {
            TypeRef::Func(ty) => EntityType::Function(local[&ty]),
            TypeRef::Tag(tag) => EntityType::Tag(wasm_encoder::TagType {
                kind: TagKind::Exception,
                func_type_idx: local[&tag.func_type_idx],
            }),
            TypeRef::Table(ty) => EntityType::Table(
                NoConcreteTypes
                    .table_type(ty)
                    .map_err(|e| reencode_error(index, e))?,
            ),
            TypeRef::Memory(ty) => EntityType::Memory(ty.into()),
            TypeRef::Global(ty) => EntityType::Global(
                NoConcreteTypes
                    .global_type(ty)
                    .map_err(|e| reencode_error(index, e))?,
            ),
            TypeRef::FuncExact(_) => unreachable!("refused above"),
        })
    };
    for import in &module.imports {
        module_type.import(import.module, import.name, entity(import.ty)?);
    }
    for export in &module.exports {
        let at = export.index as usize;
        let out_of_bounds =
            || unsupported(format!("export {} refers to a missing item", export.name));
        let ty = match export.kind {
            ExternalKind::Func | ExternalKind::FuncExact => {
                TypeRef::Func(*module.funcs.get(at).ok_or_else(out_of_bounds)?)
            }
            ExternalKind::Table => {
                TypeRef::Table(*module.tables.get(at).ok_or_else(out_of_bounds)?)
            }
            ExternalKind::Memory => {
                TypeRef::Memory(*module.memories.get(at).ok_or_else(out_of_bounds)?)
            }
            ExternalKind::Global => {
                TypeRef::Global(*module.globals.get(at).ok_or_else(out_of_bounds)?)
            }
            ExternalKind::Tag => TypeRef::Tag(*module.tags.get(at).ok_or_else(out_of_bounds)?),
        };
        module_type.export(export.name, entity(ty)?);
    }
    Ok(module_type)
}

// ---------------------------------------------------------------------------
// The rewrites.

fn push_section(out: &mut Vec<u8>, section: &impl ComponentSection) {
    out.push(section.id());
    section.encode(out);
}

/// The one core instance instantiating a module that exports function `name`.
fn instance_exporting(
    layout: &Layout<'_>,
    modules: &[CoreModule<'_>],
    name: &'static str,
) -> Result<u32, Error> {
    let found: Vec<u32> = (0..)
        .zip(&layout.core_instances)
        .filter_map(|(i, m)| {
            let module = modules.get((*m)? as usize)?;
            module.exports_func(name).then_some(i)
        })
        .collect();
    match found[..] {
        [instance] => Ok(instance),
        _ => Err(Error::ResetFunction {
            name,
            found: found.len(),
        }),
    }
}

/// Append two exported functions, `wasmpy-reset-adapter: func()` and
/// `wasmpy-reset-preopens: func()`, lifting `reset_adapter_state` of the core
/// instance of the WASI adapter and `__wasilibc_reset_preopens` of the core
/// instance of libc.
///
/// The input is copied unchanged; four sections are appended (two core
/// function aliases, one component function type, two `canon lift`, two
/// exports), so every existing index keeps its meaning.
pub fn add_reset_exports(component: &[u8]) -> Result<Vec<u8>, Error> {
    let layout = Layout::parse(component)?;
    layout.require_own_modules()?;
    for name in [RESET_ADAPTER_EXPORT, RESET_PREOPENS_EXPORT] {
        if layout.export_names.contains(&name) {
            return Err(Error::ExportExists(name));
        }
    }
    let modules = layout.core_modules()?;
    let adapter = instance_exporting(&layout, &modules, ADAPTER_RESET_FUNC)?;
    let libc = instance_exporting(&layout, &modules, PREOPENS_RESET_FUNC)?;

    let mut out = Vec::with_capacity(component.len() + 256);
    out.extend_from_slice(component);

    let mut aliases = ComponentAliasSection::new();
    for (instance, name) in [(adapter, ADAPTER_RESET_FUNC), (libc, PREOPENS_RESET_FUNC)] {
        aliases.alias(Alias::CoreInstanceExport {
            instance,
            kind: ExportKind::Func,
            name,
        });
    }
    push_section(&mut out, &aliases);

    let mut types = ComponentTypeSection::new();
    types
        .function()
        .params(std::iter::empty::<(&str, ComponentValType)>())
        .result(None);
    push_section(&mut out, &types);
    let func_type = layout.component_types;

    let mut canon = CanonicalFunctionSection::new();
    for core_func in [layout.core_funcs, layout.core_funcs + 1] {
        // No parameters, no results: no memory, realloc or encoding needed.
        canon.lift(core_func, func_type, std::iter::empty::<CanonicalOption>());
    }
    push_section(&mut out, &canon);

    let mut exports = ComponentExportSection::new();
    for (func, name) in [
        (layout.component_funcs, RESET_ADAPTER_EXPORT),
        (layout.component_funcs + 1, RESET_PREOPENS_EXPORT),
    ] {
        exports.export(name, ComponentExportKind::Func, func, None);
    }
    push_section(&mut out, &exports);
    Ok(out)
}

/// The one memory-owning module: its index.
fn memory_owner(modules: &[CoreModule<'_>]) -> Result<u32, Error> {
    let owners: Vec<u32> = (0..)
        .zip(modules)
        .filter(|(_, m)| m.defined_memories > 0)
        .map(|(i, _)| i)
        .collect();
    match owners[..] {
        [owner] => {
            let count = modules[owner as usize].defined_memories;
            if count != 1 {
                return Err(Error::Memories {
                    module: owner,
                    count,
                });
            }
            Ok(owner)
        }
        _ => Err(Error::MemoryOwners { modules: owners }),
    }
}

/// Rewrite `component` so that the core modules holding per-instance state
/// become imports, and return them.
///
/// The modules taken out are the one defining the linear memory (module 0
/// of a componentize-py runtime: the heap image, globals, the function
/// table) and every module defining mutable globals (module 1, the WASI
/// adapter). Each module section is replaced in place by a core type
/// section with the module's type (every import and export with its type;
/// the memory minimum as in the input) and an import
/// `(import "wasmpy-module-N" (core module <type>))`, so module indices do
/// not change. Any snapshot of the same runtime whose memory is at least as
/// large satisfies that type.
///
/// Refused: core modules in nested components or imported/aliased/exported,
/// core type definitions, a component start function, a module not
/// instantiated exactly once, not exactly one memory-owning module (with
/// one memory), and modules that would stay shared but hold state a
/// snapshot changes or re-run code at instantiation (active data segments,
/// a start function).
pub fn split_memory_modules(component: &[u8]) -> Result<Split, Error> {
    let layout = Layout::parse(component)?;
    layout.require_own_modules()?;
    if layout.core_types > 0 {
        return Err(Error::CoreTypes {
            count: layout.core_types,
        });
    }
    if layout.has_start {
        return Err(Error::ComponentStart);
    }
    let modules = layout.core_modules()?;
    for index in 0..modules.len() as u32 {
        let count = layout.instances_of(index).len();
        if count != 1 {
            return Err(Error::Instantiations {
                module: index,
                count,
            });
        }
    }
    let owner = memory_owner(&modules)?;
    let taken: Vec<u32> = (0..)
        .zip(&modules)
        .filter(|(i, m)| *i == owner || m.defined_mutable_globals > 0)
        .map(|(i, _)| i)
        .collect();
    for (index, module) in (0..).zip(&modules) {
        if taken.contains(&index) {
            continue;
        }
        let reason = if module.active_data > 0 {
            Some("it has active data segments (written over the memory at every instantiation)")
        } else if module.has_start {
            Some("it has a start function (run again at every instantiation)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::SharedState {
                module: index,
                reason,
            });
        }
    }

    let mut types = HashMap::new();
    for &index in &taken {
        types.insert(index, module_type(index, &modules[index as usize])?);
    }

    let mut shared = Vec::with_capacity(component.len());
    shared.extend_from_slice(&component[layout.header.clone()]);
    let mut next_core_type = layout.core_types;
    for section in &layout.sections {
        match section.module.and_then(|m| types.get(&m).map(|ty| (m, ty))) {
            Some((index, ty)) => {
                let mut core_types = CoreTypeSection::new();
                core_types.ty().module(ty);
                push_section(&mut shared, &core_types);
                let mut imports = ComponentImportSection::new();
                imports.import(
                    module_import_name(index).as_str(),
                    ComponentTypeRef::Module(next_core_type),
                );
                push_section(&mut shared, &imports);
                next_core_type += 1;
            }
            None => shared.extend_from_slice(&component[section.range.clone()]),
        }
    }
    let modules = taken
        .iter()
        .map(|&index| {
            (
                module_import_name(index),
                layout.module_bytes(index).to_vec(),
            )
        })
        .collect();
    Ok(Split { shared, modules })
}

/// The bytes of the one core module of `component` that defines a linear
/// memory (module 0 of a componentize-py runtime): from a tenant's snapshot,
/// the module holding its heap image, to be linked as `wasmpy-module-0` into
/// the shared component of [`split_memory_modules`].
pub fn memory_module(component: &[u8]) -> Result<Vec<u8>, Error> {
    let layout = Layout::parse(component)?;
    layout.require_own_modules()?;
    let modules = layout.core_modules()?;
    let owner = memory_owner(&modules)?;
    Ok(layout.module_bytes(owner).to_vec())
}
