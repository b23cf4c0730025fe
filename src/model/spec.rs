//! The model specification: layer sizes, activations and loss. It is what a user writes (on the
//! command line or through the builder), what a checkpoint stores as JSON, and what the graph
//! builder compiles.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The version of the spec JSON this build writes; loading refuses newer versions.
pub const SPEC_VERSION: u32 = 1;

/// An element-wise nonlinearity. The numeric codes are shared with the WGSL kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// f(x) = x.
    Identity,
    /// f(x) = max(x, 0).
    Relu,
    /// f(x) = x for x > 0, 0.01·x otherwise (PyTorch's default slope).
    LeakyRelu,
    /// f(x) = 1 / (1 + e^-x).
    Sigmoid,
    /// f(x) = tanh(x).
    Tanh,
}

/// The negative-side slope of [`Activation::LeakyRelu`]; `shaders/activation.wgsl` has the same.
pub const LEAKY_RELU_SLOPE: f32 = 0.01;

impl Activation {
    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu => 2,
            Activation::Sigmoid => 3,
            Activation::Tanh => 4,
        }
    }

    /// Every activation, for tests and help texts.
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// Parses the command-line name (`relu`, `leaky_relu`, ...).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "identity" | "linear" | "none" => Activation::Identity,
            "relu" => Activation::Relu,
            "leaky_relu" | "leaky-relu" => Activation::LeakyRelu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            other => {
                return Err(Error::Config(format!(
                    "unknown activation '{other}' (expected identity, relu, leaky_relu, sigmoid or tanh)"
                )));
            }
        })
    }
}

/// The reconstruction loss, summed over features and averaged over the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Squared error Σ (y − x)².
    Mse,
    /// Bernoulli cross-entropy computed from logits: Σ softplus(z) − x·z.
    Bce,
}

impl Loss {
    /// The code the WGSL loss kernel switches on.
    pub fn code(self) -> u32 {
        match self {
            Loss::Mse => 0,
            Loss::Bce => 1,
        }
    }
}

/// A deep MLP autoencoder: the encoder maps `encoder[0]` inputs down to `encoder.last()` code
/// units, the decoder maps them back up through `decoder` to `encoder[0]` outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Spec format version ([`SPEC_VERSION`]).
    pub version: u32,
    /// Layer widths of the encoder, input first, code last (e.g. `[784, 512, 256, 32]`).
    pub encoder: Vec<usize>,
    /// Layer widths of the decoder, code first, output last (e.g. `[32, 256, 512, 784]`).
    pub decoder: Vec<usize>,
    /// Activation of every hidden layer.
    pub activation: Activation,
    /// Activation of the encoder's last layer (the code).
    pub code_activation: Activation,
    /// Activation of the decoder's last layer: sigmoid or identity.
    pub output_activation: Activation,
    /// Reconstruction loss.
    pub loss: Loss,
}

/// One dense layer of the model, as the graph builder and the checkpoint see it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Name prefix in checkpoints, PyTorch `nn.Sequential` style (`encoder.2`).
    pub name: String,
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// Activation applied to this layer's output (the output layer's is applied by the loss).
    pub activation: Activation,
}

impl ModelSpec {
    /// A spec with the decoder mirrored from the encoder and the usual defaults: ReLU hidden
    /// layers, a linear code, a sigmoid output and cross-entropy loss.
    pub fn mirrored(encoder: &[usize]) -> Self {
        let mut decoder = encoder.to_vec();
        decoder.reverse();
        ModelSpec {
            version: SPEC_VERSION,
            encoder: encoder.to_vec(),
            decoder,
            activation: Activation::Relu,
            code_activation: Activation::Identity,
            output_activation: Activation::Sigmoid,
            loss: Loss::Bce,
        }
    }

    /// Width of the input (and of the reconstruction).
    pub fn input_dim(&self) -> usize {
        self.encoder[0]
    }

    /// Width of the code.
    pub fn code_dim(&self) -> usize {
        *self.encoder.last().unwrap_or(&0)
    }

    /// Checks that the spec describes a model that can be built; every message names the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.version > SPEC_VERSION {
            return bad(format!(
                "model spec version {} is newer than this build understands ({SPEC_VERSION}); upgrade hourglass",
                self.version
            ));
        }
        if self.encoder.len() < 2 {
            return bad(format!(
                "the encoder needs at least an input and a code size (e.g. 784,32), got {:?}",
                self.encoder
            ));
        }
        if self.decoder.len() < 2 {
            return bad(format!(
                "the decoder needs at least a code and an output size, got {:?}",
                self.decoder
            ));
        }
        if let Some(z) = self.encoder.iter().chain(&self.decoder).find(|&&w| w == 0) {
            return bad(format!("layer sizes must be positive, got {z}"));
        }
        if self.decoder[0] != self.code_dim() {
            return bad(format!(
                "the decoder must start at the code size {} but starts at {}",
                self.code_dim(),
                self.decoder[0]
            ));
        }
        if *self.decoder.last().unwrap_or(&0) != self.input_dim() {
            return bad(format!(
                "the decoder must end at the input size {} but ends at {}",
                self.input_dim(),
                self.decoder.last().unwrap_or(&0)
            ));
        }
        if !matches!(
            self.output_activation,
            Activation::Sigmoid | Activation::Identity
        ) {
            return bad(format!(
                "the output activation must be sigmoid or identity, got {:?}",
                self.output_activation
            ));
        }
        if self.loss == Loss::Bce && self.output_activation != Activation::Sigmoid {
            return bad(
                "cross-entropy (--loss bce) needs a sigmoid output (--output-activation sigmoid)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Every dense layer in execution order: encoder then decoder.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let mut layers = Vec::new();
        let enc = self.encoder.len() - 1;
        for k in 0..enc {
            layers.push(LayerSpec {
                name: format!("encoder.{}", 2 * k),
                inputs: self.encoder[k],
                outputs: self.encoder[k + 1],
                activation: if k + 1 == enc {
                    self.code_activation
                } else {
                    self.activation
                },
            });
        }
        let dec = self.decoder.len() - 1;
        for k in 0..dec {
            layers.push(LayerSpec {
                name: format!("decoder.{}", 2 * k),
                inputs: self.decoder[k],
                outputs: self.decoder[k + 1],
                activation: if k + 1 == dec {
                    self.output_activation
                } else {
                    self.activation
                },
            });
        }
        layers
    }

    /// Number of encoder layers: the code is the output of layer `encoder_layers() - 1`.
    pub fn encoder_layers(&self) -> usize {
        self.encoder.len() - 1
    }

    /// The spec as the JSON stored in checkpoints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ModelSpec always serializes")
    }

    /// Parses and validates spec JSON.
    pub fn from_json(json: &str) -> Result<Self> {
        let spec: ModelSpec = serde_json::from_str(json)
            .map_err(|e| Error::Config(format!("model spec JSON: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }
}
