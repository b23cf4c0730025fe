//! What a layer type must know to take part in a graph: its forward op, the two halves of its
//! backward pass (the gradients of its parameters, and of its input), and the tangent passes
//! the Jacobian graph and the contractive penalty run through it. The builder walks stacks of
//! `dyn Layer` and never looks inside one; a layer type (dense, conv) is one module that
//! implements [`Layer`], and [`stack`] is the one place that picks the type of each layer of a
//! model's layout.

use crate::graph::build::backward::GradWriter;
use crate::graph::build::conv::{Conv, ConvTranspose};
use crate::graph::build::dense::Dense;
use crate::graph::{Epilogue, Graph, Tensor};
use crate::model::{Activation, LayerKind, LayerSpec, ParamLayout, Role};

/// One layer of a model, as the graph builder emits it. Every product it emits takes its
/// parameters from the arena view `params` and writes their gradients through a
/// [`GradWriter`].
pub(super) trait Layer {
    /// Name, role, widths and activation.
    fn spec(&self) -> &LayerSpec;

    /// The layer as a dense layer, for what is defined for dense layers only (the closed-form
    /// contractive penalty).
    fn as_dense(&self) -> Option<&Dense<'_>> {
        None
    }

    /// Appends the forward op `y = act(layer(x))` with `act` overriding the layer's own
    /// activation, and returns `y`.
    fn forward(&self, g: &mut Graph, params: Tensor, x: Tensor, act: Activation) -> Tensor;

    /// Appends the gradients of the layer's parameters from `dz`, the gradient at its output
    /// before the activation, and `x`, its input.
    fn param_grads(&self, g: &mut Graph, w: &mut GradWriter, dz: Tensor, x: Tensor);

    /// Appends `out = epilogue(dz pulled back to the layer's input)`; `dz_is_gradient` is
    /// false when `dz` is not a loss gradient (a Jacobian pulled back through the layer).
    fn input_grad(
        &self,
        g: &mut Graph,
        params: Tensor,
        dz: Tensor,
        out: Tensor,
        epilogue: Epilogue,
        dz_is_gradient: bool,
    );

    /// Appends `out = q` pushed forward through the layer's linear part (no bias, no
    /// activation): the tangent at its output before the activation, for tangents `q` at
    /// its input.
    fn tangent(&self, g: &mut Graph, params: Tensor, q: Tensor, out: Tensor);

    /// Appends the parameter gradient of a pushed-forward tangent: the loss gradient `q` at
    /// the layer's input against the pulled-back directions `r` at its output (not a loss
    /// gradient).
    fn tangent_param_grads(&self, g: &mut Graph, w: &mut GradWriter, r: Tensor, q: Tensor);
}

/// The layers of `layout` with role `role`, in execution order.
pub(super) fn stack(layout: &ParamLayout, role: Role) -> Vec<Box<dyn Layer + '_>> {
    layout
        .layers
        .iter()
        .filter(|l| l.layer.role == role)
        .map(|l| match l.layer.kind {
            LayerKind::Dense => Box::new(Dense(l)) as Box<dyn Layer + '_>,
            LayerKind::Conv(st) => Box::new(Conv(l, st)),
            LayerKind::ConvTranspose(st) => Box::new(ConvTranspose(l, st)),
        })
        .collect()
}

/// The one layer of `layout` with role `role` (a VAE head).
pub(super) fn single(layout: &ParamLayout, role: Role) -> Box<dyn Layer + '_> {
    stack(layout, role)
        .into_iter()
        .next()
        .expect("a VAE layout has both heads")
}

/// The activation a stack ends in (identity for an empty one).
pub(super) fn last_activation(layers: &[Box<dyn Layer + '_>]) -> Activation {
    layers
        .last()
        .map_or(Activation::Identity, |l| l.spec().activation)
}

/// Appends the forward ops of a stack of layers from `input`; the last uses `last_act`.
/// Returns each layer's output.
pub(super) fn chain(
    g: &mut Graph,
    params: Tensor,
    layers: &[Box<dyn Layer + '_>],
    input: Tensor,
    last_act: Activation,
) -> Vec<Tensor> {
    let mut x = input;
    let mut outs = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        let act = if k + 1 == layers.len() {
            last_act
        } else {
            l.spec().activation
        };
        x = l.forward(g, params, x, act);
        outs.push(x);
    }
    outs
}
