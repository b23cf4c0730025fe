//! The ops of predictive sparse decomposition ([`crate::model::psd`]): the fast encoder's gain,
//! the Lipschitz constant of the inference, the FISTA shrinkage and momentum steps, the loss
//! terms of the inferred code and the dictionary's column renormalisation. Each has a WGSL
//! kernel in `shaders/psd.wgsl` and a CPU twin in `src/cpu/psd.rs` of the same name.

use crate::graph::Tensor;

/// Power iterations on DᵀD per Lipschitz estimate; `shaders/psd.wgsl` reads it from the
/// op's uniform.
pub const POWER_ITERATIONS: u32 = 64;
/// The Rayleigh quotient after [`POWER_ITERATIONS`] is a lower bound on ‖D‖₂²; it is raised by
/// this factor (and capped at ‖D‖_F² = trace(DᵀD), an upper bound, c with unit columns), so
/// that the step 1/L stays at most the inverse of the true Lipschitz constant.
pub const LIPSCHITZ_MARGIN: f32 = 1.05;

/// One PSD op (see the module docs); all matrices row-major, B rows of c code units.
#[derive(Clone, Debug, PartialEq)]
pub enum PsdOp {
    /// `f[b, j] = u[b, j] · g[j]`: the fast encoder's prediction from `u = tanh(Wx + b)`.
    Gain {
        /// `[B, c]` tanh output.
        u: Tensor,
        /// `[1, c]` gain.
        g: Tensor,
        /// `[B, c]` prediction f(x).
        f: Tensor,
    },
    /// Backward of [`PsdOp::Gain`] and of the tanh: `da = df · g · (1 − u²)` and
    /// `dg[j] = Σ_b df[b, j] · u[b, j]` (overwritten).
    GainGrad {
        /// `[B, c]` gradient at f.
        df: Tensor,
        /// `[B, c]` tanh output.
        u: Tensor,
        /// `[1, c]` gain.
        g: Tensor,
        /// `[B, c]` gradient at the tanh's input.
        da: Tensor,
        /// `[1, c]` gradient of the gain.
        dg: Tensor,
    },
    /// Estimates σ = ‖D‖₂² from the Gram matrix G = DᵀD by [`POWER_ITERATIONS`] power
    /// iterations from a fixed start, and writes `step = [1/L, λ/L, σ, L]` with
    /// L = 2(min(margin · σ, ‖D‖_F²) + γ), ‖D‖_F² = trace(G).
    Lipschitz {
        /// `[c, c]` DᵀD.
        gram: Tensor,
        /// `[2, c]` scratch: the iterate and its image.
        scratch: Tensor,
        /// `[1, 4]` the step sizes.
        step: Tensor,
        /// λ.
        lambda: f32,
        /// γ.
        gamma: f32,
    },
    /// One proximal gradient step of the inference from `y`:
    /// `h = shrink(y − (2/L)(q − p + γ(y − f)), λ/L)` with `shrink(v, t) = sign(v)·max(|v| − t, 0)`,
    /// where `q = y·DᵀD` and `p = x·D`, so that `2(q − p) + 2γ(y − f)` is the gradient of
    /// ‖x − Dy‖² + γ‖y − f‖².
    Shrink {
        /// `[B, c]` the point the step starts from.
        y: Tensor,
        /// `[B, c]` y·DᵀD.
        q: Tensor,
        /// `[B, c]` x·D.
        p: Tensor,
        /// `[B, c]` the prediction f(x).
        f: Tensor,
        /// `[1, 4]` from [`PsdOp::Lipschitz`].
        step: Tensor,
        /// `[B, c]` the new code.
        h: Tensor,
        /// γ.
        gamma: f32,
    },
    /// FISTA's extrapolation `y = h + β (h − h_prev)`, β = (t_k − 1)/t_{k+1} fixed at build time.
    Momentum {
        /// `[B, c]` this iteration's code.
        h: Tensor,
        /// `[B, c]` the previous iteration's code.
        h_prev: Tensor,
        /// `[B, c]` the next starting point.
        y: Tensor,
        /// β.
        beta: f32,
    },
    /// The code terms of the objective at the inferred code h: per example
    /// `rows[0, b] = λ Σ_j |h_bj|`, `rows[1, b] = γ Σ_j (h_bj − f_bj)²`,
    /// `rows[2, b] = #{j : h_bj = 0}`, `rows[3, b] = Σ_j (h_bj − f_bj)²`,
    /// `rows[4, b] = Σ_j h_bj²`, and the prediction gradient `df = −(2γ/B)(h − f)`
    /// (h held fixed).
    Terms {
        /// `[B, c]` inferred code.
        h: Tensor,
        /// `[B, c]` prediction.
        f: Tensor,
        /// `[5, B]` sparsity, prediction, zero count, squared prediction error, squared code.
        rows: Tensor,
        /// `[B, c]` gradient at f.
        df: Tensor,
        /// λ.
        lambda: f32,
        /// γ.
        gamma: f32,
    },
    /// Scales every column of the dictionary `d` (`[in, code]`) to unit L2 norm, in place
    /// (a zero column is left as it is).
    Renormalize {
        /// The dictionary, inside the parameter arena.
        d: Tensor,
    },
}

impl PsdOp {
    /// The views the op writes.
    pub fn outputs(&self) -> Vec<Tensor> {
        match self {
            PsdOp::Gain { f, .. } => vec![*f],
            PsdOp::GainGrad { da, dg, .. } => vec![*da, *dg],
            PsdOp::Lipschitz { scratch, step, .. } => vec![*scratch, *step],
            PsdOp::Shrink { h, .. } => vec![*h],
            PsdOp::Momentum { y, .. } => vec![*y],
            PsdOp::Terms { rows, df, .. } => vec![*rows, *df],
            PsdOp::Renormalize { d } => vec![*d],
        }
    }

    /// The views the op reads (an in-place op lists its view as an output only).
    pub fn inputs(&self) -> Vec<Tensor> {
        match self {
            PsdOp::Gain { u, g, .. } => vec![*u, *g],
            PsdOp::GainGrad { df, u, g, .. } => vec![*df, *u, *g],
            PsdOp::Lipschitz { gram, .. } => vec![*gram],
            PsdOp::Shrink {
                y, q, p, f, step, ..
            } => vec![*y, *q, *p, *f, *step],
            PsdOp::Momentum { h, h_prev, .. } => vec![*h, *h_prev],
            PsdOp::Terms { h, f, .. } => vec![*h, *f],
            PsdOp::Renormalize { .. } => vec![],
        }
    }
}

/// FISTA's momentum weights β_k = (t_k − 1)/t_{k+1} for k = 1..=n, with t_1 = 1 and
/// t_{k+1} = (1 + √(1 + 4t_k²))/2 (Beck & Teboulle 2009).
pub fn fista_betas(n: usize) -> Vec<f32> {
    let mut t = 1.0f64;
    (0..n)
        .map(|_| {
            let next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let beta = (t - 1.0) / next;
            t = next;
            beta as f32
        })
        .collect()
}
