//! The GPU executor: allocates a graph's buffers once, builds each op's dispatches (pipeline +
//! bind group; most ops have one, a few need several in sequence) once, and replays the op list
//! for any number of steps in one submission.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulShape;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Constants, Kernel, Slot};
use crate::graph::{
    BufId, DType, Epilogue, Graph, Guard, LOSS_SCALE_BOUNDS, LOSS_SCALE_GROWTH_INTERVAL, Op,
    Operand, StepParams, Tensor,
};
use crate::model::Noise;

mod psd;

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
    /// The buffer ops keep intermediate results in between their dispatches
    /// ([`Resource::Scratch`]), shared by all of them.
    scratch: Vec<wgpu::Buffer>,
}

/// A 1-D grid of 256-wide workgroups for `n` elements, folded into y past 65,535 groups.
pub(super) fn grid_1d(n: usize) -> [u32; 3] {
    let groups = n.div_ceil(256).max(1) as u32;
    if groups <= 65_535 {
        [groups, 1, 1]
    } else {
        [65_535, groups.div_ceil(65_535), 1]
    }
}

/// One workgroup per row (or unit) for `n` rows, folded into y past 65,535 (see
/// `workgroup_row` in shaders/workgroup.wgsl).
pub(super) fn grid_rows(n: usize) -> [u32; 3] {
    let n = n.max(1) as u32;
    if n <= 65_535 {
        [n, 1, 1]
    } else {
        [65_535, n.div_ceil(65_535), 1]
    }
}

/// A uniform of 32-bit words; floats go in by their bits.
fn words(v: &[Word]) -> Vec<u8> {
    let w: Vec<u32> = v
        .iter()
        .map(|x| match *x {
            Word::U(u) => u as u32,
            Word::F(f) => f.to_bits(),
        })
        .collect();
    bytemuck::cast_slice(&w).to_vec()
}

/// One word of a uniform struct.
#[derive(Clone, Copy)]
enum Word {
    U(usize),
    F(f32),
}

pub(super) fn u32s(v: &[usize]) -> Vec<u8> {
    let words: Vec<u32> = v.iter().map(|&x| x as u32).collect();
    bytemuck::cast_slice(&words).to_vec()
}

/// A boolean specialization constant.
pub(crate) fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl GpuExecutor {
    /// Allocates `graph`'s buffers on `ctx`'s device and compiles its dispatches.
    pub fn new(ctx: Arc<GpuContext>, graph: Graph) -> Result<Self> {
        graph.validate().map_err(Error::Gpu)?;
        let capture = ctx.capture();
        let device = &ctx.device;
        let max_binding = ctx.limits.max_storage_buffer_binding_size;
        let mut buffers = Vec::with_capacity(graph.buffers.len());
        // Allocation failures surface through an error scope rather than the uncaptured-error
        // handler, so the message can say what was asked for.
        let oom_scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        for desc in &graph.buffers {
            let bytes = (desc.len as u64 * 4).max(16);
            if bytes > max_binding || bytes > ctx.limits.max_buffer_size {
                return Err(Error::Gpu(format!(
                    "buffer '{}' needs {bytes} bytes but {} binds at most {max_binding} bytes \
                     per buffer; use a smaller batch or model, or device = cpu",
                    desc.name, ctx.adapter.name
                )));
            }
            buffers.push(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&desc.name),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
        }
        if let Some(e) = pollster::block_on(oom_scope.pop()) {
            let total: u64 = graph.buffers.iter().map(|b| b.len as u64 * 4).sum();
            let largest = graph
                .buffers
                .iter()
                .max_by_key(|b| b.len)
                .map_or(String::new(), |b| {
                    format!(", the largest '{}' {} bytes", b.name, b.len * 4)
                });
            return Err(Error::Gpu(format!(
                "out of GPU memory: training needs {total} bytes in {} buffers{largest} on {} \
                 (largest buffer allowed {} bytes); use a smaller batch_size or model, or \
                 device = cpu ({e})",
                graph.buffers.len(),
                ctx.adapter.name,
                ctx.limits.max_buffer_size
            )));
        }
        let step_ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step ring"),
            size: STEP_SLOT * MAX_STEPS_PER_SUBMIT as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Placeholders for storage slots an op leaves empty: one for read-only and one for
        // read-write slots, since one buffer cannot be bound both ways in a dispatch.
        let placeholder = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (unused_read, unused_write) =
            (placeholder("unused (read)"), placeholder("unused (write)"));
        let mut exec = GpuExecutor {
            ctx: ctx.clone(),
            graph,
            buffers,
            step_ring,
            dispatches: Vec::new(),
            op_start: vec![0],
            staging: HashMap::new(),
            scratch: Vec::new(),
        };
        let f16_matrix_units = ctx.has_f16_matrix_units();
        let mut tiles = HashMap::new();
        for op in &exec.graph.ops {
            if let Some(shape) = matmul_shape(op)
                && !(shape.half && f16_matrix_units)
            {
                tiles.entry(shape).or_insert_with(|| ctx.matmul_tile(shape));
            }
        }
        let mut plans = Vec::new();
        // One scratch buffer serves every op that needs one (ops run one after the other), as
        // large as the largest asks.
        let mut scratch = 0usize;
        for op in &exec.graph.ops {
            let mut alloc = |len: usize| {
                scratch = scratch.max(len);
                Resource::Scratch(0)
            };
            match crate::gpu::conv::plan(op, &mut alloc) {
                Some(conv) => plans.extend(conv?),
                None => plans.extend(plan(op, f16_matrix_units, &tiles)),
            }
            exec.op_start.push(plans.len());
        }
        if scratch > 0 {
            exec.scratch
                .push(crate::gpu::conv::scratch_buffer(&ctx, scratch)?);
        }
        for Plan {
            kernel,
            constants,
            resources,
            groups,
        } in plans
        {
            let pipeline = ctx.kernels.pipeline(device, kernel, &constants);
            let layout = ctx.kernels.bind_group_layout(device, kernel);
            let uniforms: Vec<Option<wgpu::Buffer>> = resources
                .iter()
                .map(|r| match r {
                    Resource::Uniform(bytes) => Some(device.create_buffer_init(
                        &wgpu::util::BufferInitDescriptor {
                            label: Some("dims"),
                            contents: bytes,
                            usage: wgpu::BufferUsages::UNIFORM,
                        },
                    )),
                    _ => None,
                })
                .collect();
            let entries: Vec<wgpu::BindGroupEntry> = resources
                .iter()
                .zip(&uniforms)
                .enumerate()
                .map(|(i, (r, u))| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: match r {
                        Resource::Buffer(b) => exec.buffers[*b].as_entire_binding(),
                        Resource::Scratch(b) => exec.scratch[*b].as_entire_binding(),
                        Resource::Unused => match kernel.slots()[i] {
                            Slot::ReadWrite => unused_write.as_entire_binding(),
                            _ => unused_read.as_entire_binding(),
                        },
                        Resource::Uniform(_) => u
                            .as_ref()
                            .expect("a uniform resource has its buffer")
                            .as_entire_binding(),
                        Resource::Step => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &exec.step_ring,
                            offset: 0,
                            size: wgpu::BufferSize::new(std::mem::size_of::<StepParams>() as u64),
                        }),
                    },
                })
                .collect();
            debug_assert_eq!(entries.len(), kernel.slots().len());
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry()),
                layout: &layout,
                entries: &entries,
            });
            exec.dispatches.push(Dispatch {
                pipeline,
                bind_group,
                groups,
                uses_step: kernel.slots().contains(&Slot::Step),
            });
        }
        capture.finish()?;
        ctx.kernels.persist();
        Ok(exec)
    }

    /// The graph being executed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The device buffer behind `buf`, for applications that read results on the GPU.
    pub fn buffer(&self, buf: BufId) -> &wgpu::Buffer {
        &self.buffers[buf]
    }

    /// Overwrites the start of a buffer with floats. An error (reported by the device later)
    /// is returned by the next call that runs or reads.
    pub fn write(&self, buf: BufId, data: &[f32]) {
        debug_assert_eq!(self.graph.buffers[buf].dtype, DType::F32);
        let capture = self.ctx.capture();
        self.ctx
            .queue
            .write_buffer(&self.buffers[buf], 0, bytemuck::cast_slice(data));
        capture.record();
    }

    /// Overwrites the start of a buffer with indices (errors as for [`GpuExecutor::write`]).
    pub fn write_u32(&self, buf: BufId, data: &[u32]) {
        debug_assert_eq!(self.graph.buffers[buf].dtype, DType::U32);
        let capture = self.ctx.capture();
        self.ctx
            .queue
            .write_buffer(&self.buffers[buf], 0, bytemuck::cast_slice(data));
        capture.record();
    }

    /// Records `ops` once per step into one compute pass and submits it. Nothing is read back.
    pub fn run(&mut self, ops: Range<usize>, steps: &[StepParams]) -> Result<()> {
        let capture = self.ctx.capture();
        let encoder = self.record(ops, steps, None)?;
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()
    }

    /// Runs `ops` for `steps` in one submission, framed by buffer copies recorded into the same
    /// command buffer: `copy_in` (application buffer → one of this graph's views) before the
    /// first step, `copy_out` (a view → application buffer) after the last. Nothing is read
    /// back and nothing waits: later work on the queue sees the results. Byte offsets must be
    /// multiples of 4.
    pub fn run_with_copies(
        &mut self,
        copy_in: Option<BufferCopy<'_>>,
        ops: Range<usize>,
        steps: &[StepParams],
        copy_out: Option<BufferCopy<'_>>,
    ) -> Result<()> {
        for c in copy_in.iter().chain(&copy_out) {
            let bytes = c.tensor.len() as u64 * 4;
            if c.offset % wgpu::COPY_BUFFER_ALIGNMENT != 0 || c.offset + bytes > c.buffer.size() {
                return Err(Error::Config(format!(
                    "a copy of {bytes} bytes at byte offset {} does not fit a buffer of {} bytes \
                     (offsets must be multiples of 4)",
                    c.offset,
                    c.buffer.size()
                )));
            }
        }
        let capture = self.ctx.capture();
        let mut encoder = self.record(ops, steps, copy_in.as_ref())?;
        if let Some(c) = copy_out {
            encoder.copy_buffer_to_buffer(
                &self.buffers[c.tensor.buf],
                c.tensor.offset as u64 * 4,
                c.buffer,
                c.offset,
                c.tensor.len() as u64 * 4,
            );
        }
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()
    }

    /// Writes the step ring and records `ops` for each of `steps` into a new encoder, after
    /// `copy_in` when given. An error, and nothing recorded, for more than
    /// [`MAX_STEPS_PER_SUBMIT`] steps or `ops` that are not a range of the graph's ops.
    fn record(
        &self,
        ops: Range<usize>,
        steps: &[StepParams],
        copy_in: Option<&BufferCopy<'_>>,
    ) -> Result<wgpu::CommandEncoder> {
        if steps.len() > MAX_STEPS_PER_SUBMIT {
            return Err(Error::Config(format!(
                "{} steps in one submission; at most {MAX_STEPS_PER_SUBMIT} (split them)",
                steps.len()
            )));
        }
        if ops.start > ops.end || ops.end > self.graph.ops.len() {
            return Err(Error::Config(format!(
                "ops {}..{} are not a range of the graph's {} ops",
                ops.start,
                ops.end,
                self.graph.ops.len()
            )));
        }
        let mut ring = vec![0u8; STEP_SLOT as usize * steps.len().max(1)];
        for (k, s) in steps.iter().enumerate() {
            let at = k * STEP_SLOT as usize;
            ring[at..at + std::mem::size_of::<StepParams>()].copy_from_slice(bytemuck::bytes_of(s));
        }
        self.ctx.queue.write_buffer(&self.step_ring, 0, &ring);
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("steps"),
            });
        if let Some(c) = copy_in {
            encoder.copy_buffer_to_buffer(
                c.buffer,
                c.offset,
                &self.buffers[c.tensor.buf],
                c.tensor.offset as u64 * 4,
                c.tensor.len() as u64 * 4,
            );
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("steps"),
                timestamp_writes: None,
            });
            let dispatches = if ops.is_empty() {
                &self.dispatches[..0]
            } else {
                &self.dispatches[self.op_start[ops.start]..self.op_start[ops.end]]
            };
            for k in 0..steps.len() {
                let offset = [(k as u64 * STEP_SLOT) as u32];
                for d in dispatches {
                    pass.set_pipeline(&d.pipeline);
                    let offsets: &[u32] = if d.uses_step { &offset } else { &[] };
                    pass.set_bind_group(0, &d.bind_group, offsets);
                    pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                }
            }
        }
        Ok(encoder)
    }

    /// Runs `ops` for `steps` and reads `read` back after the last step, in one submission.
    pub fn run_and_read(
        &mut self,
        ops: Range<usize>,
        steps: &[StepParams],
        read: Tensor,
    ) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self.record(ops, steps, None)?;
        self.copy_to_staging(&mut encoder, read.buf);
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()?;
        self.map_staging(read)
    }

    /// Reads a view back to the host (waits for all submitted work).
    pub fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read"),
            });
        self.copy_to_staging(&mut encoder, t.buf);
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()?;
        self.map_staging(t)
    }

    /// Waits until the device has finished all submitted work (for timing).
    pub fn finish(&self) -> Result<()> {
        let capture = self.ctx.capture();
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        capture.finish()
    }

    /// Reads a whole buffer back.
    pub fn read_buffer(&mut self, buf: BufId) -> Result<Vec<f32>> {
        let len = self.graph.buffers[buf].len;
        self.read(Tensor {
            buf,
            offset: 0,
            rows: 1,
            cols: len,
        })
    }

    fn copy_to_staging(&mut self, encoder: &mut wgpu::CommandEncoder, buf: BufId) {
        let size = self.buffers[buf].size();
        let device = &self.ctx.device;
        let staging = self.staging.entry(buf).or_insert_with(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        encoder.copy_buffer_to_buffer(&self.buffers[buf], 0, staging, 0, size);
    }

    fn map_staging(&self, t: Tensor) -> Result<Vec<f32>> {
        let capture = self.ctx.capture();
        let out = self.map_staging_inner(t);
        // The device's error, when there is one, says more than the failed mapping.
        capture.finish()?;
        out
    }

    fn map_staging_inner(&self, t: Tensor) -> Result<Vec<f32>> {
        let staging = &self.staging[&t.buf];
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.ctx.check()?;
        rx.recv()
            .map_err(|_| Error::Gpu("the read-back was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a buffer for reading: {e}")))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            all[t.offset..t.end()].to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// One dispatch.
/// The dispatches `graph` compiles to, without a device: `(op index, kernel, constants, grid)`
/// each, with f16 matrix units or not and each product shape's tile from `tile` (for cost
/// models: `gpu::roofline`).
pub fn dispatch_plan(
    graph: &Graph,
    f16_matrix_units: bool,
    tile: impl Fn(MatmulShape) -> usize,
) -> Vec<(usize, Kernel, Constants, [u32; 3])> {
    let tiles: HashMap<MatmulShape, usize> = graph
        .ops
        .iter()
        .filter_map(matmul_shape)
        .map(|s| (s, tile(s)))
        .collect();
    graph
        .ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| {
            // The conv ops' dispatches as the executor records them (a plan that does not fit
            // a grid records none here: building the executor reports it).
            let mut scratch = |_len: usize| Resource::Scratch(0);
            let plans = match crate::gpu::conv::plan(op, &mut scratch) {
                Some(conv) => conv.unwrap_or_default(),
                None => plan(op, f16_matrix_units, &tiles),
            };
            plans
                .into_iter()
                .map(move |p| (i, p.kernel, p.constants, p.groups))
        })
        .collect()
}

fn one(
    kernel: Kernel,
    constants: Constants,
    resources: Vec<Resource>,
    groups: [u32; 3],
) -> Vec<Plan> {
    vec![Plan {
        kernel,
        constants,
        resources,
        groups,
    }]
}

/// The shape a product's tile is chosen by.
fn matmul_shape(op: &Op) -> Option<MatmulShape> {
    match *op {
        Op::Matmul {
            a,
            c,
            trans_a,
            trans_b,
            loss_scale,
            ..
        } => {
            let (m, k) = a.shape(trans_a);
            Some(MatmulShape {
                m,
                n: c.cols,
                k,
                trans_a,
                trans_b,
                half: loss_scale.is_some(),
            })
        }
        _ => None,
    }
}

/// The dispatches of one op, in the order they run; products take the tile `tiles` gives
/// their shape (64×64 when absent), or the cooperative-matrix kernel in mixed precision where
/// the device has f16 matrix units.
fn plan(op: &Op, f16_matrix_units: bool, tiles: &HashMap<MatmulShape, usize>) -> Vec<Plan> {
    use Resource::{Buffer as B, Step, Uniform as U, Unused};
    use Word::{F, U as N};
    match *op {
        // Planned by crate::gpu::conv before this is asked.
        Op::Conv2d { .. }
        | Op::Conv2dInputGrad { .. }
        | Op::Conv2dWeightGrad { .. }
        | Op::ChannelSum { .. } => Vec::new(),
        Op::Gather { data, order, out } => one(
            Kernel::Gather,
            vec![],
            vec![
                B(data.buf),
                B(order.buf),
                B(out.buf),
                U(u32s(&[out.rows, out.cols, data.offset, out.offset])),
                Step,
            ],
            grid_1d(out.len()),
        ),
        Op::Matmul {
            a,
            b,
            c,
            trans_a,
            trans_b,
            epilogue,
            gradient,
            loss_scale,
        } => {
            let (m, k) = a.shape(trans_a);
            let n = c.cols;
            let (code, act, aux) = match epilogue {
                Epilogue::Store => (0, 0, None),
                Epilogue::BiasAct { bias, act } => (1, act.code(), Some(bias)),
                Epilogue::ActGrad { y, act } => (2, act.code(), Some(y)),
                Epilogue::Accumulate => (3, 0, None),
                Epilogue::AccumulateActGrad { y, act } => (4, act.code(), Some(y)),
            };
            let dims = u32s(&[
                m,
                n,
                k,
                a.offset,
                b.offset,
                c.offset,
                aux.map_or(0, |t| t.offset),
                a.cols,
                b.cols,
                0,
                0,
                0,
            ]);
            // The kernels read the scale at element 0 of its buffer.
            debug_assert!(loss_scale.is_none_or(|t| t.offset == 0));
            let (kernel, tile) = match loss_scale {
                Some(_) if f16_matrix_units => (Kernel::MatmulCoop, 64),
                _ => match matmul_shape(op).and_then(|s| tiles.get(&s)) {
                    Some(128) => (Kernel::MatmulLarge, 128),
                    Some(32) => (Kernel::MatmulSmall, 32),
                    _ => (Kernel::Matmul, 64),
                },
            };
            one(
                kernel,
                vec![
                    ("TRANS_A", flag(trans_a)),
                    ("TRANS_B", flag(trans_b)),
                    ("EPILOGUE", f64::from(code)),
                    ("ACT", f64::from(act)),
                    ("HALF", flag(loss_scale.is_some())),
                    ("SCALE_A", flag(gradient == Some(Operand::A))),
                    ("SCALE_B", flag(gradient == Some(Operand::B))),
                ],
                vec![
                    B(a.buf),
                    B(b.buf),
                    B(c.buf),
                    aux.map_or(Unused, |t| B(t.buf)),
                    U(dims),
                    loss_scale.map_or(Unused, |t| B(t.buf)),
                ],
                [n.div_ceil(tile) as u32, m.div_ceil(tile) as u32, 1],
            )
        }
        Op::CheckFinite { x, flag } => one(
            Kernel::CheckFinite,
            vec![],
            vec![
                B(x.buf),
                B(flag.buf),
                Unused,
                Unused,
                U(u32s(&[x.len(), x.offset, flag.offset, 0, 0, 0, 0, 0])),
            ],
            [1, 1, 1],
        ),
        Op::LossScale {
            state,
            norm_sq,
            forward_finite,
            health,
        } => one(
            Kernel::LossScale,
            vec![],
            vec![
                B(norm_sq.buf),
                B(state.buf),
                B(forward_finite.buf),
                B(health.buf),
                U(words(&[
                    N(0),
                    N(norm_sq.offset),
                    N(state.offset),
                    N(forward_finite.offset),
                    N(health.offset),
                    N(LOSS_SCALE_GROWTH_INTERVAL as usize),
                    F(LOSS_SCALE_BOUNDS.0),
                    F(LOSS_SCALE_BOUNDS.1),
                ])),
            ],
            [1, 1, 1],
        ),
        Op::Activation { x, y, act } => one(
            Kernel::ActivationForward,
            vec![("ACT", f64::from(act.code()))],
            vec![
                B(x.buf),
                Unused,
                B(y.buf),
                U(u32s(&[x.len(), x.offset, 0, y.offset])),
            ],
            grid_1d(x.len()),
        ),
        Op::ActivationGrad { dy, y, dx, act } => one(
            Kernel::ActivationBackward,
            vec![("ACT", f64::from(act.code()))],
            vec![
                B(dy.buf),
                B(y.buf),
                B(dx.buf),
                U(u32s(&[dy.len(), dy.offset, y.offset, dx.offset])),
            ],
            grid_1d(dy.len()),
        ),
        Op::AddInto { x, out } => one(
            Kernel::AddInto,
            vec![],
            vec![
                B(x.buf),
                Unused,
                B(out.buf),
                U(u32s(&[out.len(), x.offset, 0, out.offset])),
            ],
            grid_1d(out.len()),
        ),
        Op::ColumnSum { x, out, accumulate } => one(
            Kernel::ColumnSum,
            vec![("ACCUMULATE", flag(accumulate))],
            vec![
                B(x.buf),
                B(out.buf),
                U(u32s(&[x.rows, x.cols, x.offset, out.offset])),
            ],
            [x.cols.div_ceil(64) as u32, 1, 1],
        ),
        Op::ReconstructionLoss {
            logits,
            target,
            grad,
            row_loss,
            loss,
            output,
        } => one(
            Kernel::ReconstructionLoss,
            vec![
                ("LOSS", f64::from(loss.code())),
                ("ACT", f64::from(output.code())),
            ],
            vec![
                B(logits.buf),
                B(target.buf),
                B(grad.buf),
                B(row_loss.buf),
                U(u32s(&[
                    logits.rows,
                    logits.cols,
                    logits.offset,
                    target.offset,
                    grad.offset,
                    row_loss.offset,
                    target.rows,
                    0,
                ])),
            ],
            grid_rows(logits.rows),
        ),
        Op::Corrupt { x, out, noise } => {
            let (code, param) = match noise {
                Noise::Mask { nu } => (0, nu),
                Noise::Gaussian { sigma } => (1, sigma),
                Noise::SaltPepper { nu } => (2, nu),
            };
            one(
                Kernel::Corrupt,
                vec![("NOISE", f64::from(code))],
                vec![
                    B(x.buf),
                    B(out.buf),
                    U(words(&[
                        N(out.len()),
                        N(x.offset),
                        N(out.offset),
                        F(param),
                        N(out.cols),
                        N(out.rows),
                        N(0),
                        N(0),
                    ])),
                    Step,
                ],
                grid_1d(out.len()),
            )
        }
        Op::Directions { out, batch, exact } => one(
            Kernel::Directions,
            vec![("EXACT", flag(exact))],
            vec![
                B(out.buf),
                U(u32s(&[out.len(), out.cols, batch, out.offset])),
                Step,
            ],
            grid_1d(out.len()),
        ),
        Op::TangentScale { r, y, act, out } => one(
            Kernel::TangentScale,
            vec![("ACT", f64::from(act.code()))],
            vec![
                B(r.buf),
                B(y.buf),
                B(out.buf),
                U(u32s(&[
                    out.len(),
                    y.len(),
                    r.offset,
                    y.offset,
                    out.offset,
                    0,
                    0,
                    0,
                ])),
            ],
            grid_1d(out.len()),
        ),
        Op::Curvature { qa, r, y, act, out } => one(
            Kernel::Curvature,
            vec![("ACT", f64::from(act.code()))],
            vec![
                B(qa.buf),
                B(r.buf),
                B(y.buf),
                B(out.buf),
                U(u32s(&[
                    out.len(),
                    qa.len() / out.len().max(1),
                    qa.offset,
                    r.offset,
                    y.offset,
                    out.offset,
                    0,
                    0,
                ])),
            ],
            grid_1d(out.len()),
        ),
        Op::JacobianNorm {
            r,
            rows,
            grad,
            scale,
        } => {
            let batch = rows.len();
            // As the CPU twin: (2 · scale) / B in f32.
            let grad_scale = 2.0 * scale / batch as f32;
            one(
                Kernel::JacobianNorm,
                vec![],
                vec![
                    B(r.buf),
                    B(rows.buf),
                    B(grad.buf),
                    U(words(&[
                        N(batch),
                        N(r.cols),
                        N(r.rows / batch.max(1)),
                        N(r.offset),
                        N(rows.offset),
                        N(grad.offset),
                        F(scale),
                        F(grad_scale),
                    ])),
                ],
                grid_rows(batch),
            )
        }
        Op::ContractiveClosedForm {
            h,
            w,
            rows,
            dz,
            dw,
            scratch,
            lambda,
        } => {
            let batch = rows.len();
            // As the CPU twin: λ · (1 / B) · 2 in f32.
            let grad_scale = lambda * (1.0 / batch as f32) * 2.0;
            let dims = words(&[
                N(batch),
                N(w.rows),
                N(w.cols),
                N(h.offset),
                N(w.offset),
                N(rows.offset),
                N(dz.offset),
                N(dw.offset),
                N(scratch.offset),
                F(lambda),
                F(grad_scale),
                N(0),
            ]);
            let bind = |dims: Vec<u8>| {
                vec![
                    B(h.buf),
                    B(w.buf),
                    B(rows.buf),
                    B(dz.buf),
                    B(dw.buf),
                    B(scratch.buf),
                    U(dims),
                ]
            };
            // Per-unit norms and Σ_b s², then per-example rows that read them.
            let mut plans = one(
                Kernel::ContractiveUnits,
                vec![],
                bind(dims.clone()),
                grid_rows(w.rows),
            );
            plans.extend(one(
                Kernel::ContractiveRows,
                vec![],
                bind(dims),
                grid_rows(batch),
            ));
            plans
        }
        Op::SparseL1 {
            h,
            act,
            rows,
            dz,
            lambda,
        } => {
            let batch = rows.len();
            one(
                Kernel::SparseL1,
                vec![("ACT", f64::from(act.code()))],
                vec![
                    B(h.buf),
                    B(rows.buf),
                    B(dz.buf),
                    U(words(&[
                        N(batch),
                        N(h.len() / batch.max(1)),
                        N(h.offset),
                        N(rows.offset),
                        N(dz.offset),
                        F(lambda),
                        F(lambda / batch as f32),
                        N(0),
                    ])),
                ],
                grid_rows(batch),
            )
        }
        Op::SparseKl {
            h,
            sums,
            act,
            terms,
            dz,
            lambda,
            target,
        } => one(
            Kernel::SparseKl,
            vec![("ACT", f64::from(act.code()))],
            vec![
                B(h.buf),
                B(sums.buf),
                B(terms.buf),
                B(dz.buf),
                U(words(&[
                    N(h.len()),
                    N(terms.len()),
                    N(h.offset),
                    N(sums.offset),
                    N(terms.offset),
                    N(dz.offset),
                    F(lambda),
                    F(target),
                    F(1.0 / (h.len() / terms.len().max(1)) as f32),
                    N(0),
                    N(0),
                    N(0),
                ])),
            ],
            grid_1d(h.len()),
        ),
        Op::Sample {
            mu,
            logvar,
            eps,
            z,
            kl_rows,
            beta,
        } => {
            let batch = kl_rows.len();
            let units = mu.len() / batch.max(1);
            one(
                Kernel::Sample,
                vec![],
                vec![
                    B(mu.buf),
                    B(logvar.buf),
                    B(eps.buf),
                    B(z.buf),
                    B(kl_rows.buf),
                    U(words(&[
                        N(batch),
                        N(units),
                        N(z.len() / mu.len().max(1)),
                        N(mu.offset),
                        N(logvar.offset),
                        N(eps.offset),
                        N(z.offset),
                        N(kl_rows.offset),
                        F(beta * -0.5),
                        N(0),
                        N(0),
                        N(0),
                    ])),
                    Step,
                ],
                grid_rows(batch),
            )
        }
        Op::SampleGrad {
            dz,
            eps,
            mu,
            logvar,
            dmu,
            dlogvar,
            beta,
        } => one(
            Kernel::SampleGrad,
            vec![],
            vec![
                B(dz.buf),
                B(eps.buf),
                B(mu.buf),
                B(logvar.buf),
                B(dmu.buf),
                B(dlogvar.buf),
                U(words(&[
                    N(mu.len()),
                    N(dz.len() / mu.len().max(1)),
                    N(dz.offset),
                    N(eps.offset),
                    N(mu.offset),
                    N(logvar.offset),
                    N(dmu.offset),
                    N(dlogvar.offset),
                    F(beta / mu.rows as f32),
                    N(0),
                    N(0),
                    N(0),
                ])),
            ],
            grid_1d(mu.len()),
        ),
        Op::Adam {
            params,
            grads,
            m,
            v,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            guard,
        } => one(
            Kernel::Adam,
            vec![
                ("DECOUPLED", flag(decoupled)),
                ("GUARD", flag(guard.is_some())),
            ],
            vec![
                B(params.buf),
                B(grads.buf),
                B(m.buf),
                B(v.buf),
                U(hyper(
                    params.len(),
                    [beta1, beta2, eps, weight_decay, 0.0],
                    guard,
                )),
                Step,
                guard.map_or(Unused, |g| B(g.norm_sq.buf)),
            ],
            grid_1d(params.len()),
        ),
        Op::Sgd {
            params,
            grads,
            velocity,
            momentum,
            weight_decay,
            guard,
        } => one(
            Kernel::Sgd,
            vec![("GUARD", flag(guard.is_some()))],
            vec![
                B(params.buf),
                B(grads.buf),
                B(velocity.buf),
                Unused,
                U(hyper(
                    params.len(),
                    [0.0, 0.0, 0.0, weight_decay, momentum],
                    guard,
                )),
                Step,
                guard.map_or(Unused, |g| B(g.norm_sq.buf)),
            ],
            grid_1d(params.len()),
        ),
        Op::GradNorm {
            grads,
            partials,
            norm_sq,
            health,
        } => {
            let blocks = partials.len();
            let dims = u32s(&[
                grads.len(),
                blocks,
                grads.offset,
                partials.offset,
                norm_sq.offset,
                health.offset,
                0,
                0,
            ]);
            let resources = || {
                vec![
                    B(grads.buf),
                    B(partials.buf),
                    B(norm_sq.buf),
                    B(health.buf),
                    U(dims.clone()),
                    Step,
                ]
            };
            vec![
                Plan {
                    kernel: Kernel::SumSquares,
                    constants: vec![],
                    resources: resources(),
                    groups: grid_rows(blocks),
                },
                Plan {
                    kernel: Kernel::SumSquaresFinal,
                    constants: vec![],
                    resources: resources(),
                    groups: [1, 1, 1],
                },
            ]
        }
        Op::Psd(ref p) => psd::plan(p),
    }
}

/// The optimizer's `Hyper` uniform: len, then β₁, β₂, ε, weight decay, momentum, padding.
fn hyper(len: usize, f: [f32; 5], guard: Option<Guard>) -> Vec<u8> {
    let mut words = vec![len as u32];
    words.extend(f.iter().map(|x| x.to_bits()));
    words.push(guard.map_or(0.0f32, |g| g.max_norm).to_bits());
    words.push(guard.map_or(0, |g| g.norm_sq.offset as u32));
    bytemuck::cast_slice(&words).to_vec()
}
