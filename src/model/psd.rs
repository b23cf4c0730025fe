//! Predictive sparse decomposition (PSD; Kavukcuoglu, Ranzato & LeCun 2008), the model side:
//! what a PSD spec must be, where its four tensors sit in the arena, and how they start.
//!
//! Per example the model minimizes, over the code h, the dictionary D and the fast encoder f,
//!
//! ```text
//! E(x, h) = ‖x − D h‖² + λ‖h‖₁ + γ‖h − f(x)‖²,     f(x) = g ⊙ tanh(W x + b),
//! ```
//!
//! summed over features and averaged over the batch like every loss here. The tensors, with
//! PyTorch-style names and layouts:
//!
//! | name | shape | what |
//! | --- | --- | --- |
//! | `encoder.0.weight` | `[code, in]` | W |
//! | `encoder.0.bias` | `[code]` | b |
//! | `encoder.2.weight` | `[code]` | the gain g (a diagonal layer after the tanh at index 1) |
//! | `decoder.0.weight` | `[in, code]` | the dictionary D, no bias, columns of unit L2 norm |
//!
//! λ, γ and the inference steps per training step are in the spec's JSON ([`Variant::Psd`]).

use crate::error::{Error, Result};
use crate::model::params::{ARENA_ALIGN, LayerParams, ParamLayout, ParamTensor};
use crate::model::spec::{Activation, Loss, ModelSpec, SPEC_VERSION, Variant};
use crate::rng::{Sequence, Stream};

/// Checkpoint name of the gain g.
pub const GAIN: &str = "encoder.2.weight";
/// Checkpoint name of the dictionary D.
pub const DICTIONARY: &str = "decoder.0.weight";

/// FISTA iterations of `encode --infer` when `--inference-steps` does not say.
pub const DEFAULT_INFER_STEPS: u32 = 1000;
/// The most FISTA iterations a graph holds (three ops each), for training steps and for
/// `encode --infer`.
pub const MAX_INFERENCE_STEPS: u32 = 10_000;
/// `encode --infer` stops when the objective's relative change over one check interval is
/// below this.
pub const INFER_TOLERANCE: f64 = 1e-7;

impl ModelSpec {
    /// A PSD model of `inputs` features and `code` code units, with L1 weight `lambda`,
    /// prediction weight `gamma` and `inference_steps` FISTA iterations per training step.
    pub fn psd(inputs: usize, code: usize, lambda: f32, gamma: f32, inference_steps: u32) -> Self {
        ModelSpec {
            version: SPEC_VERSION,
            encoder: vec![inputs, code],
            decoder: vec![code, inputs],
            activation: Activation::Tanh,
            code_activation: Activation::Tanh,
            output_activation: Activation::Identity,
            loss: Loss::Mse,
            tied: false,
            variant: Variant::Psd {
                lambda,
                gamma,
                inference_steps,
            },
            input_shape: None,
            conv: Vec::new(),
        }
    }

    /// `(λ, γ, inference steps)` of a PSD spec.
    pub fn psd_settings(&self) -> Option<(f32, f32, u32)> {
        match self.variant {
            Variant::Psd {
                lambda,
                gamma,
                inference_steps,
            } => Some((lambda, gamma, inference_steps)),
            _ => None,
        }
    }
}

/// The rules of a PSD spec, each message naming the setting to change (in library terms: the
/// command line names its flags through `flag_names`).
pub(crate) fn validate(spec: &ModelSpec) -> Result<()> {
    let bad = |m: String| Err(Error::Config(m));
    let Some((lambda, gamma, steps)) = spec.psd_settings() else {
        return Ok(());
    };
    if !spec.conv.is_empty() {
        return bad(
            "PSD (variant = psd) learns a dense dictionary: it takes no conv layers (encoder = IN,CODE)"
                .into(),
        );
    }
    if spec.encoder.len() != 2 {
        let sizes: Vec<String> = spec.encoder.iter().map(|s| s.to_string()).collect();
        return bad(format!(
            "PSD (variant = psd) takes exactly one code layer (encoder = IN,CODE), got encoder = {}",
            sizes.join(",")
        ));
    }
    let (d, c) = (spec.encoder[0], spec.encoder[1]);
    if spec.tied {
        return bad(
            "PSD (variant = psd) cannot tie weights (tied = true): its decoder is a dictionary of its own \
             with unit-norm columns"
                .into(),
        );
    }
    if spec.decoder != [c, d] {
        let sizes: Vec<String> = spec.decoder.iter().map(|s| s.to_string()).collect();
        return bad(format!(
            "PSD (variant = psd) has a linear decoder from the code to the input (decoder = {c},{d}), \
             got decoder = {}",
            sizes.join(",")
        ));
    }
    if spec.loss != Loss::Mse {
        return bad(
            "PSD (variant = psd) reconstructs with the squared error: loss must be mse, got bce"
                .into(),
        );
    }
    if spec.output_activation != Activation::Identity {
        return bad(format!(
            "PSD (variant = psd) has a linear decoder: output_activation must be identity, got {}",
            format!("{:?}", spec.output_activation).to_lowercase()
        ));
    }
    if spec.code_activation != Activation::Tanh {
        return bad(format!(
            "PSD (variant = psd) has the fast encoder g ⊙ tanh(Wx + b): code_activation must be tanh, \
             got {}",
            format!("{:?}", spec.code_activation).to_lowercase()
        ));
    }
    if !(lambda.is_finite() && lambda >= 0.0) {
        return bad(format!(
            "the sparsity weight λ (sparsity) must be ≥ 0, got {lambda}"
        ));
    }
    if !(gamma.is_finite() && gamma >= 0.0) {
        return bad(format!(
            "the prediction weight γ (prediction) must be ≥ 0, got {gamma}"
        ));
    }
    check_steps(steps)?;
    Ok(())
}

/// `--inference-steps` must be in 1..=[`MAX_INFERENCE_STEPS`].
pub fn check_steps(steps: u32) -> Result<()> {
    if steps == 0 {
        return Err(Error::Config("inference_steps must be at least 1".into()));
    }
    if steps > MAX_INFERENCE_STEPS {
        return Err(Error::Config(format!(
            "inference_steps = {steps} is more than the {MAX_INFERENCE_STEPS} FISTA iterations a \
             graph holds"
        )));
    }
    Ok(())
}

fn align(n: usize) -> usize {
    n.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

/// The arena of a PSD model: W and b as a dense tanh layer, then g and D.
pub(crate) fn layout(spec: &ModelSpec) -> ParamLayout {
    let (d, c) = (spec.input_dim(), spec.code_dim());
    let mut len = 0;
    let mut take = |name: &str, shape: Vec<usize>| {
        let t = ParamTensor {
            name: name.into(),
            offset: len,
            shape,
        };
        len += align(t.len());
        t
    };
    let layer = spec
        .layers()
        .into_iter()
        .next()
        .expect("a validated spec has an encoder layer");
    let weight = take("encoder.0.weight", vec![c, d]);
    let bias = take("encoder.0.bias", vec![c]);
    let gain = take(GAIN, vec![c]);
    let dictionary = take(DICTIONARY, vec![d, c]);
    ParamLayout {
        layers: vec![LayerParams {
            layer,
            weight,
            transposed: false,
            bias,
        }],
        extra: vec![gain, dictionary],
        len,
    }
}

/// The gain and the dictionary of a PSD layout.
pub fn tensors(layout: &ParamLayout) -> Option<(&ParamTensor, &ParamTensor)> {
    let gain = layout.extra.iter().find(|t| t.name == GAIN)?;
    let dict = layout.extra.iter().find(|t| t.name == DICTIONARY)?;
    Some((gain, dict))
}

/// Starts a PSD layout's extra tensors (nothing for other layouts): the gain at 1 and the
/// dictionary uniform in [−1, 1], each column then scaled to unit L2 norm.
pub(crate) fn init_extra(layout: &ParamLayout, seed: u64, arena: &mut [f32]) {
    let Some((gain, dict)) = tensors(layout) else {
        return;
    };
    arena[gain.offset..gain.offset + gain.len()].fill(1.0);
    let (d, c) = (dict.shape[0], dict.shape[1]);
    let mut rng = Sequence::new(seed, Stream::Init, layout.layers.len() as u32 + 1);
    let w = &mut arena[dict.offset..dict.offset + dict.len()];
    for x in w.iter_mut() {
        *x = rng.uniform(-1.0, 1.0);
    }
    crate::cpu::psd::renormalize_columns(w, d, c);
}
