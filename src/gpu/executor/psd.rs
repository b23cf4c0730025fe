//! The dispatches of the PSD ops (`shaders/psd.wgsl`; ops in [`crate::graph::psd`]).

use super::plan::{Word, grid_1d, one, words};
use super::{Plan, Resource};
use crate::gpu::kernels::Kernel;
use crate::graph::psd::{LIPSCHITZ_MARGIN, POWER_ITERATIONS, PsdOp};

/// The dispatches of one PSD op.
pub(super) fn plan(op: &PsdOp) -> Vec<Plan> {
    use Resource::{Buffer as B, Uniform as U};
    use Word::{F, U as N};
    match *op {
        PsdOp::Gain { u, g, f } => one(
            Kernel::PsdGain,
            vec![],
            vec![
                B(u.buf),
                B(g.buf),
                B(f.buf),
                U(words(&[
                    N(f.len()),
                    N(g.len()),
                    N(u.offset),
                    N(g.offset),
                    N(f.offset),
                    N(0),
                    N(0),
                    N(0),
                ])),
            ],
            grid_1d(f.len()),
        ),
        PsdOp::GainGrad { df, u, g, da, dg } => one(
            Kernel::PsdGainGrad,
            vec![],
            vec![
                B(df.buf),
                B(u.buf),
                B(g.buf),
                B(da.buf),
                B(dg.buf),
                U(words(&[
                    N(df.rows),
                    N(g.len()),
                    N(df.offset),
                    N(u.offset),
                    N(g.offset),
                    N(da.offset),
                    N(dg.offset),
                    N(0),
                ])),
            ],
            grid_1d(g.len()),
        ),
        PsdOp::Lipschitz {
            gram,
            scratch,
            step,
            lambda,
            gamma,
        } => one(
            Kernel::PsdLipschitz,
            vec![],
            vec![
                B(gram.buf),
                B(scratch.buf),
                B(step.buf),
                U(words(&[
                    N(gram.cols),
                    N(gram.offset),
                    N(scratch.offset),
                    N(step.offset),
                    N(POWER_ITERATIONS as usize),
                    F(lambda),
                    F(gamma),
                    F(LIPSCHITZ_MARGIN),
                ])),
            ],
            [1, 1, 1],
        ),
        PsdOp::Shrink {
            y,
            q,
            p,
            f,
            step,
            h,
            gamma,
        } => one(
            Kernel::PsdShrink,
            vec![],
            vec![
                B(y.buf),
                B(q.buf),
                B(p.buf),
                B(f.buf),
                B(step.buf),
                B(h.buf),
                U(words(&[
                    N(h.len()),
                    N(y.offset),
                    N(q.offset),
                    N(p.offset),
                    N(f.offset),
                    N(step.offset),
                    N(h.offset),
                    F(gamma),
                ])),
            ],
            grid_1d(h.len()),
        ),
        PsdOp::Momentum { h, h_prev, y, beta } => one(
            Kernel::PsdMomentum,
            vec![],
            vec![
                B(h.buf),
                B(h_prev.buf),
                B(y.buf),
                U(words(&[
                    N(y.len()),
                    N(h.offset),
                    N(h_prev.offset),
                    N(y.offset),
                    F(beta),
                    N(0),
                    N(0),
                    N(0),
                ])),
            ],
            grid_1d(y.len()),
        ),
        PsdOp::Terms {
            h,
            f,
            rows,
            df,
            lambda,
            gamma,
        } => {
            let batch = h.rows;
            one(
                Kernel::PsdTerms,
                vec![],
                vec![
                    B(h.buf),
                    B(f.buf),
                    B(rows.buf),
                    B(df.buf),
                    U(words(&[
                        N(batch),
                        N(h.cols),
                        N(h.offset),
                        N(f.offset),
                        N(rows.offset),
                        N(df.offset),
                        F(lambda),
                        F(gamma),
                        // As the CPU twin computes it, in f32.
                        F(-2.0 * gamma / batch as f32),
                        N(0),
                        N(0),
                        N(0),
                    ])),
                ],
                grid_1d(batch),
            )
        }
        PsdOp::Renormalize { d } => one(
            Kernel::PsdRenorm,
            vec![],
            vec![
                B(d.buf),
                U(words(&[N(d.rows), N(d.cols), N(d.offset), N(0)])),
            ],
            grid_1d(d.cols),
        ),
    }
}
