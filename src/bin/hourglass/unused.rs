//! Flags given on the command line that change nothing in the model that trains: a hidden-layer
//! `--activation` on a model without hidden layers, a variant's settings on another variant,
//! SGD's `--momentum` with Adam. Each gets one `warning:` line on stderr, so that a run is never
//! silently not what its command line says.

use clap::ArgMatches;
use clap::parser::ValueSource;
use hourglass::model::{ModelSpec, Role, Variant};

use crate::train::TrainArgs;

/// The `--variant` name of a spec.
fn variant_name(v: &Variant) -> &'static str {
    match v {
        Variant::Plain => "plain",
        Variant::Sparse { .. } => "sparse",
        Variant::Denoising { .. } => "denoising",
        Variant::Contractive { .. } => "contractive",
        Variant::Vae { .. } => "vae",
        Variant::Psd { .. } => "psd",
    }
}

/// `(flag, why it affects nothing)` for each flag given on the command line (per `matches`)
/// that changes nothing in training `spec` with `args`.
pub fn unused_flags(
    spec: &ModelSpec,
    args: &TrainArgs,
    matches: &ArgMatches,
) -> Vec<(String, String)> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let variant = variant_name(&spec.variant);
    let vae = matches!(spec.variant, Variant::Vae { .. });
    // Hidden layers: the encoder's between input and code (a VAE's whole trunk) and the
    // decoder's between code and output; the code and output layers have flags of their own.
    let hidden = if spec.is_conv() {
        let layers = spec.layers();
        let count = |role| layers.iter().filter(|l| l.role == role).count();
        count(Role::Encoder) - usize::from(!vae) + count(Role::Decoder) - 1
    } else {
        spec.encoder.len().saturating_sub(2) + spec.decoder.len().saturating_sub(2)
    };
    let mut checks: Vec<(&str, &str, bool, String)> = vec![
        (
            "activation",
            "--activation",
            hidden == 0,
            format!(
                "the model {:?} → {:?} has no hidden layer (the code layer takes \
                 --code-activation, the output layer --output-activation)",
                spec.encoder, spec.decoder
            ),
        ),
        (
            "code_activation",
            "--code-activation",
            vae,
            "a VAE's code comes from its linear μ and log σ² heads".into(),
        ),
        (
            "momentum",
            "--momentum",
            args.optimizer != "sgd",
            format!(
                "it applies to --optimizer sgd, and this run uses {}",
                args.optimizer
            ),
        ),
    ];
    for (id, flag) in [("backend", "--backend"), ("adapter", "--adapter")] {
        checks.push((
            id,
            flag,
            args.device.device == "cpu",
            "it chooses a GPU, and --device cpu trains on the CPU".into(),
        ));
    }
    for (id, flag, wanted) in [
        ("sparsity", "--sparsity", "sparse or psd"),
        ("prediction", "--prediction", "psd"),
        ("inference_steps", "--inference-steps", "psd"),
        ("sparsity_target", "--sparsity-target", "sparse"),
        ("noise", "--noise", "denoising"),
        ("contractive", "--contractive", "contractive"),
        (
            "jacobian_projections",
            "--jacobian-projections",
            "contractive",
        ),
        ("beta", "--beta", "vae"),
        ("vae_samples", "--vae-samples", "vae"),
    ] {
        checks.push((
            id,
            flag,
            !wanted.split(" or ").any(|w| w == variant),
            format!("it applies to --variant {wanted}, and this model is {variant}"),
        ));
    }
    checks
        .into_iter()
        .filter(|(id, _, unused, _)| *unused && given(id))
        .map(|(_, flag, _, why)| (flag.to_string(), why))
        .collect()
}

/// Prints one warning per flag that [`unused_flags`] finds.
pub fn warn_unused(spec: &ModelSpec, args: &TrainArgs, matches: &ArgMatches) {
    for (flag, why) in unused_flags(spec, args, matches) {
        errln!("warning: {flag} affects nothing in this run: {why}");
    }
}
