//! `hourglass sample`: decode codes drawn from a VAE's prior N(0, I), or walk the straight line
//! between the codes of two inputs.

use std::path::PathBuf;

use clap::Args;
use hourglass::data::Dataset;
use hourglass::data::npy::write_npy;
use hourglass::infer::Autoencoder;
use hourglass::io::checkpoint;
use hourglass::model::Variant;
use hourglass::rng::{Sequence, Stream, gaussian_f32};
use hourglass::viz::{Tile, image_side, tile_rows};
use hourglass::{Error, Result};

use crate::Ui;
use crate::outputs::Plan;
use crate::source::{DataArgs, DeviceArg, inference_normalization};

pub const EXAMPLES: &str = "\
Examples:
  hourglass sample --model vae/model.safetensors --n 64 --png samples.png
  hourglass sample --model vae/model.safetensors --n 16 --seed 3 --out samples.npy
  hourglass sample --model vae/model.safetensors --interpolate 0,1 --n 12 --png walk.png
      (rows 0 and 1 of --data, here the bundled test set: an ankle boot and a pullover)";

/// The most codes one call decodes.
const MAX_N: usize = 1_000_000;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "png"]))]
pub struct SampleArgs {
    /// Checkpoint of the model (a VAE, unless --interpolate).
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    /// How many codes to decode.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Draw the decoded rows as a grid of square images.
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Write the decoded rows as a float32 .npy matrix [n, features].
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    /// Seed of the draws z ~ N(0, I).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of sampling, decode n points evenly spaced from the code of row A of the data
    /// to that of row B (0-based; works for any autoencoder).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    interpolate: Option<Vec<usize>>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
}

/// `n` codes of `dim` standard normal values, row by row from one seeded sequence, so the
/// first k samples are the same whatever n is.
pub fn prior_draws(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Sequence::new(seed, Stream::Sampler, 0);
    (0..n * dim)
        .map(|_| gaussian_f32(rng.next_u32(), rng.next_u32()))
        .collect()
}

/// `n` points on the segment from `a` to `b`, both ends included.
fn line(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|k| {
            let t = if n > 1 {
                k as f32 / (n - 1) as f32
            } else {
                0.0
            };
            a.iter().zip(b).map(move |(&x, &y)| x + t * (y - x))
        })
        .collect()
}

pub fn run(args: SampleArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .output("--out", args.out.as_deref(), &["npy"])
        .output("--png", args.png.as_deref(), &["png"])
        .check()?;
    if !(1..=MAX_N).contains(&args.n) {
        return Err(Error::Config(format!(
            "--n must be between 1 and {MAX_N}, got {}",
            args.n
        )));
    }
    let (spec, params) = checkpoint::load(&args.model)?;
    if let Some(png) = &args.png
        && image_side(spec.input_dim()).is_none()
    {
        return Err(Error::Config(format!(
            "{}: the model's {} features are not a square image, so there is nothing to draw; \
             write --out FILE.npy instead",
            png.display(),
            spec.input_dim()
        )));
    }
    if args.interpolate.is_none() && !matches!(spec.variant, Variant::Vae { .. }) {
        return Err(Error::Config(format!(
            "sample draws codes from a VAE's prior N(0, I), but {} is a {} autoencoder; \
             train one with --variant vae, or walk between two inputs with --interpolate A,B",
            args.model.display(),
            variant_name(&spec.variant)
        )));
    }
    let mut ae = Autoencoder::new(spec.clone(), params, args.device.open(ui, "decoding")?)?;
    let (codes, normalization, what) = match &args.interpolate {
        None => {
            let dim = spec.code_dim();
            let draws = prior_draws(args.n, dim, args.seed);
            let n = inference_normalization(&args.data, &args.model, None, ui)?;
            (
                Dataset::new(args.n, dim, draws)?,
                n,
                format!("samples z ~ N(0, I), seed {}", args.seed),
            )
        }
        Some(ends) => {
            let &[a, b] = ends.as_slice() else {
                return Err(Error::Config(format!(
                    "--interpolate takes two row numbers A,B, got {ends:?}"
                )));
            };
            let source = args.data.source()?;
            let mut data = source.load_one(ui)?;
            if let Some(&bad) = [a, b].iter().find(|&&r| r >= data.rows) {
                return Err(Error::Config(format!(
                    "--interpolate row {bad} is past the end of {} ({} rows)",
                    source.describe(),
                    data.rows
                )));
            }
            let n = inference_normalization(&args.data, &args.model, Some(&data), ui)?;
            if let Some(n) = &n {
                n.apply(&mut data)?;
            }
            let mut ends = data.row(a).to_vec();
            ends.extend_from_slice(data.row(b));
            let z = ae.encode(&Dataset::new(2, data.cols, ends)?)?;
            let dim = z.cols;
            (
                Dataset::new(args.n, dim, line(z.row(0), z.row(1), args.n))?,
                n,
                format!("steps from the code of row {a} to that of row {b}"),
            )
        }
    };
    let mut decoded = ae.decode(&codes)?;
    if let Some(n) = &normalization {
        n.invert(&mut decoded)?;
    }
    if let Some(out) = &args.out {
        write_npy(out, decoded.rows, decoded.cols, &decoded.values)?;
        ui.say(&format!("wrote {}: {} {what}", out.display(), decoded.rows));
    }
    if let Some(png) = &args.png {
        let columns = if args.interpolate.is_some() {
            args.n.min(16)
        } else {
            (args.n as f64).sqrt().ceil() as usize
        };
        let steps = decoded.rows;
        let tiles = (0..steps).map(|i| Tile {
            values: decoded.row(i),
            // The position along the line from the first end (0) to the second (1).
            caption: args.interpolate.is_some().then(|| {
                let t = if steps > 1 {
                    i as f32 / (steps - 1) as f32
                } else {
                    0.0
                };
                format!("t {t:.2}")
            }),
        });
        let grid = tile_rows(tiles, decoded.cols, columns)?
            .title(what.clone())
            .render()?;
        grid.write_png(png)?;
        ui.say(&format!(
            "wrote {}: {} {what} ({}×{} pixels)",
            png.display(),
            decoded.rows,
            grid.width,
            grid.height
        ));
    }
    Ok(())
}

fn variant_name(v: &Variant) -> &'static str {
    match v {
        Variant::Plain => "plain",
        Variant::Sparse { .. } => "sparse",
        Variant::Denoising { .. } => "denoising",
        Variant::Contractive { .. } => "contractive",
        Variant::Vae { .. } => "variational",
        Variant::Psd { .. } => "predictive sparse decomposition",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_standard_normal_and_prefix_stable() {
        let z = prior_draws(2000, 4, 9);
        let mean = z.iter().map(|&v| f64::from(v)).sum::<f64>() / z.len() as f64;
        let var = z
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / z.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        assert_eq!(
            prior_draws(3, 4, 9),
            z[..12],
            "the first samples do not depend on n"
        );
        assert_ne!(prior_draws(1, 4, 10), z[..4]);
    }

    #[test]
    fn line_includes_both_ends() {
        assert_eq!(
            line(&[0.0, 10.0], &[1.0, 20.0], 3),
            [0.0, 10.0, 0.5, 15.0, 1.0, 20.0]
        );
        assert_eq!(line(&[2.0], &[4.0], 1), [2.0]);
    }
}
