//! The dense (linear) layer, `y = act(x·Wᵀ + b)`: its parameters are the weight and bias of a
//! [`LayerParams`] (with tied weights, the mirrored encoder layer's weight used transposed),
//! and every op it emits is a matrix product with a fused epilogue, or a column sum for the
//! bias gradient.

use crate::graph::build::arena_view;
use crate::graph::build::backward::GradWriter;
use crate::graph::build::layer::Layer;
use crate::graph::{Epilogue, Graph, Op, Operand, Tensor};
use crate::model::{Activation, LayerParams, LayerSpec, ParamTensor};

/// A dense layer of the model's layout.
pub(super) struct Dense<'a>(pub &'a LayerParams);

impl Dense<'_> {
    /// The weight this layer multiplies by: its own `[outputs, inputs]`, or the tied encoder
    /// layer's `[inputs, outputs]`.
    pub fn weight(&self) -> &ParamTensor {
        &self.0.weight
    }

    /// `c (+)= aᵀ·b` into the weight's gradient, for `out` at the layer's output (before the
    /// activation) and `x` at its input: `outᵀ·x` for an own weight, `xᵀ·out` for a tied one.
    /// `out_is_gradient` says which of the two is the loss gradient.
    fn weight_product(
        &self,
        g: &mut Graph,
        w: &mut GradWriter,
        out: Tensor,
        x: Tensor,
        out_is_gradient: bool,
    ) {
        let (c, epilogue) = w.target(&self.0.weight);
        let (a, b, gradient) = match (self.0.transposed, out_is_gradient) {
            (false, true) => (out, x, Operand::A),
            (false, false) => (out, x, Operand::B),
            (true, true) => (x, out, Operand::B),
            (true, false) => (x, out, Operand::A),
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
}

impl Layer for Dense<'_> {
    fn spec(&self) -> &LayerSpec {
        &self.0.layer
    }

    fn as_dense(&self) -> Option<&Dense<'_>> {
        Some(self)
    }

    fn forward(&self, g: &mut Graph, params: Tensor, x: Tensor, act: Activation) -> Tensor {
        let l = self.0;
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

    /// dW (+)= dzᵀ·x (xᵀ·dz into a tied weight), then db = Σ_rows dz.
    fn param_grads(&self, g: &mut Graph, w: &mut GradWriter, dz: Tensor, x: Tensor) {
        self.weight_product(g, w, dz, x, true);
        let out = w.claim(&self.0.bias);
        g.push(Op::ColumnSum {
            x: dz,
            out,
            accumulate: false,
        });
    }

    /// `out = epilogue(dz · W)`.
    fn input_grad(
        &self,
        g: &mut Graph,
        params: Tensor,
        dz: Tensor,
        out: Tensor,
        epilogue: Epilogue,
        dz_is_gradient: bool,
    ) {
        g.push(Op::Matmul {
            a: dz,
            b: arena_view(params, &self.0.weight),
            c: out,
            trans_a: false,
            trans_b: self.0.transposed,
            epilogue,
            gradient: dz_is_gradient.then_some(Operand::A),
            loss_scale: None,
        });
    }

    /// `out = q · Wᵀ`.
    fn tangent(&self, g: &mut Graph, params: Tensor, q: Tensor, out: Tensor) {
        g.push(Op::Matmul {
            a: q,
            b: arena_view(params, &self.0.weight),
            c: out,
            trans_a: false,
            trans_b: !self.0.transposed,
            epilogue: Epilogue::Store,
            gradient: Some(Operand::A),
            loss_scale: None,
        });
    }

    /// dW (+)= rᵀ·q.
    fn tangent_param_grads(&self, g: &mut Graph, w: &mut GradWriter, r: Tensor, q: Tensor) {
        self.weight_product(g, w, r, q, false);
    }
}
