//! The dispatches of the conv ops (shaders/conv2d.wgsl, shaders/conv2d_reduce.wgsl): which
//! kernel, tile and specialization, the uniform of sizes, and the grid. The executor asks
//! [`plan`] for every op and falls back to its own planning for the others.

use super::executor::{Plan, Resource, grid_1d, grid_rows, u32s};
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

/// The three products of `shaders/conv2d.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward = 0,
    InputGrad = 1,
    WeightGrad = 2,
}

/// `ConvDims` of shaders/conv2d.wgsl: the geometry, the GEMM's M, N, K, the K chunk, the
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

/// The conv op's dispatches, or `None` for any other op. `scratch(len)` allocates a private
/// buffer of `len` floats for the op and returns the resource that binds it (the weight
/// gradient's partial sums). Sizes that do not fit a grid or a 32-bit index are an error.
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
        } => product(Mode::Forward, &shape, w, x, y, epilogue, scratch),
        Op::Conv2dInputGrad {
            dy,
            w,
            dx,
            shape,
            epilogue,
        } => product(Mode::InputGrad, &shape, w, dy, dx, epilogue, scratch),
        Op::Conv2dWeightGrad {
            x,
            dy,
            dw,
            shape,
            accumulate,
        } => {
            let epilogue = if accumulate {
                Epilogue::Accumulate
            } else {
                Epilogue::Store
            };
            product(Mode::WeightGrad, &shape, dy, x, dw, epilogue, scratch)
        }
        Op::ChannelSum {
            x,
            out,
            channels,
            accumulate,
        } => fits(&[x.end(), out.end()]).map(|()| {
            vec![Plan {
                kernel: Kernel::ChannelSum,
                constants: vec![("ACCUMULATE", super::executor::flag(accumulate))],
                resources: vec![
                    Resource::Buffer(x.buf),
                    Resource::Buffer(out.buf),
                    Resource::Uniform(u32s(&[
                        x.rows,
                        x.cols,
                        channels,
                        x.cols / channels.max(1),
                        x.offset,
                        out.offset,
                        0,
                        0,
                    ])),
                ],
                groups: grid_rows(channels),
            }]
        }),
        _ => return None,
    })
}

/// Every index a kernel computes stays below 2³².
fn fits(ends: &[usize]) -> Result<()> {
    if ends.iter().all(|&e| u32::try_from(e).is_ok()) {
        Ok(())
    } else {
        Err(Error::Gpu(
            "a convolution's buffers exceed 2³² elements; use a smaller batch or --device cpu"
                .into(),
        ))
    }
}

/// The implicit GEMM of `mode`: `c = epilogue(A · B)` with A `a` (the weight, or dy for the
/// weight gradient) and B gathered from `b` (x, or dy for the input gradient).
fn product(
    mode: Mode,
    s: &ConvShape,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    epilogue: Epilogue,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> Result<Vec<Plan>> {
    let (m, n, k) = match mode {
        Mode::Forward => (s.out_c, s.batch * s.out_positions(), s.taps()),
        Mode::InputGrad => (
            s.in_c,
            s.batch * s.in_positions(),
            s.out_c * s.kernel * s.kernel,
        ),
        Mode::WeightGrad => (s.out_c, s.taps(), s.batch * s.out_positions()),
    };
    let aux = epilogue.operand();
    fits(&[
        a.end(),
        b.end(),
        c.end(),
        aux.map_or(0, |t| t.end()),
        m * n,
        n * k,
        m * k,
    ])?;
    // 32×32 tiles when 64 rows would be mostly padding or 64×64 tiles would be too few.
    let small = m <= 32 || m.div_ceil(64) * n.div_ceil(64) < 64;
    let (kernel, tile) = if small {
        (Kernel::Conv2dSmall, 32)
    } else {
        (Kernel::Conv2d, 64)
    };
    let (row_blocks, col_blocks) = (m.div_ceil(tile), n.div_ceil(tile));
    // The weight gradient's K (batch × positions) is long and its M × N small: split K into
    // chunks summed afterwards, so that enough workgroups run.
    let splits = if mode == Mode::WeightGrad {
        k.div_ceil(K_CHUNK)
            .min(MAX_SPLITS)
            .min(MAX_PARTIALS / (m * n).max(1))
            .max(1)
    } else {
        1
    };
    let k_split = k.div_ceil(splits).div_ceil(16) * 16;
    let splits = k.div_ceil(k_split).max(1);
    let (groups_x, groups_z) = if mode == Mode::WeightGrad {
        (col_blocks, splits)
    } else {
        (col_blocks.min(MAX_GROUPS), col_blocks.div_ceil(MAX_GROUPS))
    };
    if row_blocks > MAX_GROUPS || groups_z > MAX_GROUPS || groups_x > MAX_GROUPS {
        return Err(Error::Gpu(format!(
            "a convolution of {m}×{n}×{k} needs more workgroups than a GPU grid holds; use a \
             smaller batch or --device cpu"
        )));
    }
    let (code, act) = match epilogue {
        Epilogue::Store => (0, 0),
        Epilogue::BiasAct { act, .. } => (1, act.code()),
        Epilogue::ActGrad { act, .. } => (2, act.code()),
        Epilogue::Accumulate => (3, 0),
        Epilogue::AccumulateActGrad { act, .. } => (4, act.code()),
    };
    let partial = splits > 1;
    let g = |v: usize| v as u32;
    let dims = ConvDims {
        geometry: [
            s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.out_h, s.out_w, s.kernel, s.stride, s.pad,
        ]
        .map(g),
        m: g(m),
        n: g(n),
        k: g(k),
        k_split: g(k_split),
        groups_x: g(groups_x),
        split_stride: if partial { g(m * n) } else { 0 },
        a_off: g(a.offset),
        b_off: g(b.offset),
        c_off: if partial { 0 } else { g(c.offset) },
        aux_off: g(aux.map_or(0, |t| t.offset)),
    };
    let partials = partial.then(|| scratch(splits * m * n));
    let result = match &partials {
        Some(r) => r.clone(),
        None => Resource::Buffer(c.buf),
    };
    let mut plans = vec![Plan {
        kernel,
        constants: vec![
            ("MODE", f64::from(mode as u32)),
            ("EPILOGUE", f64::from(if partial { 0 } else { code })),
            ("ACT", f64::from(act)),
        ],
        resources: vec![
            Resource::Buffer(a.buf),
            Resource::Buffer(b.buf),
            result,
            aux.map_or(Resource::Unused, |t| Resource::Buffer(t.buf)),
            Resource::Uniform(bytemuck::bytes_of(&dims).to_vec()),
        ],
        groups: [g(groups_x), g(row_blocks), g(groups_z)],
    }];
    if let Some(partials) = partials {
        plans.push(Plan {
            kernel: Kernel::ConvWeightGradSum,
            constants: vec![("ACCUMULATE", super::executor::flag(code == 3))],
            resources: vec![
                partials,
                Resource::Buffer(c.buf),
                Resource::Uniform(u32s(&[m * n, splits, 0, 0, 0, c.offset, 0, 0])),
            ],
            groups: grid_1d(m * n),
        });
    }
    Ok(plans)
}
