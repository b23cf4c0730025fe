//! The convolutional layers: the encoder's `Conv2d`, `y = act(conv2d(x, W) + b)` with a bias
//! per output channel, and the decoder's mirrored `ConvTranspose2d`, `y = act(Wᵀ⋆x + b)`,
//! which is the conv's input gradient run forward (with a tied decoder, on the conv's own
//! weight). Both hold PyTorch's weight layout, `[out_c, in_c, k, k]` of the encoder stage,
//! viewed as the matrix `[out_c, in_c·k²]` the conv ops take; activations are `[B, C·H·W]`
//! rows, channel-major, so Flatten and Unflatten cost nothing.

use crate::graph::build::arena_view;
use crate::graph::build::backward::GradWriter;
use crate::graph::build::layer::Layer;
use crate::graph::conv::ConvShape;
use crate::graph::{Epilogue, Graph, Op, Tensor};
use crate::model::{Activation, ConvStage, LayerParams, LayerSpec};

/// The op geometry of `stage` on `batch` images.
fn shape(st: &ConvStage, batch: usize) -> ConvShape {
    ConvShape {
        batch,
        in_c: st.in_c,
        in_h: st.in_h,
        in_w: st.in_w,
        out_c: st.out_c,
        out_h: st.out_h,
        out_w: st.out_w,
        kernel: st.kernel,
        stride: st.stride,
        pad: st.pad,
    }
}

/// `dw (+)= Σ_batch dy ⋆ x` into the layer's weight gradient (accumulating when another
/// product wrote it first: a tied conv and its transposed conv).
fn weight_grad(
    g: &mut Graph,
    w: &mut GradWriter,
    p: &LayerParams,
    s: ConvShape,
    x: Tensor,
    dy: Tensor,
) {
    let (dw, epilogue) = w.target(&p.weight);
    g.push(Op::Conv2dWeightGrad {
        x,
        dy,
        dw,
        shape: s,
        accumulate: matches!(epilogue, Epilogue::Accumulate),
    });
}

/// The bias gradient: per-channel sums of `dz`.
fn bias_grad(g: &mut Graph, w: &mut GradWriter, p: &LayerParams, dz: Tensor, channels: usize) {
    let out = w.claim(&p.bias);
    g.push(Op::ChannelSum {
        x: dz,
        out,
        channels,
        accumulate: false,
    });
}

/// An encoder `Conv2d` layer of the model's layout, with its stage's geometry.
pub(super) struct Conv<'a>(pub &'a LayerParams, pub ConvStage);

impl Layer for Conv<'_> {
    fn spec(&self) -> &LayerSpec {
        &self.0.layer
    }

    fn forward(&self, g: &mut Graph, params: Tensor, x: Tensor, act: Activation) -> Tensor {
        let l = self.0;
        let s = shape(&self.1, x.rows);
        let y = g.matrix(format!("{}.out", l.layer.name), x.rows, s.out_len());
        g.push(Op::Conv2d {
            x,
            w: arena_view(params, &l.weight),
            y,
            shape: s,
            epilogue: Epilogue::BiasAct {
                bias: arena_view(params, &l.bias),
                act,
            },
        });
        y
    }

    fn param_grads(&self, g: &mut Graph, w: &mut GradWriter, dz: Tensor, x: Tensor) {
        weight_grad(g, w, self.0, shape(&self.1, dz.rows), x, dz);
        bias_grad(g, w, self.0, dz, self.1.out_c);
    }

    fn input_grad(
        &self,
        g: &mut Graph,
        params: Tensor,
        dz: Tensor,
        out: Tensor,
        epilogue: Epilogue,
        _dz_is_gradient: bool,
    ) {
        g.push(Op::Conv2dInputGrad {
            dy: dz,
            w: arena_view(params, &self.0.weight),
            dx: out,
            shape: shape(&self.1, dz.rows),
            epilogue,
        });
    }

    fn tangent(&self, g: &mut Graph, params: Tensor, q: Tensor, out: Tensor) {
        g.push(Op::Conv2d {
            x: q,
            w: arena_view(params, &self.0.weight),
            y: out,
            shape: shape(&self.1, q.rows),
            epilogue: Epilogue::Store,
        });
    }

    /// d/dW of Σ r · conv(q, W): the weight gradient with `q` as the input and `r` as the
    /// output gradient.
    fn tangent_param_grads(&self, g: &mut Graph, w: &mut GradWriter, r: Tensor, q: Tensor) {
        weight_grad(g, w, self.0, shape(&self.1, q.rows), q, r);
    }
}

/// A decoder `ConvTranspose2d` layer mirroring an encoder stage: from the stage's output
/// back to its input, with the bias per input channel of the stage.
pub(super) struct ConvTranspose<'a>(pub &'a LayerParams, pub ConvStage);

impl Layer for ConvTranspose<'_> {
    fn spec(&self) -> &LayerSpec {
        &self.0.layer
    }

    fn forward(&self, g: &mut Graph, params: Tensor, x: Tensor, act: Activation) -> Tensor {
        let l = self.0;
        let s = shape(&self.1, x.rows);
        let y = g.matrix(format!("{}.out", l.layer.name), x.rows, s.in_len());
        g.push(Op::Conv2dInputGrad {
            dy: x,
            w: arena_view(params, &l.weight),
            dx: y,
            shape: s,
            epilogue: Epilogue::BiasAct {
                bias: arena_view(params, &l.bias),
                act,
            },
        });
        y
    }

    /// y = Wᵀ⋆x, so dW = Σ x ⋆ dz: the conv weight gradient with the transposed conv's
    /// output gradient as the conv's input and its input as the conv's output gradient.
    fn param_grads(&self, g: &mut Graph, w: &mut GradWriter, dz: Tensor, x: Tensor) {
        weight_grad(g, w, self.0, shape(&self.1, dz.rows), dz, x);
        bias_grad(g, w, self.0, dz, self.1.in_c);
    }

    fn input_grad(
        &self,
        g: &mut Graph,
        params: Tensor,
        dz: Tensor,
        out: Tensor,
        epilogue: Epilogue,
        _dz_is_gradient: bool,
    ) {
        g.push(Op::Conv2d {
            x: dz,
            w: arena_view(params, &self.0.weight),
            y: out,
            shape: shape(&self.1, dz.rows),
            epilogue,
        });
    }

    fn tangent(&self, g: &mut Graph, params: Tensor, q: Tensor, out: Tensor) {
        g.push(Op::Conv2dInputGrad {
            dy: q,
            w: arena_view(params, &self.0.weight),
            dx: out,
            shape: shape(&self.1, q.rows),
            epilogue: Epilogue::Store,
        });
    }

    /// d/dW of Σ r · (Wᵀ⋆q): the conv weight gradient with `r` as the conv's input and `q`
    /// as its output gradient.
    fn tangent_param_grads(&self, g: &mut Graph, w: &mut GradWriter, r: Tensor, q: Tensor) {
        weight_grad(g, w, self.0, shape(&self.1, q.rows), r, q);
    }
}
