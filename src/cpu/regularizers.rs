//! CPU twins of the regularizer kernels: input corruption (`shaders/noise.wgsl`), the Jacobian
//! penalty (`shaders/jacobian.wgsl`), sparsity (`shaders/sparse.wgsl`) and the VAE sampler
//! (`shaders/sampler.wgsl`). Random numbers come from [`crate::rng`] exactly as the WGSL draws
//! them: one Philox block per element, keyed by (seed, step, element index).

use rayon::prelude::*;

use crate::cpu::kernels::{self, Real, activation_grad_from_output};
use crate::graph::StepParams;
use crate::model::{Activation, Noise};
use crate::rng::{Stream, element_block, gaussian_f32, global_element, unit_f32};

/// The block of element `i` of a `[K·batch, cols]` view, keyed by its index in the step's
/// whole batch ([`global_element`]).
fn view_block(s: &StepParams, stream: Stream, i: usize, cols: usize, batch: usize) -> [u32; 4] {
    let index = global_element(
        i as u32,
        cols as u32,
        batch as u32,
        s.row_base,
        s.rows_global,
    );
    element_block(s.seed_lo, s.seed_hi, stream, s.step, index)
}

/// `act''` expressed through the output `y = act(x)`; zero for the piecewise-linear ones.
pub fn activation_second_derivative_from_output<T: Real>(act: Activation, y: T) -> T {
    let one = T::one();
    match act {
        Activation::Sigmoid => y * (one - y) * (one - T::of(2.0) * y),
        Activation::Tanh => T::of(-2.0) * y * (one - y * y),
        Activation::Identity | Activation::Relu | Activation::LeakyRelu => T::zero(),
    }
}

/// Corrupts `x` into `out` (denoising autoencoders); `cols` is the width of a row.
pub fn corrupt<T: Real>(noise: Noise, s: &StepParams, cols: usize, x: &[T], out: &mut [T]) {
    let rows = out.len() / cols.max(1);
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        let w = view_block(s, Stream::Noise, i, cols, rows);
        *o = match noise {
            Noise::Mask { nu } => {
                if unit_f32(w[0]) < nu {
                    T::zero()
                } else {
                    v
                }
            }
            Noise::SaltPepper { nu } => {
                if unit_f32(w[0]) < nu {
                    if w[1] >> 31 == 0 { T::zero() } else { T::one() }
                } else {
                    v
                }
            }
            Noise::Gaussian { sigma } => v + T::of(f64::from(sigma * gaussian_f32(w[0], w[1]))),
        };
    }
}

/// `data` corrupted by `noise` as a denoising model's training step would corrupt it, the
/// draws keyed by `seed` (the noise of a run's first step for its own seed): what
/// `reconstructions.png` shows a denoising run's model was given.
pub fn corrupt_dataset(
    noise: Noise,
    data: &crate::data::Dataset,
    seed: u64,
) -> crate::error::Result<crate::data::Dataset> {
    let s = StepParams {
        step: 1,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        ..StepParams::default()
    };
    let mut out = vec![0.0f32; data.values.len()];
    corrupt(noise, &s, data.cols, &data.values, &mut out);
    crate::data::Dataset::new(data.rows, data.cols, out)
}

/// Direction vectors `[K·B, c]`: basis vectors e_k (exact) or N(0, 1) draws.
pub fn directions<T: Real>(s: &StepParams, cols: usize, batch: usize, exact: bool, out: &mut [T]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = if exact {
            let (row, col) = (i / cols, i % cols);
            if row / batch == col {
                T::one()
            } else {
                T::zero()
            }
        } else {
            let w = view_block(s, Stream::Projection, i, cols, batch);
            T::of(f64::from(gaussian_f32(w[0], w[1])))
        };
    }
}

/// `out = r · act'(y[row % B])`.
pub fn tangent_scale<T: Real>(act: Activation, r: &[T], y: &[T], cols: usize, out: &mut [T]) {
    let yb = y.len();
    for (i, (o, &rv)) in out.iter_mut().zip(r).enumerate() {
        *o = rv * activation_grad_from_output(act, y[i % yb]);
    }
    debug_assert_eq!(yb % cols, 0);
}

/// `out[b, j] = Σ_k qa[k·B+b, j] · r[k·B+b, j] · act''(y[b, j])`.
pub fn curvature<T: Real>(act: Activation, qa: &[T], r: &[T], y: &[T], out: &mut [T]) {
    let n = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut sum = T::zero();
        for k in 0..qa.len() / n {
            sum = sum + qa[k * n + i] * r[k * n + i];
        }
        *o = sum * activation_second_derivative_from_output(act, y[i]);
    }
}

/// `rows[b] = scale · Σ_k Σ_i r[k·B+b, i]²`, `grad = (2 · scale / B) · r`.
pub fn jacobian_norm<T: Real>(scale: f32, r: &[T], cols: usize, rows: &mut [T], grad: &mut [T]) {
    let batch = rows.len();
    let scale = T::of(f64::from(scale));
    let g = T::of(2.0) * scale / T::of(batch as f64);
    rows.fill(T::zero());
    for (row, chunk) in r.chunks_exact(cols).enumerate() {
        let ss = chunk.iter().fold(T::zero(), |a, &v| a + v * v);
        rows[row % batch] = rows[row % batch] + scale * ss;
    }
    for (o, &v) in grad.iter_mut().zip(r) {
        *o = g * v;
    }
}

/// The closed-form contractive penalty of one sigmoid layer (see `Op::ContractiveClosedForm`).
#[allow(clippy::too_many_arguments)]
pub fn contractive_closed_form<T: Real>(
    lambda: f32,
    h: &[T],
    w: &[T],
    inputs: usize,
    rows: &mut [T],
    dz: &mut [T],
    dw: &mut [T],
    scratch: &mut [T],
) {
    let batch = rows.len();
    let units = h.len() / batch;
    let lambda = T::of(f64::from(lambda));
    let (norms, s2) = scratch.split_at_mut(units);
    // ‖W_j‖² per unit, threaded over units.
    norms
        .par_iter_mut()
        .zip(w.par_chunks(inputs))
        .for_each(|(n, wj)| *n = kernels::sum_squares(wj));
    let norms = &*norms;
    let two = T::of(2.0);
    let inv_b = T::one() / T::of(batch as f64);
    let g = lambda * inv_b * two;
    // Per example, threaded over examples; each loop runs over units with no carried sum but
    // the penalty's, kept in eight lanes.
    rows.par_iter_mut()
        .zip(dz.par_chunks_mut(units))
        .zip(h.par_chunks(units))
        .for_each(|((row, dz), h)| *row = lambda * contractive_row(g, h, norms, dz));
    // Σ_b s² per unit: examples in order, units side by side.
    s2[..units].fill(T::zero());
    for hb in h.chunks(units) {
        for (acc, &y) in s2.iter_mut().zip(hb) {
            let s = y * (T::one() - y);
            *acc = *acc + s * s;
        }
    }
    let s2 = &*s2;
    dw.par_chunks_mut(inputs)
        .zip(w.par_chunks(inputs))
        .zip(s2.par_iter())
        .for_each(|((dwj, wj), &s)| {
            let c = g * s;
            for (d, &v) in dwj.iter_mut().zip(wj) {
                *d = c * v;
            }
        });
}

crate::widest! {
    /// One example of [`contractive_closed_form`]: adds the penalty's gradient to `dz` and
    /// returns Σ_j s_j² ‖W_j‖² (s = h(1 − h)).
    fn contractive_row<T: Real>(g: T, h: &[T], norms: &[T], dz: &mut [T]) -> T = contractive_row_body;
}

/// [`contractive_row`]: unit `j`'s term goes to running sum `j % 8`, so the lanes of a vector
/// each keep one.
#[inline(always)]
fn contractive_row_body<T: Real>(g: T, h: &[T], norms: &[T], dz: &mut [T]) -> T {
    let (one, two) = (T::one(), T::of(2.0));
    let mut lanes = [T::zero(); 8];
    // ∂(s² n)/∂a = 2 s n · s(1 − 2y); the 2 is in g.
    let unit = |lane: &mut T, d: &mut T, y: T, n: T| {
        let s = y * (one - y);
        *lane = *lane + s * s * n;
        *d = *d + g * s * n * s * (one - two * y);
    };
    let mut d8 = dz.chunks_exact_mut(8);
    let (h8, n8) = (h.chunks_exact(8), norms.chunks_exact(8));
    let (h_tail, n_tail) = (h8.remainder(), n8.remainder());
    for ((d, y), n) in (&mut d8).zip(h8).zip(n8) {
        for j in 0..8 {
            unit(&mut lanes[j], &mut d[j], y[j], n[j]);
        }
    }
    for (j, ((d, &y), &n)) in d8
        .into_remainder()
        .iter_mut()
        .zip(h_tail)
        .zip(n_tail)
        .enumerate()
    {
        unit(&mut lanes[j], d, y, n);
    }
    lanes.iter().fold(T::zero(), |a, &l| a + l)
}

/// L1 sparsity (see `Op::SparseL1`).
pub fn sparse_l1<T: Real>(act: Activation, lambda: f32, h: &[T], rows: &mut [T], dz: &mut [T]) {
    let batch = rows.len();
    let units = h.len() / batch;
    let lambda = T::of(f64::from(lambda));
    let g = lambda / T::of(batch as f64);
    for b in 0..batch {
        let mut p = T::zero();
        for j in 0..units {
            let y = h[b * units + j];
            p = p + y.abs();
            let sign = if y > T::zero() {
                T::one()
            } else if y < T::zero() {
                -T::one()
            } else {
                T::zero()
            };
            dz[b * units + j] = dz[b * units + j] + g * sign * activation_grad_from_output(act, y);
        }
        rows[b] = lambda * p;
    }
}

/// KL sparsity toward ρ (see `Op::SparseKl`).
#[allow(clippy::too_many_arguments)]
pub fn sparse_kl<T: Real>(
    act: Activation,
    lambda: f32,
    rho: f32,
    h: &[T],
    sums: &[T],
    terms: &mut [T],
    dz: &mut [T],
) {
    let units = terms.len();
    let batch = h.len() / units;
    let (lambda, rho) = (T::of(f64::from(lambda)), T::of(f64::from(rho)));
    let one = T::one();
    let inv_b = one / T::of(batch as f64);
    for j in 0..units {
        let p = sums[j] * inv_b;
        terms[j] = lambda * (rho * (rho / p).ln() + (one - rho) * ((one - rho) / (one - p)).ln());
        let d = lambda * inv_b * (-rho / p + (one - rho) / (one - p));
        for b in 0..batch {
            let y = h[b * units + j];
            dz[b * units + j] = dz[b * units + j] + d * activation_grad_from_output(act, y);
        }
    }
}

/// The reparameterized sampler (see `Op::Sample`).
#[allow(clippy::too_many_arguments)]
pub fn sample<T: Real>(
    s: &StepParams,
    beta: f32,
    mu: &[T],
    logvar: &[T],
    eps: &mut [T],
    z: &mut [T],
    kl_rows: &mut [T],
) {
    let n = mu.len();
    let batch = kl_rows.len();
    let units = n / batch.max(1);
    for (i, (e, zi)) in eps.iter_mut().zip(z.iter_mut()).enumerate() {
        let w = view_block(s, Stream::Sampler, i, units, batch);
        *e = T::of(f64::from(gaussian_f32(w[0], w[1])));
        let j = i % n;
        *zi = mu[j] + (T::of(0.5) * logvar[j]).exp() * *e;
    }
    let beta = T::of(f64::from(beta));
    for b in 0..batch {
        let mut kl = T::zero();
        for j in b * units..(b + 1) * units {
            kl = kl + T::one() + logvar[j] - mu[j] * mu[j] - logvar[j].exp();
        }
        kl_rows[b] = beta * T::of(-0.5) * kl;
    }
}

/// Backward of the sampler with the KL gradient (see `Op::SampleGrad`).
#[allow(clippy::too_many_arguments)]
pub fn sample_grad<T: Real>(
    beta: f32,
    batch: usize,
    dz: &[T],
    eps: &[T],
    mu: &[T],
    logvar: &[T],
    dmu: &mut [T],
    dlogvar: &mut [T],
) {
    let n = mu.len();
    let half = T::of(0.5);
    let kl = T::of(f64::from(beta)) / T::of(batch as f64);
    for i in 0..n {
        let sigma = (half * logvar[i]).exp();
        let (mut gm, mut gl) = (T::zero(), T::zero());
        for s in 0..dz.len() / n {
            let g = dz[s * n + i];
            gm = gm + g;
            gl = gl + g * eps[s * n + i] * half * sigma;
        }
        dmu[i] = gm + kl * mu[i];
        dlogvar[i] = gl + kl * half * (sigma * sigma - T::one());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wide version rounds exactly like the baseline build (see `widest!`).
    #[test]
    fn contractive_row_wide_matches_baseline_bit_for_bit() {
        let units = 1003; // not a multiple of any vector width
        let h: Vec<f32> = (0..units).map(|j| (j % 97) as f32 / 96.0).collect();
        let norms: Vec<f32> = (0..units).map(|j| 0.5 + (j % 13) as f32).collect();
        let (mut d1, mut d2) = (vec![0.25f32; units], vec![0.25f32; units]);
        let p1 = contractive_row(0.003, &h, &norms, &mut d1);
        let p2 = contractive_row_body(0.003, &h, &norms, &mut d2);
        assert_eq!(p1.to_bits(), p2.to_bits());
        assert!(d1.iter().zip(&d2).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
