//! The model settings of a training run by name, as `hourglass train` takes them as flags and
//! `hourglass.train` as keywords, with their defaults, and the one place that resolves them into
//! a [`ModelSpec`]: the command line and the Python package both build a [`ModelOptions`], so a
//! setting means the same thing, and gets the same default, through either.

use crate::error::{Error, Result};
use crate::model::{Activation, EncoderToken, Loss, ModelSpec, Noise, Variant};

/// The model half of a training run's settings, by the names of `hourglass train`'s flags.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelOptions {
    /// Encoder tokens (`784,256,32` or `1x28x28,conv32k3s2,32`); empty: `[D, 256, 32]` for
    /// data of D features (`[D, 256]` for PSD).
    pub encoder: Vec<EncoderToken>,
    /// Decoder sizes; `None`: the encoder mirrored.
    pub decoder: Option<Vec<usize>>,
    /// Hidden activation (`relu`).
    pub activation: String,
    /// Code activation (`identity`).
    pub code_activation: String,
    /// Output activation (`sigmoid`).
    pub output_activation: String,
    /// `bce` or `mse`.
    pub loss: String,
    /// Tie decoder weights to the encoder's.
    pub tied: bool,
    /// `plain`, `sparse`, `denoising`, `contractive`, `vae` or `psd`.
    pub variant: String,
    /// L1 weight of sparse and PSD models.
    pub sparsity: f32,
    /// KL sparsity target ρ of sparse models (L1 when `None`).
    pub sparsity_target: Option<f32>,
    /// Corruption of denoising models (`mask:0.25`, `gaussian:σ`, `saltpepper:ν`).
    pub noise: String,
    /// Weight of the contractive penalty.
    pub contractive: f32,
    /// Random projections estimating the contractive penalty (exact when `None`).
    pub jacobian_projections: Option<u32>,
    /// Weight of a VAE's KL term.
    pub beta: f32,
    /// Latent samples per example of a VAE.
    pub vae_samples: u32,
    /// Weight γ of PSD's prediction term.
    pub prediction: f32,
    /// FISTA iterations per PSD training step.
    pub inference_steps: u32,
}

impl Default for ModelOptions {
    /// The command line's defaults.
    fn default() -> Self {
        ModelOptions {
            encoder: Vec::new(),
            decoder: None,
            activation: "relu".into(),
            code_activation: "identity".into(),
            output_activation: "sigmoid".into(),
            loss: "bce".into(),
            tied: false,
            variant: "plain".into(),
            sparsity: 1e-3,
            sparsity_target: None,
            noise: "mask:0.25".into(),
            contractive: 0.1,
            jacobian_projections: None,
            beta: 1.0,
            vae_samples: 1,
            prediction: 1.0,
            inference_steps: 20,
        }
    }
}

impl ModelOptions {
    /// The spec these settings describe for data of `features` features per example.
    pub fn spec(&self, features: usize) -> Result<ModelSpec> {
        let psd = self.variant == "psd";
        let mut spec = match (self.encoder.is_empty(), psd) {
            (true, true) => ModelSpec::mirrored(&[features, 256]),
            (true, false) => ModelSpec::mirrored(&[features, 256, 32]),
            (false, _) => ModelSpec::from_encoder_tokens(&self.encoder)?,
        };
        if let Some(d) = &self.decoder {
            spec.decoder = d.clone();
        }
        spec.activation = Activation::parse(&self.activation)?;
        spec.code_activation = Activation::parse(&self.code_activation)?;
        spec.output_activation = Activation::parse(&self.output_activation)?;
        spec.loss = match self.loss.as_str() {
            "mse" => Loss::Mse,
            "bce" => Loss::Bce,
            other => {
                return Err(Error::Config(format!(
                    "unknown loss '{other}' (expected mse or bce)"
                )));
            }
        };
        spec.tied = self.tied;
        spec.variant = match self.variant.as_str() {
            "plain" => Variant::Plain,
            "sparse" => Variant::Sparse {
                lambda: self.sparsity,
                target: self.sparsity_target,
            },
            "denoising" => Variant::Denoising {
                noise: Noise::parse(&self.noise)?,
            },
            "contractive" => Variant::Contractive {
                lambda: self.contractive,
                projections: self.jacobian_projections,
            },
            "vae" => Variant::Vae {
                beta: self.beta,
                samples: self.vae_samples,
            },
            "psd" => {
                // What a PSD model implies: a tanh fast encoder, a linear decoder, the squared
                // error (the command line refuses contrary flags given explicitly).
                spec.activation = Activation::Tanh;
                spec.code_activation = Activation::Tanh;
                spec.output_activation = Activation::Identity;
                spec.loss = Loss::Mse;
                Variant::Psd {
                    lambda: self.sparsity,
                    gamma: self.prediction,
                    inference_steps: self.inference_steps,
                }
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown variant '{other}' (expected plain, sparse, denoising, contractive, vae \
                     or psd)"
                )));
            }
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_give_the_default_model() {
        let spec = ModelOptions::default().spec(12).unwrap();
        assert_eq!(spec.encoder, [12, 256, 32]);
        assert_eq!(spec.decoder, [32, 256, 12]);
        assert_eq!(spec.variant, Variant::Plain);
        assert_eq!(spec.loss, Loss::Bce);
    }

    #[test]
    fn psd_implies_its_decoder_and_loss() {
        let o = ModelOptions {
            variant: "psd".into(),
            sparsity: 0.5,
            ..Default::default()
        };
        let spec = o.spec(10).unwrap();
        assert_eq!(spec.encoder, [10, 256]);
        assert_eq!(
            (spec.loss, spec.output_activation),
            (Loss::Mse, Activation::Identity)
        );
        assert_eq!(spec.psd_settings(), Some((0.5, 1.0, 20)));
    }

    #[test]
    fn conv_tokens_and_unknown_names() {
        let tokens: Vec<EncoderToken> = "1x6x6,conv2k3s2,4"
            .split(',')
            .map(|t| EncoderToken::parse(t).unwrap())
            .collect();
        let o = ModelOptions {
            encoder: tokens,
            ..Default::default()
        };
        assert_eq!(o.spec(36).unwrap().conv.len(), 1);
        for (field, value) in [("variant", "vea"), ("loss", "l1"), ("activation", "gelu")] {
            let mut o = ModelOptions::default();
            match field {
                "variant" => o.variant = value.into(),
                "loss" => o.loss = value.into(),
                _ => o.activation = value.into(),
            }
            let e = o.spec(4).unwrap_err().to_string();
            assert!(e.contains(value), "{e}");
        }
    }
}
