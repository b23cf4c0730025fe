//! The regularized autoencoders, one module each: what a variant adds to the plain training
//! step, through the hooks of [`Regularizer`] that the step calls in order. Denoising corrupts
//! the input; the VAE puts its heads and sampler between the encoder and the decoder, and
//! takes the gradient back through them; sparse and contractive add a penalty on the code.
//! A plain autoencoder adds nothing.

mod contractive;
mod denoising;
mod sparse;
mod vae;

use crate::graph::build::LossTerm;
use crate::graph::build::backward::{Extra, GradWriter};
use crate::graph::build::layer::Layer;
use crate::graph::{Epilogue, Graph, Tensor};
use crate::model::{Activation, ModelSpec, ParamLayout, Variant};

/// What the step's forward pass produced, for the penalties and the backward hooks.
pub(super) struct Forward<'f, 'l> {
    /// Parameter arena.
    pub params: Tensor,
    /// The encoder (a VAE's trunk).
    pub enc: &'f [Box<dyn Layer + 'l>],
    /// `[B, D]` what the encoder saw.
    pub input: Tensor,
    /// Each encoder layer's output.
    pub h: &'f [Tensor],
    /// The encoder's output (`input` when it has no layers).
    pub trunk: Tensor,
    /// `[B, c]` the code (μ for a VAE).
    pub code: Tensor,
    /// The first decoder layer's input (z for a VAE).
    pub decoder_input: Tensor,
    /// The code layer's activation.
    pub code_act: Activation,
    /// Rows of the batch.
    pub batch: usize,
}

/// What a variant adds to the training step. Each hook's default is the plain autoencoder's.
pub(super) trait Regularizer {
    /// The batch the encoder sees, from the clean batch `x`.
    fn corrupt(&self, _g: &mut Graph, x: Tensor) -> Tensor {
        x
    }

    /// From the encoder's output to (the code, the decoder's input); may add forward ops,
    /// activations and loss terms.
    fn code(
        &mut self,
        _g: &mut Graph,
        _params: Tensor,
        trunk: Tensor,
        _activations: &mut Vec<Tensor>,
        _terms: &mut Vec<LossTerm>,
    ) -> (Tensor, Tensor) {
        (trunk, trunk)
    }

    /// Adds a penalty: ops now, its loss term, and `extras[k]`, added to encoder layer k's
    /// pre-activation gradient when the backward pass reaches it.
    fn penalty(
        &mut self,
        _g: &mut Graph,
        _w: &mut GradWriter,
        _f: &Forward,
        _extras: &mut [Vec<Extra>],
        _terms: &mut Vec<LossTerm>,
    ) {
    }

    /// The buffer the decoder's backward pass writes its input gradient to, and its epilogue
    /// (`None`: no encoder below wants it). Plain: the code's pre-activation gradient.
    fn decoder_input_grad(&self, g: &mut Graph, f: &Forward) -> (Tensor, Option<Epilogue>) {
        let dcode = g.matrix("code.grad", f.batch, f.code.cols);
        let epilogue = (!f.enc.is_empty()).then_some(Epilogue::ActGrad {
            y: f.code,
            act: f.code_act,
        });
        (dcode, epilogue)
    }

    /// From the decoder's input gradient `dcode` to the pre-activation gradient of the
    /// encoder's last layer, when it has one.
    fn grad_to_encoder(
        &mut self,
        _g: &mut Graph,
        _w: &mut GradWriter,
        f: &Forward,
        dcode: Tensor,
    ) -> Option<Tensor> {
        (!f.enc.is_empty()).then_some(dcode)
    }
}

/// The plain autoencoder: every hook's default.
struct Plain;

impl Regularizer for Plain {}

/// The hooks of `spec`'s variant, over the layers of `layout`.
pub(super) fn regularizer<'l>(
    spec: &ModelSpec,
    layout: &'l ParamLayout,
) -> Box<dyn Regularizer + 'l> {
    match spec.variant {
        Variant::Plain => Box::new(Plain),
        Variant::Denoising { noise } => Box::new(denoising::Denoising { noise }),
        Variant::Sparse { lambda, target } => Box::new(sparse::Sparse { lambda, target }),
        Variant::Contractive {
            lambda,
            projections,
        } => Box::new(contractive::Contractive {
            lambda,
            projections,
        }),
        Variant::Vae { beta, samples } => Box::new(vae::Vae::new(layout, beta, samples)),
        // Its whole step is built by `build::psd`; it never asks for hooks.
        Variant::Psd { .. } => Box::new(Plain),
    }
}
