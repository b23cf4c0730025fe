//! The GPU executor and what it stands on: the wgpu context and the WGSL kernel cache.
//!
//! Most programs only open a [`GpuContext`] (or hand Hourglass their own wgpu device with
//! [`GpuContext::from_wgpu`]) and pass it to [`Device::Gpu`](crate::train::Device::Gpu); the
//! executor and kernels are the machinery underneath.

pub mod autotune;
pub mod context;
mod conv;
pub mod executor;
pub mod kernels;
pub mod matrix;
pub mod options;
pub mod roofline;
pub mod specializations;

pub use autotune::MatmulShape;
pub use context::{
    AdapterSummary, COOP_WORKGROUP_BYTES, GpuContext, cooperative_matrix_translates_to,
    list_adapters, list_adapters_on,
};
pub use executor::{BufferCopy, GpuExecutor, PendingRead};
pub use kernels::Kernel;
pub use matrix::DeviceMatrix;
pub use options::{Autotune, Backend, GpuOptions};
