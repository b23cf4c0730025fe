//! The training graph: one step's forward and backward pass (`step`), then the optimizer
//! ops (gradient norm, skip and clip guard, Adam or SGD, the mixed-precision loss scale), then
//! optionally the same step again at the size of an epoch's last, partial batch.

use crate::graph::build::LossTerm;
use crate::graph::build::step::{SharedBuffers, append_step};
use crate::graph::{Graph, Guard, LOSS_SCALE_INIT, Op, Precision, Tensor};
use crate::model::{ModelSpec, ParamLayout};
use crate::optim::{OptimizerConfig, OptimizerKind};

/// A training graph and the buffers a trainer needs to find in it.
#[derive(Clone)]
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
    /// Values measured beside the loss and not part of it, read like terms (a PSD model's
    /// `zero_fraction`, `prediction_sq` and `code_sq`); empty for other models.
    pub measures: Vec<LossTerm>,
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
    /// The gradient accumulator of a graph built by [`build_accumulating_training_graph`]:
    /// each step program then ends with an [`Op::GradAccumulate`] of `grads` into it.
    pub accumulator: Option<Tensor>,
}

// As derived, with `measures` left out when empty (so the dumps pinned by tests/graph_golden
// stay those of the graphs before it existed).
impl std::fmt::Debug for TrainingGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("TrainingGraph");
        s.field("graph", &self.graph)
            .field("layout", &self.layout)
            .field("data", &self.data)
            .field("order", &self.order)
            .field("batch", &self.batch)
            .field("input", &self.input)
            .field("params", &self.params)
            .field("grads", &self.grads)
            .field("optimizer_state", &self.optimizer_state)
            .field("activations", &self.activations)
            .field("code", &self.code)
            .field("terms", &self.terms);
        if !self.measures.is_empty() {
            s.field("measures", &self.measures);
        }
        s.field("health", &self.health)
            .field("update", &self.update)
            .field("tail", &self.tail)
            .field("loss_scale", &self.loss_scale);
        if self.accumulator.is_some() {
            s.field("accumulator", &self.accumulator);
        }
        s.finish()
    }
}

impl std::fmt::Debug for StepOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("StepOps");
        s.field("rows", &self.rows)
            .field("ops", &self.ops)
            .field("batch", &self.batch)
            .field("input", &self.input)
            .field("activations", &self.activations)
            .field("code", &self.code)
            .field("terms", &self.terms);
        if !self.measures.is_empty() {
            s.field("measures", &self.measures);
        }
        s.finish()
    }
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
#[derive(Clone)]
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
    /// As [`TrainingGraph::measures`], for this step's rows.
    pub measures: Vec<LossTerm>,
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
    build(
        spec,
        batch,
        tail,
        rows,
        opt,
        clip_grad_norm,
        precision,
        false,
    )
}

/// As [`build_training_graph_with_tail`], for gradient accumulation and data-parallel
/// training: the main and the tail step programs each end with an [`Op::GradAccumulate`] of
/// the gradient arena into [`TrainingGraph::accumulator`] (a buffer of the arena's size), so
/// that the micro-steps of one optimizer step can run in one submission, their weighted sum
/// left in the gradient arena by the last. The main step is then `0..update_start` with that
/// op last, the tail step's [`StepOps::ops`] likewise. Steps whose
/// [`crate::graph::StepParams::accumulate_flags`] are 0 leave both buffers alone.
pub fn build_accumulating_training_graph(
    spec: &ModelSpec,
    batch: usize,
    tail: Option<usize>,
    rows: usize,
    opt: &OptimizerConfig,
    clip_grad_norm: Option<f32>,
    precision: Precision,
) -> TrainingGraph {
    build(
        spec,
        batch,
        tail,
        rows,
        opt,
        clip_grad_norm,
        precision,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn build(
    spec: &ModelSpec,
    batch: usize,
    tail: Option<usize>,
    rows: usize,
    opt: &OptimizerConfig,
    clip_grad_norm: Option<f32>,
    precision: Precision,
    accumulating: bool,
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
    let accumulator = accumulating.then(|| {
        let acc = g.matrix("grads.accumulator", 1, layout.len);
        g.push(Op::GradAccumulate { grads, acc });
        acc
    });

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
    // A PSD dictionary goes back to unit-norm columns after every update.
    if let Some(op) = crate::graph::build::psd::renormalize(&layout, params) {
        g.push(op);
    }
    let update = g.update_start..g.ops.len();

    // The tail step: the same program at its own batch size, on its own activation buffers
    // (named `tail.*`).
    // A tail of no rows is no tail step.
    let tail = tail.filter(|&rows| rows > 0).map(|rows| {
        let first_buffer = g.buffers.len();
        let mut step = append_step(&mut g, spec, &layout, shared, rows);
        for b in &mut g.buffers[first_buffer..] {
            b.name = format!("tail.{}", b.name);
        }
        if let Some(acc) = accumulator {
            g.push(Op::GradAccumulate { grads, acc });
            step.ops.end = g.ops.len();
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
        measures: main.measures,
        health,
        update,
        tail,
        loss_scale,
        accumulator,
    }
}
