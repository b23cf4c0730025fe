//! The sparse autoencoder: λ Σ|h| on the code averaged over the batch, or with a target ρ,
//! λ Σ_j KL(ρ ‖ ρ̂_j) over the code units' batch-mean activations ρ̂_j. Both add their
//! gradient to the code layer's pre-activation gradient.

use crate::graph::build::LossTerm;
use crate::graph::build::backward::{Extra, GradWriter};
use crate::graph::build::variants::{Forward, Regularizer};
use crate::graph::{Graph, Op};

/// The L1 (`target: None`) or KL sparsity penalty of weight `lambda`.
pub(super) struct Sparse {
    pub lambda: f32,
    pub target: Option<f32>,
}

impl Regularizer for Sparse {
    fn penalty(
        &mut self,
        g: &mut Graph,
        _w: &mut GradWriter,
        f: &Forward,
        extras: &mut [Vec<Extra>],
        terms: &mut Vec<LossTerm>,
    ) {
        let (h, act, lambda) = (f.code, f.code_act, self.lambda);
        let code_layer = &mut extras[f.enc.len() - 1];
        match self.target {
            None => {
                let rows = g.matrix("sparsity.rows", 1, f.batch);
                terms.push(LossTerm {
                    name: "sparsity",
                    values: rows,
                    scale: 1.0 / f.batch as f64,
                });
                code_layer.push(Box::new(move |dz| Op::SparseL1 {
                    h,
                    act,
                    rows,
                    dz,
                    lambda,
                }));
            }
            Some(target) => {
                let sums = g.matrix("sparsity.mean", 1, h.cols);
                let unit_terms = g.matrix("sparsity.units", 1, h.cols);
                g.push(Op::ColumnSum {
                    x: h,
                    out: sums,
                    accumulate: false,
                });
                terms.push(LossTerm {
                    name: "sparsity",
                    values: unit_terms,
                    scale: 1.0,
                });
                code_layer.push(Box::new(move |dz| Op::SparseKl {
                    h,
                    sums,
                    act,
                    terms: unit_terms,
                    dz,
                    lambda,
                    target,
                }));
            }
        }
    }
}
