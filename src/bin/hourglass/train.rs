//! `hourglass train`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use hourglass::data::{self, Dataset};
use hourglass::io::checkpoint;
use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
use hourglass::optim::{OptimizerConfig, OptimizerKind};
use hourglass::train::{Device, DeviceChoice, Schedule, TrainConfig, Trainer};
use hourglass::{Error, Result};

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: a float32 .npy matrix [N, D] (also .csv, IDX).
    #[arg(long)]
    data: PathBuf,
    /// Encoder layer sizes, input first, code last.
    #[arg(long, value_delimiter = ',', default_values_t = Vec::<usize>::new())]
    encoder: Vec<usize>,
    /// Decoder layer sizes, code first, output last (default: the encoder mirrored).
    #[arg(long, value_delimiter = ',')]
    decoder: Option<Vec<usize>>,
    /// Hidden-layer activation: relu, leaky_relu, sigmoid, tanh, identity.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Activation of the code layer: identity, relu, sigmoid, tanh.
    #[arg(long, default_value = "identity")]
    code_activation: String,
    /// Output activation: sigmoid or identity.
    #[arg(long, default_value = "sigmoid")]
    output_activation: String,
    /// Reconstruction loss: mse or bce (cross-entropy from logits; needs a sigmoid output).
    #[arg(long, default_value = "bce")]
    loss: String,
    /// Tie the decoder's weights to the encoder's transposes (needs a mirrored decoder).
    #[arg(long)]
    tied: bool,
    /// Regularized variant: plain, sparse, denoising, contractive or vae.
    #[arg(long, default_value = "plain")]
    variant: String,
    /// Sparse: weight λ of the L1 (or, with --sparsity-target, KL) penalty on the code.
    #[arg(long, default_value_t = 1e-3)]
    sparsity: f32,
    /// Sparse: target mean activation ρ of sigmoid code units (KL sparsity).
    #[arg(long)]
    sparsity_target: Option<f32>,
    /// Denoising: mask:ν (zero a proportion ν), gaussian:σ or saltpepper:ν.
    #[arg(long, default_value = "mask:0.25")]
    noise: String,
    /// Contractive: weight λ of ‖∂h/∂x‖²_F.
    #[arg(long, default_value_t = 0.1)]
    contractive: f32,
    /// Contractive: estimate the penalty with K random projections instead of exactly.
    #[arg(long)]
    jacobian_projections: Option<u32>,
    /// VAE: weight β of the KL term.
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// VAE: samples of z per input.
    #[arg(long, default_value_t = 1)]
    vae_samples: u32,
    /// Optimizer: adam, adamw or sgd.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Weight decay (L2 for adam and sgd, decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Learning-rate schedule: constant, step (halve every third of the run) or cosine (to zero).
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Optimizer steps to take (instead of --epochs).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Passes over the data.
    #[arg(long)]
    epochs: Option<u64>,
    /// Visit the examples in file order instead of a fresh shuffle each epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Seed of initialisation, shuffling and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto (a hardware GPU if present, else CPU), gpu or cpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Start from this checkpoint's weights (its model spec is used).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "hourglass-run")]
    out: PathBuf,
    /// Print the loss every N steps (default: about 20 lines per run).
    #[arg(long)]
    log_every: Option<u64>,
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

fn spec_from_flags(args: &TrainArgs, data: &Dataset) -> Result<ModelSpec> {
    let encoder = if args.encoder.is_empty() {
        vec![data.cols, 256, 32]
    } else {
        args.encoder.clone()
    };
    let mut spec = ModelSpec::mirrored(&encoder);
    if let Some(d) = &args.decoder {
        spec.decoder = d.clone();
    }
    spec.activation = Activation::parse(&args.activation)?;
    spec.code_activation = Activation::parse(&args.code_activation)?;
    spec.output_activation = Activation::parse(&args.output_activation)?;
    spec.loss = match args.loss.as_str() {
        "mse" => Loss::Mse,
        "bce" => Loss::Bce,
        other => {
            return Err(Error::Config(format!(
                "unknown loss '{other}' (expected mse or bce)"
            )));
        }
    };
    spec.tied = args.tied;
    spec.variant = match args.variant.as_str() {
        "plain" => Variant::Plain,
        "sparse" => Variant::Sparse {
            lambda: args.sparsity,
            target: args.sparsity_target,
        },
        "denoising" => Variant::Denoising {
            noise: Noise::parse(&args.noise)?,
        },
        "contractive" => Variant::Contractive {
            lambda: args.contractive,
            projections: args.jacobian_projections,
        },
        "vae" => Variant::Vae {
            beta: args.beta,
            samples: args.vae_samples,
        },
        other => {
            return Err(Error::Config(format!(
                "unknown variant '{other}' (expected plain, sparse, denoising, contractive or vae)"
            )));
        }
    };
    spec.validate()?;
    Ok(spec)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let data = data::load(&args.data)?;
    if data.rows == 0 {
        return Err(Error::bad_file(&args.data, "the data set has no rows"));
    }
    let (spec, init) = match &args.init {
        Some(path) => {
            let (spec, params) = checkpoint::load(path)?;
            (spec, Some(params))
        }
        None => (spec_from_flags(&args, &data)?, None),
    };
    let spe = (data.rows / args.batch_size.max(1)) as u64;
    let total = match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => e * spe,
        (None, None) => 5 * spe,
    };
    let config = TrainConfig {
        batch_size: args.batch_size,
        optimizer: optimizer(&args)?,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        schedule: Schedule::parse(&args.schedule, total)?,
        warmup: args.warmup,
        clip_grad_norm: None,
        on_nonfinite: hourglass::train::NonFinitePolicy::Stop,
    };
    let (device, note) = Device::open(DeviceChoice::parse(&args.device)?)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let started = Instant::now();
    let mut trainer = Trainer::new(&spec, &config, &data, &device, init.as_ref())?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let ckpt = args.out.join("model.safetensors");
    println!(
        "training {:?} → {:?} on {} rows × {} features, {} on {}",
        spec.encoder,
        spec.decoder,
        data.rows,
        data.cols,
        format!("{total} steps of {}", config.batch_size),
        device.describe()
    );
    let log_every = args.log_every.unwrap_or((total / 20).max(1)).max(1);
    let mut last = Instant::now();
    while trainer.step() < total {
        let n = log_every.min(total - trainer.step());
        let loss = trainer
            .train_steps(n, true)?
            .expect("a reported chunk returns its loss");
        let rate = (n as usize * config.batch_size) as f64 / last.elapsed().as_secs_f64();
        last = Instant::now();
        println!(
            "step {:>7}/{total}  epoch {:>4}  loss {loss}  {rate:>10.0} samples/s",
            trainer.step(),
            trainer.step().div_ceil(spe.max(1)),
        );
    }
    checkpoint::save(&ckpt, &spec, &trainer.parameters()?)?;
    println!(
        "wrote {} after {total} steps in {:.1} s",
        ckpt.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
