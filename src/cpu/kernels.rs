//! The CPU twins of the WGSL kernels: plain loops over slices, written to be obviously right.
//! Generic over f32 (compared against the GPU) and f64 (finite-difference gradient checks).
//! Where a formula has numerically different but equivalent forms, the one used here is the
//! one the WGSL uses, so the two agree to rounding.

use rayon::prelude::*;

use crate::model::{Activation, Loss, spec::LEAKY_RELU_SLOPE};

/// A float the reference executor can run in (f32 or f64: the GEMM supports those).
pub trait Real:
    ndarray::LinalgScalar + num_traits::Float + Send + Sync + std::fmt::Debug + 'static
{
    /// Converts from f64 (rounding for f32).
    fn of(x: f64) -> Self;
    /// Converts to f64.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Logistic sigmoid.
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// tanh through exp(−2|x|), which cannot overflow (some GPU tanh builtins return NaN for
/// large |x|); the WGSL uses the same form.
pub fn tanh<T: Real>(x: T) -> T {
    let e = (T::of(-2.0) * x.abs()).exp();
    let t = (T::one() - e) / (T::one() + e);
    if x < T::zero() { -t } else { t }
}

/// `act(x)`.
pub fn activate<T: Real>(act: Activation, x: T) -> T {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(T::zero()),
        Activation::LeakyRelu => {
            if x > T::zero() {
                x
            } else {
                T::of(f64::from(LEAKY_RELU_SLOPE)) * x
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => tanh(x),
    }
}

/// `act'` expressed through the activation's output `y = act(x)`.
pub fn activation_grad_from_output<T: Real>(act: Activation, y: T) -> T {
    match act {
        Activation::Identity => T::one(),
        Activation::Relu => {
            if y > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu => {
            if y > T::zero() {
                T::one()
            } else {
                T::of(f64::from(LEAKY_RELU_SLOPE))
            }
        }
        Activation::Sigmoid => y * (T::one() - y),
        Activation::Tanh => T::one() - y * y,
    }
}

/// Epilogue of [`matmul`], with its extra operand.
#[derive(Clone, Copy, Debug)]
pub enum CpuEpilogue<'a, T> {
    /// Store the product.
    Store,
    /// Add `bias[col]`, then apply the activation.
    BiasAct(&'a [T], Activation),
    /// Multiply by `act'(y[row, col])`.
    ActGrad(&'a [T], Activation),
    /// Add the product to `c`.
    Accumulate,
    /// Add the product to `c`, then multiply by `act'(y[row, col])`.
    AccumulateActGrad(&'a [T], Activation),
}

/// An operand as a mixed-precision product sees it (the twin of `prepare` and `round_half` in
/// shaders/matmul_common.wgsl): times the loss scale when it is a gradient, rounded to the
/// nearest f16, and divided by the scale again — exact, the scale being a power of two — so a
/// plain product of the results equals the scaled f16 product unscaled. `None` when an element
/// does not fit in f16 (or is NaN): the product is then poisoned.
pub fn half_operand<T: Real>(x: &[T], scale: Option<f32>) -> Option<Vec<T>> {
    let s = scale.unwrap_or(1.0);
    x.iter()
        .map(|&v| {
            let v = v.to_f64() as f32 * s;
            if v.is_nan() || v.abs() > half::f16::MAX.to_f32() {
                return None;
            }
            Some(T::of(f64::from(half::f16::from_f32(v).to_f32() / s)))
        })
        .collect()
}

/// Dynamic loss scaling after one step (the twin of `loss_scale` in shaders/loss_scale.wgsl):
/// updates `state` = [scale, finite steps in a row, overflow steps, 0] and takes an overflow
/// step back out of `health` = [non-finite steps, first such step]. See [`crate::graph::Op::LossScale`].
pub fn loss_scale_update<T: Real>(
    state: &mut [T],
    grads_finite: bool,
    forward_finite: bool,
    health: &mut [u32],
) {
    use crate::graph::{LOSS_SCALE_BOUNDS, LOSS_SCALE_GROWTH_INTERVAL};
    let (lo, hi) = LOSS_SCALE_BOUNDS;
    let scale = state[0].to_f64() as f32;
    if grads_finite {
        let run = state[1].to_f64() as u32 + 1;
        if run >= LOSS_SCALE_GROWTH_INTERVAL {
            state[0] = T::of(f64::from((scale * 2.0).min(hi)));
            state[1] = T::zero();
        } else {
            state[1] = T::of(f64::from(run));
        }
    } else if forward_finite && scale > lo {
        state[0] = T::of(f64::from((scale * 0.5).max(lo)));
        state[1] = T::zero();
        state[2] = state[2] + T::one();
        if health[0] > 0 {
            health[0] -= 1;
            if health[0] == 0 {
                health[1] = 0;
            }
        }
    } else {
        state[1] = T::zero();
    }
}

/// `c[M×N] = op(a) · op(b)` then the epilogue; `a` is stored `a_rows × a_cols`, likewise `b`.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    a_shape: (usize, usize),
    trans_a: bool,
    b: &[T],
    b_shape: (usize, usize),
    trans_b: bool,
    c: &mut [T],
    epilogue: CpuEpilogue<T>,
) {
    let (m, k) = if trans_a {
        (a_shape.1, a_shape.0)
    } else {
        a_shape
    };
    let n = if trans_b { b_shape.0 } else { b_shape.1 };
    assert_eq!(a.len(), a_shape.0 * a_shape.1, "a matches its shape");
    assert_eq!(b.len(), b_shape.0 * b_shape.1, "b matches its shape");
    assert_eq!(c.len(), m * n, "c is M×N");
    assert_eq!(
        if trans_b { b_shape.1 } else { b_shape.0 },
        k,
        "inner sizes agree"
    );
    // Row-major strides (row, column) of op(a) and op(b): a transpose only swaps them.
    let strides = |cols: usize, t: bool| {
        if t {
            (1, cols as isize)
        } else {
            (cols as isize, 1)
        }
    };
    let (a_rs, a_cs) = strides(a_shape.1, trans_a);
    let (b_rs, b_cs) = strides(b_shape.1, trans_b);
    let accumulate = matches!(
        epilogue,
        CpuEpilogue::Accumulate | CpuEpilogue::AccumulateActGrad(..)
    );
    // Threads pay off only on products big enough to split.
    let parallelism = if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    if m * n > 0 {
        // SAFETY: the asserts above bound every index gemm forms from (m, n, k) and the
        // strides by the slices' lengths; `c` does not alias `a` or `b` (distinct borrows).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                T::one(),
                T::one(),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    match epilogue {
        CpuEpilogue::Store | CpuEpilogue::Accumulate => {}
        CpuEpilogue::BiasAct(bias, act) => {
            c.par_chunks_mut(n).for_each(|row| {
                for (v, &bj) in row.iter_mut().zip(bias) {
                    *v = activate(act, *v + bj);
                }
            });
        }
        CpuEpilogue::ActGrad(y, act) | CpuEpilogue::AccumulateActGrad(y, act) => {
            c.par_chunks_mut(n)
                .zip(y.par_chunks(n))
                .for_each(|(row, yrow)| {
                    for (v, &yv) in row.iter_mut().zip(yrow) {
                        *v = *v * activation_grad_from_output(act, yv);
                    }
                });
        }
    }
}

/// `y = act(x)`.
pub fn activation_forward<T: Real>(act: Activation, x: &[T], y: &mut [T]) {
    for (o, &i) in y.iter_mut().zip(x) {
        *o = activate(act, i);
    }
}

/// `dx = dy · act'(y)`.
pub fn activation_backward<T: Real>(act: Activation, dy: &[T], y: &[T], dx: &mut [T]) {
    for ((o, &g), &yv) in dx.iter_mut().zip(dy).zip(y) {
        *o = g * activation_grad_from_output(act, yv);
    }
}

/// `out[j] (+)= Σ_i x[i, j]` over a row-major `x` with `cols` columns.
pub fn column_sum<T: Real>(x: &[T], cols: usize, out: &mut [T], accumulate: bool) {
    if !accumulate {
        out.fill(T::zero());
    }
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = *o + v;
        }
    }
}

/// Loss and dL/dz of one element from the logit `z` and the target `x`, before batch averaging.
pub fn loss_element<T: Real>(loss: Loss, output: Activation, z: T, x: T) -> (T, T) {
    match (loss, output) {
        // softplus(z) − x·z and σ(z) − x from one exp(−|z|), which never overflows.
        (Loss::Bce, _) => {
            let e = (-z.abs()).exp();
            let l = z.max(T::zero()) - x * z + (T::one() + e).ln();
            let s = if z >= T::zero() {
                T::one() / (T::one() + e)
            } else {
                e / (T::one() + e)
            };
            (l, s - x)
        }
        (Loss::Mse, Activation::Sigmoid) => {
            let y = sigmoid(z);
            let d = y - x;
            (d * d, T::of(2.0) * d * y * (T::one() - y))
        }
        (Loss::Mse, _) => {
            let d = z - x;
            (d * d, T::of(2.0) * d)
        }
    }
}

/// Per-row loss sums and the row-averaged gradient with respect to the logits; logits row `r`
/// is compared with target row `r % target_rows`.
pub fn reconstruction_loss<T: Real>(
    loss: Loss,
    output: Activation,
    logits: &[T],
    target: &[T],
    cols: usize,
    grad: &mut [T],
    row_loss: &mut [T],
) {
    let rows = row_loss.len();
    let target_rows = target.len() / cols;
    let inv_batch = T::one() / T::of(rows as f64);
    // Rows are independent: one task per row.
    grad.par_chunks_mut(cols)
        .zip(row_loss.par_iter_mut())
        .enumerate()
        .for_each(|(r, (grad_row, out))| {
            let z_row = &logits[r * cols..(r + 1) * cols];
            let t = (r % target_rows) * cols;
            let mut sum = T::zero();
            for ((g, &z), &x) in grad_row.iter_mut().zip(z_row).zip(&target[t..t + cols]) {
                let (l, d) = loss_element(loss, output, z, x);
                sum = sum + l;
                *g = d * inv_batch;
            }
            *out = sum;
        });
}

/// Hyperparameters of [`adam`] that do not change between steps.
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// AdamW rather than Adam + L2.
    pub decoupled: bool,
}

/// One Adam/AdamW step in PyTorch's formulation; `bc1`, `bc2` are 1 − βᵗ.
#[allow(clippy::too_many_arguments)]
pub fn adam<T: Real>(
    h: AdamHyper,
    scale: T,
    lr: f32,
    bc1: f32,
    bc2: f32,
    params: &mut [T],
    grads: &[T],
    m: &mut [T],
    v: &mut [T],
) {
    let [b1, b2, eps, wd, lr, bc1, bc2] =
        [h.beta1, h.beta2, h.eps, h.weight_decay, lr, bc1, bc2].map(|x| T::of(f64::from(x)));
    let sqrt_bc2 = bc2.sqrt();
    let step = lr / bc1;
    // Decoupled or not is decided once per chunk, so each loop is branch-free and vectorizes.
    let update = |decoupled: bool, p: &mut T, g: T, m: &mut T, v: &mut T| {
        let (mut pv, mut g) = (*p, g * scale);
        if decoupled {
            pv = pv * (T::one() - lr * wd);
        } else {
            g = g + wd * pv;
        }
        *m = b1 * *m + (T::one() - b1) * g;
        *v = b2 * *v + (T::one() - b2) * g * g;
        let denom = v.sqrt() / sqrt_bc2 + eps;
        *p = pv - step * *m / denom;
    };
    // Element-wise and independent: split the arena into chunks across threads.
    const CHUNK: usize = 1 << 14;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            let each = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
            if h.decoupled {
                each.for_each(|(((p, &g), m), v)| update(true, p, g, m, v));
            } else {
                each.for_each(|(((p, &g), m), v)| update(false, p, g, m, v));
            }
        });
}

/// Σ x² in eight interleaved partial sums, so the loop vectorizes (one running sum would make
/// every addition wait for the last).
pub fn sum_squares<T: Real>(x: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (l, &g) in lanes.iter_mut().zip(c) {
            *l = *l + g * g;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |a, &g| a + g * g);
    lanes.iter().fold(tail, |a, &l| a + l)
}

/// Σ g² of each block of 2048 gradients into `partials`, and their total, as the GPU sums.
pub fn grad_norm_sq<T: Real>(grads: &[T], partials: &mut [T]) -> T {
    partials
        .par_iter_mut()
        .zip(grads.par_chunks(2048))
        .for_each(|(p, c)| *p = sum_squares(c));
    partials.iter().fold(T::zero(), |a, &p| a + p)
}

/// The factor an optimizer scales a step's gradient by, from its Σ g²: `None` when the sum is
/// not finite (the step is skipped), else `min(1, max_norm / (‖g‖ + 1e-6))` when clipping
/// (PyTorch's `clip_grad_norm_`), or 1.
pub fn guard_scale<T: Real>(norm_sq: T, max_norm: f32) -> Option<T> {
    if !norm_sq.is_finite() {
        return None;
    }
    if max_norm > 0.0 {
        let max = T::of(f64::from(max_norm));
        Some((max / (norm_sq.sqrt() + T::of(1e-6))).min(T::one()))
    } else {
        Some(T::one())
    }
}

/// One SGD step with momentum in PyTorch's formulation (`v = μv + g; p −= lr·v`).
pub fn sgd<T: Real>(
    scale: T,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    params: &mut [T],
    grads: &[T],
    velocity: &mut [T],
) {
    let [lr, mu, wd] = [lr, momentum, weight_decay].map(|x| T::of(f64::from(x)));
    for i in 0..params.len() {
        let g = scale * grads[i] + wd * params[i];
        velocity[i] = mu * velocity[i] + g;
        params[i] = params[i] - lr * velocity[i];
    }
}

/// `out[i, :] = data[order[start + i], :]`.
pub fn gather<T: Real>(data: &[T], cols: usize, order: &[u32], start: usize, out: &mut [T]) {
    for (i, row) in out.chunks_exact_mut(cols).enumerate() {
        let src = order[start + i] as usize * cols;
        row.copy_from_slice(&data[src..src + cols]);
    }
}
