//! Which dispatches each op compiles to (kernel, specialization constants, bindings, grid),
//! and the helpers that build their uniforms and grids. The regularizer and VAE ops are planned
//! in `regularizers`, the optimizer ops in `optim`, the PSD ops in `psd`, the conv ops in
//! `crate::gpu::conv`.

use std::collections::HashMap;

use super::{Plan, Resource, optim, psd, regularizers, rows};
use crate::gpu::autotune::MatmulShape;
use crate::gpu::kernels::{Constants, Kernel};
use crate::graph::{Epilogue, Graph, LOSS_SCALE_BOUNDS, LOSS_SCALE_GROWTH_INTERVAL, Op, Operand};
use crate::model::Noise;

/// A 1-D grid of 256-wide workgroups for `n` elements, folded into y past 65,535 groups.
pub(in crate::gpu) fn grid_1d(n: usize) -> [u32; 3] {
    let groups = n.div_ceil(256).max(1) as u32;
    if groups <= 65_535 {
        [groups, 1, 1]
    } else {
        [65_535, groups.div_ceil(65_535), 1]
    }
}

/// One workgroup per row (or unit) for `n` rows, folded into y past 65,535 (see
/// `workgroup_row` in shaders/workgroup.wgsl).
pub(in crate::gpu) fn grid_rows(n: usize) -> [u32; 3] {
    let n = n.max(1) as u32;
    if n <= 65_535 {
        [n, 1, 1]
    } else {
        [65_535, n.div_ceil(65_535), 1]
    }
}

/// A uniform of 32-bit words; floats go in by their bits.
pub(super) fn words(v: &[Word]) -> Vec<u8> {
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
pub(super) enum Word {
    U(usize),
    F(f32),
}

pub(in crate::gpu) fn u32s(v: &[usize]) -> Vec<u8> {
    let words: Vec<u32> = v.iter().map(|&x| x as u32).collect();
    bytemuck::cast_slice(&words).to_vec()
}

/// A boolean specialization constant.
pub(crate) fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

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
                None => plan(op, f16_matrix_units, &tiles, &mut scratch),
            };
            plans
                .into_iter()
                .map(move |p| (i, p.kernel, p.constants, p.groups))
        })
        .collect()
}

pub(super) fn one(
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
pub(super) fn matmul_shape(op: &Op) -> Option<MatmulShape> {
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
/// the device has f16 matrix units. `scratch(len)` allocates the executor's scratch for the
/// per-row kernels' partial sums (`rows`).
pub(super) fn plan(
    op: &Op,
    f16_matrix_units: bool,
    tiles: &HashMap<MatmulShape, usize>,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> Vec<Plan> {
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
            // The kernels read the scale at element 0 of its buffer: `GpuExecutor::new` refuses
            // a graph whose state starts elsewhere (build.rs, `check_loss_scales`), since a
            // hand-built graph can ask for one; cost models (`dispatch_plan`) need no check.
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
        } => {
            // Per element: logits and target read, gradient written.
            let (layout, partials) = rows::layout(logits.rows, logits.cols, 12, scratch);
            let mut plans = one(
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
                    U(rows::with_layout(
                        u32s(&[
                            logits.rows,
                            logits.cols,
                            logits.offset,
                            target.offset,
                            grad.offset,
                            row_loss.offset,
                            target.rows,
                            0,
                        ]),
                        &layout,
                    )),
                    partials.clone(),
                ],
                layout.grid(logits.rows),
            );
            plans.extend(rows::row_sum(
                &layout,
                logits.rows,
                partials,
                row_loss,
                1.0,
                false,
            ));
            plans
        }
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
        Op::Directions { .. }
        | Op::TangentScale { .. }
        | Op::Curvature { .. }
        | Op::JacobianNorm { .. }
        | Op::ContractiveClosedForm { .. }
        | Op::SparseL1 { .. }
        | Op::SparseKl { .. }
        | Op::Sample { .. }
        | Op::SampleGrad { .. } => regularizers::plan(op, scratch),
        Op::Adam { .. } | Op::Sgd { .. } | Op::GradNorm { .. } | Op::GradAccumulate { .. } => {
            optim::plan(op)
        }
        Op::Psd(ref p) => psd::plan(p),
    }
}
