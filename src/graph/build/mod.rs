//! Compiles a model spec into graphs: the training step (gather, corruption, forward, loss,
//! regularizers, backward, update) and the forward pass alone (encode / decode / reconstruct).
//!
//! The rooms:
//! - `layer`: what a layer type must emit (forward, backward, Jacobian passes) and the
//!   stacks of layers a model's layout holds; `dense` is the dense (linear) layer, `conv` the
//!   Conv2d and ConvTranspose2d layers. A new layer type is one new module implementing
//!   `layer::Layer`.
//! - `backward`: the layer-by-layer backward pass and the bookkeeping of the gradient arena.
//! - `variants`: one module per regularized autoencoder, each adding its corruption, heads
//!   or penalty to the step through the hooks of `variants::Regularizer`.
//! - `step`: one training step's forward and backward pass, the variant's hooks in order.
//! - `training`, `inference`, `jacobian`: the three graphs and their public entry points.

mod backward;
mod conv;
mod dense;
mod inference;
mod jacobian;
mod layer;
mod psd;
mod step;
mod training;
mod variants;

pub use inference::{InferenceGraph, build_inference_graph};
pub use jacobian::{JacobianGraph, build_jacobian_graph};
pub use psd::{InferSegment, PsdInferGraph, build_psd_infer_graph};
pub use training::{
    StepOps, TrainingGraph, build_accumulating_training_graph, build_training_graph,
    build_training_graph_clipped, build_training_graph_with_tail,
};

use crate::graph::Tensor;
use crate::model::ParamTensor;

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

/// A view of one parameter tensor inside an arena buffer, as a matrix (`[1, n]` for biases).
pub fn arena_view(arena: Tensor, p: &ParamTensor) -> Tensor {
    let (rows, cols) = match p.shape.as_slice() {
        [r, c] => (*r, *c),
        [n] => (1, *n),
        // A conv weight [out, in, k, k] is the matrix [out, in·k²].
        [r, rest @ ..] => (*r, rest.iter().product()),
        [] => (1, p.len()),
    };
    Tensor {
        buf: arena.buf,
        offset: arena.offset + p.offset,
        rows,
        cols,
    }
}
