//! `hourglass train`: flags (or a config file, or a run to resume) resolved into a model spec,
//! a training configuration and data; then [`crate::fit`] trains and writes the run's folder.

use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, Args};
use hourglass::data::{self, Dataset};
use hourglass::graph::Precision;
use hourglass::io::checkpoint;
use hourglass::model::{
    Activation, EncoderToken, Loss, ModelOptions, ModelSpec, Noise, Variant, check_targets,
};
use hourglass::optim::{OptimizerConfig, OptimizerKind};
use hourglass::rng::{Sequence, Stream};
use hourglass::train::{
    Device, NonFinitePolicy, ReducePrecision, Schedule, TrainConfig, TrainState, Trainer,
};
use hourglass::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::outputs::Plan;
use crate::parallel::World;
use crate::resume::{self, DataIdentity};
use crate::runfolder::{Mode, RUN_FILES, RunFolder};
use crate::source::{self, DataArgs, DeviceArg, Source};
use crate::{Ui, config, fit};

/// Epochs of a run that names neither --steps nor --epochs.
const DEFAULT_EPOCHS: u64 = 5;

pub const EXAMPLES: &str = "\
Examples:
  hourglass train                         # 5 epochs on the bundled Fashion-MNIST test set
  hourglass train --dataset fashion-mnist --variant denoising --noise mask:0.3 --epochs 20 --out dae
  hourglass train --dataset fashion-mnist --variant vae --encoder 784,512,16 --epochs 30 --out vae
  hourglass train --dataset fashion-mnist --encoder 1x28x28,conv32k3s2,conv64k3s2,32 --epochs 5 --out conv
  hourglass train --dataset fashion-mnist --variant psd --encoder 784,256 --sparsity 0.5 \\
      --prediction 1.0 --epochs 10 --out psd        # then: encode --infer, psd/atoms.png
  hourglass train --data x.npy --val-split 0.1 --normalize standard --loss mse \\
      --output-activation identity --early-stop 5 --epochs 100 --out run1
  hourglass train --config run1/config.toml --seed 1 --out run2   # run1 again, another seed
  hourglass train --resume run1 --epochs 200                        # continue run1 to 200 epochs

Every flag can also be set in a TOML file given with --config (`batch-size = 128`,
`encoder = [784, 256, 32]`); flags on the command line win. A run writes to --out:
model.safetensors, best.safetensors, train_state.safetensors, metrics.jsonl, config.toml,
loss.png and reconstructions.png (.npy when the rows are not square images); a --variant psd
run also atoms.png, its dictionary.";

/// The flags of `hourglass train`; also the keys of its config files.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrainArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Validation data file (same formats as --data).
    #[arg(
        help_heading = "Data",
        long,
        value_name = "PATH",
        conflicts_with = "val_split"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val: Option<String>,
    /// Hold out this fraction of the training rows (drawn by --seed) for validation.
    #[arg(help_heading = "Data", long, value_name = "F")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_split: Option<f64>,
    /// Encoder layer sizes, input first, code last [default: INPUT,256,32]; or a conv
    /// encoder: the input shape CxHxW, then convOkKsS layers (O channels, kernel K, default 3,
    /// stride S, default 1, padding K/2), then dense sizes (e.g. 1x28x28,conv32k3s2,conv64k3s2,32).
    #[arg(
        help_heading = "Model",
        long,
        value_delimiter = ',',
        value_name = "SIZES",
        value_parser = parse_encoder_token
    )]
    #[serde(default)]
    pub encoder: Vec<EncoderToken>,
    /// Decoder layer sizes, code first, output last [default: the encoder mirrored]; for a
    /// conv model its dense part, ending at the flattened conv output (the transposed convs
    /// always mirror the conv layers).
    #[arg(
        help_heading = "Model",
        long,
        value_delimiter = ',',
        value_name = "SIZES"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder: Option<Vec<usize>>,
    /// Hidden-layer activation: relu, leaky_relu, sigmoid, tanh, identity.
    #[arg(help_heading = "Model", long, default_value = "relu")]
    pub activation: String,
    /// Activation of the code layer: identity, relu, sigmoid, tanh.
    #[arg(help_heading = "Model", long, default_value = "identity")]
    pub code_activation: String,
    /// Output activation: sigmoid or identity.
    #[arg(help_heading = "Model", long, default_value = "sigmoid")]
    pub output_activation: String,
    /// Reconstruction loss: mse or bce (cross-entropy from logits; needs a sigmoid output).
    #[arg(help_heading = "Model", long, default_value = "bce")]
    pub loss: String,
    /// Tie the decoder's weights to the encoder's transposes (needs a mirrored decoder).
    #[arg(help_heading = "Model", long)]
    pub tied: bool,
    /// Regularized variant: plain, sparse, denoising, contractive, vae or psd (predictive
    /// sparse decomposition: --encoder IN,CODE, --sparsity λ, --prediction γ).
    #[arg(help_heading = "Model", long, default_value = "plain")]
    pub variant: String,
    /// Sparse: weight λ of the L1 (or, with --sparsity-target, KL) penalty on the code; PSD:
    /// weight λ of ‖h‖₁ in the inferred code's objective.
    #[arg(help_heading = "Model", long, default_value_t = 1e-3)]
    pub sparsity: f32,
    /// Sparse: target mean activation ρ of sigmoid code units (KL sparsity).
    #[arg(help_heading = "Model", long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparsity_target: Option<f32>,
    /// Denoising: mask:ν (zero a proportion ν), gaussian:σ or saltpepper:ν.
    #[arg(help_heading = "Model", long, default_value = "mask:0.25")]
    pub noise: String,
    /// Contractive: weight λ of ‖∂h/∂x‖²_F.
    #[arg(help_heading = "Model", long, default_value_t = 0.1)]
    pub contractive: f32,
    /// Contractive: estimate the penalty with K random projections instead of exactly.
    #[arg(help_heading = "Model", long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jacobian_projections: Option<u32>,
    /// VAE: weight β of the KL term.
    #[arg(help_heading = "Model", long, default_value_t = 1.0)]
    pub beta: f32,
    /// VAE: samples of z per input.
    #[arg(help_heading = "Model", long, default_value_t = 1)]
    pub vae_samples: u32,
    /// PSD: weight γ of the prediction term γ‖h − f(x)‖² (--sparsity is the L1 weight λ).
    #[arg(
        help_heading = "Model",
        long,
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub prediction: f32,
    /// PSD: FISTA iterations of the code inference per training step.
    #[arg(help_heading = "Model", long, default_value_t = 20)]
    pub inference_steps: u32,
    /// Optimizer: adam, adamw or sgd.
    #[arg(help_heading = "Training", long, default_value = "adam")]
    pub optimizer: String,
    /// Learning rate.
    #[arg(help_heading = "Training", long, default_value_t = 1e-3)]
    pub lr: f32,
    /// SGD momentum.
    #[arg(help_heading = "Training", long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay (L2 for adam and sgd, decoupled for adamw).
    #[arg(help_heading = "Training", long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Learning-rate schedule: constant, step (halve every third of the run) or cosine (to zero).
    #[arg(help_heading = "Training", long, default_value = "constant")]
    pub schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(help_heading = "Training", long, default_value_t = 0)]
    pub warmup: u64,
    /// Rescale each step's gradient to a global L2 norm of at most F.
    #[arg(help_heading = "Training", long, value_name = "F")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f32>,
    /// Examples per step.
    #[arg(help_heading = "Training", long, default_value_t = 64)]
    pub batch_size: usize,
    /// Gradient accumulation: each optimizer step takes K micro-batches of --batch-size rows,
    /// so its batch is K × --batch-size rows and its gradient their mean (the run equals one at
    /// --batch-size K×B, up to rounding). Steps, epochs and checkpoints count optimizer steps;
    /// with several ranks only the accumulated gradient is reduced, once per step.
    #[arg(help_heading = "Training", long, default_value_t = 1, value_name = "K")]
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Drop the last partial batch of each epoch. Without it (the default, as in PyTorch and
    /// Keras) that batch trains too, as a smaller last step whose loss is the mean over its own
    /// rows, and a --batch-size larger than the data set trains on all of it, one step an epoch.
    #[arg(
        help_heading = "Training",
        long,
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_name = "true|false"
    )]
    pub drop_last: bool,
    /// After a step with a NaN or infinite gradient (which is always skipped): stop, skip-step
    /// (carry on) or reduce-lr (carry on at half the learning rate).
    #[arg(
        help_heading = "Training",
        long,
        default_value = "stop",
        value_name = "POLICY"
    )]
    pub on_nonfinite: String,
    /// Matrix products in f32, or mixed: f16 operands, f32 accumulation and dynamic loss
    /// scaling, on GPUs with f16 cooperative matrices (tensor cores), else falling back to f32
    /// with a note; mixed-emulated gives mixed's numbers on any device, the CPU included
    /// (slower: to check how a model trains in mixed precision).
    #[arg(
        help_heading = "Training",
        long,
        default_value = "f32",
        value_name = "f32|mixed|mixed-emulated"
    )]
    pub precision: String,
    /// With several ranks (mpirun): the number format of the gradient's sum between them. f16
    /// rounds each rank's share and the sum to f16 (summed in f32, in rank order: still the
    /// same bits on every repeat), halving the bytes each step moves; one process has nothing
    /// to reduce, and f16 changes nothing there.
    #[arg(
        help_heading = "Training",
        long,
        default_value = "f32",
        value_name = "f32|f16"
    )]
    #[serde(default = "f32_name")]
    pub reduce_precision: String,
    /// With several ranks (mpirun): sum the gradient in buckets of at least this
    /// many KiB, each as soon as the backward pass has finished it, on a thread of its own
    /// while the backward pass goes on (PyTorch DDP's bucket_cap_mb); off sums the whole
    /// gradient after the backward pass. The same bits either way (but see README for
    /// --accumulate on a hardware GPU).
    #[arg(
        help_heading = "Training",
        long,
        default_value = "1024",
        value_name = "KiB|off"
    )]
    #[serde(default = "bucket_kib")]
    pub reduce_buckets: String,
    /// Optimizer steps in the whole run (instead of --epochs).
    #[arg(help_heading = "Training", long, conflicts_with = "epochs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Passes over the training data in the whole run [default: 5].
    #[arg(help_heading = "Training", long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u64>,
    /// Stop after this many epochs without a better validation loss (training loss when there
    /// is no validation data).
    #[arg(help_heading = "Training", long, value_name = "PATIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<u64>,
    /// Every N steps, write model.safetensors and the resumable train_state.safetensors.
    #[arg(help_heading = "Run", long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
    /// Visit the examples in file order instead of a fresh shuffle each epoch.
    #[arg(help_heading = "Training", long)]
    pub no_shuffle: bool,
    /// Seed of initialisation, shuffling, noise and the validation split.
    #[arg(help_heading = "Training", long, default_value_t = 0)]
    #[serde(deserialize_with = "config::u64_or_string")]
    pub seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub device: DeviceArg,
    /// Read settings from this TOML file (keys as the long flags); flags given here win.
    #[arg(
        help_heading = "Run",
        long,
        value_name = "FILE.toml",
        conflicts_with = "resume"
    )]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Continue the run in DIR where it stopped (its config.toml and train_state.safetensors);
    /// --epochs and --steps then count the whole run.
    #[arg(help_heading = "Run", long, value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Start from this checkpoint's weights (its model spec is used).
    #[arg(help_heading = "Model", long, value_name = "CKPT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Output directory.
    #[arg(
        help_heading = "Run",
        long,
        default_value = "hourglass-run",
        conflicts_with = "resume"
    )]
    pub out: PathBuf,
    /// Replace the run already in --out (its files stay until this run's first checkpoint).
    #[arg(help_heading = "Run", long, conflicts_with = "resume")]
    #[serde(skip)]
    pub overwrite: bool,
    /// Read the loss every N steps, and print it then when stdout is not a terminal
    /// [default: about 16 reads per epoch].
    #[arg(help_heading = "Run", long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_every: Option<u64>,
}

/// The config-file keys of `train`: its long flags but --config and --resume.
fn keys() -> Vec<String> {
    let command = <TrainArgs as Args>::augment_args(clap::Command::new("train"));
    config::keys_of(&command, &["config", "resume", "overwrite"])
}

/// The flags merged with --config or with the resumed run's config.toml.
fn resolve_args(cli: TrainArgs, matches: &ArgMatches) -> Result<TrainArgs> {
    let (path, resume) = match (&cli.config, &cli.resume) {
        (Some(path), _) => (path.clone(), false),
        (None, Some(dir)) => {
            let path = dir.join("config.toml");
            if !path.is_file() {
                return Err(Error::bad_file(
                    dir,
                    "not a run folder to resume: it has no config.toml",
                ));
            }
            (path, true)
        }
        (None, None) => return Ok(cli),
    };
    let mut merged = config::merge(&cli, matches, config::read(&path)?, &keys(), &path)?;
    merged.config = cli.config.clone();
    merged.resume = cli.resume.clone();
    if resume {
        merged.out = cli.resume.clone().expect("resuming");
    }
    Ok(merged)
}

fn optimizer(args: &TrainArgs) -> Result<OptimizerConfig> {
    let kind = match args.optimizer.as_str() {
        "adam" => OptimizerKind::Adam,
        "adamw" => OptimizerKind::Adamw,
        "sgd" => OptimizerKind::Sgd,
        other => {
            return Err(Error::Config(format!(
                "unknown optimizer '{other}' (expected adam, adamw or sgd)"
            )));
        }
    };
    Ok(OptimizerConfig {
        kind,
        weight_decay: args.weight_decay,
        momentum: if kind == OptimizerKind::Sgd {
            args.momentum
        } else {
            0.0
        },
        ..OptimizerConfig::adam(args.lr)
    })
}

/// One token of --encoder, its error without the `invalid configuration: ` prefix (clap
/// names the flag and the value).
fn parse_encoder_token(s: &str) -> std::result::Result<EncoderToken, String> {
    EncoderToken::parse(s).map_err(|e| match e {
        Error::Config(m) => m,
        other => other.to_string(),
    })
}

fn spec_from_flags(args: &TrainArgs, data: &Dataset) -> Result<ModelSpec> {
    model_options(args).spec(data.cols)
}

/// The model flags as the library's options (the one place that resolves them into a spec,
/// shared with the Python package).
fn model_options(args: &TrainArgs) -> ModelOptions {
    ModelOptions {
        encoder: args.encoder.clone(),
        decoder: args.decoder.clone(),
        activation: args.activation.clone(),
        code_activation: args.code_activation.clone(),
        output_activation: args.output_activation.clone(),
        loss: args.loss.clone(),
        tied: args.tied,
        variant: args.variant.clone(),
        sparsity: args.sparsity,
        sparsity_target: args.sparsity_target,
        noise: args.noise.clone(),
        contractive: args.contractive,
        jacobian_projections: args.jacobian_projections,
        beta: args.beta,
        vae_samples: args.vae_samples,
        prediction: args.prediction,
        inference_steps: args.inference_steps,
    }
}

/// The flag spelling of an activation (`leaky_relu`).
fn activation_name(a: Activation) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes `spec` back into the model flags, so that the resolved configuration rebuilds it
/// exactly (also when it came from --init or a resumed state).
fn flags_from_spec(args: &mut TrainArgs, spec: &ModelSpec) {
    args.encoder = spec.encoder_tokens();
    args.decoder = Some(spec.decoder.clone());
    args.activation = activation_name(spec.activation);
    args.code_activation = activation_name(spec.code_activation);
    args.output_activation = activation_name(spec.output_activation);
    args.loss = match spec.loss {
        Loss::Mse => "mse",
        Loss::Bce => "bce",
    }
    .into();
    args.tied = spec.tied;
    args.variant = match spec.variant {
        Variant::Plain => "plain",
        Variant::Sparse { lambda, target } => {
            (args.sparsity, args.sparsity_target) = (lambda, target);
            "sparse"
        }
        Variant::Denoising { noise } => {
            args.noise = match noise {
                Noise::Mask { nu } => format!("mask:{nu}"),
                Noise::Gaussian { sigma } => format!("gaussian:{sigma}"),
                Noise::SaltPepper { nu } => format!("saltpepper:{nu}"),
            };
            "denoising"
        }
        Variant::Contractive {
            lambda,
            projections,
        } => {
            (args.contractive, args.jacobian_projections) = (lambda, projections);
            "contractive"
        }
        Variant::Vae { beta, samples } => {
            (args.beta, args.vae_samples) = (beta, samples);
            "vae"
        }
        Variant::Psd {
            lambda,
            gamma,
            inference_steps,
        } => {
            (args.sparsity, args.prediction, args.inference_steps) =
                (lambda, gamma, inference_steps);
            "psd"
        }
    }
    .into();
}

/// Splits `fraction` of the rows off for validation, chosen by `seed` (stream `Split`); both
/// parts keep file order.
pub fn split_off(data: Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!(
            "--val-split must be between 0 and 1, got {fraction}"
        )));
    }
    let rows = data.rows;
    let n_val = ((rows as f64 * fraction).round() as usize).max(1);
    if n_val >= rows {
        return Err(Error::Config(format!(
            "--val-split {fraction} leaves no training rows out of {rows}"
        )));
    }
    // A partial Fisher–Yates shuffle picks the validation rows.
    let mut rng = Sequence::new(seed, Stream::Split, 0);
    let mut index: Vec<usize> = (0..rows).collect();
    for i in 0..n_val {
        let j = i + rng.below((rows - i) as u32) as usize;
        index.swap(i, j);
    }
    let mut is_val = vec![false; rows];
    for &i in &index[..n_val] {
        is_val[i] = true;
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, &v) in is_val.iter().enumerate() {
        if v { &mut val } else { &mut train }.extend_from_slice(data.row(i));
    }
    Ok((
        Dataset::new(rows - n_val, data.cols, train)?,
        Dataset::new(n_val, data.cols, val)?,
    ))
}

/// Refuses training and validation data the loss cannot take (cross-entropy outside [0, 1]),
/// naming the file and the normalization applied, before the run folder is touched.
fn check_data_targets(
    spec: &ModelSpec,
    args: &TrainArgs,
    source: &Source,
    normalization: &data::Normalization,
    train: &Dataset,
    val: Option<&Dataset>,
) -> Result<()> {
    let named = |what: String| match normalization.kind {
        data::Normalize::None => what,
        kind => format!("{what} after --normalize {}", kind.name()),
    };
    check_targets(spec, train, &named(source.describe()))?;
    if let Some(v) = val {
        let what = match (&args.val, args.val_split) {
            (Some(path), _) => path.clone(),
            (None, Some(f)) => format!("the --val-split {f} rows of {}", source.describe()),
            (None, None) => format!("the validation split of {}", source.describe()),
        };
        check_targets(spec, v, &named(what))?;
    }
    Ok(())
}

/// The text of `config.toml`: the resolved flags, without --out.
fn config_text(args: &TrainArgs) -> Result<String> {
    let mut table = config::to_table(args)?;
    table.remove("out");
    Ok(format!(
        "# The resolved configuration of this `hourglass train` run. Run it again with\n\
         # `hourglass train --config config.toml --out NEW_DIR`; continue it with\n\
         # `hourglass train --resume DIR [--epochs N]`.\n{table}"
    ))
}

pub fn run(cli: TrainArgs, matches: &ArgMatches, ui: Ui) -> Result<()> {
    let world = World::start()?;
    let mut shared_failure = false;
    let result = run_rank(cli, matches, world.ui(ui), &world, &mut shared_failure);
    world.finish(result, shared_failure)
}

/// `hourglass train` on one rank (the only one, without MPI); `shared_failure` is set when an
/// error is one every rank met (see [`World::finish`]).
fn run_rank(
    cli: TrainArgs,
    matches: &ArgMatches,
    ui: Ui,
    world: &World,
    shared_failure: &mut bool,
) -> Result<()> {
    let args = resolve_args(cli, matches)?;
    crate::psd::check_flags(&args, matches)?;
    let resuming = args.resume.is_some();
    if resuming {
        resume::refuse_run_flags(matches, &args.out)?;
    }
    Plan::new()
        .data(&args.data)
        .data_file("--val", args.val.as_deref())
        .input("--init", args.init.as_deref().filter(|_| !resuming))
        .folder("--out", &args.out, &RUN_FILES)
        .check()?;

    // Data: the training set, validation data, and the normalization fitted on the former.
    let source = args.data.source()?;
    let (mut train, own_val) = source.load_train(ui)?;
    let mut val = match (&args.val, args.val_split) {
        (Some(path), _) => Some(source::load_file(path)?),
        (None, Some(fraction)) => {
            let (t, v) = split_off(train, fraction, args.seed)?;
            train = t;
            Some(v)
        }
        (None, None) => own_val,
    };
    if let Some(v) = &val
        && v.cols != train.cols
    {
        return Err(Error::Config(format!(
            "the validation data has {} features but the training data has {}",
            v.cols, train.cols
        )));
    }
    let identity = DataIdentity::of(
        match &source {
            Source::Bundled => "bundled".into(),
            Source::Named { name, dir } => format!("{name} in {}", config::absolute(dir).display()),
            Source::File(file) => config::absolute(file.as_ref()).display().to_string(),
        },
        &train,
        args.batch_size,
    );
    let normalization = data::normalize(args.data.normalize_kind()?, &train);
    normalization.apply(&mut train)?;
    if let Some(v) = &mut val {
        normalization.apply(v)?;
    }

    // The model: from a resumed state, an initial checkpoint or the flags.
    let (spec, init, state): (ModelSpec, _, Option<TrainState>) = if resuming {
        let path = args.out.join("train_state.safetensors");
        let (spec, state, metadata) = checkpoint::load_state(&path)?;
        resume::check_state_spec(&spec, &spec_from_flags(&args, &train)?, &args.out)?;
        identity.check(&metadata, &args.out)?;
        (spec, None, Some(state))
    } else if let Some(path) = &args.init {
        let (ckpt, params) = checkpoint::load(path)?;
        let mut from_ckpt = args.clone();
        flags_from_spec(&mut from_ckpt, &ckpt);
        let flags = resume::init_flags(matches, path, &ckpt, &from_ckpt, &args, ui)?;
        (spec_from_flags(&flags, &train)?, Some(params), None)
    } else {
        (spec_from_flags(&args, &train)?, None, None)
    };

    check_data_targets(&spec, &args, &source, &normalization, &train, val.as_ref())?;
    crate::unused::warn_unused(&spec, &args, matches);
    if !args.drop_last && train.rows < args.batch_size {
        ui.note(&format!(
            "--batch-size {} is larger than the {} training rows: each epoch is one step on \
             all of them",
            args.batch_size, train.rows
        ));
    }

    let batch_size = args
        .batch_size
        .max(1)
        .saturating_mul(args.accumulate.max(1));
    let per_epoch = if args.drop_last {
        train.rows / batch_size
    } else {
        train.rows.div_ceil(batch_size)
    }
    .max(1) as u64;
    let total = match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, e) => e
            .unwrap_or(DEFAULT_EPOCHS)
            .checked_mul(per_epoch)
            .ok_or_else(|| Error::Config("--epochs is too large".into()))?,
    };
    if args.checkpoint_every == Some(0) || args.early_stop == Some(0) || args.log_every == Some(0) {
        return Err(Error::Config(
            "--checkpoint-every, --early-stop and --log-every must be at least 1".into(),
        ));
    }
    if let Some(c) = args.clip_grad_norm
        && !(c.is_finite() && c > 0.0)
    {
        return Err(Error::Config(format!(
            "--clip-grad-norm must be positive, got {c}"
        )));
    }
    let train_config = TrainConfig {
        batch_size: args.batch_size,
        drop_last: args.drop_last,
        optimizer: optimizer(&args)?,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        schedule: Schedule::parse(&args.schedule, total)?,
        warmup: args.warmup,
        clip_grad_norm: args.clip_grad_norm,
        on_nonfinite: NonFinitePolicy::parse(&args.on_nonfinite)?,
        max_resident_bytes: None,
        precision: match args.precision.as_str() {
            "mixed-emulated" => Precision::Mixed,
            p => Precision::parse(p)
                .map_err(|e| Error::Config(format!("--precision: {e}, or mixed-emulated")))?,
        },
        emulate_mixed: args.precision == "mixed-emulated",
        accumulate: args.accumulate,
        reduce_precision: ReducePrecision::parse(&args.reduce_precision)
            .map_err(|e| Error::Config(format!("--reduce-precision: {e}")))?,
        bucket_bytes: reduce_buckets(&args.reduce_buckets)?,
    };
    // Every rank was given the same run, or none starts.
    if world.is_parallel() {
        let run =
            crate::parallel::run_digest(&args, &identity.to_json(), &train, val.as_ref(), &spec);
        world
            .check_same_run(&run)
            .inspect_err(|_| *shared_failure = true)?;
        // The same run on every rank: what cannot be shared is refused by all of them alike.
        Trainer::check_data_parallel(&spec, &train_config, train.rows, world.size())
            .inspect_err(|_| *shared_failure = true)?;
    }
    let device = world.open_device(&args.device, ui)?;
    let mut trainer = if world.is_parallel() {
        Trainer::new_data_parallel(
            &spec,
            &train_config,
            &train,
            &device,
            init.as_ref(),
            world.communicator(),
        )?
    } else {
        Trainer::new(&spec, &train_config, &train, &device, init.as_ref())?
    };
    if train_config.reduce_precision == ReducePrecision::F16 && !world.is_parallel() {
        ui.note(
            "--reduce-precision f16 applies to the sum between the ranks of an mpirun job; \
             this is one process, whose gradient is not reduced: it trains as with f32",
        );
    }
    if train_config.precision != trainer.precision() {
        ui.note(&format!(
            "--precision mixed needs a GPU with f16 cooperative matrices (tensor cores), which \
             {} does not have; training in f32 (--precision mixed-emulated gives mixed \
             precision's numbers here, slowly)",
            match &device {
                Device::Gpu(ctx) => ctx.adapter.name.clone(),
                Device::Cpu => "the CPU".to_string(),
            }
        ));
    }
    if let Some(state) = &state {
        trainer.restore(state)?;
        if state.step > total {
            return Err(Error::Config(format!(
                "the run in {} has taken {} steps, more than the {total} asked for",
                args.out.display(),
                state.step
            )));
        }
    }

    // The other ranks train alongside rank 0 and write nothing.
    // They do not validate: the validation loss only informs rank 0's decisions, which they
    // follow.
    if !world.is_root() {
        return world.follow(&mut trainer, &fit::options(&args, total, None, None));
    }

    // Every input is checked: now the folder is taken (locked; a run in it refused unless
    // resumed or --overwrite).
    let mode = match (resuming, args.overwrite) {
        (true, _) => Mode::Resume,
        (false, true) => Mode::Overwrite,
        (false, false) => Mode::New,
    };
    let mut folder = RunFolder::open(&args.out, mode, ui)?;

    // The resolved configuration, enough to run it again.
    let mut resolved = args.clone();
    match &source {
        Source::Bundled => {
            resolved.data.dataset = Some("bundled".into());
        }
        Source::Named { name, dir } => {
            resolved.data.dataset = Some(name.clone());
            resolved.data.data_dir = Some(config::absolute(dir));
        }
        Source::File(file) => {
            resolved.data.data = Some(config::absolute(file.as_ref()).display().to_string());
        }
    }
    resolved.data.normalize = Some(normalization.kind.name().into());
    resolved.val = args
        .val
        .as_ref()
        .map(|v| config::absolute(v.as_ref()).display().to_string());
    resolved.init = args.init.as_deref().map(config::absolute);
    if resolved.steps.is_none() && resolved.epochs.is_none() {
        resolved.epochs = Some(DEFAULT_EPOCHS);
    }
    flags_from_spec(&mut resolved, &spec);
    crate::gpu_options::record_device(&mut resolved.device.gpu, &device);
    let config_toml = format!(
        "{}{}",
        config_text(&resolved)?,
        crate::gpu_options::device_comment(&device)
    );

    fit::fit(fit::Run {
        args: &resolved,
        folder: &mut folder,
        data_identity: identity.to_json(),
        spec: &spec,
        config: &train_config,
        config_toml: &config_toml,
        source: &source,
        train: &train,
        val: val.as_ref(),
        normalization: &normalization,
        device: &device,
        trainer: &mut trainer,
        total,
        resuming,
        ui,
        world,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_split_is_seeded_and_disjoint() {
        let rows = 50;
        let data = Dataset::new(rows, 1, (0..rows).map(|i| i as f32).collect()).unwrap();
        let (t, v) = split_off(data.clone(), 0.2, 7).unwrap();
        assert_eq!((t.rows, v.rows), (40, 10));
        let mut all: Vec<f32> = t.values.iter().chain(&v.values).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, data.values, "every row lands in exactly one part");
        assert!(v.values.windows(2).all(|w| w[0] < w[1]), "file order kept");
        assert_eq!(
            split_off(data.clone(), 0.2, 7).unwrap().1,
            v,
            "same seed, same split"
        );
        assert_ne!(split_off(data.clone(), 0.2, 8).unwrap().1, v);
        assert!(split_off(data.clone(), 1.0, 0).is_err());
        assert!(split_off(data, 0.999, 0).is_err());
    }

    #[test]
    fn every_spec_survives_the_flags() {
        let data = Dataset::new(1, 6, vec![0.0; 6]).unwrap();
        let matches = clap::Command::new("t").no_binary_name(true);
        let parse = |argv: &[&str]| {
            let m = TrainArgs::augment_args(matches.clone()).get_matches_from(argv);
            <TrainArgs as clap::FromArgMatches>::from_arg_matches(&m).unwrap()
        };
        for argv in [
            &[
                "--encoder",
                "6,4,2",
                "--decoder",
                "2,3,6",
                "--activation",
                "leaky_relu",
            ][..],
            &["--variant", "denoising", "--noise", "gaussian:0.3"],
            &[
                "--variant",
                "sparse",
                "--sparsity-target",
                "0.05",
                "--code-activation",
                "sigmoid",
            ],
            &[
                "--variant",
                "contractive",
                "--jacobian-projections",
                "3",
                "--tied",
            ],
            &[
                "--variant",
                "vae",
                "--beta",
                "0.5",
                "--vae-samples",
                "2",
                "--loss",
                "mse",
            ],
            &["--encoder", "1x2x3,conv4k3s2,conv2,5", "--tied"],
            &["--encoder", "1x2x3,4"],
            &["--encoder", "1x2x3,conv2k1s2"],
            &[
                "--variant",
                "psd",
                "--encoder",
                "6,3",
                "--sparsity",
                "0.4",
                "--prediction",
                "0.7",
                "--inference-steps",
                "9",
            ],
        ] {
            let args = parse(argv);
            let spec = spec_from_flags(&args, &data).unwrap();
            let mut round = parse(&[]);
            flags_from_spec(&mut round, &spec);
            assert_eq!(spec_from_flags(&round, &data).unwrap(), spec, "{argv:?}");
        }
    }
}

/// `--reduce-buckets`: a size in KiB, or off (`None`: one sum after the backward pass).
fn reduce_buckets(s: &str) -> Result<Option<usize>> {
    hourglass::train::parse_bucket_kib(s)
        .map_err(|e| Error::Config(format!("--reduce-buckets: {e}")))
}

/// The default of `--reduce-buckets` in config files that predate it.
fn bucket_kib() -> String {
    (hourglass::train::DEFAULT_BUCKET_BYTES / 1024).to_string()
}

/// The default of `--reduce-precision` in config files that predate it.
fn f32_name() -> String {
    "f32".into()
}

/// The default of fields that count from one (`--accumulate` in config files that predate it).
fn one() -> usize {
    1
}
