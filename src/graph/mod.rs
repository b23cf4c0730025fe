//! The training graph: a flat list of ops over numbered buffers, built once from a model spec
//! and executed step after step by the CPU reference (`cpu/`) and the GPU executor (`gpu/`).
//! Nothing here computes; it only says what is computed, on which buffers, in which order.

pub mod build;
pub mod conv;
pub mod psd;

use bytemuck::{Pod, Zeroable};

use crate::model::{Activation, Loss, Noise};

pub use conv::ConvShape;

pub use build::{
    InferenceGraph, JacobianGraph, LossTerm, TrainingGraph, build_inference_graph,
    build_jacobian_graph, build_training_graph, build_training_graph_clipped,
};

/// Index of a buffer in [`Graph::buffers`].
pub type BufId = usize;

/// Element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit floats (f64 on the CPU reference when it runs in double precision).
    F32,
    /// 32-bit unsigned integers (row orders, counters).
    U32,
}

/// A buffer the executors allocate once.
#[derive(Clone, Debug)]
pub struct BufferDesc {
    /// Human-readable name, for errors and debugging.
    pub name: String,
    /// Length in elements.
    pub len: usize,
    /// Element type.
    pub dtype: DType,
}

/// A row-major matrix view into a buffer: `rows × cols` elements starting at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// The buffer.
    pub buf: BufId,
    /// First element.
    pub offset: usize,
    /// Rows.
    pub rows: usize,
    /// Columns (the contiguous dimension).
    pub cols: usize,
}

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last element.
    pub fn end(&self) -> usize {
        self.offset + self.len()
    }

    /// Rows and columns after an optional transpose.
    pub fn shape(&self, transposed: bool) -> (usize, usize) {
        if transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

/// The number format of a training graph's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 operands and accumulation everywhere.
    #[default]
    F32,
    /// Products round their operands to f16 and accumulate in f32 (tensor cores through
    /// cooperative matrices where the GPU has them); parameters, optimizer state, activations
    /// and every other op stay f32. Gradient operands are multiplied by a dynamic loss scale
    /// before rounding ([`Op::LossScale`]).
    Mixed,
}

impl Precision {
    /// Parses `f32` or `mixed`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "mixed" => Ok(Precision::Mixed),
            other => Err(format!(
                "unknown precision '{other}' (expected f32 or mixed)"
            )),
        }
    }

    /// `f32` or `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        }
    }
}

/// One operand of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The left operand.
    A,
    /// The right operand.
    B,
}

/// The loss scale of mixed precision starts here (PyTorch's `GradScaler` default)…
pub const LOSS_SCALE_INIT: f32 = 65_536.0;
/// …doubles after this many finite steps in a row, and halves at each overflow.
pub const LOSS_SCALE_GROWTH_INTERVAL: u32 = 2000;
/// The loss scale stays within [2⁻²⁴, 2²⁴].
pub const LOSS_SCALE_BOUNDS: (f32, f32) = (1.0 / 16_777_216.0, 16_777_216.0);

/// What a matmul does with each output element before storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    /// `c = acc`.
    Store,
    /// `c = act(acc + bias[col])`: a dense layer's forward pass.
    BiasAct {
        /// `[1, N]` bias.
        bias: Tensor,
        /// Activation applied after the bias.
        act: Activation,
    },
    /// `c = acc · act'(y)`, with the derivative taken from the activation's output `y`: the
    /// backward pass through a layer's input and the previous layer's activation at once.
    ActGrad {
        /// `[M, N]` activation output.
        y: Tensor,
        /// The activation `y` came from.
        act: Activation,
    },
    /// `c = c + acc`: for parameters used twice (tied weights).
    Accumulate,
    /// `c = (c + acc) · act'(y)`: the second of two products feeding one layer's input
    /// gradient (the μ and log σ² heads of a VAE).
    AccumulateActGrad {
        /// `[M, N]` activation output.
        y: Tensor,
        /// The activation `y` came from.
        act: Activation,
    },
}

impl Epilogue {
    /// The extra operand the epilogue reads (a bias or an activation output), if any.
    pub fn operand(&self) -> Option<Tensor> {
        match *self {
            Epilogue::BiasAct { bias, .. } => Some(bias),
            Epilogue::ActGrad { y, .. } | Epilogue::AccumulateActGrad { y, .. } => Some(y),
            Epilogue::Store | Epilogue::Accumulate => None,
        }
    }
}

/// One operation of the graph. Each has a WGSL kernel and a CPU twin with the same name.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `out[i, :] = data[order[batch_start + i], :]`: pick a mini-batch from the resident set.
    Gather {
        /// The whole data set `[N, D]`.
        data: Tensor,
        /// `[1, N]` row order (u32).
        order: Tensor,
        /// `[B, D]` batch.
        out: Tensor,
    },
    /// `c = op(a) · op(b)` followed by an epilogue; `op` transposes when asked.
    Matmul {
        /// Left operand as stored.
        a: Tensor,
        /// Right operand as stored.
        b: Tensor,
        /// `[M, N]` result.
        c: Tensor,
        /// Use `aᵀ`.
        trans_a: bool,
        /// Use `bᵀ`.
        trans_b: bool,
        /// What happens to each result element.
        epilogue: Epilogue,
        /// The operand that carries a loss gradient, if any: mixed precision scales it.
        gradient: Option<Operand>,
        /// `[1, 4]` loss-scale state when the product runs in mixed precision (see
        /// [`Precision::Mixed`]): operands rounded to f16, the gradient operand multiplied by
        /// the scale first and the result divided by it; an operand beyond f16's range makes
        /// the result NaN. `None`: f32.
        loss_scale: Option<Tensor>,
    },
    /// `y = act(x)` element-wise.
    Activation {
        /// Input.
        x: Tensor,
        /// Output, same shape.
        y: Tensor,
        /// Function.
        act: Activation,
    },
    /// `dx = dy · act'(y)` element-wise, the derivative taken from the output `y`.
    ActivationGrad {
        /// Upstream gradient.
        dy: Tensor,
        /// Activation output.
        y: Tensor,
        /// Result.
        dx: Tensor,
        /// Function.
        act: Activation,
    },
    /// `out[0, j] (+)= Σ_i x[i, j]`: bias gradients.
    ColumnSum {
        /// `[M, N]` input.
        x: Tensor,
        /// `[1, N]` sums.
        out: Tensor,
        /// Add to `out` instead of overwriting it.
        accumulate: bool,
    },
    /// `y = epilogue(conv2d(x, w))`, PyTorch's `F.conv2d` without bias: `x [B, in_len]`,
    /// `w [out_c, in_c·k²]`, `y [B, out_len]` (see [`ConvShape`] for the layout). The
    /// epilogue's bias is per output channel (`[1, out_c]`). Always f32, in mixed precision too.
    Conv2d {
        /// Input images, one per row.
        x: Tensor,
        /// Weights, PyTorch's `[out_c, in_c, k, k]` flattened.
        w: Tensor,
        /// Output images.
        y: Tensor,
        /// The geometry.
        shape: ConvShape,
        /// What happens to each output element (bias per channel).
        epilogue: Epilogue,
    },
    /// `dx = epilogue(conv2d_input_grad(dy, w))`: the adjoint of [`Op::Conv2d`]'s linear part,
    /// i.e. `F.conv_transpose2d(dy, w, stride, padding, output_padding)`: `dy [B, out_len]`,
    /// `w [out_c, in_c·k²]`, `dx [B, in_len]`. The epilogue's bias is per input channel.
    Conv2dInputGrad {
        /// Gradient at the convolution's output (or a transposed convolution's input).
        dy: Tensor,
        /// Weights, as in [`Op::Conv2d`].
        w: Tensor,
        /// Result, shaped like the convolution's input.
        dx: Tensor,
        /// The geometry of the forward convolution.
        shape: ConvShape,
        /// What happens to each result element (bias per channel).
        epilogue: Epilogue,
    },
    /// `dw (+)= Σ_batch dy ⋆ x`, the weight gradient of [`Op::Conv2d`]: `x [B, in_len]`,
    /// `dy [B, out_len]`, `dw [out_c, in_c·k²]`.
    Conv2dWeightGrad {
        /// The convolution's input.
        x: Tensor,
        /// Gradient at its output.
        dy: Tensor,
        /// Weight gradient.
        dw: Tensor,
        /// The geometry.
        shape: ConvShape,
        /// Add to `dw` instead of overwriting it (tied weights).
        accumulate: bool,
    },
    /// `out[0, c] (+)= Σ_rows Σ_positions x[row, c·P + p]` with `P = x.cols / channels`: a
    /// conv bias gradient.
    ChannelSum {
        /// `[B, channels·P]` input.
        x: Tensor,
        /// `[1, channels]` sums.
        out: Tensor,
        /// Channels of a row.
        channels: usize,
        /// Add to `out` instead of overwriting it.
        accumulate: bool,
    },
    /// Reconstruction loss from logits with the output activation fused in: per-row loss sums
    /// and the gradient with respect to the logits, already divided by the number of rows.
    ReconstructionLoss {
        /// `[R, D]` pre-activation outputs.
        logits: Tensor,
        /// `[B, D]` clean inputs; logits row r is compared with target row `r % B` (a VAE
        /// decodes several samples of each input).
        target: Tensor,
        /// `[R, D]` dL/dlogits.
        grad: Tensor,
        /// `[1, R]` Σ over features of each row's loss.
        row_loss: Tensor,
        /// Loss function.
        loss: Loss,
        /// Output activation (sigmoid or identity).
        output: Activation,
    },
    /// Input corruption for denoising: `out = corrupt(x)`, the noise drawn from Philox keyed by
    /// (seed, step, element index).
    Corrupt {
        /// Clean input.
        x: Tensor,
        /// Corrupted copy.
        out: Tensor,
        /// The corruption.
        noise: Noise,
    },
    /// Direction vectors for the Jacobian penalty, `[K·B, c]`, row `k·B + b`: the code-space
    /// basis vector e_k (exact, K = c) or N(0, 1) draws (stochastic estimate).
    Directions {
        /// The directions.
        out: Tensor,
        /// Batch size B.
        batch: usize,
        /// Basis vectors rather than random ones.
        exact: bool,
    },
    /// `out = r · act'(y[row % B])` for a `[K·B, n]` tangent and a `[B, n]` activation output.
    TangentScale {
        /// Tangent rows.
        r: Tensor,
        /// Activation output.
        y: Tensor,
        /// Activation.
        act: Activation,
        /// Result, shaped like `r`.
        out: Tensor,
    },
    /// `out[b, j] = Σ_k qa[k·B+b, j] · r[k·B+b, j] · act''(y[b, j])`: how the Jacobian penalty
    /// depends on a layer's pre-activations through its activation derivative.
    Curvature {
        /// Adjoint of the scaled tangent, `[K·B, n]`.
        qa: Tensor,
        /// Tangent before scaling, `[K·B, n]`.
        r: Tensor,
        /// Activation output, `[B, n]`.
        y: Tensor,
        /// Activation.
        act: Activation,
        /// `[B, n]` result.
        out: Tensor,
    },
    /// Squared norms of input-space Jacobian rows grouped per example:
    /// `rows[b] = scale · Σ_k Σ_i r[k·B+b, i]²` and `grad = (2 · scale / B) · r`.
    JacobianNorm {
        /// `[K·B, d]` rows uᵀJ.
        r: Tensor,
        /// `[1, B]` penalty per example.
        rows: Tensor,
        /// `[K·B, d]` gradient of the batch-mean penalty with respect to `r`.
        grad: Tensor,
        /// λ / K for the stochastic estimate, λ for the exact form.
        scale: f32,
    },
    /// The contractive penalty of a one-layer sigmoid encoder in closed form (Rifai et al.
    /// 2011): P_b = λ Σ_j s_bj² ‖W_j‖² with s = h(1 − h). Writes the per-example penalty, adds
    /// its gradient to the code's pre-activation gradient, and *writes* (not adds) its part of
    /// the weight gradient: it runs before the layer's own weight gradient, which then adds.
    ContractiveClosedForm {
        /// `[B, c]` sigmoid code.
        h: Tensor,
        /// `[c, d]` encoder weight.
        w: Tensor,
        /// `[1, B]` penalty per example.
        rows: Tensor,
        /// `[B, c]` code pre-activation gradient, accumulated into.
        dz: Tensor,
        /// `[c, d]` weight gradient, overwritten.
        dw: Tensor,
        /// `[1, 2c]` scratch: ‖W_j‖² and Σ_b s_bj².
        scratch: Tensor,
        /// λ.
        lambda: f32,
    },
    /// L1 sparsity: `rows[b] = λ Σ_j |h_bj|` and `dz += (λ / B) · sign(h) · act'(h)`.
    SparseL1 {
        /// `[B, c]` code.
        h: Tensor,
        /// Code activation.
        act: Activation,
        /// `[1, B]` penalty per example.
        rows: Tensor,
        /// `[B, c]` code pre-activation gradient, accumulated into.
        dz: Tensor,
        /// λ.
        lambda: f32,
    },
    /// KL sparsity toward ρ: with ρ̂_j = sums_j / B, `terms[j] = λ KL(ρ ‖ ρ̂_j)` and
    /// `dz += (λ / B) (−ρ/ρ̂_j + (1−ρ)/(1−ρ̂_j)) · act'(h)`.
    SparseKl {
        /// `[B, c]` sigmoid code.
        h: Tensor,
        /// `[1, c]` column sums of `h`.
        sums: Tensor,
        /// Code activation.
        act: Activation,
        /// `[1, c]` penalty per unit.
        terms: Tensor,
        /// `[B, c]` code pre-activation gradient, accumulated into.
        dz: Tensor,
        /// λ.
        lambda: f32,
        /// ρ.
        target: f32,
    },
    /// The reparameterized sampler of a VAE: `z[s·B + b] = μ_b + exp(½ log σ²_b) · ε` with ε
    /// drawn by Box–Muller from Philox (seed, step, element of z) and kept for the backward pass;
    /// `kl_rows[b] = β · (−½ Σ_j (1 + log σ² − μ² − σ²))`.
    Sample {
        /// `[B, c]` means.
        mu: Tensor,
        /// `[B, c]` log variances.
        logvar: Tensor,
        /// `[L·B, c]` the noise drawn.
        eps: Tensor,
        /// `[L·B, c]` samples.
        z: Tensor,
        /// `[1, B]` β-weighted KL per example.
        kl_rows: Tensor,
        /// β.
        beta: f32,
    },
    /// Backward of [`Op::Sample`] with the KL term's gradient:
    /// `dμ = Σ_s dz + β μ / B` and `dlogvar = Σ_s dz · ε · ½σ + β ½ (σ² − 1) / B`.
    SampleGrad {
        /// `[L·B, c]` gradient at z.
        dz: Tensor,
        /// `[L·B, c]` the noise drawn in the forward pass.
        eps: Tensor,
        /// `[B, c]` means.
        mu: Tensor,
        /// `[B, c]` log variances.
        logvar: Tensor,
        /// `[B, c]` gradient at μ.
        dmu: Tensor,
        /// `[B, c]` gradient at log σ².
        dlogvar: Tensor,
        /// β.
        beta: f32,
    },
    /// `out += x` element-wise.
    AddInto {
        /// Addend.
        x: Tensor,
        /// Accumulator.
        out: Tensor,
    },
    /// Adam / AdamW over a whole parameter arena.
    Adam {
        /// Parameters, updated in place.
        params: Tensor,
        /// Gradients.
        grads: Tensor,
        /// First moments.
        m: Tensor,
        /// Second moments.
        v: Tensor,
        /// β₁.
        beta1: f32,
        /// β₂.
        beta2: f32,
        /// ε.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled (AdamW) rather than L2 weight decay.
        decoupled: bool,
        /// Skip steps whose gradient is not finite, and clip its norm.
        guard: Option<Guard>,
    },
    /// SGD with momentum over a whole parameter arena.
    Sgd {
        /// Parameters, updated in place.
        params: Tensor,
        /// Gradients.
        grads: Tensor,
        /// Momentum buffer.
        velocity: Tensor,
        /// Momentum.
        momentum: f32,
        /// L2 weight decay.
        weight_decay: f32,
        /// Skip steps whose gradient is not finite, and clip its norm.
        guard: Option<Guard>,
    },
    /// Σ g² over a gradient arena into `norm_sq`, through per-workgroup `partials`. A step
    /// whose sum is not finite is counted in `health` (u32: count, first such 1-based step);
    /// the optimizer then skips it, so the parameters stay the last finite ones.
    GradNorm {
        /// The gradient arena.
        grads: Tensor,
        /// `[1, P]` partial sums, P = ⌈len / 2048⌉.
        partials: Tensor,
        /// `[1, 1]` the sum of squares.
        norm_sq: Tensor,
        /// `[1, 2]` u32: steps with a non-finite gradient so far, and the first of them.
        health: Tensor,
    },
    /// `flag = 1` when every element of `x` is finite, else 0: whether a step's forward pass
    /// (its per-example losses) was finite, for [`Op::LossScale`].
    CheckFinite {
        /// The values checked.
        x: Tensor,
        /// `[1, 1]` the flag (f32).
        flag: Tensor,
    },
    /// Dynamic loss scaling of mixed precision, after the optimizer. `state` is
    /// `[scale, finite steps in a row, overflow steps so far, 0]`. A finite gradient counts
    /// towards doubling the scale (every [`LOSS_SCALE_GROWTH_INTERVAL`] steps). A non-finite
    /// gradient after a finite forward pass is an f16 overflow of the scaled gradients: the
    /// scale halves and the step, already skipped by the optimizer, is taken back out of
    /// `health`, so it is not reported as a fault. A non-finite forward pass stays counted, and
    /// so does an overflow at the smallest scale (a gradient beyond what any scale can hold).
    LossScale {
        /// `[1, 4]` the loss-scale state.
        state: Tensor,
        /// `[1, 1]` this step's Σ g² (from [`Op::GradNorm`]).
        norm_sq: Tensor,
        /// `[1, 1]` this step's forward flag (from [`Op::CheckFinite`]).
        forward_finite: Tensor,
        /// `[1, 2]` u32 health counters (see [`Op::GradNorm`]).
        health: Tensor,
    },
    /// Gradient accumulation on the device, over the micro-steps of one optimizer step (the
    /// micro-batches of [`crate::train::TrainConfig::accumulate`], or a rank's share of a
    /// data-parallel batch), driven by the step's [`StepParams::accumulate_flags`] and
    /// [`StepParams::accumulate_weight`] `w`. With [`ACCUMULATE_STEP`] set, the sum is `w·grads`
    /// on the first micro-step ([`ACCUMULATE_FIRST`]) and `acc + w·grads` after it; it goes into
    /// `grads` on the last micro-step ([`ACCUMULATE_LAST`]: where the optimizer ops read the
    /// gradient), into `acc` on the others. Without [`ACCUMULATE_STEP`] (every step of a run
    /// that does not accumulate) it changes nothing. Only the graphs of accumulating and
    /// data-parallel trainers have it.
    GradAccumulate {
        /// The gradient arena the micro-step's backward pass wrote.
        grads: Tensor,
        /// The running sum of the earlier micro-steps' weighted gradients, same layout.
        acc: Tensor,
    },
    /// An op of predictive sparse decomposition (see [`psd::PsdOp`]).
    Psd(psd::PsdOp),
}

impl Op {
    /// The buffers the op writes; executors use this to check that no op reads what it writes.
    pub fn outputs(&self) -> Vec<Tensor> {
        match self {
            Op::Gather { out, .. } => vec![*out],
            Op::Matmul { c, .. } => vec![*c],
            Op::Activation { y, .. } => vec![*y],
            Op::ActivationGrad { dx, .. } => vec![*dx],
            Op::ColumnSum { out, .. } => vec![*out],
            Op::Conv2d { y, .. } => vec![*y],
            Op::Conv2dInputGrad { dx, .. } => vec![*dx],
            Op::Conv2dWeightGrad { dw, .. } => vec![*dw],
            Op::ChannelSum { out, .. } => vec![*out],
            Op::ReconstructionLoss { grad, row_loss, .. } => vec![*grad, *row_loss],
            Op::Adam { params, m, v, .. } => vec![*params, *m, *v],
            Op::GradNorm {
                partials,
                norm_sq,
                health,
                ..
            } => vec![*partials, *norm_sq, *health],
            Op::Sgd {
                params, velocity, ..
            } => vec![*params, *velocity],
            Op::Corrupt { out, .. }
            | Op::Directions { out, .. }
            | Op::TangentScale { out, .. }
            | Op::Curvature { out, .. }
            | Op::AddInto { out, .. } => vec![*out],
            Op::JacobianNorm { rows, grad, .. } => vec![*rows, *grad],
            Op::ContractiveClosedForm {
                rows,
                dz,
                dw,
                scratch,
                ..
            } => vec![*rows, *dz, *dw, *scratch],
            Op::SparseL1 { rows, dz, .. } => vec![*rows, *dz],
            Op::SparseKl { terms, dz, .. } => vec![*terms, *dz],
            Op::Sample {
                eps, z, kl_rows, ..
            } => vec![*eps, *z, *kl_rows],
            Op::SampleGrad { dmu, dlogvar, .. } => vec![*dmu, *dlogvar],
            Op::CheckFinite { flag, .. } => vec![*flag],
            Op::LossScale { state, health, .. } => vec![*state, *health],
            // Both read and written, so neither is an input (an op's inputs and outputs are
            // different buffers).
            Op::GradAccumulate { grads, acc } => vec![*grads, *acc],
            Op::Psd(p) => p.outputs(),
        }
    }

    /// The views that hold u32 indices or counters (every other view holds f32).
    pub fn index_views(&self) -> Vec<Tensor> {
        match self {
            Op::Gather { order, .. } => vec![*order],
            Op::GradNorm { health, .. } | Op::LossScale { health, .. } => vec![*health],
            _ => Vec::new(),
        }
    }

    /// The buffers the op reads.
    pub fn inputs(&self) -> Vec<Tensor> {
        match self {
            Op::Gather { data, order, .. } => vec![*data, *order],
            Op::Matmul {
                a,
                b,
                epilogue,
                loss_scale,
                ..
            } => {
                let mut v = vec![*a, *b];
                v.extend(*loss_scale);
                v.extend(epilogue.operand());
                v
            }
            Op::Conv2d { x, w, epilogue, .. } => {
                let mut v = vec![*x, *w];
                v.extend(epilogue.operand());
                v
            }
            Op::Conv2dInputGrad {
                dy, w, epilogue, ..
            } => {
                let mut v = vec![*dy, *w];
                v.extend(epilogue.operand());
                v
            }
            Op::Conv2dWeightGrad { x, dy, .. } => vec![*x, *dy],
            Op::ChannelSum { x, .. } => vec![*x],
            Op::Activation { x, .. } => vec![*x],
            Op::ActivationGrad { dy, y, .. } => vec![*dy, *y],
            Op::ColumnSum { x, .. } => vec![*x],
            Op::ReconstructionLoss { logits, target, .. } => vec![*logits, *target],
            Op::Adam { grads, guard, .. } | Op::Sgd { grads, guard, .. } => {
                let mut v = vec![*grads];
                v.extend(guard.map(|g| g.norm_sq));
                v
            }
            Op::GradNorm { grads, .. } => vec![*grads],
            Op::Corrupt { x, .. } => vec![*x],
            Op::Directions { .. } => vec![],
            Op::TangentScale { r, y, .. } => vec![*r, *y],
            Op::Curvature { qa, r, y, .. } => vec![*qa, *r, *y],
            Op::JacobianNorm { r, .. } => vec![*r],
            Op::ContractiveClosedForm { h, w, .. } => vec![*h, *w],
            Op::SparseL1 { h, .. } => vec![*h],
            Op::SparseKl { h, sums, .. } => vec![*h, *sums],
            Op::Sample { mu, logvar, .. } => vec![*mu, *logvar],
            Op::SampleGrad {
                dz,
                eps,
                mu,
                logvar,
                ..
            } => vec![*dz, *eps, *mu, *logvar],
            Op::AddInto { x, .. } => vec![*x],
            Op::CheckFinite { x, .. } => vec![*x],
            Op::LossScale {
                norm_sq,
                forward_finite,
                ..
            } => vec![*norm_sq, *forward_finite],
            Op::GradAccumulate { .. } => vec![],
            Op::Psd(p) => p.inputs(),
        }
    }
}

impl Op {
    /// The variant's name, as `Debug` prints it.
    pub fn name(&self) -> String {
        format!("{self:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Checks the views of ops whose operands have a geometry beyond their lengths (the conv
    /// ops: their views must match their [`ConvShape`]).
    fn check_shapes(&self) -> Result<(), String> {
        match self {
            Op::Conv2d {
                x,
                w,
                y,
                shape,
                epilogue,
            } => conv::check_conv2d(shape, *x, *w, *y, epilogue),
            Op::Conv2dInputGrad {
                dy,
                w,
                dx,
                shape,
                epilogue,
            } => conv::check_input_grad(shape, *dy, *w, *dx, epilogue),
            Op::Conv2dWeightGrad {
                x, dy, dw, shape, ..
            } => conv::check_weight_grad(shape, *x, *dy, *dw),
            Op::ChannelSum {
                x, out, channels, ..
            } => conv::check_channel_sum(*x, *out, *channels),
            Op::GradAccumulate { grads, acc }
                if grads.buf == acc.buf || grads.len() != acc.len() =>
            {
                Err(
                    "the gradient and its accumulator must be views of the same length in \
                     different buffers"
                        .into(),
                )
            }
            _ => Ok(()),
        }
    }
}

/// What the optimizer does with the step's gradient norm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// `[1, 1]` Σ g² of the step, written by [`Op::GradNorm`].
    pub norm_sq: Tensor,
    /// Rescale the gradient to at most this L2 norm (0: no clipping).
    pub max_norm: f32,
}

/// [`StepParams::accumulate_flags`]: this step is a micro-step of gradient accumulation
/// ([`Op::GradAccumulate`] adds its weighted gradient; without it the op does nothing).
pub const ACCUMULATE_STEP: u32 = 1;
/// [`StepParams::accumulate_flags`]: the first micro-step of an optimizer step (the sum
/// starts from its gradient, not from the accumulator).
pub const ACCUMULATE_FIRST: u32 = 2;
/// [`StepParams::accumulate_flags`]: the last micro-step of an optimizer step (the sum goes
/// into the gradient arena, for the optimizer or the reduction over ranks).
pub const ACCUMULATE_LAST: u32 = 4;

/// The per-step values both executors read: which step, which rows, which learning rate.
/// Mirrored by `struct Step` in shaders/step.wgsl: eleven words, 44 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepParams {
    /// 1-based optimizer step.
    pub step: u32,
    /// First position in the row order of this step's batch.
    pub batch_start: u32,
    /// Learning rate of this step (after any schedule).
    pub lr: f32,
    /// Adam's 1 − β₁ᵗ.
    pub bias_correction1: f32,
    /// Adam's 1 − β₂ᵗ.
    pub bias_correction2: f32,
    /// Low word of the run's seed, for kernels that draw random numbers.
    pub seed_lo: u32,
    /// High word of the seed.
    pub seed_hi: u32,
    /// Data-parallel training: the first row of this process's share within the step's
    /// global batch (0 in one process). Random draws are keyed by the global row
    /// ([`crate::rng::global_element`]).
    pub row_base: u32,
    /// Data-parallel training: rows of the step's global batch; 0 (one process) when this
    /// process's batch is the whole batch.
    pub rows_global: u32,
    /// Gradient accumulation: the weight of this micro-step's gradient in the optimizer
    /// step's (its rows' share of the step's global batch; see [`Op::GradAccumulate`]).
    pub accumulate_weight: f32,
    /// Gradient accumulation: [`ACCUMULATE_STEP`], [`ACCUMULATE_FIRST`] and
    /// [`ACCUMULATE_LAST`] or'ed together; 0 on every step of a run that does not accumulate.
    pub accumulate_flags: u32,
}

// Eleven 4-byte words, member for member those of `struct Step` (shaders/step.wgsl), which
// are 44 bytes in WGSL's uniform layout too (u32/f32 members align to 4).
const _: () = assert!(std::mem::size_of::<StepParams>() == 44);

/// A range of a graph's ops run once for each of `steps`, in order: one piece of a submission
/// of several (`run_segments` of both executors), e.g. an optimizer step's micro-steps
/// followed by its update.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    /// The ops.
    pub ops: std::ops::Range<usize>,
    /// The steps, each running all of `ops` before the next.
    pub steps: &'a [StepParams],
}

/// A list of ops over buffers. `ops[..update_start]` computes the loss and the gradients,
/// `ops[update_start..]` applies the optimizer.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Every buffer, allocated once by the executor.
    pub buffers: Vec<BufferDesc>,
    /// The ops, in execution order.
    pub ops: Vec<Op>,
    /// Index of the first optimizer op (`ops.len()` for graphs without one).
    pub update_start: usize,
}

impl Graph {
    /// An error naming the first of `segments` whose ops are not a range of this graph's ops
    /// (both executors check before they run or record anything).
    pub fn check_segments(&self, segments: &[Segment<'_>]) -> crate::error::Result<()> {
        match segments
            .iter()
            .find(|s| s.ops.start > s.ops.end || s.ops.end > self.ops.len())
        {
            Some(Segment { ops, .. }) => Err(crate::error::Error::Config(format!(
                "ops {}..{} are not a range of the graph's {} ops",
                ops.start,
                ops.end,
                self.ops.len()
            ))),
            None => Ok(()),
        }
    }

    /// Declares a buffer and returns its id.
    pub fn buffer(&mut self, name: impl Into<String>, len: usize, dtype: DType) -> BufId {
        self.buffers.push(BufferDesc {
            name: name.into(),
            len,
            dtype,
        });
        self.buffers.len() - 1
    }

    /// Declares a buffer holding one `rows × cols` f32 matrix and returns its view.
    pub fn matrix(&mut self, name: impl Into<String>, rows: usize, cols: usize) -> Tensor {
        // Saturating: a size past usize::MAX stays huge, and limits::check_graph refuses it.
        let buf = self.buffer(name, rows.saturating_mul(cols), DType::F32);
        Tensor {
            buf,
            offset: 0,
            rows,
            cols,
        }
    }

    /// Declares a buffer holding one `rows × cols` matrix of u32 (row orders, counters) and
    /// returns its view.
    pub fn u32_matrix(&mut self, name: impl Into<String>, rows: usize, cols: usize) -> Tensor {
        let buf = self.buffer(name, rows.saturating_mul(cols), DType::U32);
        Tensor {
            buf,
            offset: 0,
            rows,
            cols,
        }
    }

    /// Appends an op.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Checks every op's views against its buffers (in bounds, of the dtype the op needs) and
    /// that no op reads a buffer it writes: a graph that passes cannot index out of bounds on
    /// either executor.
    pub fn validate(&self) -> Result<(), String> {
        for (i, op) in self.ops.iter().enumerate() {
            let outs = op.outputs();
            let index_views = op.index_views();
            for t in outs.iter().chain(op.inputs().iter()) {
                let desc = self
                    .buffers
                    .get(t.buf)
                    .ok_or(format!("op {i} ({op:?}) uses missing buffer {}", t.buf))?;
                let want = if index_views.contains(t) {
                    DType::U32
                } else {
                    DType::F32
                };
                if desc.dtype != want {
                    return Err(format!(
                        "op {i} needs {want:?} in buffer '{}', which holds {:?}",
                        desc.name, desc.dtype
                    ));
                }
                if t.end() > desc.len {
                    return Err(format!(
                        "op {i} views {}..{} of buffer '{}' of length {}",
                        t.offset,
                        t.end(),
                        desc.name,
                        desc.len
                    ));
                }
            }
            op.check_shapes()
                .map_err(|e| format!("op {i} ({}): {e}", op.name()))?;
            if let Op::Matmul {
                a,
                b,
                c,
                trans_a,
                trans_b,
                epilogue,
                ..
            } = op
            {
                let ((m, k), (kb, n)) = (a.shape(*trans_a), b.shape(*trans_b));
                let aux_ok = match epilogue {
                    Epilogue::BiasAct { bias, .. } => bias.len() >= n,
                    Epilogue::ActGrad { y, .. } | Epilogue::AccumulateActGrad { y, .. } => {
                        y.len() >= c.len()
                    }
                    Epilogue::Store | Epilogue::Accumulate => true,
                };
                if k != kb || (c.rows, c.cols) != (m, n) || !aux_ok {
                    return Err(format!(
                        "op {i}: a product of {m}×{k} by {kb}×{n} into {}×{} (or its epilogue's \
                         operand) does not fit",
                        c.rows, c.cols
                    ));
                }
            }
            for o in &outs {
                if op.inputs().iter().any(|x| x.buf == o.buf) {
                    return Err(format!(
                        "op {i} reads and writes buffer '{}'",
                        self.buffers[o.buf].name
                    ));
                }
            }
        }
        Ok(())
    }
}
