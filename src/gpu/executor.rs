//! The GPU executor: allocates a graph's buffers once, builds each op's dispatches (pipeline +
//! bind group; most ops have one, a few need several in sequence) once, and replays the op list
//! for any number of steps in one submission.
//!
//! Its rooms: `build` allocates the buffers and compiles the dispatches, `record` records and
//! submits steps, `transfer` moves data between the host and the executor's buffers, and `plan`
//! (with `regularizers`, `optim` and `psd`) says which dispatches each op compiles to.

use std::collections::HashMap;
use std::sync::Arc;

use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Constants, Kernel};
use crate::graph::{BufId, Graph, Tensor};

mod build;
mod optim;
mod pending;
mod plan;
mod psd;
mod record;
mod regularizers;
mod rows;
mod transfer;

pub use pending::PendingRead;
pub use plan::dispatch_plan;
pub(crate) use plan::flag;
pub(super) use plan::{grid_1d, u32s};
pub use rows::RowLayout;
pub(super) use rows::{layout as row_layout, row_sum, with_layout};

/// Bytes between step slots in the ring: wgpu's minimum uniform dynamic-offset alignment.
const STEP_SLOT: u64 = 256;
/// Steps one submission can carry.
pub const MAX_STEPS_PER_SUBMIT: usize = 64;

struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    uses_step: bool,
}

/// One dispatch of an op: the kernel, its specialization constants, what it binds (in the
/// kernel's binding order) and the grid.
pub(super) struct Plan {
    pub(super) kernel: Kernel,
    pub(super) constants: Constants,
    pub(super) resources: Vec<Resource>,
    pub(super) groups: [u32; 3],
}

/// What one dispatch binds, in its kernel's binding order.
#[derive(Clone)]
pub(super) enum Resource {
    Buffer(BufId),
    /// A storage slot the op does not use (e.g. the aux operand of a plain matmul).
    Unused,
    Uniform(Vec<u8>),
    Step,
    /// A private buffer of the executor, `scratch[i]` (an op's intermediate results; one
    /// buffer, `scratch[0]`, shared by every op that needs one).
    Scratch(usize),
}

/// A copy between an application's buffer and a view of an executor's buffers
/// ([`GpuExecutor::run_with_copies`]).
#[derive(Clone, Copy, Debug)]
pub struct BufferCopy<'a> {
    /// The application's buffer (`COPY_SRC` to copy from it, `COPY_DST` to copy into it).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset in `buffer`, a multiple of 4.
    pub offset: u64,
    /// The executor's view: `tensor.len()` floats are copied.
    pub tensor: Tensor,
}

/// Runs a [`Graph`] on one GPU.
pub struct GpuExecutor {
    ctx: Arc<GpuContext>,
    graph: Graph,
    buffers: Vec<wgpu::Buffer>,
    step_ring: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    /// Op `i` records `dispatches[op_start[i]..op_start[i + 1]]`; `ops.len() + 1` entries.
    op_start: Vec<usize>,
    staging: HashMap<BufId, wgpu::Buffer>,
    /// The staging buffers of range reads not in flight ([`GpuExecutor::submit_and_copy`]).
    pool: pending::StagingPool,
    /// The buffer ops keep intermediate results in between their dispatches
    /// ([`Resource::Scratch`]), shared by all of them.
    scratch: Vec<wgpu::Buffer>,
}

impl GpuExecutor {
    /// The graph being executed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}
