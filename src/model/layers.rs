//! The layers of a model in execution order, as the graph builder and the checkpoint see
//! them: each one's role, widths, activation, tie and kind (dense, conv, transposed conv), and
//! its name in PyTorch's `nn.Sequential` numbering.

use crate::model::conv::ConvStage;
use crate::model::spec::{Activation, ModelSpec, Variant};

/// Where a layer sits in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Encoder (for a VAE, its trunk).
    Encoder,
    /// VAE head producing μ.
    Mu,
    /// VAE head producing log σ².
    LogVar,
    /// Decoder.
    Decoder,
}

/// What kind of layer a [`LayerSpec`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `nn.Linear`.
    Dense,
    /// `nn.Conv2d` of an encoder stage.
    Conv(ConvStage),
    /// `nn.ConvTranspose2d` mirroring an encoder stage (from its output back to its input).
    ConvTranspose(ConvStage),
}

/// One layer of the model, as the graph builder and the checkpoint see it.
#[derive(Clone, PartialEq)]
pub struct LayerSpec {
    /// Name prefix in checkpoints, PyTorch `nn.Sequential` style (`encoder.2`).
    pub name: String,
    /// Encoder, VAE head or decoder.
    pub role: Role,
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// Activation applied to this layer's output (the output layer's is applied by the loss).
    pub activation: Activation,
    /// With tied weights: the index of the encoder layer whose weight this layer uses
    /// (transposed by a dense layer; as it is by a transposed conv).
    pub tied_to: Option<usize>,
    /// Dense, conv or transposed conv (with its geometry); `inputs` and `outputs` are then the
    /// flattened widths `C·H·W` of its input and output.
    pub kind: LayerKind,
}

/// As derived, with `kind` shown only for conv layers: a dense model's debug dump (which the
/// golden graph hashes of `tests/graph_golden.rs` pin) stays what it was before conv layers.
impl std::fmt::Debug for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("LayerSpec");
        d.field("name", &self.name)
            .field("role", &self.role)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("activation", &self.activation)
            .field("tied_to", &self.tied_to);
        if self.kind != LayerKind::Dense {
            d.field("kind", &self.kind);
        }
        d.finish()
    }
}

impl ModelSpec {
    /// Every layer in execution order: the encoder's conv layers and dense layers (for a VAE:
    /// its trunk, then the μ and log σ² heads), then the decoder's dense layers and transposed
    /// convs. Names count every module of PyTorch's `nn.Sequential`: each layer is followed by
    /// its activation, and a conv model has a `Flatten` after its last conv layer
    /// (`encoder.0` Conv2d, `encoder.1` activation, `encoder.2` Flatten, `encoder.3` Linear)
    /// and an `Unflatten` before its first transposed conv.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let mut layers = Vec::new();
        let vae = matches!(self.variant, Variant::Vae { .. });
        let stages = self.conv_stages().unwrap_or_default();
        let nconv = stages.len();
        let enc = self.encoder.len().saturating_sub(1);
        let trunk = if vae { enc.saturating_sub(1) } else { enc };
        // The last encoder layer (the code) takes the code activation; with no dense layer
        // that is the last conv.
        let enc_act = |last: bool| {
            if last && !vae {
                self.code_activation
            } else {
                self.activation
            }
        };
        for (i, st) in stages.iter().enumerate() {
            layers.push(LayerSpec {
                name: format!("encoder.{}", 2 * i),
                role: Role::Encoder,
                inputs: st.in_len(),
                outputs: st.out_len(),
                activation: enc_act(i + 1 == nconv && enc == 0),
                tied_to: None,
                kind: LayerKind::Conv(*st),
            });
        }
        // Dense modules start after the Flatten (index 2·nconv) of a conv model.
        let first_dense = if nconv > 0 { 2 * nconv + 1 } else { 0 };
        for k in 0..trunk {
            layers.push(LayerSpec {
                name: format!("encoder.{}", first_dense + 2 * k),
                role: Role::Encoder,
                inputs: self.encoder[k],
                outputs: self.encoder[k + 1],
                activation: if k + 1 == enc {
                    self.code_activation
                } else {
                    self.activation
                },
                tied_to: None,
                kind: LayerKind::Dense,
            });
        }
        if vae && enc > 0 {
            for (name, role) in [("fc_mu", Role::Mu), ("fc_logvar", Role::LogVar)] {
                layers.push(LayerSpec {
                    name: name.into(),
                    role,
                    inputs: self.encoder[enc - 1],
                    outputs: self.encoder[enc],
                    activation: Activation::Identity,
                    tied_to: None,
                    kind: LayerKind::Dense,
                });
            }
        }
        let dec = self.decoder.len().saturating_sub(1);
        for k in 0..dec {
            layers.push(LayerSpec {
                name: format!("decoder.{}", 2 * k),
                role: Role::Decoder,
                inputs: self.decoder[k],
                outputs: self.decoder[k + 1],
                activation: if k + 1 == dec && nconv == 0 {
                    self.output_activation
                } else {
                    self.activation
                },
                tied_to: self.tied.then(|| nconv + enc - 1 - k),
                kind: LayerKind::Dense,
            });
        }
        // The Unflatten is decoder.(2·dec); transposed convs follow, the last conv first.
        for j in 0..nconv {
            let st = stages[nconv - 1 - j];
            layers.push(LayerSpec {
                name: format!("decoder.{}", 2 * dec + 1 + 2 * j),
                role: Role::Decoder,
                inputs: st.out_len(),
                outputs: st.in_len(),
                activation: if j + 1 == nconv {
                    self.output_activation
                } else {
                    self.activation
                },
                tied_to: self.tied.then_some(nconv - 1 - j),
                kind: LayerKind::ConvTranspose(st),
            });
        }
        layers
    }
}
