//! The forward pass alone, for encoding, decoding and reconstructing: no corruption, no
//! loss; a VAE encodes to μ and decodes the code it is given.

use crate::graph::build::layer::{chain, last_activation, single, stack};
use crate::graph::{Graph, Tensor};
use crate::model::{Activation, ModelSpec, ParamLayout, Role, Variant};

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
    if matches!(spec.variant, Variant::Psd { .. }) {
        return crate::graph::build::psd::inference_graph(spec, batch, decode_only);
    }
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let (input, code, output) = {
        let enc = stack(&layout, Role::Encoder);
        let dec = stack(&layout, Role::Decoder);
        let (input, code) = if decode_only {
            let z = g.matrix("input", batch, spec.code_dim());
            (z, z)
        } else {
            let input = g.matrix("input", batch, spec.input_dim());
            let h = chain(&mut g, params, &enc, input, last_activation(&enc));
            let trunk = h.last().copied().unwrap_or(input);
            let code = match spec.variant {
                Variant::Vae { .. } => {
                    single(&layout, Role::Mu).forward(&mut g, params, trunk, Activation::Identity)
                }
                _ => trunk,
            };
            (input, code)
        };
        let out = chain(&mut g, params, &dec, code, spec.output_activation);
        let output = *out.last().expect("a validated spec has a decoder");
        (input, code, output)
    };
    g.update_start = g.ops.len();
    InferenceGraph {
        output,
        graph: g,
        layout,
        params,
        input,
        code,
    }
}
