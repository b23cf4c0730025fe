//! `hourglass encode` and `hourglass reconstruct`: a trained model applied to every row of a
//! data set, written as `.npy` (and, for square images, a PNG grid).

use std::path::PathBuf;

use clap::Args;
use hourglass::analysis::hashing::{binarize, pack_bits, threshold_for};
use hourglass::data::Dataset;
use hourglass::data::npy::write_npy;
use hourglass::infer::Autoencoder;
use hourglass::io::checkpoint;
use hourglass::model::Variant;
use hourglass::viz::{SCATTER_SIZE, image_side, reconstruction_grid, write_scatter};
use hourglass::{Error, Result};

use crate::Ui;
use crate::analysis::{class_names, source_labels};
use crate::outputs::Plan;
use crate::source::{DataArgs, DeviceArg, inference_normalization};

pub const ENCODE_EXAMPLES: &str = "\
Examples:
  hourglass encode --model run1/best.safetensors --data my.npy --out codes.npy
  hourglass encode --model vae/model.safetensors --dataset fashion-mnist --out test-codes.npy
  hourglass encode --model hash/model.safetensors --binary --out bits.npy
      (uint8 [rows, ceil(code/8)], bits most significant first: np.unpackbits(a, axis=1))
  hourglass encode --model psd/best.safetensors --infer --out sparse.npy
      (a --variant psd model: the sparse codes h* by FISTA, not the fast encoder's f(x))
  hourglass encode --model map2d/model.safetensors --png codes.png
      (a model with a 2-number code: the bundled test set's codes coloured by class)";

pub const RECONSTRUCT_EXAMPLES: &str = "\
Examples:
  hourglass reconstruct --model run1/best.safetensors --out recon.npy --png grid.png
  hourglass reconstruct --model run1/model.safetensors --data x.npy --out x-recon.npy";

#[derive(Args)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "png"]))]
pub struct EncodeArgs {
    /// Checkpoint of the model.
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
    /// Where to write the codes: a float32 .npy matrix [rows, code size] (with --binary a
    /// uint8 one [rows, ⌈code size/8⌉] of packed bits).
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    /// Semantic hashing: write each code as bits (code > --threshold), packed 8 to a byte,
    /// most significant bit first (np.packbits order; the last byte's spare bits are 0).
    #[arg(long, requires = "out")]
    binary: bool,
    /// The bit threshold of --binary [default: 0.5 for a sigmoid code, else 0].
    #[arg(
        long,
        value_name = "F",
        requires = "binary",
        allow_negative_numbers = true,
        value_parser = crate::limits::finite_f32
    )]
    threshold: Option<f32>,
    /// Scatter the codes (a 2-number code only), coloured by label when there are labels.
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Labels of the rows for --png (IDX label file, or a one-column .npy/.csv); automatic
    /// for the bundled set and --dataset.
    #[arg(long, value_name = "PATH", requires = "png")]
    labels: Option<String>,
    /// A PSD model (--variant psd): write the sparse codes h* = argmin ‖x − Dh‖² + λ‖h‖₁ +
    /// γ‖h − f(x)‖², inferred by FISTA from f(x) until the objective's relative change is
    /// below 1e-7, instead of the fast encoder's f(x).
    #[arg(long)]
    infer: bool,
    /// With --infer: at most this many FISTA iterations per row [default: 1000].
    #[arg(long, value_name = "K", requires = "infer")]
    inference_steps: Option<u32>,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "png"]))]
pub struct ReconstructArgs {
    /// Checkpoint of the model.
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
    /// Where to write the reconstructions: a float32 .npy matrix [rows, features].
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    /// Also draw the first --png-count rows above their reconstructions (square images only).
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Examples in the PNG grid, 16 to a row pair.
    #[arg(long, default_value_t = 16, value_name = "N")]
    png_count: usize,
}

/// Loads the model and the data, normalized as the model was trained.
fn load(
    model: &std::path::Path,
    data: &DataArgs,
    device: &DeviceArg,
    doing: &str,
    ui: Ui,
) -> Result<(Autoencoder, Dataset, Option<hourglass::data::Normalization>)> {
    let (spec, params) = checkpoint::load(model)?;
    let mut rows = data.source()?.load_one(ui)?;
    let ae = Autoencoder::new(spec, params, device.open(ui, doing)?)?;
    let n = inference_normalization(data, model, Some(&rows), ui)?;
    if let Some(n) = &n {
        n.apply(&mut rows)?;
    }
    Ok((ae, rows, n))
}

pub fn run_encode(args: EncodeArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .data_file("--labels", args.labels.as_deref())
        .output("--out", args.out.as_deref(), &["npy"])
        .output("--png", args.png.as_deref(), &["png"])
        .check()?;
    let (spec, _) = checkpoint::load(&args.model)?;
    if args.infer && spec.psd_settings().is_none() {
        return Err(Error::Config(
            "--infer runs the sparse-code inference of a PSD model (--variant psd); this model \
             has a feed-forward encoder only: leave out --infer"
                .into(),
        ));
    }
    if let Some(steps) = args.inference_steps {
        hourglass::model::psd::check_steps(steps)?;
    }
    if args.png.is_some() && spec.code_dim() != 2 {
        return Err(Error::Config(format!(
            "--png scatters 2-D codes, but the model's code has {} values; train one with a \
             code of 2 (e.g. --encoder 784,256,2)",
            spec.code_dim()
        )));
    }
    let source = args.data.source()?;
    let labels = match (&args.png, &args.labels) {
        (None, _) => None,
        (Some(_), Some(file)) => Some(hourglass::data::load_labels(std::path::Path::new(file))?),
        (Some(_), None) => source_labels(&source)?,
    };
    let (mut ae, data, _) = load(&args.model, &args.data, &args.device, "encoding", ui)?;
    if let Some(l) = &labels
        && l.len() != data.rows
    {
        return Err(Error::Config(format!(
            "{} labels for the {} rows of {}",
            l.len(),
            data.rows,
            source.describe()
        )));
    }
    let (codes, what) = if args.infer {
        let max = args
            .inference_steps
            .unwrap_or(hourglass::model::psd::DEFAULT_INFER_STEPS);
        let inferred = ae.infer(&data, max as usize)?;
        let most = inferred.iterations.iter().max().copied().unwrap_or(0);
        ui.say(&format!(
            "inferred sparse codes: objective {:.5} per row (reconstruction {:.5} + sparsity \
             {:.5} + prediction {:.5}), {:.1}% zeros, at most {most} FISTA iterations{}",
            inferred.objective(),
            inferred.terms[0].1,
            inferred.terms[1].1,
            inferred.terms[2].1,
            100.0 * inferred.zero_fraction(),
            if inferred.converged {
                ""
            } else {
                " (some rows stopped at --inference-steps before the objective settled)"
            }
        ));
        (inferred.codes, " (sparse codes h*)")
    } else {
        let what = match ae.spec().variant {
            Variant::Vae { .. } => " (the means μ)",
            Variant::Psd { .. } => " (the fast encoder's f(x); --infer for h*)",
            _ => "",
        };
        (ae.encode(&data)?, what)
    };
    if let Some(out) = &args.out {
        if args.binary {
            let threshold = args
                .threshold
                .unwrap_or_else(|| threshold_for(ae.spec().code_activation));
            let packed = pack_bits(&binarize(&codes, threshold))?;
            packed.write_npy(out)?;
            ui.say(&format!(
                "wrote {}: {} codes of {} bits{what} (above {threshold}), packed into {} bytes \
                 each (uint8)",
                out.display(),
                packed.rows,
                packed.bits,
                packed.row_bytes()
            ));
        } else {
            write_npy(out, codes.rows, codes.cols, &codes.values)?;
            ui.say(&format!(
                "wrote {}: {} codes of {} values{what}",
                out.display(),
                codes.rows,
                codes.cols
            ));
        }
    }
    if let Some(png) = &args.png {
        let names = if args.labels.is_some() {
            &[][..]
        } else {
            class_names(&source)
        };
        let title = format!("codes of {}{what}", source.describe());
        write_scatter(png, &codes, labels.as_deref(), names, &title)?;
        let coloured = if labels.is_some() {
            ", coloured by label"
        } else {
            ""
        };
        ui.say(&format!(
            "wrote {}: {} codes{coloured} ({}×{} pixels)",
            png.display(),
            codes.rows,
            SCATTER_SIZE.0,
            SCATTER_SIZE.1
        ));
    }
    Ok(())
}

pub fn run_reconstruct(args: ReconstructArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .output("--out", args.out.as_deref(), &["npy"])
        .output("--png", args.png.as_deref(), &["png"])
        .check()?;
    if args.png.is_some() && args.png_count == 0 {
        return Err(Error::Config("--png-count must be at least 1".into()));
    }
    let (mut ae, mut data, n) = load(&args.model, &args.data, &args.device, "reconstructing", ui)?;
    if args.png.is_some() && image_side(data.cols).is_none() {
        return Err(Error::Config(format!(
            "--png draws square images (e.g. 784 = 28×28 features), but the data has {} \
             features; write --out FILE.npy instead",
            data.cols
        )));
    }
    let mut recon = ae.reconstruct(&data)?;
    if let Some(n) = &n {
        // Back to the data's own scale.
        n.invert(&mut recon)?;
        n.invert(&mut data)?;
    }
    if let Some((i, v)) = hourglass::limits::first_non_finite(&recon.values) {
        return Err(hourglass::Error::NonFinite {
            what: format!(
                "reconstruction ({v} in row {}); nothing was written",
                i / recon.cols.max(1)
            ),
            step: 0,
        });
    }
    if let Some(out) = &args.out {
        write_npy(out, recon.rows, recon.cols, &recon.values)?;
        ui.say(&format!(
            "wrote {}: {} reconstructions of {} features",
            out.display(),
            recon.rows,
            recon.cols
        ));
    }
    if let Some(png) = &args.png {
        let grid = reconstruction_grid(&data, None, &recon, args.png_count, 16)?;
        grid.write_png(png)?;
        ui.say(&format!(
            "wrote {}: {} inputs above their reconstructions ({}×{} pixels)",
            png.display(),
            args.png_count.min(data.rows),
            grid.width,
            grid.height
        ));
    }
    Ok(())
}
