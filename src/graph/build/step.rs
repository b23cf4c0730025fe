//! One training step's forward and backward pass at one batch size: gather the batch, let
//! the variant corrupt it, run the encoder, the variant's code (a VAE's heads and sampler),
//! the decoder and the loss, add the variant's penalty, and run the backward pass down
//! through the decoder, the variant's backward hook and the encoder, into the gradient arena.

use crate::graph::build::LossTerm;
use crate::graph::build::backward::{Extra, GradPingPong, GradWriter, Pass, backward};
use crate::graph::build::layer::{chain, last_activation, stack};
use crate::graph::build::training::StepOps;
use crate::graph::build::variants::{Forward, regularizer};
use crate::graph::{Graph, Op, Tensor};
use crate::model::{Activation, ModelSpec, ParamLayout, Role};

/// The buffers every step program of a training graph shares.
#[derive(Clone, Copy)]
pub(super) struct SharedBuffers {
    pub data: Tensor,
    pub order: Tensor,
    pub params: Tensor,
    pub grads: Tensor,
    /// Mixed precision: the flag each step's forward pass writes for the loss-scale update.
    pub forward_finite: Option<Tensor>,
}

/// Appends one step's forward and backward pass at batch size `batch` (gather, corruption,
/// forward, loss, penalties, backward into `shared.grads`) with activation buffers of its own.
pub(super) fn append_step(
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
    if matches!(spec.variant, crate::model::Variant::Psd { .. }) {
        return crate::graph::build::psd::append_step(g, spec, layout, shared, batch);
    }
    let d = spec.input_dim();
    let first_op = g.ops.len();
    let mut w = GradWriter::new(grads);
    let mut variant = regularizer(spec, layout);
    let x = g.matrix("batch", batch, d);
    g.push(Op::Gather {
        data,
        order,
        out: x,
    });
    let input = variant.corrupt(g, x);

    // Forward through the encoder (a VAE's trunk), the variant's code, the decoder.
    let enc = stack(layout, Role::Encoder);
    let dec = stack(layout, Role::Decoder);
    let h = chain(g, params, &enc, input, last_activation(&enc));
    let trunk = h.last().copied().unwrap_or(input);
    let mut activations = h.clone();
    let mut terms = Vec::new();
    let (code, decoder_input) = variant.code(g, params, trunk, &mut activations, &mut terms);
    let dec_out = chain(g, params, &dec, decoder_input, Activation::Identity);
    activations.extend(&dec_out);

    // The loss; the output activation is fused into it.
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

    // The penalty: ops now, and extras to add to encoder layers' pre-activation gradients
    // once the backward pass has produced them.
    let f = Forward {
        params,
        enc: &enc,
        input,
        h: &h,
        trunk,
        code,
        decoder_input,
        code_act: spec.code_activation,
        batch,
    };
    let mut extras: Vec<Vec<Extra>> = (0..enc.len()).map(|_| Vec::new()).collect();
    variant.penalty(g, &mut w, &f, &mut extras, &mut terms);

    // Backward through the decoder, its first layer's input gradient going where the variant
    // says; then through the variant into the encoder, and through the encoder.
    let (dcode, to_code) = variant.decoder_input_grad(g, &f);
    let mut dec_inputs = vec![decoder_input];
    dec_inputs.extend(&dec_out[..dec_out.len() - 1]);
    let mut no_extras: Vec<Vec<Extra>> = (0..dec.len()).map(|_| Vec::new()).collect();
    let mut pool = GradPingPong::new(layout, logits.rows);
    let decoder = Pass {
        layers: &dec,
        inputs: &dec_inputs,
        outputs: &dec_out,
    };
    let to_code = to_code.map(|epilogue| (dcode, epilogue));
    backward(
        g,
        params,
        &mut w,
        decoder,
        dlogits,
        &mut no_extras,
        to_code,
        &mut pool,
    );
    if let Some(dz) = variant.grad_to_encoder(g, &mut w, &f, dcode) {
        let mut enc_inputs = vec![input];
        enc_inputs.extend(&h[..h.len() - 1]);
        let encoder = Pass {
            layers: &enc,
            inputs: &enc_inputs,
            outputs: &h,
        };
        backward(g, params, &mut w, encoder, dz, &mut extras, None, &mut pool);
    }

    StepOps {
        rows: batch,
        ops: first_op..g.ops.len(),
        batch: x,
        input,
        activations,
        code,
        terms,
        measures: Vec::new(),
    }
}
