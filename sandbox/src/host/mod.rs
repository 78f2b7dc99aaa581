//! Host state of one instance, one module per capability: the WASI context
//! (`wasi.rs`), the live request (`request.rs`), the tenant's grants as
//! paths (`grants.rs`) and its private state's locks (`state.rs`).

pub mod grants;
pub mod request;
pub mod state;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::clock::RequestClock;
use crate::instance::MemoryLimiter;
use request::ActiveRequest;
use state::StateLocks;

/// Per-store host state: the WASI context, the limiter, the request clock
/// and the request being served, if any.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) clock: RequestClock,
    /// The request the instance is serving (None between requests: every
    /// request call is then `stale`).
    pub(crate) request: Option<ActiveRequest>,
    /// The tenant-wide locks this instance holds (`state.rs`).
    pub(crate) locks: StateLocks,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
