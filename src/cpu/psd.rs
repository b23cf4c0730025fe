//! CPU twins of the PSD kernels (`shaders/psd.wgsl`, ops in [`crate::graph::psd`]): the same
//! arithmetic in the same order, sums sequential where the WGSL thread sums sequentially.

use rayon::prelude::*;

use crate::cpu::CpuExecutor;
use crate::cpu::kernels::Real;
use crate::graph::StepParams;
use crate::graph::psd::{LIPSCHITZ_MARGIN, POWER_ITERATIONS, PsdOp};

/// `f[b, j] = u[b, j] · g[j]`.
pub fn gain<T: Real>(u: &[T], g: &[T], f: &mut [T]) {
    let c = g.len();
    for (i, (o, &x)) in f.iter_mut().zip(u).enumerate() {
        *o = x * g[i % c];
    }
}

/// `da = df · g · (1 − u²)`, `dg[j] = Σ_b df[b, j] · u[b, j]` (rows in order).
pub fn gain_grad<T: Real>(df: &[T], u: &[T], g: &[T], da: &mut [T], dg: &mut [T]) {
    let c = g.len();
    let rows = df.len() / c.max(1);
    for j in 0..c {
        let mut acc = T::zero();
        for b in 0..rows {
            let i = b * c + j;
            da[i] = df[i] * g[j] * (T::one() - u[i] * u[i]);
            acc = acc + df[i] * u[i];
        }
        dg[j] = acc;
    }
}

/// The power iteration's start vector: `1 + frac(0.618034·j)`, not orthogonal to any
/// eigenvector one meets in practice (the WGSL computes the same in f32).
pub fn power_start(j: usize) -> f32 {
    let x = j as f32 * 0.618_034;
    1.0 + (x - x.floor())
}

/// The Rayleigh quotient of G = `gram` (`[c, c]`) after `iterations` power iterations from
/// [`power_start`]: a lower bound on its largest eigenvalue, converging to it. `scratch`
/// (`2c`) ends holding the last iterate and its image.
pub fn power_iteration<T: Real>(gram: &[T], c: usize, iterations: u32, scratch: &mut [T]) -> T {
    let (v, u) = scratch.split_at_mut(c);
    for (j, x) in v.iter_mut().enumerate() {
        *x = T::of(f64::from(power_start(j)));
    }
    let mut rq = T::zero();
    for _ in 0..iterations {
        // Rows in parallel for large codes; each row's sum in order, as one WGSL thread adds.
        let vr = &*v;
        let row_dot = |(j, uj): (usize, &mut T)| {
            let row = &gram[j * c..(j + 1) * c];
            let mut acc = T::zero();
            for k in 0..c {
                acc = acc + row[k] * vr[k];
            }
            *uj = acc;
        };
        if c >= 128 {
            u.par_iter_mut().enumerate().for_each(row_dot);
        } else {
            u.iter_mut().enumerate().for_each(row_dot);
        }
        let (mut uu, mut vu, mut vv) = (T::zero(), T::zero(), T::zero());
        for j in 0..c {
            uu = uu + u[j] * u[j];
            vu = vu + v[j] * u[j];
            vv = vv + v[j] * v[j];
        }
        rq = if vv > T::zero() { vu / vv } else { T::zero() };
        if uu > T::zero() {
            let inv = T::one() / uu.sqrt();
            for j in 0..c {
                v[j] = u[j] * inv;
            }
        }
    }
    rq
}

/// `step = [1/L, λ/L, σ, L]` with σ the power-iteration estimate of ‖D‖₂² and
/// L = 2(min(margin·σ, ‖D‖_F²) + γ), ‖D‖_F² = trace(G) (c with unit columns).
pub fn lipschitz<T: Real>(
    gram: &[T],
    c: usize,
    lambda: f32,
    gamma: f32,
    scratch: &mut [T],
    step: &mut [T],
) {
    let sigma = power_iteration(gram, c, POWER_ITERATIONS, scratch);
    let mut bound = T::zero();
    for j in 0..c {
        bound = bound + gram[j * c + j];
    }
    let raised = T::of(f64::from(LIPSCHITZ_MARGIN)) * sigma;
    let used = if raised < bound { raised } else { bound };
    let l = T::of(2.0) * (used + T::of(f64::from(gamma)));
    let inv = if l > T::zero() {
        T::one() / l
    } else {
        T::zero()
    };
    step[0] = inv;
    step[1] = T::of(f64::from(lambda)) * inv;
    step[2] = sigma;
    step[3] = l;
}

/// `shrink(v, t) = sign(v)·max(|v| − t, 0)`, exactly zero inside [−t, t].
pub fn soft_threshold<T: Real>(v: T, t: T) -> T {
    let a = v.abs();
    if a > t {
        if v > T::zero() { a - t } else { t - a }
    } else {
        T::zero()
    }
}

/// `h = shrink(y − 2·step[0]·(q − p + γ(y − f)), step[1])`.
pub fn shrink<T: Real>(y: &[T], q: &[T], p: &[T], f: &[T], step: &[T], gamma: f32, h: &mut [T]) {
    let (inv_l, t) = (step[0], step[1]);
    let two_inv_l = T::of(2.0) * inv_l;
    let gamma = T::of(f64::from(gamma));
    for i in 0..h.len() {
        let grad = q[i] - p[i] + gamma * (y[i] - f[i]);
        h[i] = soft_threshold(y[i] - two_inv_l * grad, t);
    }
}

/// `y = h + β (h − h_prev)`.
pub fn momentum<T: Real>(h: &[T], h_prev: &[T], beta: f32, y: &mut [T]) {
    let beta = T::of(f64::from(beta));
    for i in 0..y.len() {
        y[i] = h[i] + beta * (h[i] - h_prev[i]);
    }
}

/// The code terms per example (see [`PsdOp::Terms`]); `rows` is `[5, B]`.
pub fn terms<T: Real>(
    h: &[T],
    f: &[T],
    c: usize,
    lambda: f32,
    gamma: f32,
    rows: &mut [T],
    df: &mut [T],
) {
    let batch = h.len() / c.max(1);
    let coef = T::of(f64::from(-2.0 * gamma / batch as f32));
    let (lambda, gamma) = (T::of(f64::from(lambda)), T::of(f64::from(gamma)));
    for b in 0..batch {
        let (mut l1, mut pred, mut zeros, mut sq) = (T::zero(), T::zero(), T::zero(), T::zero());
        for j in 0..c {
            let i = b * c + j;
            let e = h[i] - f[i];
            l1 = l1 + h[i].abs();
            pred = pred + e * e;
            sq = sq + h[i] * h[i];
            if h[i] == T::zero() {
                zeros = zeros + T::one();
            }
            df[i] = coef * e;
        }
        rows[b] = lambda * l1;
        rows[batch + b] = gamma * pred;
        rows[2 * batch + b] = zeros;
        rows[3 * batch + b] = pred;
        rows[4 * batch + b] = sq;
    }
}

/// Scales each column of the row-major `[rows, cols]` matrix `d` to unit L2 norm (a zero
/// column stays zero).
pub fn renormalize_columns<T: Real>(d: &mut [T], rows: usize, cols: usize) {
    for j in 0..cols {
        let mut s = T::zero();
        for i in 0..rows {
            s = s + d[i * cols + j] * d[i * cols + j];
        }
        if s > T::zero() {
            let inv = T::one() / s.sqrt();
            for i in 0..rows {
                d[i * cols + j] = d[i * cols + j] * inv;
            }
        }
    }
}

impl<T: Real> CpuExecutor<T> {
    /// Runs one PSD op.
    pub(super) fn run_psd(&mut self, op: &PsdOp, _s: &StepParams) {
        match *op {
            PsdOp::Gain { u, g, f } => {
                let mut o = self.take(f.buf);
                gain(self.floats(u), self.floats(g), &mut o[f.offset..f.end()]);
                self.put(f.buf, o);
            }
            PsdOp::GainGrad { df, u, g, da, dg } => {
                let (mut a, mut gg) = (self.take(da.buf), self.take(dg.buf));
                gain_grad(
                    self.floats(df),
                    self.floats(u),
                    self.floats(g),
                    &mut a[da.offset..da.end()],
                    &mut gg[dg.offset..dg.end()],
                );
                self.put(da.buf, a);
                self.put(dg.buf, gg);
            }
            PsdOp::Lipschitz {
                gram,
                scratch,
                step,
                lambda,
                gamma,
            } => {
                let (mut sc, mut st) = (self.take(scratch.buf), self.take(step.buf));
                lipschitz(
                    self.floats(gram),
                    gram.cols,
                    lambda,
                    gamma,
                    &mut sc[scratch.offset..scratch.end()],
                    &mut st[step.offset..step.end()],
                );
                self.put(scratch.buf, sc);
                self.put(step.buf, st);
            }
            PsdOp::Shrink {
                y,
                q,
                p,
                f,
                step,
                h,
                gamma,
            } => {
                let mut o = self.take(h.buf);
                shrink(
                    self.floats(y),
                    self.floats(q),
                    self.floats(p),
                    self.floats(f),
                    self.floats(step),
                    gamma,
                    &mut o[h.offset..h.end()],
                );
                self.put(h.buf, o);
            }
            PsdOp::Momentum { h, h_prev, y, beta } => {
                let mut o = self.take(y.buf);
                momentum(
                    self.floats(h),
                    self.floats(h_prev),
                    beta,
                    &mut o[y.offset..y.end()],
                );
                self.put(y.buf, o);
            }
            PsdOp::Terms {
                h,
                f,
                rows,
                df,
                lambda,
                gamma,
            } => {
                let (mut r, mut d) = (self.take(rows.buf), self.take(df.buf));
                terms(
                    self.floats(h),
                    self.floats(f),
                    h.cols,
                    lambda,
                    gamma,
                    &mut r[rows.offset..rows.end()],
                    &mut d[df.offset..df.end()],
                );
                self.put(rows.buf, r);
                self.put(df.buf, d);
            }
            PsdOp::Renormalize { d } => {
                let mut o = self.take(d.buf);
                renormalize_columns(&mut o[d.offset..d.end()], d.rows, d.cols);
                self.put(d.buf, o);
            }
        }
    }
}
