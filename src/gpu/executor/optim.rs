//! The dispatches of the optimizer ops (Adam, SGD), of the gradient norm their guard reads and
//! of the gradient accumulation that feeds them the sum of a step's micro-batches.

use super::plan::{flag, grid_1d, grid_rows, one, u32s};
use super::{Plan, Resource};
use crate::gpu::kernels::Kernel;
use crate::graph::{Guard, Op};

/// The dispatches of one optimizer or gradient-norm op; none for any other op (`plan::plan`
/// sends only these here).
pub(super) fn plan(op: &Op) -> Vec<Plan> {
    use Resource::{Buffer as B, Step, Uniform as U, Unused};
    match *op {
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
        Op::GradAccumulate { grads, acc } => one(
            Kernel::GradAccumulate,
            crate::gpu::specializations::grad_accumulate_bits(),
            vec![
                B(grads.buf),
                B(acc.buf),
                U(u32s(&[grads.len(), grads.offset, acc.offset, 0])),
                Step,
            ],
            grid_1d(grads.len()),
        ),
        _ => Vec::new(),
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
