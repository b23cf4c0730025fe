//! The GPU executor and what it stands on: the wgpu context and the WGSL kernel cache.

pub mod context;
pub mod executor;
pub mod kernels;

pub use context::{AdapterSummary, GpuContext, list_adapters};
pub use executor::GpuExecutor;
pub use kernels::Kernel;
