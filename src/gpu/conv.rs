//! The dispatches of the conv ops (shaders/conv2d.wgsl, shaders/conv2d_reduce.wgsl): which
//! kernel, tile and specialization, the uniform of sizes, and the grid. The executor asks
//! [`plan`] for every op and falls back to its own planning for the others.

use super::context::GpuContext;
use super::executor::{Plan, Resource, flag, grid_1d, row_layout, row_sum, u32s, with_layout};
use super::kernels::Kernel;
use crate::error::{Error, Result};
use crate::graph::{ConvShape, Epilogue, Op, Tensor};

/// Most workgroups in one grid dimension (wgpu's downlevel limit).
const MAX_GROUPS: usize = 65_535;
/// Target length of one K chunk of a split weight gradient.
const K_CHUNK: usize = 1024;
/// Most K chunks of one weight gradient.
const MAX_SPLITS: usize = 64;
/// Most floats of a weight gradient's partial sums (64 MiB).
const MAX_PARTIALS: usize = 16 << 20;

/// The products of `shaders/conv2d.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward = 0,
    WeightGrad = 2,
    InputColumns = 3,
}

/// Most floats of an input gradient's columns `[taps, images·P]`: the batch goes through in
/// chunks of images that fit (64 MiB).
const MAX_COLUMNS: usize = 16 << 20;

/// `ConvDims` of shaders/conv2d_dims.wgsl: the geometry, the GEMM's M, N, K, the K chunk, the
/// column blocks per grid row, the stride between partial results and the views' offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvDims {
    geometry: [u32; 10],
    m: u32,
    n: u32,
    k: u32,
    k_split: u32,
    groups_x: u32,
    split_stride: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    aux_off: u32,
}

impl ConvDims {
    fn new(s: &ConvShape, (m, n, k): (usize, usize, usize)) -> Self {
        let g = |v: usize| v as u32;
        ConvDims {
            geometry: [
                s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.out_h, s.out_w, s.kernel, s.stride,
                s.pad,
            ]
            .map(g),
            m: g(m),
            n: g(n),
            k: g(k),
            k_split: g(k),
            ..Default::default()
        }
    }

    fn bytes(&self) -> Resource {
        Resource::Uniform(bytemuck::bytes_of(self).to_vec())
    }
}

/// The epilogue's code in the kernels and its activation's.
fn codes(epilogue: &Epilogue) -> (u32, u32) {
    match *epilogue {
        Epilogue::Store => (0, 0),
        Epilogue::BiasAct { act, .. } => (1, act.code()),
        Epilogue::ActGrad { act, .. } => (2, act.code()),
        Epilogue::Accumulate => (3, 0),
        Epilogue::AccumulateActGrad { act, .. } => (4, act.code()),
    }
}

/// The conv op's dispatches, or `None` for any other op. `scratch(len)` allocates a private
/// buffer of `len` floats for the op and returns the resource that binds it (the weight
/// gradient's partial sums, the input gradient's columns; the executor may hand every op the
/// same buffer, so its contents do not outlive the op). Sizes that do not fit a grid or a
/// 32-bit index are an error.
pub(super) fn plan(
    op: &Op,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> Option<Result<Vec<Plan>>> {
    Some(match *op {
        Op::Conv2d {
            x,
            w,
            y,
            shape,
            epilogue,
        } => forward(&shape, x, w, y, epilogue),
        Op::Conv2dInputGrad {
            dy,
            w,
            dx,
            shape,
            epilogue,
        } => input_grad(&shape, dy, w, dx, epilogue, scratch),
        Op::Conv2dWeightGrad {
            x,
            dy,
            dw,
            shape,
            accumulate,
        } => weight_grad(&shape, x, dy, dw, accumulate, scratch),
        Op::ChannelSum {
            x,
            out,
            channels,
            accumulate,
        } => fits(&[x.end(), out.end()]).map(|()| {
            // A channel's rows x positions elements are a row of `executor::rows`: a few
            // channels over many positions (conv_ae's last layer: one) are split over
            // workgroups, each element read once.
            let positions = x.cols / channels.max(1);
            let (layout, partials) = row_layout(channels, x.rows * positions, 4, scratch);
            let mut plans = vec![Plan {
                kernel: Kernel::ChannelSum,
                constants: vec![("ACCUMULATE", flag(accumulate))],
                resources: vec![
                    Resource::Buffer(x.buf),
                    Resource::Buffer(out.buf),
                    Resource::Uniform(with_layout(
                        u32s(&[
                            x.rows, x.cols, channels, positions, x.offset, out.offset, 0, 0,
                        ]),
                        &layout,
                    )),
                    partials.clone(),
                ],
                groups: layout.grid(channels),
            }];
            plans.extend(row_sum(&layout, channels, partials, out, 1.0, accumulate));
            plans
        }),
        _ => return None,
    })
}

/// The executor's scratch buffer of `len` floats (see [`plan`]), or an error naming the limit
/// it exceeds.
pub(super) fn scratch_buffer(ctx: &GpuContext, len: usize) -> Result<wgpu::Buffer> {
    let bytes = (len as u64 * 4).max(16);
    let max = ctx.limits.max_storage_buffer_binding_size;
    if bytes > max {
        return Err(Error::Gpu(format!(
            "a convolution needs {bytes} bytes of scratch but {} binds at most {max} bytes per \
             buffer; use a smaller batch or model, or device = cpu",
            ctx.adapter.name
        )));
    }
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("conv scratch"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    }))
}

/// Every index a kernel computes stays below 2³¹ (conv2d.wgsl computes image offsets, which
/// the padding makes negative at the edges, in i32).
fn fits(ends: &[usize]) -> Result<()> {
    if ends.iter().all(|&e| i32::try_from(e).is_ok()) {
        Ok(())
    } else {
        Err(Error::Gpu(
            "a convolution's buffers exceed 2³¹ elements; use a smaller batch or device = cpu"
                .into(),
        ))
    }
}

/// The tiled GEMM of shaders/conv2d.wgsl for `dims` (M, N, K and offsets filled in), `splits`
/// K chunks (mode 2 only), binding a, b, the result and the epilogue operand.
fn gemm(
    mode: Mode,
    mut dims: ConvDims,
    splits: usize,
    [a, b, c, aux]: [Resource; 4],
    epilogue: &Epilogue,
) -> Result<Plan> {
    let (m, n) = (dims.m as usize, dims.n as usize);
    // 32×32 tiles when 64 rows would be mostly padding (out_c or taps ≤ 32). Fewer, larger
    // workgroups won on lavapipe for 64 rows (2.4–2.7 against 1.9 GFLOP per CPU-second,
    // BENCHMARKS.md); the rows, not the tile count, decide.
    let small = m <= 32;
    let (kernel, tile) = if small {
        (Kernel::Conv2dSmall, 32)
    } else {
        (Kernel::Conv2d, 64)
    };
    let (row_blocks, col_blocks) = (m.div_ceil(tile), n.div_ceil(tile));
    let (groups_x, groups_z) = if mode == Mode::WeightGrad {
        (col_blocks, splits)
    } else {
        (col_blocks.min(MAX_GROUPS), col_blocks.div_ceil(MAX_GROUPS))
    };
    if row_blocks.max(groups_x).max(groups_z) > MAX_GROUPS {
        return Err(Error::Gpu(format!(
            "a convolution product of {m}×{n}×{} needs more workgroups than a GPU grid holds; \
             use a smaller batch or device = cpu",
            dims.k
        )));
    }
    dims.groups_x = groups_x as u32;
    let (code, act) = codes(epilogue);
    Ok(Plan {
        kernel,
        constants: vec![
            ("MODE", f64::from(mode as u32)),
            ("EPILOGUE", f64::from(code)),
            ("ACT", f64::from(act)),
        ],
        resources: vec![a, b, c, aux, dims.bytes()],
        groups: [groups_x as u32, row_blocks as u32, groups_z as u32],
    })
}

fn operand(epilogue: &Epilogue) -> Resource {
    epilogue
        .operand()
        .map_or(Resource::Unused, |t| Resource::Buffer(t.buf))
}

/// `y = epilogue(w · im2col(x))`: one implicit GEMM.
fn forward(
    s: &ConvShape,
    x: Tensor,
    w: Tensor,
    y: Tensor,
    epilogue: Epilogue,
) -> Result<Vec<Plan>> {
    let (m, n, k) = (s.out_c, s.batch * s.out_positions(), s.taps());
    let aux = epilogue.operand();
    fits(&[x.end(), w.end(), y.end(), aux.map_or(0, |t| t.end()), n])?;
    let mut dims = ConvDims::new(s, (m, n, k));
    (dims.a_off, dims.b_off, dims.c_off) = (w.offset as u32, x.offset as u32, y.offset as u32);
    dims.aux_off = aux.map_or(0, |t| t.offset) as u32;
    let bind = [
        Resource::Buffer(w.buf),
        Resource::Buffer(x.buf),
        Resource::Buffer(y.buf),
        operand(&epilogue),
    ];
    Ok(vec![gemm(Mode::Forward, dims, 1, bind, &epilogue)?])
}

/// `dx = epilogue(col2im(wᵀ · dy))`, in chunks of images whose columns fit [`MAX_COLUMNS`]:
/// per chunk one GEMM into the scratch and one fold.
fn input_grad(
    s: &ConvShape,
    dy: Tensor,
    w: Tensor,
    dx: Tensor,
    epilogue: Epilogue,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> Result<Vec<Plan>> {
    let (taps, p) = (s.taps(), s.out_positions());
    let aux = epilogue.operand();
    fits(&[dy.end(), w.end(), dx.end(), aux.map_or(0, |t| t.end())])?;
    let images = (MAX_COLUMNS / (taps * p).max(1)).clamp(1, s.batch);
    fits(&[images * taps * p])?;
    let columns = scratch(images * taps * p);
    let (code, act) = codes(&epilogue);
    let mut plans = Vec::new();
    for first in (0..s.batch).step_by(images) {
        let cs = s.with_batch(images.min(s.batch - first));
        let n = cs.batch * p;
        let mut dims = ConvDims::new(&cs, (taps, n, s.out_c));
        (dims.a_off, dims.b_off) = (w.offset as u32, (dy.offset + first * s.out_len()) as u32);
        let bind = [
            Resource::Buffer(w.buf),
            Resource::Buffer(dy.buf),
            columns.clone(),
            Resource::Unused,
        ];
        plans.push(gemm(Mode::InputColumns, dims, 1, bind, &Epilogue::Store)?);
        let mut fold = dims;
        (fold.a_off, fold.c_off) = (0, (dx.offset + first * s.in_len()) as u32);
        fold.aux_off = match epilogue {
            Epilogue::BiasAct { bias, .. } => bias.offset,
            Epilogue::ActGrad { y, .. } | Epilogue::AccumulateActGrad { y, .. } => {
                y.offset + first * s.in_len()
            }
            Epilogue::Store | Epilogue::Accumulate => 0,
        } as u32;
        plans.push(Plan {
            kernel: Kernel::Col2im,
            constants: vec![("EPILOGUE", f64::from(code)), ("ACT", f64::from(act))],
            resources: vec![
                columns.clone(),
                Resource::Buffer(dx.buf),
                operand(&epilogue),
                fold.bytes(),
            ],
            groups: grid_1d(cs.batch * s.in_len()),
        });
    }
    Ok(plans)
}

/// `dw (+)= Σ_b dy_b · im2col(x_b)ᵀ`: K (batch × positions) is long and M × N small, so K is
/// split into chunks, each a slice of workgroups writing its partial product to a scratch,
/// summed afterwards in chunk order.
fn weight_grad(
    s: &ConvShape,
    x: Tensor,
    dy: Tensor,
    dw: Tensor,
    accumulate: bool,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> Result<Vec<Plan>> {
    let (m, n, k) = (s.out_c, s.taps(), s.batch * s.out_positions());
    fits(&[x.end(), dy.end(), dw.end(), k])?;
    let splits = k
        .div_ceil(K_CHUNK)
        .min(MAX_SPLITS)
        .min(MAX_PARTIALS / (m * n).max(1))
        .max(1);
    let k_split = k.div_ceil(splits).div_ceil(16) * 16;
    let splits = k.div_ceil(k_split).max(1);
    let mut dims = ConvDims::new(s, (m, n, k));
    dims.k_split = k_split as u32;
    (dims.a_off, dims.b_off) = (dy.offset as u32, x.offset as u32);
    let epilogue = if accumulate {
        Epilogue::Accumulate
    } else {
        Epilogue::Store
    };
    if splits == 1 {
        dims.c_off = dw.offset as u32;
        let bind = [
            Resource::Buffer(dy.buf),
            Resource::Buffer(x.buf),
            Resource::Buffer(dw.buf),
            Resource::Unused,
        ];
        return Ok(vec![gemm(Mode::WeightGrad, dims, 1, bind, &epilogue)?]);
    }
    let partials = scratch(splits * m * n);
    dims.split_stride = (m * n) as u32;
    let bind = [
        Resource::Buffer(dy.buf),
        Resource::Buffer(x.buf),
        partials.clone(),
        Resource::Unused,
    ];
    Ok(vec![
        gemm(Mode::WeightGrad, dims, splits, bind, &Epilogue::Store)?,
        Plan {
            kernel: Kernel::ConvWeightGradSum,
            constants: vec![("ACCUMULATE", flag(accumulate))],
            resources: vec![
                partials,
                Resource::Buffer(dw.buf),
                // The last four words are channel_sum's layout (the two share ReduceDims).
                Resource::Uniform(u32s(&[m * n, splits, 0, 0, 0, dw.offset, 0, 0, 0, 0, 0, 0])),
                Resource::Unused,
            ],
            groups: grid_1d(m * n),
        },
    ])
}
