//! A fluent way to write a [`ModelSpec`]: set what differs from the defaults, and
//! [`build`](SpecBuilder::build) checks the result.

use crate::error::{Error, Result};
use crate::model::conv::{ConvSpec, ImageShape};
use crate::model::spec::{Activation, Loss, ModelSpec, SPEC_VERSION, Variant};

/// Builds a [`ModelSpec`] step by step; start with [`ModelSpec::builder`].
///
/// Only the encoder sizes are required. The rest defaults to what [`ModelSpec::mirrored`]
/// gives: the decoder mirrors the encoder, hidden layers are ReLU, the code is linear, the
/// output is a sigmoid, and the loss is cross-entropy, except that with an identity output the
/// default loss is the squared error (cross-entropy needs a sigmoid output).
///
/// # Example
///
/// ```
/// use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
///
/// // A denoising autoencoder 784 → 256 → 32 → 256 → 784.
/// let spec = ModelSpec::builder()
///     .encoder([784, 256, 32])
///     .activation(Activation::LeakyRelu)
///     .variant(Variant::Denoising { noise: Noise::Mask { nu: 0.25 } })
///     .build()?;
/// assert_eq!(spec.decoder, [32, 256, 784]);
/// assert_eq!(spec.loss, Loss::Bce);
///
/// // Real-valued data: identity output, so the loss defaults to the squared error.
/// let spec = ModelSpec::builder()
///     .encoder([300, 64, 8])
///     .output_activation(Activation::Identity)
///     .tied(true)
///     .build()?;
/// assert_eq!(spec.loss, Loss::Mse);
///
/// // Mistakes are errors that say what to change.
/// let err = ModelSpec::builder().encoder([784, 32]).decoder([16, 784]).build();
/// assert!(err.unwrap_err().to_string().contains("code size 32"));
/// # Ok::<(), hourglass::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SpecBuilder {
    encoder: Vec<usize>,
    decoder: Option<Vec<usize>>,
    activation: Option<Activation>,
    code_activation: Option<Activation>,
    output_activation: Option<Activation>,
    loss: Option<Loss>,
    tied: bool,
    variant: Variant,
    input_shape: Option<ImageShape>,
    conv: Vec<ConvSpec>,
    parse_error: Option<String>,
}

impl ModelSpec {
    /// Starts a [`SpecBuilder`].
    pub fn builder() -> SpecBuilder {
        SpecBuilder::default()
    }
}

impl SpecBuilder {
    /// Layer widths of the encoder, input first, code last (e.g. `[784, 256, 32]`); at least
    /// two. For a VAE the last width is the latent size, reached through the μ and log σ²
    /// heads from the width before it.
    pub fn encoder(mut self, sizes: impl AsRef<[usize]>) -> Self {
        self.encoder = sizes.as_ref().to_vec();
        // A dense encoder replaces an earlier `encoder_str` entirely.
        (self.input_shape, self.conv, self.parse_error) = (None, Vec::new(), None);
        self
    }

    /// The whole encoder as an encoder string: `784,256,32`, or with an input shape and conv
    /// layers `1x28x28,conv32k3s2,conv64k3s2,32` (`convOkKsS`: O channels, kernel K (default
    /// 3), stride S (default 1), padding K/2; conv layers first, then dense widths; none for
    /// a fully convolutional model). The decoder mirrors it unless [`decoder`](Self::decoder)
    /// sets its dense part (code first, flattened conv output last). A malformed token is
    /// reported by [`build`](Self::build).
    ///
    /// ```
    /// use hourglass::ModelSpec;
    /// let spec = ModelSpec::builder().encoder_str("1x28x28,conv32k3s2,conv64k3s2,32").build()?;
    /// assert_eq!((spec.input_dim(), spec.encoder.clone(), spec.code_dim()), (784, vec![3136, 32], 32));
    /// let err = ModelSpec::builder().encoder_str("1x28x28,conv16k0,32").build().unwrap_err();
    /// assert!(err.to_string().contains("'conv16k0'"));
    /// # Ok::<(), hourglass::Error>(())
    /// ```
    pub fn encoder_str(mut self, s: &str) -> Self {
        match ModelSpec::from_encoder_str(s) {
            Ok(spec) => {
                self.encoder = spec.encoder;
                self.input_shape = spec.input_shape;
                self.conv = spec.conv;
                self.parse_error = None;
            }
            Err(Error::Config(m)) => self.parse_error = Some(m),
            Err(e) => self.parse_error = Some(e.to_string()),
        }
        self
    }

    /// Layer widths of the decoder, code first, output last (default: the encoder reversed).
    pub fn decoder(mut self, sizes: impl AsRef<[usize]>) -> Self {
        self.decoder = Some(sizes.as_ref().to_vec());
        self
    }

    /// Activation of every hidden layer (default ReLU).
    pub fn activation(mut self, act: Activation) -> Self {
        self.activation = Some(act);
        self
    }

    /// Activation of the code layer (default identity).
    pub fn code_activation(mut self, act: Activation) -> Self {
        self.code_activation = Some(act);
        self
    }

    /// Activation of the output layer: sigmoid (default) or identity.
    pub fn output_activation(mut self, act: Activation) -> Self {
        self.output_activation = Some(act);
        self
    }

    /// Reconstruction loss (default: cross-entropy with a sigmoid output, else squared error).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// Tie the decoder's weights to the transposed encoder weights (default false; needs a
    /// mirrored decoder, and not a VAE).
    pub fn tied(mut self, tied: bool) -> Self {
        self.tied = tied;
        self
    }

    /// Which member of the family: plain (default), sparse, denoising, contractive or VAE.
    pub fn variant(mut self, variant: Variant) -> Self {
        self.variant = variant;
        self
    }

    /// The spec, checked with [`ModelSpec::validate`]: an [`Error::Config`] names what is
    /// wrong (sizes that do not meet, a loss that does not fit the output, a variant's
    /// parameter out of range).
    pub fn build(self) -> Result<ModelSpec> {
        if let Some(m) = self.parse_error {
            return Err(Error::Config(m));
        }
        if self.encoder.is_empty() {
            return Err(Error::Config(
                "the model needs encoder sizes: ModelSpec::builder().encoder([input, ..., code])"
                    .into(),
            ));
        }
        let output_activation = self.output_activation.unwrap_or(Activation::Sigmoid);
        let spec = ModelSpec {
            version: SPEC_VERSION,
            decoder: self
                .decoder
                .unwrap_or_else(|| self.encoder.iter().rev().copied().collect()),
            encoder: self.encoder,
            activation: self.activation.unwrap_or(Activation::Relu),
            code_activation: self.code_activation.unwrap_or(Activation::Identity),
            output_activation,
            loss: self.loss.unwrap_or(match output_activation {
                Activation::Sigmoid => Loss::Bce,
                _ => Loss::Mse,
            }),
            tied: self.tied,
            variant: self.variant,
            input_shape: self.input_shape,
            conv: self.conv,
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_those_of_mirrored() {
        let built = ModelSpec::builder().encoder([10, 4, 2]).build().unwrap();
        assert_eq!(built, ModelSpec::mirrored(&[10, 4, 2]));
    }
}
