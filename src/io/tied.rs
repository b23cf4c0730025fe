//! The transposed copies of tied weights in a checkpoint. A tied decoder layer owns no weight
//! (it multiplies by the mirrored encoder weight, transposed), but PyTorch's strict
//! `load_state_dict` into an `nn.Sequential` of `nn.Linear` needs a `decoder.N.weight` for
//! every layer. So checkpoints carry each as a copy, `[outputs, inputs]` like any other; on
//! load a copy must equal the transpose of the encoder weight it mirrors (an edited copy would
//! otherwise be silently ignored). Checkpoints written without the copies still load.

use safetensors::{Dtype, SafeTensors};

use crate::model::{LayerKind, Parameters};

/// One tied layer's copy: the name it is saved under, its shape and values.
pub struct TiedCopy {
    /// `decoder.N.weight`.
    pub name: String,
    /// The encoder weight it is the transpose of.
    pub source: String,
    /// `[outputs, inputs]` of the decoder layer.
    pub shape: Vec<usize>,
    /// Row-major values: `copy[o][i] = encoder[i][o]`.
    pub values: Vec<f32>,
}

/// The copies of every tied layer of `params`, in layer order.
pub fn copies(params: &Parameters) -> Vec<TiedCopy> {
    params
        .layout
        .layers
        .iter()
        .filter(|l| l.transposed)
        .map(|l| {
            if let LayerKind::ConvTranspose(_) = l.layer.kind {
                // A tied transposed conv uses the conv's [out, in, k, k] weight as it is,
                // which is also its own PyTorch layout: the copy is the same tensor.
                return TiedCopy {
                    name: format!("{}.weight", l.layer.name),
                    source: l.weight.name.clone(),
                    shape: l.weight.shape.clone(),
                    values: params.tensor(&l.weight).to_vec(),
                };
            }
            // The encoder weight is [rows, cols] = [decoder inputs, decoder outputs].
            let (rows, cols) = (l.weight.shape[0], l.weight.shape[1]);
            let w = params.tensor(&l.weight);
            let values = (0..cols)
                .flat_map(|o| (0..rows).map(move |i| w[i * cols + o]))
                .collect();
            TiedCopy {
                name: format!("{}.weight", l.layer.name),
                source: l.weight.name.clone(),
                shape: vec![cols, rows],
                values,
            }
        })
        .collect()
}

/// The names of the copies `params` would carry.
pub fn names(params: &Parameters) -> Vec<String> {
    copies(params).into_iter().map(|c| c.name).collect()
}

/// Checks every copy present in `st` against the parameters loaded from it: F32, the decoder
/// layer's shape, and exactly the transpose of its encoder weight.
pub fn check(st: &SafeTensors, params: &Parameters) -> std::result::Result<(), String> {
    for copy in copies(params) {
        let Ok(view) = st.tensor(&copy.name) else {
            continue;
        };
        if view.dtype() != Dtype::F32 || view.shape() != copy.shape.as_slice() {
            return Err(format!(
                "tensor '{}' is {:?} {:?}, but as the tied copy of '{}' it must be F32 {:?}",
                copy.name,
                view.dtype(),
                view.shape(),
                copy.source,
                copy.shape
            ));
        }
        let stored = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if let Some(k) = stored
            .zip(&copy.values)
            .position(|(a, &b)| a.to_bits() != b.to_bits())
        {
            if copy.shape.len() == 4 {
                return Err(format!(
                    "tensor '{}' differs from '{}' at element {k}: the transposed conv is tied \
                     to the conv, so edit '{}' instead, or delete the copy",
                    copy.name, copy.source, copy.source
                ));
            }
            let (o, i) = (k / copy.shape[1], k % copy.shape[1]);
            return Err(format!(
                "tensor '{}' is not the transpose of '{}' (element [{o}, {i}] differs): the \
                 decoder is tied to the encoder, so edit '{}' instead, or delete the copy",
                copy.name, copy.source, copy.source
            ));
        }
    }
    Ok(())
}
