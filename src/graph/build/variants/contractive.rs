//! The contractive autoencoder: λ ‖∂h/∂x‖²_F averaged over the batch. For one dense sigmoid
//! layer the penalty has a closed form, one fused op; otherwise the Jacobian is pulled back
//! from the code to the input (exactly, on the code-space basis, or estimated on K random
//! projections) and pushed forward again to collect its gradient, which lands on every
//! encoder layer's weight and pre-activation gradient. See `shaders/jacobian.wgsl` for the
//! derivation.

use crate::graph::build::backward::{Extra, GradWriter};
use crate::graph::build::jacobian::pull_back;
use crate::graph::build::variants::{Forward, Regularizer};
use crate::graph::build::{LossTerm, arena_view};
use crate::graph::{Graph, Op, Tensor};
use crate::model::Activation;

/// The penalty of weight `lambda`, exact or on `projections` random directions.
pub(super) struct Contractive {
    pub lambda: f32,
    pub projections: Option<u32>,
}

impl Regularizer for Contractive {
    fn penalty(
        &mut self,
        g: &mut Graph,
        w: &mut GradWriter,
        f: &Forward,
        extras: &mut [Vec<Extra>],
        terms: &mut Vec<LossTerm>,
    ) {
        let single_dense = match f.enc {
            [layer] => layer.as_dense(),
            _ => None,
        };
        let rows = match single_dense {
            Some(dense) if self.projections.is_none() && f.code_act == Activation::Sigmoid => {
                let rows = g.matrix("contractive.rows", 1, f.batch);
                let scratch = g.matrix("contractive.scratch", 1, 2 * f.code.cols);
                let dw = w.claim(dense.weight());
                let weight = arena_view(f.params, dense.weight());
                let (h, lambda) = (f.code, self.lambda);
                extras[0].push(Box::new(move |dz| Op::ContractiveClosedForm {
                    h,
                    w: weight,
                    rows,
                    dz,
                    dw,
                    scratch,
                    lambda,
                }));
                rows
            }
            _ => {
                let (e, rows) = self.general(g, w, f);
                for (k, e) in e.into_iter().enumerate() {
                    extras[k].push(Box::new(move |dz| Op::AddInto { x: e, out: dz }));
                }
                rows
            }
        };
        terms.push(LossTerm {
            name: "contractive",
            values: rows,
            scale: 1.0 / f.batch as f64,
        });
    }
}

impl Contractive {
    /// The general form: uᵀJ for K directions u per example, pulled back from the code to the
    /// input, then pushed forward again to collect the gradient. Returns the per-layer terms
    /// to add to each encoder layer's pre-activation gradient and the penalty rows.
    fn general(&self, g: &mut Graph, w: &mut GradWriter, f: &Forward) -> (Vec<Tensor>, Tensor) {
        let (enc, h, batch) = (f.enc, f.h, f.batch);
        let (r, ra) = pull_back(g, f.params, enc, h, batch, self.projections);
        let (n, kb) = (enc.len(), r[0].rows);
        let rows = g.matrix("contractive.rows", 1, batch);
        let mut q = g.matrix("jacobian.q0", kb, f.input.cols);
        let scale = match self.projections {
            Some(p) => self.lambda / p as f32,
            None => self.lambda,
        };
        g.push(Op::JacobianNorm {
            r: r[0],
            rows,
            grad: q,
            scale,
        });
        // Push forward: qa_l = q_{l-1} · W_lᵀ, dW_l += ra_lᵀ · q_{l-1},
        // e_l = Σ_k qa_l ⊙ r_l ⊙ act''(h_l), q_l = qa_l ⊙ act'(h_l).
        let mut extras = Vec::new();
        for l in 1..=n {
            let layer = &enc[l - 1];
            let spec = layer.spec();
            let qa = g.matrix(format!("jacobian.qa{l}"), kb, spec.outputs);
            layer.tangent(g, f.params, q, qa);
            layer.tangent_param_grads(g, w, ra[l], q);
            let e = g.matrix(format!("jacobian.e{l}"), batch, spec.outputs);
            g.push(Op::Curvature {
                qa,
                r: r[l],
                y: h[l - 1],
                act: spec.activation,
                out: e,
            });
            extras.push(e);
            if l < n {
                q = g.matrix(format!("jacobian.q{l}"), kb, spec.outputs);
                g.push(Op::TangentScale {
                    r: qa,
                    y: h[l - 1],
                    act: spec.activation,
                    out: q,
                });
            }
        }
        (extras, rows)
    }
}
