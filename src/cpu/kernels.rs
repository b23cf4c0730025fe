//! The CPU twins of the WGSL kernels: plain loops over slices, written to be obviously right.
//! Generic over f32 (compared against the GPU) and f64 (finite-difference gradient checks).
//! Where a formula has numerically different but equivalent forms, the one used here is the
//! one the WGSL uses, so the two agree to rounding.

use rayon::prelude::*;

use super::gemm::{Stored, TileProduct, product};
use crate::graph::{ACCUMULATE_FIRST, ACCUMULATE_LAST, ACCUMULATE_STEP};
use crate::model::{Activation, Loss, spec::LEAKY_RELU_SLOPE};

/// A float the reference executor can run in (f32 or f64: the GEMM supports those).
pub trait Real: ndarray::LinalgScalar + num_traits::Float + TileProduct + std::fmt::Debug {
    /// Converts from f64 (rounding for f32).
    fn of(x: f64) -> Self;
    /// Converts to f64.
    fn to_f64(self) -> f64;
    /// eˣ in a form a loop vectorizes (f32: [`super::vmath::exp`]; f64: the library's).
    fn exp_v(self) -> Self;
    /// ln x in a form a loop vectorizes (f32: [`super::vmath::ln`]; f64: the library's).
    fn ln_v(self) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn exp_v(self) -> Self {
        super::vmath::exp(self)
    }
    #[inline(always)]
    fn ln_v(self) -> Self {
        super::vmath::ln(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp_v(self) -> Self {
        self.exp()
    }
    fn ln_v(self) -> Self {
        self.ln()
    }
}

/// Logistic sigmoid.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_v())
}

/// tanh through exp(−2|x|), which cannot overflow (some GPU tanh builtins return NaN for
/// large |x|); the WGSL uses the same form.
#[inline(always)]
pub fn tanh<T: Real>(x: T) -> T {
    let e = (T::of(-2.0) * x.abs()).exp_v();
    let t = (T::one() - e) / (T::one() + e);
    if x < T::zero() { -t } else { t }
}

/// `act(x)`.
#[inline(always)]
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
#[inline(always)]
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
/// The product runs in tiles over the threads, each tile finished by the epilogue while in cache
/// (see [`super::gemm`]).
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
) -> crate::Result<()> {
    let stored = |data, (rows, cols): (usize, usize), trans| Stored {
        data,
        rows,
        cols,
        trans,
    };
    let (a, b) = (stored(a, a_shape, trans_a), stored(b, b_shape, trans_b));
    let n = b.op_shape().1;
    let short = match epilogue {
        CpuEpilogue::BiasAct(bias, _) => bias.len() < n,
        CpuEpilogue::ActGrad(y, _) | CpuEpilogue::AccumulateActGrad(y, _) => y.len() < c.len(),
        CpuEpilogue::Store | CpuEpilogue::Accumulate => false,
    };
    if short {
        return Err(crate::Error::Config(
            "matrix product: the epilogue's bias or activations are shorter than the product"
                .into(),
        ));
    }
    let accumulate = matches!(
        epilogue,
        CpuEpilogue::Accumulate | CpuEpilogue::AccumulateActGrad(..)
    );
    product(a, b, c, accumulate, |row, col, part| match epilogue {
        CpuEpilogue::Store | CpuEpilogue::Accumulate => {}
        CpuEpilogue::BiasAct(bias, act) => bias_act(act, &bias[col..col + part.len()], part),
        CpuEpilogue::ActGrad(y, act) | CpuEpilogue::AccumulateActGrad(y, act) => {
            let start = row * n + col;
            act_grad(act, &y[start..start + part.len()], part)
        }
    })
}

crate::widest! {
    /// `v = act(v + bias)` elementwise.
    pub fn bias_act<T: Real>(act: Activation, bias: &[T], v: &mut [T]) = bias_act_body;
}

/// [`bias_act`], one loop per activation (see [`per_activation`]).
#[inline(always)]
fn bias_act_body<T: Real>(act: Activation, bias: &[T], v: &mut [T]) {
    per_activation(act, |act| {
        for (x, &b) in v.iter_mut().zip(bias) {
            *x = activate(act, *x + b);
        }
    });
}

crate::widest! {
    /// `v = v · act'(y)` elementwise, `act'` through the activation's output.
    pub fn act_grad<T: Real>(act: Activation, y: &[T], v: &mut [T]) = act_grad_body;
}

/// [`act_grad`], one loop per activation (see [`per_activation`]). A multiplication even by 0
/// or 1, as on the GPU: a NaN gradient stays NaN.
#[inline(always)]
fn act_grad_body<T: Real>(act: Activation, y: &[T], v: &mut [T]) {
    per_activation(act, |act| {
        for (x, &y) in v.iter_mut().zip(y) {
            *x = *x * activation_grad_from_output(act, y);
        }
    });
}

/// Runs `f` with `act` as a constant of each match arm, so the loop in `f` is compiled once per
/// activation with the activation's `match` folded away: the loops vectorize.
#[inline(always)]
fn per_activation(act: Activation, f: impl FnOnce(Activation)) {
    match act {
        Activation::Identity => f(Activation::Identity),
        Activation::Relu => f(Activation::Relu),
        Activation::LeakyRelu => f(Activation::LeakyRelu),
        Activation::Sigmoid => f(Activation::Sigmoid),
        Activation::Tanh => f(Activation::Tanh),
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

/// Loss and dL/dz of one element from the logit `z` and the target `x`, before batch averaging,
/// for Bernoulli cross-entropy on the logit: softplus(z) − x·z and σ(z) − x from one exp(−|z|),
/// which never overflows.
#[inline(always)]
fn bce_element<T: Real>(z: T, x: T) -> (T, T) {
    let e = (-z.abs()).exp_v();
    let l = z.max(T::zero()) - x * z + (T::one() + e).ln_v();
    let s = if z >= T::zero() {
        T::one() / (T::one() + e)
    } else {
        e / (T::one() + e)
    };
    (l, s - x)
}

/// Squared error of σ(z).
#[inline(always)]
fn mse_sigmoid_element<T: Real>(z: T, x: T) -> (T, T) {
    let y = sigmoid(z);
    let d = y - x;
    (d * d, T::of(2.0) * d * y * (T::one() - y))
}

/// Squared error of z.
#[inline(always)]
fn mse_element<T: Real>(z: T, x: T) -> (T, T) {
    let d = z - x;
    (d * d, T::of(2.0) * d)
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
            let z = &logits[r * cols..(r + 1) * cols];
            let t = (r % target_rows) * cols;
            *out = loss_row(loss, output, z, &target[t..t + cols], grad_row, inv_batch);
        });
}

crate::widest! {
    /// One row of [`reconstruction_loss`]; returns the row's loss.
    fn loss_row<T: Real>(
        loss: Loss,
        output: Activation,
        z: &[T],
        x: &[T],
        grad: &mut [T],
        inv_batch: T,
    ) -> T = loss_row_body;
}

/// [`loss_row`], one loop per loss form (the form is then a constant in it).
#[inline(always)]
fn loss_row_body<T: Real>(
    loss: Loss,
    output: Activation,
    z: &[T],
    x: &[T],
    grad: &mut [T],
    inv_batch: T,
) -> T {
    match (loss, output) {
        (Loss::Bce, _) => loss_blocks(bce_element, z, x, grad, inv_batch),
        (Loss::Mse, Activation::Sigmoid) => loss_blocks(mse_sigmoid_element, z, x, grad, inv_batch),
        (Loss::Mse, _) => loss_blocks(mse_element, z, x, grad, inv_batch),
    }
}

/// A row in blocks: one plain loop writes the gradients and the block's losses (it vectorizes:
/// no running sum in it), then eight running sums take the losses.
#[inline(always)]
fn loss_blocks<T: Real>(
    element: fn(T, T) -> (T, T),
    z: &[T],
    x: &[T],
    grad: &mut [T],
    inv_batch: T,
) -> T {
    const BLOCK: usize = 64;
    let mut lanes = [T::zero(); 8];
    let mut losses = [T::zero(); BLOCK];
    for ((g, z), x) in grad
        .chunks_mut(BLOCK)
        .zip(z.chunks(BLOCK))
        .zip(x.chunks(BLOCK))
    {
        let losses = &mut losses[..g.len()];
        for (((g, l), &z), &x) in g.iter_mut().zip(losses.iter_mut()).zip(z).zip(x) {
            let (loss, d) = element(z, x);
            *l = loss;
            *g = d * inv_batch;
        }
        let mut eights = losses.chunks_exact(8);
        for c in &mut eights {
            for (lane, &l) in lanes.iter_mut().zip(c) {
                *lane = *lane + l;
            }
        }
        lanes[0] = eights.remainder().iter().fold(lanes[0], |a, &l| a + l);
    }
    lanes.iter().fold(T::zero(), |a, &l| a + l)
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
    let c = AdamConstants {
        b1,
        b2,
        eps,
        wd,
        lr,
        sqrt_bc2: bc2.sqrt(),
        step: lr / bc1,
        scale,
        decoupled: h.decoupled,
    };
    // Element-wise and independent: split the arena into chunks across threads.
    const CHUNK: usize = 1 << 14;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| adam_chunk(c, p, g, m, v));
}

/// What [`adam_chunk`] needs of one step, in `T`.
#[derive(Clone, Copy)]
struct AdamConstants<T> {
    b1: T,
    b2: T,
    eps: T,
    wd: T,
    lr: T,
    sqrt_bc2: T,
    step: T,
    scale: T,
    decoupled: bool,
}

crate::widest! {
    /// [`adam`] on one chunk of the arena.
    fn adam_chunk<T: Real>(c: AdamConstants<T>, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) = adam_chunk_body;
}

/// [`adam_chunk`]; decoupled or not is decided once per chunk, so each loop is branch-free.
#[inline(always)]
fn adam_chunk_body<T: Real>(c: AdamConstants<T>, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) {
    let one = T::one();
    let update = |decoupled: bool, p: &mut T, g: T, m: &mut T, v: &mut T| {
        let (mut pv, mut g) = (*p, g * c.scale);
        if decoupled {
            pv = pv * (one - c.lr * c.wd);
        } else {
            g = g + c.wd * pv;
        }
        *m = c.b1 * *m + (one - c.b1) * g;
        *v = c.b2 * *v + (one - c.b2) * g * g;
        *p = pv - c.step * *m / (v.sqrt() / c.sqrt_bc2 + c.eps);
    };
    let each = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
    if c.decoupled {
        each.for_each(|(((p, &g), m), v)| update(true, p, g, m, v));
    } else {
        each.for_each(|(((p, &g), m), v)| update(false, p, g, m, v));
    }
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

/// Gradient accumulation over the micro-steps of one optimizer step, as
/// shaders/grad_accumulate.wgsl (see [`crate::graph::Op::GradAccumulate`]): with
/// [`ACCUMULATE_STEP`] in `flags`, `sum = w·g` on the first micro-step ([`ACCUMULATE_FIRST`]),
/// else `acc + w·g`; into `grads` on the last ([`ACCUMULATE_LAST`]), else into `acc`.
pub fn grad_accumulate<T: Real>(w: f32, flags: u32, grads: &mut [T], acc: &mut [T]) {
    if flags & ACCUMULATE_STEP == 0 {
        return;
    }
    let (w, first, last) = (
        T::of(f64::from(w)),
        flags & ACCUMULATE_FIRST != 0,
        flags & ACCUMULATE_LAST != 0,
    );
    grads
        .par_iter_mut()
        .zip(acc.par_iter_mut())
        .for_each(|(g, a)| {
            let x = w * *g;
            let sum = if first { x } else { *a + x };
            if last {
                *g = sum;
            } else {
                *a = sum;
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits and targets over the whole range the kernels meet, non-finite values included.
    fn inputs(len: usize) -> (Vec<f32>, Vec<f32>) {
        let special = [
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            88.0,
            -88.0,
            200.0,
            -200.0,
            f32::NAN,
            f32::INFINITY,
        ];
        let z = (0..len)
            .map(|i| match i % 13 {
                0..10 => special[i % 10],
                _ => ((i as u32).wrapping_mul(2654435761) % 4000) as f32 / 100.0 - 20.0,
            })
            .collect();
        let x = (0..len).map(|i| (i % 101) as f32 / 100.0).collect();
        (z, x)
    }

    /// The bits of each value, every NaN as one (vector and scalar code may set a NaN's sign
    /// differently; NaN is NaN).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter()
            .map(|x| if x.is_nan() { f32::NAN } else { *x }.to_bits())
            .collect()
    }

    /// The wide (AVX-512 / AVX2) versions `widest!` dispatches to round exactly like the
    /// baseline build: compared bit for bit with the bodies called directly.
    #[test]
    fn widest_versions_match_the_baseline_bit_for_bit() {
        let n = 1000; // not a multiple of any vector width or block
        let (z, x) = inputs(n);
        for (loss, output) in [
            (Loss::Bce, Activation::Identity),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
            let l1 = loss_row(loss, output, &z, &x, &mut g1, 0.25);
            let l2 = loss_row_body(loss, output, &z, &x, &mut g2, 0.25);
            assert_eq!(bits(&g1), bits(&g2), "{loss:?} gradients");
            assert_eq!(bits(&[l1]), bits(&[l2]), "{loss:?} loss");
        }
        for act in [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu,
            Activation::Sigmoid,
            Activation::Tanh,
        ] {
            let (mut v1, mut v2) = (z.clone(), z.clone());
            bias_act(act, &x, &mut v1);
            bias_act_body(act, &x, &mut v2);
            assert_eq!(bits(&v1), bits(&v2), "{act:?} bias_act");
            let (mut v1, mut v2) = (z.clone(), z.clone());
            act_grad(act, &x, &mut v1);
            act_grad_body(act, &x, &mut v2);
            assert_eq!(bits(&v1), bits(&v2), "{act:?} act_grad");
        }
        for decoupled in [false, true] {
            let c = AdamConstants {
                b1: 0.9,
                b2: 0.999,
                eps: 1e-8,
                wd: 0.01,
                lr: 1e-3,
                sqrt_bc2: 0.1,
                step: 0.01,
                scale: 0.5,
                decoupled,
            };
            let (mut p1, mut m1, mut v1) = (x.clone(), z.clone(), x.clone());
            let (mut p2, mut m2, mut v2) = (x.clone(), z.clone(), x.clone());
            adam_chunk(c, &mut p1, &z, &mut m1, &mut v1);
            adam_chunk_body(c, &mut p2, &z, &mut m2, &mut v2);
            assert_eq!(bits(&p1), bits(&p2), "adam params");
            assert_eq!(bits(&m1), bits(&m2), "adam m");
            assert_eq!(bits(&v1), bits(&v2), "adam v");
        }
    }

    #[test]
    fn loss_elements_agree_with_f64() {
        let (z, x) = inputs(1000);
        for (&z, &x) in z.iter().zip(&x).filter(|(z, _)| z.is_finite()) {
            let (l32, d32) = bce_element(z, x);
            let (l64, d64) = bce_element(f64::from(z), f64::from(x));
            assert!(
                (f64::from(l32) - l64).abs() <= 1e-5 * (1.0 + l64.abs()),
                "bce({z}, {x})"
            );
            assert!((f64::from(d32) - d64).abs() <= 1e-6, "bce'({z}, {x})");
        }
    }
}
