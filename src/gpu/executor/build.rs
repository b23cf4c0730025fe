//! Building an executor: the graph's buffers, the step ring, the scratch buffer and each
//! dispatch's pipeline and bind group.

use std::collections::HashMap;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::plan::{matmul_shape, plan};
use super::{Dispatch, GpuExecutor, MAX_STEPS_PER_SUBMIT, Plan, Resource, STEP_SLOT};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::Slot;
use crate::graph::{Graph, Op, StepParams};

impl GpuExecutor {
    /// Allocates `graph`'s buffers on `ctx`'s device and compiles its dispatches.
    pub fn new(ctx: Arc<GpuContext>, graph: Graph) -> Result<Self> {
        graph.validate().map_err(Error::Gpu)?;
        check_loss_scales(&graph)?;
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
            pool: Default::default(),
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
                None => plans.extend(plan(op, f16_matrix_units, &tiles, &mut alloc)),
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
}

/// An error when a mixed-precision product's loss-scale state does not start its buffer: the
/// matmul kernels read the scale at element 0 of the buffer bound to them (the CPU twin reads
/// the view's first element), so any other offset would scale by the wrong value. A graph
/// built by hand can ask for one (`Op::Matmul` is public); the library's graphs give the state
/// a buffer of its own.
fn check_loss_scales(graph: &Graph) -> Result<()> {
    for (i, op) in graph.ops.iter().enumerate() {
        if let Op::Matmul {
            loss_scale: Some(t),
            ..
        } = op
            && t.offset != 0
        {
            return Err(Error::Gpu(format!(
                "op {i}: a mixed-precision product's loss-scale state starts at element {} of \
                 buffer {} ('{}'), but the GPU's products read it at element 0; give the state \
                 a buffer of its own",
                t.offset, t.buf, graph.buffers[t.buf].name
            )));
        }
    }
    Ok(())
}
