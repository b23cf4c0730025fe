//! The graphs of predictive sparse decomposition ([`crate::model::psd`]).
//!
//! A training step, all on the device in one submission:
//!
//! 1. the fast encoder's prediction f = g ⊙ tanh(xWᵀ + b), the warm start of the inference;
//! 2. G = DᵀD and p = xD once, then the Lipschitz constant L = 2(‖D‖₂² + γ) by power
//!    iteration on G ([`PsdOp::Lipschitz`]);
//! 3. K FISTA iterations on ‖x − Dh‖² + γ‖h − f‖² + λ‖h‖₁: momentum, q = y·G (a product),
//!    and the proximal step with soft-thresholding ([`PsdOp::Shrink`]);
//! 4. the three loss terms at h*, and the parameter gradients with h* held fixed: D from the
//!    reconstruction term, W, b and g from the prediction term.
//!
//! After the optimizer, the training graph renormalises D's columns ([`renormalize`]).

use crate::graph::build::LossTerm;
use crate::graph::build::arena_view;
use crate::graph::build::backward::GradWriter;
use crate::graph::build::layer::stack;
use crate::graph::build::step::SharedBuffers;
use crate::graph::build::training::StepOps;
use crate::graph::psd::{PsdOp, fista_betas};
use crate::graph::{Epilogue, Graph, Op, Operand, Tensor};
use crate::model::{Activation, Loss, ModelSpec, ParamLayout, Role, psd};

/// What the inference of one batch needs, built once per batch.
pub(crate) struct Setup {
    /// `[B, d]` the input.
    pub x: Tensor,
    /// `[B, c]` tanh(xWᵀ + b).
    pub u: Tensor,
    /// `[B, c]` f(x) = g ⊙ u.
    pub f: Tensor,
    /// `[c, c]` DᵀD.
    pub gram: Tensor,
    /// `[B, c]` xD.
    pub p: Tensor,
    /// `[1, 4]` [1/L, λ/L, ‖D‖₂² estimate, L].
    pub step: Tensor,
    /// `[d, c]` D in the arena.
    pub dict: Tensor,
    /// `[1, c]` g in the arena.
    pub gain: Tensor,
}

/// Appends the fast encoder and the inference's set-up for input `x`.
fn setup(
    g: &mut Graph,
    layout: &ParamLayout,
    params: Tensor,
    x: Tensor,
    lambda: f32,
    gamma: f32,
) -> Setup {
    let (gain_t, dict_t) = psd::tensors(layout).expect("a PSD layout");
    let (gain, dict) = (arena_view(params, gain_t), arena_view(params, dict_t));
    let enc = stack(layout, Role::Encoder);
    let u = enc[0].forward(g, params, x, Activation::Tanh);
    let (batch, c) = (x.rows, u.cols);
    let f = g.matrix("psd.prediction", batch, c);
    g.push(Op::Psd(PsdOp::Gain { u, g: gain, f }));
    let gram = g.matrix("psd.gram", c, c);
    g.push(product(dict, dict, gram, true, false));
    let p = g.matrix("psd.xd", batch, c);
    g.push(product(x, dict, p, false, false));
    let scratch = g.matrix("psd.power", 2, c);
    let step = g.matrix("psd.step", 1, 4);
    g.push(Op::Psd(PsdOp::Lipschitz {
        gram,
        scratch,
        step,
        lambda,
        gamma,
    }));
    Setup {
        x,
        u,
        f,
        gram,
        p,
        step,
        dict,
        gain,
    }
}

/// `c = op(a)·op(b)`, stored, not a gradient product.
fn product(a: Tensor, b: Tensor, c: Tensor, trans_a: bool, trans_b: bool) -> Op {
    Op::Matmul {
        a,
        b,
        c,
        trans_a,
        trans_b,
        epilogue: Epilogue::Store,
        gradient: None,
        loss_scale: None,
    }
}

/// FISTA's state while its iterations are appended: the buffers the codes alternate between
/// and how far it has come.
pub(crate) struct Fista {
    /// Iterations appended so far.
    pub k: usize,
    codes: [Tensor; 2],
    y: Tensor,
    q: Tensor,
    betas: Vec<f32>,
    gamma: f32,
}

impl Fista {
    /// Room for `max_iterations` iterations over the batch of `s`.
    pub fn new(g: &mut Graph, s: &Setup, max_iterations: usize, gamma: f32) -> Self {
        let (b, c) = (s.f.rows, s.f.cols);
        Fista {
            k: 0,
            codes: [g.matrix("psd.code.0", b, c), g.matrix("psd.code.1", b, c)],
            y: g.matrix("psd.extrapolated", b, c),
            q: g.matrix("psd.yg", b, c),
            betas: fista_betas(max_iterations.max(1)),
            gamma,
        }
    }

    /// The code after the iterations appended so far (f, the warm start, before any).
    pub fn code(&self, s: &Setup) -> Tensor {
        if self.k == 0 {
            s.f
        } else {
            self.codes[self.k % 2]
        }
    }

    /// Appends `n` more iterations.
    pub fn iterate(&mut self, g: &mut Graph, s: &Setup, n: usize) {
        for _ in 0..n {
            let k = self.k + 1;
            // y_1 = h_0 = f; then y_k = h_{k−1} + β_{k−1}(h_{k−1} − h_{k−2}).
            let y = if k == 1 {
                s.f
            } else {
                let h_prev = if k == 2 { s.f } else { self.codes[k % 2] };
                g.push(Op::Psd(PsdOp::Momentum {
                    h: self.codes[(k - 1) % 2],
                    h_prev,
                    y: self.y,
                    beta: self.betas.get(k - 2).copied().unwrap_or(0.0),
                }));
                self.y
            };
            g.push(product(y, s.gram, self.q, false, false));
            g.push(Op::Psd(PsdOp::Shrink {
                y,
                q: self.q,
                p: s.p,
                f: s.f,
                step: s.step,
                h: self.codes[k % 2],
                gamma: self.gamma,
            }));
            self.k = k;
        }
    }
}

/// The objective at code `h`: the reconstruction (with its gradient at the logits), the code
/// terms (with the prediction gradient), as loss terms and measures.
pub(crate) struct Objective {
    /// `[B, d]` dE/d(Dh), already over B.
    pub dlogits: Tensor,
    /// `[B, c]` dE/df.
    pub df: Tensor,
    /// reconstruction, sparsity, prediction.
    pub terms: Vec<LossTerm>,
    /// zero_fraction, prediction_sq, code_sq.
    pub measures: Vec<LossTerm>,
}

/// The buffers [`objective`] writes, declared once and reused by every objective of a graph.
#[derive(Clone, Copy)]
pub(crate) struct ObjectiveBuffers {
    logits: Tensor,
    row_loss: Tensor,
    dlogits: Tensor,
    rows: Tensor,
    df: Tensor,
}

impl ObjectiveBuffers {
    /// Declares them for the batch of `s`.
    pub fn new(g: &mut Graph, s: &Setup) -> Self {
        let (batch, d, c) = (s.x.rows, s.x.cols, s.f.cols);
        ObjectiveBuffers {
            logits: g.matrix("psd.reconstruction", batch, d),
            row_loss: g.matrix("reconstruction.rows", 1, batch),
            dlogits: g.matrix("logits.grad", batch, d),
            rows: g.matrix("psd.terms", 5, batch),
            df: g.matrix("psd.prediction.grad", batch, c),
        }
    }
}

/// Appends the objective of the code `h` for the batch of `s`.
pub(crate) fn objective(
    g: &mut Graph,
    s: &Setup,
    h: Tensor,
    bufs: &ObjectiveBuffers,
    lambda: f32,
    gamma: f32,
) -> Objective {
    let (batch, c) = (s.x.rows, h.cols);
    let ObjectiveBuffers {
        logits,
        row_loss,
        dlogits,
        rows,
        df,
    } = *bufs;
    g.push(product(h, s.dict, logits, false, true));
    g.push(Op::ReconstructionLoss {
        logits,
        target: s.x,
        grad: dlogits,
        row_loss,
        loss: Loss::Mse,
        output: Activation::Identity,
    });
    g.push(Op::Psd(PsdOp::Terms {
        h,
        f: s.f,
        rows,
        df,
        lambda,
        gamma,
    }));
    let row = |k: usize| Tensor {
        buf: rows.buf,
        offset: k * batch,
        rows: 1,
        cols: batch,
    };
    let per_example = 1.0 / batch as f64;
    let term = |name, k, scale| LossTerm {
        name,
        values: row(k),
        scale,
    };
    Objective {
        dlogits,
        df,
        terms: vec![
            term("reconstruction", 0, per_example).with_values(row_loss),
            term("sparsity", 0, per_example),
            term("prediction", 1, per_example),
        ],
        measures: vec![
            term("zero_fraction", 2, 1.0 / (batch * c) as f64),
            term("prediction_sq", 3, per_example),
            term("code_sq", 4, per_example),
        ],
    }
}

impl LossTerm {
    fn with_values(self, values: Tensor) -> Self {
        LossTerm { values, ..self }
    }
}

/// One PSD training step at batch size `batch` (see the module docs).
pub(super) fn append_step(
    g: &mut Graph,
    spec: &ModelSpec,
    layout: &ParamLayout,
    shared: SharedBuffers,
    batch: usize,
) -> StepOps {
    let (lambda, gamma, steps) = spec.psd_settings().expect("a PSD spec");
    let first_op = g.ops.len();
    let params = shared.params;
    let x = g.matrix("batch", batch, spec.input_dim());
    g.push(Op::Gather {
        data: shared.data,
        order: shared.order,
        out: x,
    });
    let s = setup(g, layout, params, x, lambda, gamma);
    let mut fista = Fista::new(g, &s, steps as usize, gamma);
    fista.iterate(g, &s, steps as usize);
    let h = fista.code(&s);
    let bufs = ObjectiveBuffers::new(g, &s);
    let obj = objective(g, &s, h, &bufs, lambda, gamma);
    if let Some(flag) = shared.forward_finite {
        g.push(Op::CheckFinite {
            x: obj.terms[0].values,
            flag,
        });
    }

    // Gradients with h* fixed: dD = dlogitsᵀ·h*; the prediction term through g and the tanh
    // layer.
    let mut w = GradWriter::new(shared.grads);
    let (gain_t, dict_t) = psd::tensors(layout).expect("a PSD layout");
    let (ddict, epilogue) = w.target(dict_t);
    g.push(Op::Matmul {
        a: obj.dlogits,
        b: h,
        c: ddict,
        trans_a: true,
        trans_b: false,
        epilogue,
        gradient: Some(Operand::A),
        loss_scale: None,
    });
    let da = g.matrix("psd.encoder.grad", batch, h.cols);
    let dg = w.claim(gain_t);
    g.push(Op::Psd(PsdOp::GainGrad {
        df: obj.df,
        u: s.u,
        g: s.gain,
        da,
        dg,
    }));
    let enc = stack(layout, Role::Encoder);
    enc[0].param_grads(g, &mut w, da, x);

    StepOps {
        rows: batch,
        ops: first_op..g.ops.len(),
        batch: x,
        input: x,
        activations: vec![s.u, s.f, h],
        code: h,
        terms: obj.terms,
        measures: obj.measures,
    }
}

/// The op that renormalises the dictionary's columns after an update, for a PSD layout.
pub(super) fn renormalize(layout: &ParamLayout, params: Tensor) -> Option<Op> {
    let (_, dict) = psd::tensors(layout)?;
    Some(Op::Psd(PsdOp::Renormalize {
        d: arena_view(params, dict),
    }))
}

/// The forward graph of a PSD model: the code is the fast encoder's f(x), the output D·f(x);
/// a decode-only graph maps codes through D.
pub(super) fn inference_graph(
    spec: &ModelSpec,
    batch: usize,
    decode_only: bool,
) -> super::InferenceGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let (gain_t, dict_t) = psd::tensors(&layout).expect("a PSD layout");
    let dict = arena_view(params, dict_t);
    let (input, code) = if decode_only {
        let z = g.matrix("input", batch, spec.code_dim());
        (z, z)
    } else {
        let input = g.matrix("input", batch, spec.input_dim());
        let enc = stack(&layout, Role::Encoder);
        let u = enc[0].forward(&mut g, params, input, Activation::Tanh);
        let f = g.matrix("psd.prediction", batch, spec.code_dim());
        g.push(Op::Psd(PsdOp::Gain {
            u,
            g: arena_view(params, gain_t),
            f,
        }));
        (input, f)
    };
    let output = g.matrix("decoder.0.out", batch, spec.input_dim());
    g.push(product(code, dict, output, false, true));
    g.update_start = g.ops.len();
    super::InferenceGraph {
        graph: g,
        layout,
        params,
        input,
        code,
        output,
    }
}

/// The graph of `encode --infer`: the set-up, then FISTA iterations in segments of `every`,
/// each followed by the objective at its code, up to `max_iterations`.
#[derive(Clone, Debug)]
pub struct PsdInferGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Parameter arena.
    pub params: Tensor,
    /// `[B, d]` input, written by the caller.
    pub input: Tensor,
    /// `[1, 4]` [1/L, λ/L, ‖D‖₂² estimate, L].
    pub step: Tensor,
    /// The ops of the set-up (fast encoder, Gram matrix, Lipschitz constant).
    pub setup: std::ops::Range<usize>,
    /// Per segment: its ops, the iterations done at its end, its code, and the per-example
    /// objective terms at that code (reconstruction, sparsity, prediction).
    pub segments: Vec<InferSegment>,
}

/// One segment of a [`PsdInferGraph`].
#[derive(Clone, Debug)]
pub struct InferSegment {
    /// Its ops (FISTA iterations, then the objective).
    pub ops: std::ops::Range<usize>,
    /// FISTA iterations done at its end.
    pub iterations: usize,
    /// `[B, c]` the code at its end.
    pub code: Tensor,
    /// The objective's terms at that code.
    pub terms: Vec<LossTerm>,
}

/// Builds the `encode --infer` graph of `spec` at batch size `batch` (see [`PsdInferGraph`]).
pub fn build_psd_infer_graph(
    spec: &ModelSpec,
    batch: usize,
    max_iterations: usize,
    every: usize,
) -> Option<PsdInferGraph> {
    let (lambda, gamma, _) = spec.psd_settings()?;
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let input = g.matrix("input", batch, spec.input_dim());
    let s = setup(&mut g, &layout, params, input, lambda, gamma);
    let setup_ops = 0..g.ops.len();
    let mut fista = Fista::new(&mut g, &s, max_iterations, gamma);
    let mut segments = Vec::new();
    let every = every.max(1);
    let bufs = ObjectiveBuffers::new(&mut g, &s);
    while fista.k < max_iterations.max(1) {
        let start = g.ops.len();
        let n = every.min(max_iterations.max(1) - fista.k);
        fista.iterate(&mut g, &s, n);
        let code = fista.code(&s);
        let obj = objective(&mut g, &s, code, &bufs, lambda, gamma);
        segments.push(InferSegment {
            ops: start..g.ops.len(),
            iterations: fista.k,
            code,
            terms: obj.terms,
        });
    }
    g.update_start = g.ops.len();
    Some(PsdInferGraph {
        graph: g,
        params,
        input,
        step: s.step,
        setup: setup_ops,
        segments,
    })
}
