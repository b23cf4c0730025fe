//! Compiles a model spec into graphs: the training step (gather, forward, loss, backward,
//! update) and the forward pass alone (encode / reconstruct).

use crate::graph::{DType, Epilogue, Graph, Op, Tensor};
use crate::model::{Activation, ModelSpec, ParamLayout, ParamTensor};
use crate::optim::{OptimizerConfig, OptimizerKind};

/// A training graph and the buffers a trainer needs to find in it.
#[derive(Clone, Debug)]
pub struct TrainingGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// `[N, D]` resident training set.
    pub data: Tensor,
    /// `[1, N]` row order of the current epoch (u32).
    pub order: Tensor,
    /// `[B, D]` current mini-batch.
    pub batch: Tensor,
    /// Parameter arena.
    pub params: Tensor,
    /// Gradient arena, same layout.
    pub grads: Tensor,
    /// Optimizer state arenas (Adam m and v, or SGD velocity), same layout.
    pub optimizer_state: Vec<Tensor>,
    /// `[B, w]` output of each layer; the last are the output logits.
    pub activations: Vec<Tensor>,
    /// `[1, B]` per-row loss sums of the last step.
    pub row_loss: Tensor,
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

/// Appends `y = act(x·Wᵀ + b)` for every layer and returns each layer's output. The last layer
/// uses `last_act`: identity when the loss applies the output activation itself.
fn forward(
    g: &mut Graph,
    layout: &ParamLayout,
    params: Tensor,
    input: Tensor,
    last_act: Activation,
) -> Vec<Tensor> {
    let batch = input.rows;
    let mut x = input;
    let mut outs = Vec::new();
    let n = layout.layers.len();
    for (k, l) in layout.layers.iter().enumerate() {
        let y = g.matrix(format!("{}.out", l.layer.name), batch, l.layer.outputs);
        let act = if k + 1 == n {
            last_act
        } else {
            l.layer.activation
        };
        g.push(Op::Matmul {
            a: x,
            b: arena_view(params, &l.weight),
            c: y,
            trans_a: false,
            trans_b: true,
            epilogue: Epilogue::BiasAct {
                bias: arena_view(params, &l.bias),
                act,
            },
        });
        outs.push(y);
        x = y;
    }
    outs
}

/// The training step of `spec` at batch size `batch` over a resident set of `rows` rows.
pub fn build_training_graph(
    spec: &ModelSpec,
    batch: usize,
    rows: usize,
    opt: &OptimizerConfig,
) -> TrainingGraph {
    let layout = ParamLayout::new(spec);
    let d = spec.input_dim();
    let mut g = Graph::default();
    let data = g.matrix("data", rows, d);
    let order_buf = g.buffer("order", rows, DType::U32);
    let order = Tensor {
        buf: order_buf,
        offset: 0,
        rows: 1,
        cols: rows,
    };
    let params = g.matrix("params", 1, layout.len);
    let grads = g.matrix("grads", 1, layout.len);
    let x = g.matrix("batch", batch, d);
    g.push(Op::Gather {
        data,
        order,
        out: x,
    });

    let acts = forward(&mut g, &layout, params, x, Activation::Identity);
    let logits = *acts.last().expect("a validated spec has layers");
    let row_loss = g.matrix("row_loss", 1, batch);
    let dlogits = g.matrix("logits.grad", batch, d);
    g.push(Op::ReconstructionLoss {
        logits,
        target: x,
        grad: dlogits,
        row_loss,
        loss: spec.loss,
        output: spec.output_activation,
    });

    // Backward: layer k receives dz_k = dL/d(pre-activation of its output) and produces dW_k,
    // db_k and, fused with the previous layer's activation derivative, dz_{k-1}.
    let mut dz = dlogits;
    for k in (0..layout.layers.len()).rev() {
        let l = &layout.layers[k];
        let input = if k == 0 { x } else { acts[k - 1] };
        g.push(Op::Matmul {
            a: dz,
            b: input,
            c: arena_view(grads, &l.weight),
            trans_a: true,
            trans_b: false,
            epilogue: Epilogue::Store,
        });
        g.push(Op::ColumnSum {
            x: dz,
            out: arena_view(grads, &l.bias),
            accumulate: false,
        });
        if k > 0 {
            let prev = &layout.layers[k - 1];
            let dprev = g.matrix(
                format!("{}.out.grad", prev.layer.name),
                batch,
                prev.layer.outputs,
            );
            g.push(Op::Matmul {
                a: dz,
                b: arena_view(params, &l.weight),
                c: dprev,
                trans_a: false,
                trans_b: false,
                epilogue: Epilogue::ActGrad {
                    y: acts[k - 1],
                    act: prev.layer.activation,
                },
            });
            dz = dprev;
        }
    }

    g.update_start = g.ops.len();
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
            });
            vec![velocity]
        }
    };

    TrainingGraph {
        graph: g,
        layout,
        data,
        order,
        batch: x,
        params,
        grads,
        optimizer_state,
        activations: acts,
        row_loss,
    }
}

/// The forward pass alone, for encoding and reconstructing.
#[derive(Clone, Debug)]
pub struct InferenceGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// Parameter arena.
    pub params: Tensor,
    /// `[B, D]` input, written by the caller.
    pub input: Tensor,
    /// `[B, code]` encoder output.
    pub code: Tensor,
    /// `[B, D]` reconstruction, output activation applied.
    pub output: Tensor,
}

/// The forward pass of `spec` at batch size `batch`.
pub fn build_inference_graph(spec: &ModelSpec, batch: usize) -> InferenceGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let input = g.matrix("input", batch, spec.input_dim());
    let acts = forward(&mut g, &layout, params, input, spec.output_activation);
    g.update_start = g.ops.len();
    InferenceGraph {
        code: acts[spec.encoder_layers() - 1],
        output: *acts.last().expect("a validated spec has layers"),
        graph: g,
        layout,
        params,
        input,
    }
}
