//! The training graph: a flat list of ops over numbered buffers, built once from a model spec
//! and executed step after step by the CPU reference (`cpu/`) and the GPU executor (`gpu/`).
//! Nothing here computes; it only says what is computed, on which buffers, in which order.

pub mod build;

use bytemuck::{Pod, Zeroable};

use crate::model::{Activation, Loss};

pub use build::{TrainingGraph, build_training_graph};

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
    /// Reconstruction loss from logits with the output activation fused in: per-row loss sums
    /// and the gradient with respect to the logits, already divided by the batch size.
    ReconstructionLoss {
        /// `[B, D]` pre-activation outputs.
        logits: Tensor,
        /// `[B, D]` clean inputs.
        target: Tensor,
        /// `[B, D]` dL/dlogits.
        grad: Tensor,
        /// `[1, B]` Σ over features of each row's loss.
        row_loss: Tensor,
        /// Loss function.
        loss: Loss,
        /// Output activation (sigmoid or identity).
        output: Activation,
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
    },
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
            Op::ReconstructionLoss { grad, row_loss, .. } => vec![*grad, *row_loss],
            Op::Adam { params, m, v, .. } => vec![*params, *m, *v],
            Op::Sgd {
                params, velocity, ..
            } => vec![*params, *velocity],
        }
    }

    /// The buffers the op reads.
    pub fn inputs(&self) -> Vec<Tensor> {
        match self {
            Op::Gather { data, order, .. } => vec![*data, *order],
            Op::Matmul { a, b, epilogue, .. } => {
                let mut v = vec![*a, *b];
                match epilogue {
                    Epilogue::BiasAct { bias, .. } => v.push(*bias),
                    Epilogue::ActGrad { y, .. } => v.push(*y),
                    Epilogue::Store | Epilogue::Accumulate => {}
                }
                v
            }
            Op::Activation { x, .. } => vec![*x],
            Op::ActivationGrad { dy, y, .. } => vec![*dy, *y],
            Op::ColumnSum { x, .. } => vec![*x],
            Op::ReconstructionLoss { logits, target, .. } => vec![*logits, *target],
            Op::Adam { grads, .. } | Op::Sgd { grads, .. } => vec![*grads],
        }
    }
}

/// The per-step values both executors read: which step, which rows, which learning rate.
/// Mirrored by `struct Step` in the WGSL kernels; padded to 32 bytes.
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
    /// Padding to 32 bytes.
    pub _pad: u32,
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
        let buf = self.buffer(name, rows * cols, DType::F32);
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

    /// Checks every op's views against its buffers and that no op reads a buffer it writes:
    /// a graph that passes cannot index out of bounds on either executor.
    pub fn validate(&self) -> Result<(), String> {
        for (i, op) in self.ops.iter().enumerate() {
            let outs = op.outputs();
            for t in outs.iter().chain(op.inputs().iter()) {
                let desc = self
                    .buffers
                    .get(t.buf)
                    .ok_or(format!("op {i} ({op:?}) uses missing buffer {}", t.buf))?;
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
