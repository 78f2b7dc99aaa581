//! Bindings generated from the WIT world in `python-wasm/wit/`: exports are
//! called with wasmtime's async API (deadlines), imports (the live request,
//! `host/request.rs`) are plain calls on the request's thread.

wasmtime::component::bindgen!({
    path: "../python-wasm/wit",
    world: "gateway",
    exports: { default: async },
});
