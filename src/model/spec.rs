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

/// The key of [`LEAKY_RELU_SLOPE`] in the spec JSON of a checkpoint.
pub const LEAKY_SLOPE_KEY: &str = "leaky_relu_slope";

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
    /// Decoder layer k uses the transpose of the mirrored encoder weight (needs a mirrored
    /// decoder); the decoder then owns only its biases.
    #[serde(default)]
    pub tied: bool,
    /// Which regularized autoencoder this is.
    #[serde(default)]
    pub variant: Variant,
}

/// Input corruption of a denoising autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Noise {
    /// Each input component is zeroed with probability ν (the masking noise of Vincent et al. 2008).
    Mask {
        /// Destruction proportion ν ∈ [0, 1).
        nu: f32,
    },
    /// Adds N(0, σ²) to each component.
    Gaussian {
        /// Standard deviation σ ≥ 0.
        sigma: f32,
    },
    /// Each component is set to 0 or 1 (equally likely) with probability ν.
    SaltPepper {
        /// Corrupted proportion ν ∈ [0, 1).
        nu: f32,
    },
}

impl Noise {
    /// Parses `mask:ν`, `gaussian:σ` or `saltpepper:ν`.
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            Error::Config(format!(
                "noise '{s}' should be mask:ν, gaussian:σ or saltpepper:ν (e.g. mask:0.25)"
            ))
        })?;
        let v: f32 = value
            .parse()
            .map_err(|_| Error::Config(format!("noise level '{value}' is not a number")))?;
        let noise = match kind {
            "mask" => Noise::Mask { nu: v },
            "gaussian" => Noise::Gaussian { sigma: v },
            "saltpepper" | "salt-pepper" => Noise::SaltPepper { nu: v },
            other => {
                return Err(Error::Config(format!(
                    "unknown noise '{other}' (expected mask, gaussian or saltpepper)"
                )));
            }
        };
        noise.validate()?;
        Ok(noise)
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Noise::Mask { nu } | Noise::SaltPepper { nu } if !(0.0..1.0).contains(&nu) => {
                Err(Error::Config(format!(
                    "the noise proportion ν must be in [0, 1), got {nu}"
                )))
            }
            Noise::Gaussian { sigma } if !(sigma.is_finite() && sigma >= 0.0) => Err(
                Error::Config(format!("the noise σ must be ≥ 0, got {sigma}")),
            ),
            _ => Ok(()),
        }
    }
}

/// The regularized autoencoder family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Variant {
    /// Reconstruction loss only.
    #[default]
    Plain,
    /// λ Σ|h| on the code, averaged over the batch; or, with a target ρ, λ Σ_j KL(ρ ‖ ρ̂_j) where
    /// ρ̂_j is unit j's mean activation over the batch (sigmoid codes).
    Sparse {
        /// λ ≥ 0.
        lambda: f32,
        /// Target activation ρ ∈ (0, 1) for the KL form.
        target: Option<f32>,
    },
    /// Reconstruct the clean input from a corrupted one.
    Denoising {
        /// The corruption.
        noise: Noise,
    },
    /// λ ‖∂h/∂x‖²_F averaged over the batch.
    Contractive {
        /// λ ≥ 0.
        lambda: f32,
        /// Estimate with this many random projections instead of computing exactly.
        projections: Option<u32>,
    },
    /// Variational: the last encoder size is the latent size, reached through two heads μ and
    /// log σ²; loss = reconstruction + β KL(q(z|x) ‖ N(0, I)), with `samples` draws of z per input.
    Vae {
        /// KL weight β ≥ 0.
        beta: f32,
        /// Samples of z per input, ≥ 1.
        samples: u32,
    },
}

/// Where a dense layer sits in the model.
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

/// One dense layer of the model, as the graph builder and the checkpoint see it.
#[derive(Clone, Debug, PartialEq)]
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
    /// With tied weights: the index of the encoder layer whose weight this layer uses, transposed.
    pub tied_to: Option<usize>,
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
            tied: false,
            variant: Variant::Plain,
        }
    }

    /// True when the decoder sizes are the encoder sizes reversed.
    pub fn is_mirrored(&self) -> bool {
        self.decoder.iter().rev().eq(self.encoder.iter())
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
                "cross-entropy (loss = bce) needs a sigmoid output (output_activation = sigmoid)"
                    .into(),
            );
        }
        if self.tied && !self.is_mirrored() {
            return bad(format!(
                "tied weights need a mirrored decoder ({:?}), got {:?}",
                self.encoder.iter().rev().collect::<Vec<_>>(),
                self.decoder
            ));
        }
        crate::limits::check_spec(self)?;
        let nonneg = |name: &str, x: f32| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} must be ≥ 0, got {x}")))
            }
        };
        match self.variant {
            Variant::Plain => {}
            Variant::Sparse { lambda, target } => {
                nonneg("the sparsity weight λ", lambda)?;
                if let Some(rho) = target {
                    if !(rho > 0.0 && rho < 1.0) {
                        return bad(format!(
                            "the sparsity target ρ must be in (0, 1), got {rho}"
                        ));
                    }
                    if self.code_activation != Activation::Sigmoid {
                        return bad("a sparsity target (KL sparsity) needs a sigmoid code \
                                    (code_activation = sigmoid)"
                            .into());
                    }
                }
            }
            Variant::Denoising { noise } => noise.validate()?,
            Variant::Contractive {
                lambda,
                projections,
            } => {
                nonneg("the contractive weight λ", lambda)?;
                if projections == Some(0) {
                    return bad("contractive projections must be at least 1".into());
                }
            }
            Variant::Vae { beta, samples } => {
                nonneg("the KL weight β", beta)?;
                if samples == 0 {
                    return bad("VAE samples must be at least 1".into());
                }
                if self.tied {
                    return bad("a VAE cannot tie weights: its encoder ends in two heads".into());
                }
            }
        }
        Ok(())
    }

    /// Every dense layer in execution order: encoder (for a VAE: its trunk, then the μ and
    /// log σ² heads), then decoder.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let mut layers = Vec::new();
        let vae = matches!(self.variant, Variant::Vae { .. });
        let enc = self.encoder.len() - 1;
        let trunk = if vae { enc - 1 } else { enc };
        for k in 0..trunk {
            layers.push(LayerSpec {
                name: format!("encoder.{}", 2 * k),
                role: Role::Encoder,
                inputs: self.encoder[k],
                outputs: self.encoder[k + 1],
                activation: if k + 1 == enc {
                    self.code_activation
                } else {
                    self.activation
                },
                tied_to: None,
            });
        }
        if vae {
            for (name, role) in [("fc_mu", Role::Mu), ("fc_logvar", Role::LogVar)] {
                layers.push(LayerSpec {
                    name: name.into(),
                    role,
                    inputs: self.encoder[enc - 1],
                    outputs: self.encoder[enc],
                    activation: Activation::Identity,
                    tied_to: None,
                });
            }
        }
        let dec = self.decoder.len() - 1;
        for k in 0..dec {
            layers.push(LayerSpec {
                name: format!("decoder.{}", 2 * k),
                role: Role::Decoder,
                inputs: self.decoder[k],
                outputs: self.decoder[k + 1],
                activation: if k + 1 == dec {
                    self.output_activation
                } else {
                    self.activation
                },
                tied_to: self.tied.then(|| enc - 1 - k),
            });
        }
        layers
    }

    /// Number of encoder layers before the code (for a VAE: trunk layers before the heads).
    pub fn encoder_layers(&self) -> usize {
        match self.variant {
            Variant::Vae { .. } => self.encoder.len() - 2,
            _ => self.encoder.len() - 1,
        }
    }

    /// The spec as the JSON stored in checkpoints, with the leaky-ReLU slope this build
    /// computes under [`LEAKY_SLOPE_KEY`] (so a reader outside hourglass can rebuild
    /// `nn.LeakyReLU(negative_slope)`).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a ModelSpec always serializes");
        if let Some(map) = value.as_object_mut() {
            // The f32 in its shortest decimal form (0.01, not 0.009999999776482582).
            let slope: f64 = LEAKY_RELU_SLOPE.to_string().parse().unwrap_or(0.01);
            map.insert(LEAKY_SLOPE_KEY.into(), serde_json::json!(slope));
        }
        value.to_string()
    }

    /// Parses and validates spec JSON. A leaky-ReLU slope other than the one this build
    /// computes ([`LEAKY_RELU_SLOPE`]) is refused; JSON without one (older checkpoints) means
    /// that slope.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::Config(format!("model spec JSON: {e}")))?;
        match value.get(LEAKY_SLOPE_KEY) {
            None => {}
            Some(slope) if slope.as_f64().map(|v| v as f32) == Some(LEAKY_RELU_SLOPE) => {}
            Some(slope) => {
                return Err(Error::Config(format!(
                    "model spec JSON: {LEAKY_SLOPE_KEY} is {slope}, but hourglass computes \
                     leaky ReLU with slope {LEAKY_RELU_SLOPE} only"
                )));
            }
        }
        let spec: ModelSpec = serde_json::from_value(value)
            .map_err(|e| Error::Config(format!("model spec JSON: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }
}
