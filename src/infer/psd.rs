//! Sparse-code inference with a trained PSD model ([`crate::model::psd`]): h* = argmin over h
//! of ‖x − Dh‖² + λ‖h‖₁ + γ‖h − f(x)‖², by FISTA on the model's device, warm-started from the
//! fast encoder's f(x) and run until the objective stops changing (what `encode --infer`
//! writes). [`Autoencoder::encode`] gives f(x) itself: one forward pass.

use super::{Autoencoder, CHUNK};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::graph::build::build_psd_infer_graph;
use crate::graph::{StepParams, Tensor};
use crate::model::psd::INFER_TOLERANCE;
use crate::train::Backend;

/// FISTA iterations between two looks at the objective.
pub const CHECK_EVERY: usize = 10;

/// What [`Autoencoder::infer`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Inferred {
    /// `[rows, code]` the inferred codes h*, in row order.
    pub codes: Dataset,
    /// The objective at h*, averaged over the rows: reconstruction, sparsity, prediction.
    pub terms: [(&'static str, f64); 3],
    /// FISTA iterations each chunk of up to 256 rows took.
    pub iterations: Vec<usize>,
    /// Whether every chunk stopped because its objective's relative change over
    /// [`CHECK_EVERY`] iterations fell below [`INFER_TOLERANCE`] (rather than at the cap).
    pub converged: bool,
}

impl Inferred {
    /// The mean objective per row.
    pub fn objective(&self) -> f64 {
        self.terms.iter().map(|(_, v)| v).sum()
    }

    /// The fraction of exact zeros in the codes.
    pub fn zero_fraction(&self) -> f64 {
        let zeros = self.codes.values.iter().filter(|&&v| v == 0.0).count();
        zeros as f64 / self.codes.values.len().max(1) as f64
    }
}

impl Autoencoder {
    /// The sparse codes h* of a PSD model for `data`'s rows: FISTA from f(x), 256 rows at a
    /// time on the model's device, until the chunk's objective changes by less than
    /// [`INFER_TOLERANCE`] (relative) over [`CHECK_EVERY`] iterations, or after
    /// `max_iterations` (1 to [`MAX_INFERENCE_STEPS`](crate::model::psd::MAX_INFERENCE_STEPS)).
    /// Refused for other models.
    pub fn infer(&mut self, data: &Dataset, max_iterations: usize) -> Result<Inferred> {
        if self.spec.psd_settings().is_none() {
            return Err(Error::Config(
                "infer runs the sparse-code inference of a PSD model (variant = psd); this \
                 model has a feed-forward encoder only: encode it without infer"
                    .into(),
            ));
        }
        crate::model::psd::check_steps(u32::try_from(max_iterations).unwrap_or(u32::MAX))?;
        let d = self.spec.input_dim();
        if data.cols != d {
            return Err(Error::Config(format!(
                "the data has {} columns but the model expects {d}",
                data.cols
            )));
        }
        let batch = CHUNK.min(data.rows.max(1));
        let ig = build_psd_infer_graph(&self.spec, batch, max_iterations, CHECK_EVERY)
            .expect("a PSD spec");
        let mut backend = Backend::new(&self.device, ig.graph.clone())?;
        backend.write(ig.params.buf, &self.params.arena);
        let c = self.spec.code_dim();
        let mut codes = Vec::with_capacity(data.rows * c);
        let mut sums = [0.0f64; 3];
        let mut iterations = Vec::new();
        let mut converged = true;
        let steps = [StepParams::default()];
        for start in (0..data.rows).step_by(batch) {
            let rows = batch.min(data.rows - start);
            let mut chunk = data.values[start * d..(start + rows) * d].to_vec();
            // A fixed batch: the last chunk is padded with zero rows, left out of every sum.
            chunk.resize(batch * d, 0.0);
            backend.write(ig.input.buf, &chunk);
            backend.run(ig.setup.clone(), &steps)?;
            let mut previous: Option<f64> = None;
            let mut done = None;
            for (k, seg) in ig.segments.iter().enumerate() {
                let first = backend.run_and_read(seg.ops.clone(), &steps, seg.terms[0].values)?;
                // The sparsity and prediction rows sit one after the other in one buffer: one read.
                let (sp, pr) = (seg.terms[1].values, seg.terms[2].values);
                debug_assert!(sp.buf == pr.buf && pr.offset > sp.offset);
                let both = Tensor {
                    rows: 1,
                    cols: pr.end() - sp.offset,
                    ..sp
                };
                let codes_terms = backend.read(both)?;
                let sum = |v: &[f32]| v[..rows].iter().map(|&x| f64::from(x)).sum::<f64>();
                let terms = [
                    sum(&first),
                    sum(&codes_terms),
                    sum(&codes_terms[pr.offset - sp.offset..]),
                ];
                let total: f64 = terms.iter().sum();
                if !total.is_finite() {
                    return Err(Error::NonFinite {
                        what: format!("inference objective (rows {start}..{})", start + rows),
                        step: seg.iterations as u64,
                    });
                }
                let settled = previous
                    .is_some_and(|p| (p - total).abs() <= INFER_TOLERANCE * total.abs().max(1e-30));
                previous = Some(total);
                if settled || k + 1 == ig.segments.len() {
                    converged &= settled;
                    done = Some((seg.code, seg.iterations, terms));
                    break;
                }
            }
            let (code, its, terms) = done.expect("the graph has a segment");
            let values = backend.read(code)?;
            codes.extend_from_slice(&values[..rows * c]);
            for (s, t) in sums.iter_mut().zip(terms) {
                *s += t;
            }
            iterations.push(its);
        }
        let n = data.rows.max(1) as f64;
        Ok(Inferred {
            codes: Dataset::new(data.rows, c, codes)?,
            terms: [
                ("reconstruction", sums[0] / n),
                ("sparsity", sums[1] / n),
                ("prediction", sums[2] / n),
            ],
            iterations,
            converged,
        })
    }
}
