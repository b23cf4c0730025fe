//! The model specification: layer sizes, activations and loss. It is what a user writes (on the
//! command line or through the builder), what a checkpoint stores as JSON, and what the graph
//! builder compiles.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::conv::{ConvSpec, ConvStage, EncoderToken, ImageShape, split_tokens, stages};
/// The layer list moved to [`crate::model::layers`]; these paths keep working.
pub use crate::model::layers::{LayerKind, LayerSpec, Role};

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

/// A deep autoencoder: the encoder maps `encoder[0]` inputs down to `encoder.last()` code
/// units, the decoder maps them back up through `decoder` to `encoder[0]` outputs.
///
/// A convolutional model also has an `input_shape` and `conv` layers: the encoder runs the
/// conv layers on the `C×H×W` input first, flattens, and then its dense layers start from the
/// flattened width, `encoder[0]`; the decoder's dense layers end there, unflatten, and run one
/// mirrored ConvTranspose2d per conv layer back to the input shape.
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
    /// The shape of an input row as an image (needed by conv layers; optional otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<ImageShape>,
    /// Conv layers the encoder runs before its dense layers, each mirrored by a
    /// ConvTranspose2d at the end of the decoder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvSpec>,
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
    /// Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008): per example
    /// min over h of ‖x − D h‖² + λ‖h‖₁ + γ‖h − f(x)‖², with a linear dictionary decoder D
    /// (unit-norm columns) and a fast encoder f(x) = g ⊙ tanh(W x + b) trained to predict the
    /// optimal code h*. One code layer, squared error, identity output (see [`crate::model::psd`]).
    Psd {
        /// L1 weight λ ≥ 0 (`--sparsity`).
        lambda: f32,
        /// Weight γ ≥ 0 of the prediction term (`--prediction`).
        gamma: f32,
        /// FISTA iterations of the inference per training step, ≥ 1 (`--inference-steps`).
        inference_steps: u32,
    },
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
            input_shape: None,
            conv: Vec::new(),
        }
    }

    /// A mirrored spec (with the defaults of [`ModelSpec::mirrored`]) from the tokens of an
    /// encoder string such as `1x28x28,conv32k3s2,conv64k3s2,32`: an optional input shape,
    /// conv layers, then dense widths. Errors name the token.
    pub fn from_encoder_tokens(tokens: &[EncoderToken]) -> Result<Self> {
        let split = split_tokens(tokens)?;
        let mut encoder = split.dense;
        if let (Some(shape), false) = (split.input_shape, split.conv.is_empty()) {
            let st = stages(shape, &split.conv)?;
            let flat = st.last().map_or(shape.len(), ConvStage::out_len);
            encoder.insert(0, flat);
        }
        let mut spec = ModelSpec::mirrored(&encoder);
        spec.input_shape = split.input_shape;
        spec.conv = split.conv;
        Ok(spec)
    }

    /// Parses an encoder string (`784,256,32` or `1x28x28,conv32k3s2,conv64k3s2,32`) into a
    /// mirrored spec, as [`ModelSpec::from_encoder_tokens`].
    pub fn from_encoder_str(s: &str) -> Result<Self> {
        let tokens = s
            .split(',')
            .map(EncoderToken::parse)
            .collect::<Result<Vec<_>>>()?;
        Self::from_encoder_tokens(&tokens)
    }

    /// The encoder string's tokens that give this spec's encoder back (the flattened width of
    /// a conv model is implied, so it is left out).
    pub fn encoder_tokens(&self) -> Vec<EncoderToken> {
        let mut t: Vec<EncoderToken> = self
            .input_shape
            .map(EncoderToken::Shape)
            .into_iter()
            .collect();
        t.extend(self.conv.iter().copied().map(EncoderToken::Conv));
        let skip = usize::from(self.input_shape.is_some());
        t.extend(
            self.encoder
                .iter()
                .skip(skip)
                .copied()
                .map(EncoderToken::Dense),
        );
        t
    }

    /// The encoder for messages: `[784, 256, 32]`, or for a conv model its tokens
    /// (`[1x28x28, conv32k3s2, 32]`).
    pub fn encoder_text(&self) -> String {
        if self.is_conv() {
            let t: Vec<String> = self
                .encoder_tokens()
                .iter()
                .map(|t| t.to_string())
                .collect();
            format!("[{}]", t.join(", "))
        } else {
            format!("{:?}", self.encoder)
        }
    }

    /// True when the model has conv layers.
    pub fn is_conv(&self) -> bool {
        !self.conv.is_empty()
    }

    /// The geometry of every conv stage (empty for a dense model).
    pub fn conv_stages(&self) -> Result<Vec<ConvStage>> {
        match self.input_shape {
            Some(shape) => stages(shape, &self.conv),
            None if self.conv.is_empty() => Ok(Vec::new()),
            None => Err(Error::Config(
                "conv layers need the input shape first (e.g. encoder = 1x28x28,conv32,32)".into(),
            )),
        }
    }

    /// True when the decoder sizes are the encoder sizes reversed.
    pub fn is_mirrored(&self) -> bool {
        self.decoder.iter().rev().eq(self.encoder.iter())
    }

    /// Width of the input (and of the reconstruction): C·H·W with an input shape, else
    /// `encoder[0]`.
    pub fn input_dim(&self) -> usize {
        match self.input_shape {
            Some(s) => s.len(),
            None => self.encoder[0],
        }
    }

    /// `input size is 784`, or for a model with an input shape `input shape is 1x28x28 (the
    /// encoder token '1x28x28': C×H×W = 784 values per row)`: for messages about data of the
    /// wrong width (`the model's …`).
    pub fn input_size_text(&self) -> String {
        match self.input_shape {
            Some(s) => format!(
                "input shape is {s} (the encoder token '{s}': C×H×W = {} values per row)",
                s.len()
            ),
            None => format!("input size is {}", self.input_dim()),
        }
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
        // A conv model's dense part starts at the flattened conv output and may be empty (a
        // fully convolutional model: the code is the last feature map).
        let min_len = if self.is_conv() { 1 } else { 2 };
        if let Some(shape) = self.input_shape {
            let stages = self.conv_stages()?;
            // Every size a conv op multiplies out must fit a usize (no wrap, no panic).
            let fits = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let overflow = fits(&[shape.channels, shape.height, shape.width]).is_none()
                || stages.iter().any(|s| {
                    fits(&[s.out_c, s.out_h, s.out_w, s.in_c, s.kernel, s.kernel]).is_none()
                        || fits(&[s.in_c, s.in_h, s.in_w, s.out_c]).is_none()
                });
            if overflow {
                return bad(format!(
                    "the encoder {} has feature maps with more values than any machine can \
                     address; use a smaller input shape or fewer channels",
                    self.encoder_text()
                ));
            }
            let flat = stages.last().map_or(shape.len(), ConvStage::out_len);
            let what = match stages.last() {
                Some(s) => format!("the conv layers' flattened {} output", s.output()),
                None => format!("the input shape {shape}"),
            };
            if let Some(&first) = self.encoder.first()
                && first != flat
            {
                return bad(format!(
                    "the encoder's dense layers must start at {flat} ({what}), got {first}"
                ));
            }
        } else if self.is_conv() {
            self.conv_stages()?;
        }
        if self.encoder.len() < min_len {
            return bad(format!(
                "the encoder needs at least an input and a code size (e.g. 784,32), got {:?}",
                self.encoder
            ));
        }
        if self.decoder.len() < min_len {
            return bad(format!(
                "the decoder needs at least a code and an output size, got {:?}",
                self.decoder
            ));
        }
        if let Some(z) = self.encoder.iter().chain(&self.decoder).find(|&&w| w == 0) {
            return bad(format!("layer sizes must be positive, got {z}"));
        }
        if matches!(self.variant, Variant::Psd { .. }) {
            crate::model::psd::validate(self)?;
        }
        if self.decoder[0] != self.code_dim() {
            return bad(format!(
                "the decoder must start at the code size {} but starts at {}",
                self.code_dim(),
                self.decoder[0]
            ));
        }
        if *self.decoder.last().unwrap_or(&0) != self.encoder[0] {
            let what = if self.is_conv() {
                "the flattened conv output"
            } else {
                "the input size"
            };
            return bad(format!(
                "the decoder must end at {what} {} but ends at {}",
                self.encoder[0],
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
                if self.is_conv() && projections.is_none() {
                    return bad("the exact contractive penalty is not available for conv \
                                encoders; estimate it with random projections \
                                (jacobian_projections = K, e.g. 8)"
                        .into());
                }
            }
            Variant::Vae { beta, samples } => {
                nonneg("the KL weight β", beta)?;
                if samples == 0 {
                    return bad("VAE samples must be at least 1".into());
                }
                if self.is_conv() && self.encoder.len() < 2 {
                    return bad(
                        "a convolutional VAE needs a latent size after the conv layers \
                                (e.g. 1x28x28,conv32k3s2,16): its fc_mu and fc_logvar heads \
                                map the flattened features to it"
                            .into(),
                    );
                }
                if self.tied {
                    return bad("a VAE cannot tie weights: its encoder ends in two heads".into());
                }
            }
            // Checked before the generic rules, with messages of its own.
            Variant::Psd { .. } => {}
        }
        Ok(())
    }

    /// Number of encoder layers before the code, conv layers included (for a VAE: trunk
    /// layers before the heads).
    pub fn encoder_layers(&self) -> usize {
        self.conv.len()
            + match self.variant {
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
