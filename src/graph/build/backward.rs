//! The backward pass through a stack of layers, and its bookkeeping: which parameter
//! gradients are written already ([`GradWriter`]), the two buffers the gradients between
//! layers alternate between ([`GradPingPong`]), and the penalty terms waiting to be added to a
//! layer's pre-activation gradient ([`Extra`]).

use std::collections::HashSet;

use crate::graph::build::arena_view;
use crate::graph::build::layer::Layer;
use crate::graph::{BufId, DType, Epilogue, Graph, Op, Tensor};
use crate::model::{ParamLayout, ParamTensor};

/// Hands out parameter gradients so that the first op to touch a gradient overwrites it and
/// later ones (tied weights, the contractive penalty) add to it.
pub(super) struct GradWriter {
    grads: Tensor,
    written: HashSet<usize>,
}

impl GradWriter {
    /// Writes into the gradient arena `grads`, empty.
    pub fn new(grads: Tensor) -> Self {
        GradWriter {
            grads,
            written: HashSet::new(),
        }
    }

    /// The gradient of `p`, marked as written (for an op that always overwrites it).
    pub fn claim(&mut self, p: &ParamTensor) -> Tensor {
        self.written.insert(p.offset);
        arena_view(self.grads, p)
    }

    /// The gradient of `p` and the epilogue a product writing it needs: store for the first,
    /// accumulate for the others.
    pub fn target(&mut self, p: &ParamTensor) -> (Tensor, Epilogue) {
        let epilogue = if self.written.insert(p.offset) {
            Epilogue::Store
        } else {
            Epilogue::Accumulate
        };
        (arena_view(self.grads, p), epilogue)
    }
}

/// An op that adds a penalty's gradient to a layer's pre-activation gradient, built once that
/// gradient's buffer exists.
pub(super) type Extra = Box<dyn FnOnce(Tensor) -> Op>;

/// Two buffers the layer-by-layer backward pass alternates between for the gradients at the
/// layers' outputs: each is read by the next layer down and dead after it, so two suffice
/// however deep the model (large_ae: 256 MiB instead of 400). Each is declared when first
/// used, so models with one layer per side (cae) declare none.
pub(super) struct GradPingPong {
    bufs: [Option<BufId>; 2],
    len: usize,
}

impl GradPingPong {
    /// Room for `rows × width` of any layer of `layout`.
    pub fn new(layout: &ParamLayout, rows: usize) -> Self {
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

/// One stack's backward pass: its layers in forward order, with their inputs and outputs.
pub(super) struct Pass<'p, 'l> {
    /// The layers.
    pub layers: &'p [Box<dyn Layer + 'l>],
    /// Layer k's input.
    pub inputs: &'p [Tensor],
    /// Layer k's output.
    pub outputs: &'p [Tensor],
}

/// Backward through `pass` from the pre-activation gradient `dz` of its last layer.
/// `extras[k]` add to layer k's pre-activation gradient before it is used. With
/// `input_grad_to`, the first layer's input gradient is written there with the given
/// epilogue. Gradients between layers live in `pool`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    g: &mut Graph,
    params: Tensor,
    w: &mut GradWriter,
    pass: Pass,
    mut dz: Tensor,
    extras: &mut [Vec<Extra>],
    input_grad_to: Option<(Tensor, Epilogue)>,
    pool: &mut GradPingPong,
) {
    let Pass {
        layers,
        inputs,
        outputs,
    } = pass;
    for k in (0..layers.len()).rev() {
        for extra in extras[k].drain(..) {
            g.push(extra(dz));
        }
        let l = &layers[k];
        l.param_grads(g, w, dz, inputs[k]);
        if k > 0 {
            let prev = layers[k - 1].spec();
            let dprev = pool.view(g, layers.len() - 1 - k, dz.rows, prev.outputs);
            let epilogue = Epilogue::ActGrad {
                y: outputs[k - 1],
                act: prev.activation,
            };
            l.input_grad(g, params, dz, dprev, epilogue, true);
            dz = dprev;
        } else if let Some((out, epilogue)) = input_grad_to {
            l.input_grad(g, params, dz, out, epilogue, true);
        }
    }
}
