//! `hourglass encode` and `hourglass reconstruct`: a trained model applied to every row of a
//! data set, written as `.npy` (and, for square images, a PNG grid).

use std::path::PathBuf;

use clap::Args;
use hourglass::data::Dataset;
use hourglass::data::npy::write_npy;
use hourglass::infer::Autoencoder;
use hourglass::io::checkpoint;
use hourglass::model::Variant;
use hourglass::viz::{image_side, reconstruction_grid};
use hourglass::{Error, Result};

use crate::Ui;
use crate::source::{DataArgs, DeviceArg, inference_normalization};

pub const ENCODE_EXAMPLES: &str = "\
Examples:
  hourglass encode --model run1/best.safetensors --data my.npy --out codes.npy
  hourglass encode --model vae/model.safetensors --dataset fashion-mnist --out test-codes.npy";

pub const RECONSTRUCT_EXAMPLES: &str = "\
Examples:
  hourglass reconstruct --model run1/best.safetensors --out recon.npy --png grid.png
  hourglass reconstruct --model run1/model.safetensors --data x.npy --out x-recon.npy";

#[derive(Args)]
pub struct EncodeArgs {
    /// Checkpoint of the model.
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
    /// Where to write the codes: a float32 .npy matrix [rows, code size].
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
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
    ui: Ui,
) -> Result<(Autoencoder, Dataset, Option<hourglass::data::Normalization>)> {
    let (spec, params) = checkpoint::load(model)?;
    let mut rows = data.source()?.load_one(ui)?;
    let ae = Autoencoder::new(spec, params, device.open(ui)?)?;
    let n = inference_normalization(data, model, Some(&rows), ui)?;
    if let Some(n) = &n {
        n.apply(&mut rows)?;
    }
    Ok((ae, rows, n))
}

pub fn run_encode(args: EncodeArgs, ui: Ui) -> Result<()> {
    let (mut ae, data, _) = load(&args.model, &args.data, &args.device, ui)?;
    let codes = ae.encode(&data)?;
    write_npy(&args.out, codes.rows, codes.cols, &codes.values)?;
    let what = if matches!(ae.spec().variant, Variant::Vae { .. }) {
        " (the means μ)"
    } else {
        ""
    };
    ui.say(&format!(
        "wrote {}: {} codes of {} values{what}",
        args.out.display(),
        codes.rows,
        codes.cols
    ));
    Ok(())
}

pub fn run_reconstruct(args: ReconstructArgs, ui: Ui) -> Result<()> {
    if args.png.is_some() && args.png_count == 0 {
        return Err(Error::Config("--png-count must be at least 1".into()));
    }
    let (mut ae, mut data, n) = load(&args.model, &args.data, &args.device, ui)?;
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
        let grid = reconstruction_grid(&data, &recon, args.png_count, 16)?;
        grid.write_png(png)?;
        ui.say(&format!(
            "wrote {}: {} originals above their reconstructions ({}×{} pixels)",
            png.display(),
            args.png_count.min(data.rows),
            grid.width,
            grid.height
        ));
    }
    Ok(())
}
