//! Compiles a model spec into graphs: the training step (gather, corruption, forward, loss,
//! regularizers, backward, update) and the forward pass alone (encode / decode / reconstruct).

use std::collections::HashSet;

use crate::graph::{
    DType, Epilogue, Graph, Guard, LOSS_SCALE_INIT, Op, Operand, Precision, Tensor,
};
use crate::model::{Activation, LayerParams, ModelSpec, ParamLayout, ParamTensor, Role, Variant};
use crate::optim::{OptimizerConfig, OptimizerKind};

/// One named part of the loss: its value is `scale · Σ values`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossTerm {
    /// `reconstruction`, `sparsity`, `contractive` or `kl`.
    pub name: &'static str,
    /// Per-example (or per-unit) contributions.
    pub values: Tensor,
    /// Factor that turns their sum into the batch-mean term.
    pub scale: f64,
}

/// A training graph and the buffers a trainer needs to find in it.
#[derive(Clone, Debug)]
pub struct TrainingGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// `[N, D]` resident data set.
    pub data: Tensor,
    /// `[1, N]` row order of the current epoch (u32).
    pub order: Tensor,
    /// `[B, D]` current mini-batch (clean).
    pub batch: Tensor,
    /// `[B, D]` what the encoder sees: the corrupted batch for a denoising model.
    pub input: Tensor,
    /// Parameter arena.
    pub params: Tensor,
    /// Gradient arena, same layout.
    pub grads: Tensor,
    /// Optimizer state arenas (Adam m and v, or SGD velocity), same layout.
    pub optimizer_state: Vec<Tensor>,
    /// Output of each layer of `layout.layers`; the decoder's last are the output logits.
    pub activations: Vec<Tensor>,
    /// `[B, c]` the code (μ for a VAE).
    pub code: Tensor,
    /// The loss, term by term; the first is the reconstruction.
    pub terms: Vec<LossTerm>,
    /// `[1, 2]` u32: steps skipped for a non-finite gradient, and the first of them.
    pub health: Tensor,
    /// The optimizer ops (gradient norm, then Adam or SGD), shared by the main and the tail
    /// step: `graph.update_start..`, up to the tail step's ops or the end. The main step's
    /// forward and backward pass is `0..graph.update_start`, so a whole main step is
    /// `0..update.end`.
    pub update: std::ops::Range<usize>,
    /// The step program for the last, partial batch of an epoch, when the graph has one: run
    /// its `ops`, then [`TrainingGraph::update`], with the same [`crate::graph::StepParams`].
    pub tail: Option<StepOps>,
    /// `[1, 4]` the loss-scale state of a mixed-precision graph (see [`Op::LossScale`]).
    pub loss_scale: Option<Tensor>,
}

impl TrainingGraph {
    /// What a mixed-precision run's loss-scale state starts as.
    pub fn initial_loss_scale() -> [f32; 4] {
        [LOSS_SCALE_INIT, 0.0, 0.0, 0.0]
    }
}

/// One step's forward and backward pass at one batch size, inside a [`TrainingGraph`]: its
/// ops gather `rows` rows from the shared data and order buffers, starting at the step's
/// `batch_start`, and write the gradient of their batch-mean loss into the shared gradient
/// arena.
#[derive(Clone, Debug)]
pub struct StepOps {
    /// The batch size.
    pub rows: usize,
    /// The ops, in execution order.
    pub ops: std::ops::Range<usize>,
    /// `[rows, D]` the mini-batch (clean).
    pub batch: Tensor,
    /// `[rows, D]` what the encoder sees.
    pub input: Tensor,
    /// Output of each layer, as [`TrainingGraph::activations`].
    pub activations: Vec<Tensor>,
    /// `[rows, c]` the code (μ for a VAE).
    pub code: Tensor,
    /// The loss, term by term, averaged over this step's rows; the first is the
    /// reconstruction.
    pub terms: Vec<LossTerm>,
}

/// A view of one parameter tensor inside an arena buffer, as a matrix (`[1, n]` for biases).
pub fn arena_view(arena: Tensor, p: &ParamTensor) -> Tensor {
    let (rows, cols) = match p.shape.as_slice() {
        [r, c] => (*r, *c),
        [n] => (1, *n),
        _ => (1, p.len()),
    };
    Tensor {
        buf: arena.buf,
        offset: arena.offset + p.offset,
        rows,
        cols,
    }
}

/// Appends `y = act(x·Wᵀ + b)` for one layer, with `act` overriding the layer's own.
fn linear(g: &mut Graph, params: Tensor, l: &LayerParams, x: Tensor, act: Activation) -> Tensor {
    let y = g.matrix(format!("{}.out", l.layer.name), x.rows, l.layer.outputs);
    g.push(Op::Matmul {
        a: x,
        b: arena_view(params, &l.weight),
        c: y,
        trans_a: false,
        trans_b: !l.transposed,
        epilogue: Epilogue::BiasAct {
            bias: arena_view(params, &l.bias),
            act,
        },
        gradient: None,
        loss_scale: None,
    });
    y
}

/// Appends a chain of layers; the last uses `last_act`.
fn chain(
    g: &mut Graph,
    params: Tensor,
    layers: &[&LayerParams],
    input: Tensor,
    last_act: Activation,
) -> Vec<Tensor> {
    let mut x = input;
    let mut outs = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        let act = if k + 1 == layers.len() {
            last_act
        } else {
            l.layer.activation
        };
        x = linear(g, params, l, x, act);
        outs.push(x);
    }
    outs
}

fn layers_with(layout: &ParamLayout, role: Role) -> Vec<&LayerParams> {
    layout
        .layers
        .iter()
        .filter(|l| l.layer.role == role)
        .collect()
}

/// Emits weight gradients so that the first op to touch a weight's gradient overwrites it
/// and later ones (tied weights, the contractive penalty) add to it.
struct GradWriter {
    grads: Tensor,
    written: HashSet<usize>,
}

impl GradWriter {
    fn claim(&mut self, p: &ParamTensor) -> Tensor {
        self.written.insert(p.offset);
        arena_view(self.grads, p)
    }

    fn epilogue(&mut self, p: &ParamTensor) -> Epilogue {
        if self.written.insert(p.offset) {
            Epilogue::Store
        } else {
            Epilogue::Accumulate
        }
    }

    /// dW (+)= dzᵀ·x for an own weight, or xᵀ·dz into the encoder weight a tied layer uses.
    fn weight(&mut self, g: &mut Graph, l: &LayerParams, dz: Tensor, x: Tensor) {
        let epilogue = self.epilogue(&l.weight);
        let c = arena_view(self.grads, &l.weight);
        let (a, b, gradient) = if l.transposed {
            (x, dz, Operand::B)
        } else {
            (dz, x, Operand::A)
        };
        g.push(Op::Matmul {
            a,
            b,
            c,
            trans_a: true,
            trans_b: false,
            epilogue,
            gradient: Some(gradient),
            loss_scale: None,
        });
    }

    fn bias(&mut self, g: &mut Graph, l: &LayerParams, dz: Tensor) {
        let out = self.claim(&l.bias);
        g.push(Op::ColumnSum {
            x: dz,
            out,
            accumulate: false,
        });
    }
}

/// `dx = dz · W` (the layer's input gradient) with `epilogue`; `dz_is_gradient` is false when
/// `dz` is not a loss gradient (a Jacobian pulled back through the layer).
fn input_grad(
    g: &mut Graph,
    params: Tensor,
    l: &LayerParams,
    dz: Tensor,
    out: Tensor,
    epilogue: Epilogue,
    dz_is_gradient: bool,
) {
    g.push(Op::Matmul {
        a: dz,
        b: arena_view(params, &l.weight),
        c: out,
        trans_a: false,
        trans_b: l.transposed,
        epilogue,
        gradient: dz_is_gradient.then_some(Operand::A),
        loss_scale: None,
    });
}

/// An op that adds a penalty's gradient to a layer's pre-activation gradient, built once that
/// gradient's buffer exists.
type Extra = Box<dyn FnOnce(Tensor) -> Op>;

/// Two buffers the layer-by-layer backward pass alternates between for the gradients at the
/// layers' outputs: each is read by the next layer down and dead after it, so two suffice
/// however deep the model (large_ae: 256 MiB instead of 400). Each is declared when first
/// used, so models with one layer per side (cae) declare none.
struct GradPingPong {
    bufs: [Option<crate::graph::BufId>; 2],
    len: usize,
}

impl GradPingPong {
    /// Room for `rows × width` of any layer of `layout`.
    fn new(layout: &ParamLayout, rows: usize) -> Self {
        let widest = layout
            .layers
            .iter()
            .map(|l| l.layer.outputs)
            .max()
            .unwrap_or(1);
        GradPingPong {
            bufs: [None, None],
            len: rows * widest,
        }
    }

    /// The `turn`-th gradient of a pass, `rows × cols`.
    fn view(&mut self, g: &mut Graph, turn: usize, rows: usize, cols: usize) -> Tensor {
        let len = self.len;
        let buf = *self.bufs[turn % 2].get_or_insert_with(|| {
            g.buffer(format!("activation_grads.{}", turn % 2), len, DType::F32)
        });
        Tensor {
            buf,
            offset: 0,
            rows,
            cols,
        }
    }
}

/// Backward through `layers` (in forward order, with their inputs and outputs), from the
/// pre-activation gradient `dz` of the last one. `extras[k]` add to layer k's pre-activation
/// gradient before it is used. With `input_grad_to`, the first layer's input gradient is
/// written there with the given epilogue. Gradients between layers live in `pool`.
#[allow(clippy::too_many_arguments)]
fn backward(
    g: &mut Graph,
    params: Tensor,
    w: &mut GradWriter,
    layers: &[&LayerParams],
    inputs: &[Tensor],
    outputs: &[Tensor],
    mut dz: Tensor,
    extras: &mut [Vec<Extra>],
    input_grad_to: Option<(Tensor, Epilogue)>,
    pool: &mut GradPingPong,
) {
    for k in (0..layers.len()).rev() {
        for extra in extras[k].drain(..) {
            g.push(extra(dz));
        }
        let l = layers[k];
        w.weight(g, l, dz, inputs[k]);
        w.bias(g, l, dz);
        if k > 0 {
            let prev = layers[k - 1];
            let dprev = pool.view(g, layers.len() - 1 - k, dz.rows, prev.layer.outputs);
            input_grad(
                g,
                params,
                l,
                dz,
                dprev,
                Epilogue::ActGrad {
                    y: outputs[k - 1],
                    act: prev.layer.activation,
                },
                true,
            );
            dz = dprev;
        } else if let Some((out, epilogue)) = input_grad_to {
            input_grad(g, params, l, dz, out, epilogue, true);
        }
    }
}

/// The penalty ops of the contractive variant, general form: uᵀJ for K directions u per example,
/// pulled back from the code to the input, then pushed forward again to collect the gradient.
/// Returns the per-layer terms to add to each encoder layer's pre-activation gradient and the
/// penalty rows. See `shaders/jacobian.wgsl` for the derivation.
#[allow(clippy::too_many_arguments)]
fn contractive_general(
    g: &mut Graph,
    params: Tensor,
    w: &mut GradWriter,
    enc: &[&LayerParams],
    x: Tensor,
    h: &[Tensor],
    lambda: f32,
    projections: Option<u32>,
) -> (Vec<Tensor>, Tensor) {
    let batch = x.rows;
    let (r, ra) = pull_back(g, params, enc, h, batch, projections);
    let (n, kb) = (enc.len(), r[0].rows);
    let rows = g.matrix("contractive.rows", 1, batch);
    let mut q = g.matrix("jacobian.q0", kb, x.cols);
    let scale = match projections {
        Some(p) => lambda / p as f32,
        None => lambda,
    };
    g.push(Op::JacobianNorm {
        r: r[0],
        rows,
        grad: q,
        scale,
    });
    // Push forward: qa_l = q_{l-1} · W_lᵀ, dW_l += ra_lᵀ · q_{l-1},
    // e_l = Σ_k qa_l ⊙ r_l ⊙ act''(h_l), q_l = qa_l ⊙ act'(h_l).
    let mut extras = Vec::new();
    for l in 1..=n {
        let layer = enc[l - 1];
        let qa = g.matrix(format!("jacobian.qa{l}"), kb, layer.layer.outputs);
        g.push(Op::Matmul {
            a: q,
            b: arena_view(params, &layer.weight),
            c: qa,
            trans_a: false,
            trans_b: true,
            epilogue: Epilogue::Store,
            gradient: Some(Operand::A),
            loss_scale: None,
        });
        let epilogue = w.epilogue(&layer.weight);
        g.push(Op::Matmul {
            a: ra[l],
            b: q,
            c: arena_view(w.grads, &layer.weight),
            trans_a: true,
            trans_b: false,
            epilogue,
            gradient: Some(Operand::B),
            loss_scale: None,
        });
        let e = g.matrix(format!("jacobian.e{l}"), batch, layer.layer.outputs);
        g.push(Op::Curvature {
            qa,
            r: r[l],
            y: h[l - 1],
            act: layer.layer.activation,
            out: e,
        });
        extras.push(e);
        if l < n {
            q = g.matrix(format!("jacobian.q{l}"), kb, layer.layer.outputs);
            g.push(Op::TangentScale {
                r: qa,
                y: h[l - 1],
                act: layer.layer.activation,
                out: q,
            });
        }
    }
    (extras, rows)
}

/// Directions u (`[K·B, c]`, row k·B + b; the code-space basis when `projections` is `None`)
/// pulled back through the encoder: `r[l]` is uᵀ ∂h/∂(layer l's output), `r[0]` is uᵀJ at the
/// input, and `ra[l] = r[l] ⊙ act'(h_l)`. Returns (r, ra), indexed by layer, 0 = input.
fn pull_back(
    g: &mut Graph,
    params: Tensor,
    enc: &[&LayerParams],
    h: &[Tensor],
    batch: usize,
    projections: Option<u32>,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let code = enc.last().expect("an encoder has layers").layer.outputs;
    let kb = projections.map_or(code, |p| p as usize) * batch;
    let u = g.matrix("jacobian.directions", kb, code);
    g.push(Op::Directions {
        out: u,
        batch,
        exact: projections.is_none(),
    });
    // r_L = u, ra_l = r_l ⊙ act'(h_l), r_{l-1} = ra_l · W_l.
    let n = enc.len();
    let mut r = vec![u; n + 1];
    let mut ra = vec![u; n + 1];
    for l in (1..=n).rev() {
        let layer = enc[l - 1];
        ra[l] = g.matrix(format!("jacobian.ra{l}"), kb, layer.layer.outputs);
        g.push(Op::TangentScale {
            r: r[l],
            y: h[l - 1],
            act: layer.layer.activation,
            out: ra[l],
        });
        r[l - 1] = g.matrix(format!("jacobian.r{}", l - 1), kb, layer.layer.inputs);
        input_grad(g, params, layer, ra[l], r[l - 1], Epilogue::Store, false);
    }
    (r, ra)
}

/// The encoder's Jacobians ∂h/∂x at a batch of inputs.
#[derive(Clone, Debug)]
pub struct JacobianGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// Parameter arena.
    pub params: Tensor,
    /// `[B, D]` inputs, written by the caller.
    pub input: Tensor,
    /// `[c·B, D]`: row `k·B + b` is row k of example b's Jacobian (∂h_k/∂x).
    pub jacobian: Tensor,
}

/// A graph computing the exact encoder Jacobian of every example of a batch (not for VAEs).
pub fn build_jacobian_graph(spec: &ModelSpec, batch: usize) -> JacobianGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let input = g.matrix("input", batch, spec.input_dim());
    let enc = layers_with(&layout, Role::Encoder);
    let act = enc
        .last()
        .map_or(Activation::Identity, |l| l.layer.activation);
    let h = chain(&mut g, params, &enc, input, act);
    let (r, _) = pull_back(&mut g, params, &enc, &h, batch, None);
    g.update_start = g.ops.len();
    JacobianGraph {
        jacobian: r[0],
        graph: g,
        layout,
        params,
        input,
    }
}

/// The training step of `spec` at batch size `batch` over a resident set of `rows` rows.
pub fn build_training_graph(
    spec: &ModelSpec,
    batch: usize,
    rows: usize,
    opt: &OptimizerConfig,
) -> TrainingGraph {
    build_training_graph_clipped(spec, batch, rows, opt, None)
}

/// As [`build_training_graph`], rescaling each step's gradient to an L2 norm of at most
/// `clip_grad_norm` when given.
pub fn build_training_graph_clipped(
    spec: &ModelSpec,
    batch: usize,
    rows: usize,
    opt: &OptimizerConfig,
    clip_grad_norm: Option<f32>,
) -> TrainingGraph {
    build_training_graph_with_tail(spec, batch, None, rows, opt, clip_grad_norm, Precision::F32)
}

/// As [`build_training_graph_clipped`], with a second step program for a batch of `tail` rows
/// (the last, partial batch of an epoch) when given: its forward and backward pass follow the
/// optimizer ops, in [`TrainingGraph::tail`], over the same data, order, parameter, gradient
/// and optimizer buffers, and it is applied by the same optimizer ops
/// ([`TrainingGraph::update`]). Ops and buffers of the main step are exactly those of a graph
/// without a tail, in the same places, so `ops[..update_start]` is still the main step's loss
/// and gradient.
///
/// With [`Precision::Mixed`], every product runs in mixed precision and the update ends with
/// [`Op::LossScale`]; the caller writes [`TrainingGraph::initial_loss_scale`] into
/// [`TrainingGraph::loss_scale`] before the first step.
///
/// # Panics
/// If `tail` is `Some(0)`.
pub fn build_training_graph_with_tail(
    spec: &ModelSpec,
    batch: usize,
    tail: Option<usize>,
    rows: usize,
    opt: &OptimizerConfig,
    clip_grad_norm: Option<f32>,
    precision: Precision,
) -> TrainingGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let data = g.matrix("data", rows, spec.input_dim());
    let order = g.u32_matrix("order", 1, rows);
    let params = g.matrix("params", 1, layout.len);
    let grads = g.matrix("grads", 1, layout.len);
    let forward_finite =
        (precision == Precision::Mixed).then(|| g.matrix("loss_scale.forward_finite", 1, 1));
    let shared = SharedBuffers {
        data,
        order,
        params,
        grads,
        forward_finite,
    };
    let main = append_step(&mut g, spec, &layout, shared, batch);

    g.update_start = g.ops.len();
    // Every step measures its gradient: a non-finite one is skipped (and counted), a large one
    // is clipped when asked.
    let norm_sq = g.matrix("grads.norm_sq", 1, 1);
    let partials = g.matrix("grads.norm_partials", 1, layout.len.div_ceil(2048));
    let health = g.u32_matrix("health", 1, 2);
    g.push(Op::GradNorm {
        grads,
        partials,
        norm_sq,
        health,
    });
    let guard = Some(Guard {
        norm_sq,
        max_norm: clip_grad_norm.unwrap_or(0.0),
    });
    let optimizer_state = match opt.kind {
        OptimizerKind::Adam | OptimizerKind::Adamw => {
            let m = g.matrix("adam.m", 1, layout.len);
            let v = g.matrix("adam.v", 1, layout.len);
            g.push(Op::Adam {
                params,
                grads,
                m,
                v,
                beta1: opt.beta1,
                beta2: opt.beta2,
                eps: opt.eps,
                weight_decay: opt.weight_decay,
                decoupled: opt.kind == OptimizerKind::Adamw,
                guard,
            });
            vec![m, v]
        }
        OptimizerKind::Sgd => {
            let velocity = g.matrix("sgd.velocity", 1, layout.len);
            g.push(Op::Sgd {
                params,
                grads,
                velocity,
                momentum: opt.momentum,
                weight_decay: opt.weight_decay,
                guard,
            });
            vec![velocity]
        }
    };
    let loss_scale = forward_finite.map(|forward_finite| {
        let state = g.matrix("loss_scale", 1, 4);
        g.push(Op::LossScale {
            state,
            norm_sq,
            forward_finite,
            health,
        });
        state
    });
    let update = g.update_start..g.ops.len();

    // The tail step: the same program at its own batch size, on its own activation buffers
    // (named `tail.*`).
    let tail = tail.map(|rows| {
        assert!(rows > 0, "a tail batch has at least one row");
        let first_buffer = g.buffers.len();
        let step = append_step(&mut g, spec, &layout, shared, rows);
        for b in &mut g.buffers[first_buffer..] {
            b.name = format!("tail.{}", b.name);
        }
        step
    });
    if let Some(state) = loss_scale {
        for op in &mut g.ops {
            if let Op::Matmul { loss_scale, .. } = op {
                *loss_scale = Some(state);
            }
        }
    }

    TrainingGraph {
        graph: g,
        layout,
        data,
        order,
        batch: main.batch,
        input: main.input,
        params,
        grads,
        optimizer_state,
        activations: main.activations,
        code: main.code,
        terms: main.terms,
        health,
        update,
        tail,
        loss_scale,
    }
}

/// The buffers every step program of a training graph shares.
#[derive(Clone, Copy)]
struct SharedBuffers {
    data: Tensor,
    order: Tensor,
    params: Tensor,
    grads: Tensor,
    /// Mixed precision: the flag each step's forward pass writes for the loss-scale update.
    forward_finite: Option<Tensor>,
}

/// Appends one step's forward and backward pass at batch size `batch` (gather, corruption,
/// forward, loss, penalties, backward into `shared.grads`) with activation buffers of its own.
fn append_step(
    g: &mut Graph,
    spec: &ModelSpec,
    layout: &ParamLayout,
    shared: SharedBuffers,
    batch: usize,
) -> StepOps {
    let SharedBuffers {
        data,
        order,
        params,
        grads,
        forward_finite,
    } = shared;
    let d = spec.input_dim();
    let first_op = g.ops.len();
    let mut w = GradWriter {
        grads,
        written: HashSet::new(),
    };
    let x = g.matrix("batch", batch, d);
    g.push(Op::Gather {
        data,
        order,
        out: x,
    });
    let input = match spec.variant {
        Variant::Denoising { noise } => {
            let noisy = g.matrix("batch.corrupted", batch, d);
            g.push(Op::Corrupt {
                x,
                out: noisy,
                noise,
            });
            noisy
        }
        _ => x,
    };

    // Forward through the encoder (a VAE's trunk).
    let enc = layers_with(layout, Role::Encoder);
    let dec = layers_with(layout, Role::Decoder);
    let enc_last_act = enc
        .last()
        .map_or(Activation::Identity, |l| l.layer.activation);
    let h = chain(g, params, &enc, input, enc_last_act);
    let trunk_out = h.last().copied().unwrap_or(input);
    let mut activations = h.clone();
    let mut terms = Vec::new();

    // The code, or a VAE's heads and sampler.
    let (code, decoder_input, vae) = match spec.variant {
        Variant::Vae { beta, samples } => {
            let mu_l = layers_with(layout, Role::Mu)[0];
            let lv_l = layers_with(layout, Role::LogVar)[0];
            let mu = linear(g, params, mu_l, trunk_out, Activation::Identity);
            let logvar = linear(g, params, lv_l, trunk_out, Activation::Identity);
            activations.extend([mu, logvar]);
            let r = samples as usize * batch;
            let eps = g.matrix("vae.eps", r, mu.cols);
            let z = g.matrix("vae.z", r, mu.cols);
            let kl_rows = g.matrix("kl.rows", 1, batch);
            g.push(Op::Sample {
                mu,
                logvar,
                eps,
                z,
                kl_rows,
                beta,
            });
            terms.push(LossTerm {
                name: "kl",
                values: kl_rows,
                scale: 1.0 / batch as f64,
            });
            (mu, z, Some((mu_l, lv_l, mu, logvar, eps, z, beta)))
        }
        _ => (trunk_out, trunk_out, None),
    };

    // Decoder and loss; the output activation is fused into the loss.
    let dec_out = chain(g, params, &dec, decoder_input, Activation::Identity);
    activations.extend(&dec_out);
    let logits = *dec_out.last().expect("a validated spec has a decoder");
    let row_loss = g.matrix("reconstruction.rows", 1, logits.rows);
    let dlogits = g.matrix("logits.grad", logits.rows, d);
    g.push(Op::ReconstructionLoss {
        logits,
        target: x,
        grad: dlogits,
        row_loss,
        loss: spec.loss,
        output: spec.output_activation,
    });
    terms.insert(
        0,
        LossTerm {
            name: "reconstruction",
            values: row_loss,
            scale: 1.0 / logits.rows as f64,
        },
    );
    if let Some(flag) = forward_finite {
        g.push(Op::CheckFinite { x: row_loss, flag });
    }

    // Penalties on the code: ops that add to the code layer's pre-activation gradient once
    // the decoder has produced it (extras), or to lower encoder layers' (contractive).
    let mut extras: Vec<Vec<Extra>> = (0..enc.len()).map(|_| Vec::new()).collect();
    let code_act = spec.code_activation;
    match spec.variant {
        Variant::Sparse { lambda, target } => {
            let dz_slot = enc.len() - 1;
            match target {
                None => {
                    let rows = g.matrix("sparsity.rows", 1, batch);
                    terms.push(LossTerm {
                        name: "sparsity",
                        values: rows,
                        scale: 1.0 / batch as f64,
                    });
                    extras[dz_slot].push(Box::new(move |dz| Op::SparseL1 {
                        h: code,
                        act: code_act,
                        rows,
                        dz,
                        lambda,
                    }));
                }
                Some(rho) => {
                    let sums = g.matrix("sparsity.mean", 1, code.cols);
                    let unit_terms = g.matrix("sparsity.units", 1, code.cols);
                    g.push(Op::ColumnSum {
                        x: code,
                        out: sums,
                        accumulate: false,
                    });
                    terms.push(LossTerm {
                        name: "sparsity",
                        values: unit_terms,
                        scale: 1.0,
                    });
                    extras[dz_slot].push(Box::new(move |dz| Op::SparseKl {
                        h: code,
                        sums,
                        act: code_act,
                        terms: unit_terms,
                        dz,
                        lambda,
                        target: rho,
                    }));
                }
            }
        }
        Variant::Contractive {
            lambda,
            projections,
        } => {
            let closed_form =
                projections.is_none() && enc.len() == 1 && code_act == Activation::Sigmoid;
            if closed_form {
                let rows = g.matrix("contractive.rows", 1, batch);
                let scratch = g.matrix("contractive.scratch", 1, 2 * code.cols);
                let dw = w.claim(&enc[0].weight);
                let weight = arena_view(params, &enc[0].weight);
                extras[0].push(Box::new(move |dz| Op::ContractiveClosedForm {
                    h: code,
                    w: weight,
                    rows,
                    dz,
                    dw,
                    scratch,
                    lambda,
                }));
                terms.push(LossTerm {
                    name: "contractive",
                    values: rows,
                    scale: 1.0 / batch as f64,
                });
            } else {
                let (e, rows) =
                    contractive_general(g, params, &mut w, &enc, input, &h, lambda, projections);
                for (k, e) in e.into_iter().enumerate() {
                    extras[k].push(Box::new(move |dz| Op::AddInto { x: e, out: dz }));
                }
                terms.push(LossTerm {
                    name: "contractive",
                    values: rows,
                    scale: 1.0 / batch as f64,
                });
            }
        }
        Variant::Plain | Variant::Denoising { .. } | Variant::Vae { .. } => {}
    }

    // Backward through the decoder. Its first layer's input gradient is the code's
    // pre-activation gradient (through the code activation), or the gradient at z for a VAE.
    let dcode = if vae.is_some() {
        g.matrix("vae.z.grad", decoder_input.rows, decoder_input.cols)
    } else {
        g.matrix("code.grad", batch, code.cols)
    };
    let to_code = if vae.is_some() || enc.is_empty() {
        Epilogue::Store
    } else {
        Epilogue::ActGrad {
            y: code,
            act: code_act,
        }
    };
    let mut dec_inputs = vec![decoder_input];
    dec_inputs.extend(&dec_out[..dec_out.len() - 1]);
    let mut no_extras: Vec<Vec<Extra>> = (0..dec.len()).map(|_| Vec::new()).collect();
    let mut pool = GradPingPong::new(layout, logits.rows);
    backward(
        g,
        params,
        &mut w,
        &dec,
        &dec_inputs,
        &dec_out,
        dlogits,
        &mut no_extras,
        (!enc.is_empty() || vae.is_some()).then_some((dcode, to_code)),
        &mut pool,
    );

    // Into the encoder: through the VAE's sampler and heads, or straight from the code.
    let dtrunk = if let Some((mu_l, lv_l, mu, logvar, eps, _, beta)) = vae {
        let dmu = g.matrix("fc_mu.out.grad", batch, mu.cols);
        let dlogvar = g.matrix("fc_logvar.out.grad", batch, mu.cols);
        g.push(Op::SampleGrad {
            dz: dcode,
            eps,
            mu,
            logvar,
            dmu,
            dlogvar,
            beta,
        });
        w.weight(g, mu_l, dmu, trunk_out);
        w.bias(g, mu_l, dmu);
        w.weight(g, lv_l, dlogvar, trunk_out);
        w.bias(g, lv_l, dlogvar);
        enc.last().map(|last| {
            let dt = g.matrix(
                format!("{}.out.grad", last.layer.name),
                batch,
                trunk_out.cols,
            );
            input_grad(g, params, mu_l, dmu, dt, Epilogue::Store, true);
            input_grad(
                g,
                params,
                lv_l,
                dlogvar,
                dt,
                Epilogue::AccumulateActGrad {
                    y: trunk_out,
                    act: last.layer.activation,
                },
                true,
            );
            dt
        })
    } else {
        (!enc.is_empty()).then_some(dcode)
    };
    if let Some(dz) = dtrunk {
        let mut enc_inputs = vec![input];
        enc_inputs.extend(&h[..h.len() - 1]);
        backward(
            g,
            params,
            &mut w,
            &enc,
            &enc_inputs,
            &h,
            dz,
            &mut extras,
            None,
            &mut pool,
        );
    }

    StepOps {
        rows: batch,
        ops: first_op..g.ops.len(),
        batch: x,
        input,
        activations,
        code,
        terms,
    }
}

/// The forward pass alone, for encoding, decoding and reconstructing (no corruption; a VAE
/// encodes to μ and decodes the code it is given).
#[derive(Clone, Debug)]
pub struct InferenceGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// Parameter arena.
    pub params: Tensor,
    /// `[B, D]` input (or `[B, c]` codes for a decode-only graph), written by the caller.
    pub input: Tensor,
    /// `[B, c]` encoder output (μ for a VAE); equals `input` for a decode-only graph.
    pub code: Tensor,
    /// `[B, D]` reconstruction, output activation applied.
    pub output: Tensor,
}

/// The forward pass of `spec` at batch size `batch`; `decode_only` starts from codes.
pub fn build_inference_graph(spec: &ModelSpec, batch: usize, decode_only: bool) -> InferenceGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let enc = layers_with(&layout, Role::Encoder);
    let dec = layers_with(&layout, Role::Decoder);
    let (input, code) = if decode_only {
        let z = g.matrix("input", batch, spec.code_dim());
        (z, z)
    } else {
        let input = g.matrix("input", batch, spec.input_dim());
        let act = enc
            .last()
            .map_or(Activation::Identity, |l| l.layer.activation);
        let h = chain(&mut g, params, &enc, input, act);
        let trunk = h.last().copied().unwrap_or(input);
        let code = match spec.variant {
            Variant::Vae { .. } => {
                let mu_l = layers_with(&layout, Role::Mu)[0];
                linear(&mut g, params, mu_l, trunk, Activation::Identity)
            }
            _ => trunk,
        };
        (input, code)
    };
    let out = chain(&mut g, params, &dec, code, spec.output_activation);
    g.update_start = g.ops.len();
    InferenceGraph {
        output: *out.last().expect("a validated spec has a decoder"),
        graph: g,
        layout,
        params,
        input,
        code,
    }
}
