//! The dispatches of the regularizer ops (the Jacobian and contractive penalties and their
//! estimators, sparsity) and of the VAE's sampling ops.

use super::plan::{Word, flag, grid_1d, grid_rows, one, u32s, words};
use super::{Plan, Resource, rows as layouts};
use crate::gpu::kernels::Kernel;
use crate::graph::Op;

/// The dispatches of one regularizer or sampling op; none for any other op (`plan::plan`
/// sends only these here). `alloc` allocates the partial sums of split rows.
pub(super) fn plan(op: &Op, alloc: &mut dyn FnMut(usize) -> Resource) -> Vec<Plan> {
    use Resource::{Buffer as B, Step, Uniform as U};
    use Word::{F, U as N};
    match *op {
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
            let k = r.rows / batch.max(1);
            // Per element: r read, its gradient written.
            let (layout, partials) = layouts::layout(batch, k * r.cols, 8, alloc);
            let mut plans = one(
                Kernel::JacobianNorm,
                vec![],
                vec![
                    B(r.buf),
                    B(rows.buf),
                    B(grad.buf),
                    U(layouts::with_layout(
                        words(&[
                            N(batch),
                            N(r.cols),
                            N(k),
                            N(r.offset),
                            N(rows.offset),
                            N(grad.offset),
                            F(scale),
                            F(grad_scale),
                        ]),
                        &layout,
                    )),
                    partials.clone(),
                ],
                layout.grid(batch),
            );
            plans.extend(layouts::row_sum(
                &layout, batch, partials, rows, scale, false,
            ));
            plans
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
            // Per element: h read, dz read and written.
            let (layout, partials) = layouts::layout(batch, w.rows, 12, alloc);
            let bind = |dims: Vec<u8>, partials: Resource| {
                vec![
                    B(h.buf),
                    B(w.buf),
                    B(rows.buf),
                    B(dz.buf),
                    B(dw.buf),
                    B(scratch.buf),
                    U(layouts::with_layout(dims, &layout)),
                    partials,
                ]
            };
            // Per-unit norms and Σ_b s², then per-example rows that read them (and, for a
            // split batch, the sum of their pieces).
            let mut plans = one(
                Kernel::ContractiveUnits,
                vec![],
                bind(dims.clone(), Resource::Unused),
                grid_rows(w.rows),
            );
            plans.extend(one(
                Kernel::ContractiveRows,
                vec![],
                bind(dims, partials.clone()),
                layout.grid(batch),
            ));
            plans.extend(layouts::row_sum(
                &layout, batch, partials, rows, lambda, false,
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
            let samples = z.len() / mu.len().max(1);
            // Split pieces need no partials: each reduces the KL row, the first writes it.
            // Per element: ε and z written, μ and log σ² read.
            let layout = layouts::RowLayout::new(batch, samples * units, 16);
            one(
                Kernel::Sample,
                vec![],
                vec![
                    B(mu.buf),
                    B(logvar.buf),
                    B(eps.buf),
                    B(z.buf),
                    B(kl_rows.buf),
                    U(layouts::with_layout(
                        words(&[
                            N(batch),
                            N(units),
                            N(samples),
                            N(mu.offset),
                            N(logvar.offset),
                            N(eps.offset),
                            N(z.offset),
                            N(kl_rows.offset),
                            F(beta * -0.5),
                            N(0),
                            N(0),
                            N(0),
                        ]),
                        &layout,
                    )),
                    Step,
                ],
                layout.grid(batch),
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
        _ => Vec::new(),
    }
}
