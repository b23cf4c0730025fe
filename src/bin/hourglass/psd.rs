//! `--variant psd` on the command line: the flags its linear decoder implies (and refuses when
//! given otherwise), and the run's `atoms.png`, one tile per dictionary column.

use std::path::Path;

use clap::ArgMatches;
use clap::parser::ValueSource;
use hourglass::model::{ModelSpec, Parameters, psd};
use hourglass::viz::{image_side, tile_rows};
use hourglass::{Error, Result};

use crate::train::TrainArgs;

/// Refuses, with a PSD model, a decoder or encoder flag given on the command line that
/// contradicts its linear decoder with the squared error and its tanh encoder.
pub fn check_flags(args: &TrainArgs, matches: &ArgMatches) -> Result<()> {
    if args.variant != "psd" {
        return Ok(());
    }
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let rules: [(&str, &str, &String, &[&str], &str); 3] = [
        (
            "loss",
            "--loss",
            &args.loss,
            &["mse"],
            "--variant psd reconstructs with the squared error: --loss must be mse",
        ),
        (
            "output_activation",
            "--output-activation",
            &args.output_activation,
            &["identity", "linear", "none"],
            "--variant psd has a linear decoder: --output-activation must be identity",
        ),
        (
            "code_activation",
            "--code-activation",
            &args.code_activation,
            &["tanh"],
            "--variant psd's fast encoder is g ⊙ tanh(Wx + b): --code-activation must be tanh",
        ),
    ];
    for (id, _flag, value, accepted, why) in rules {
        if given(id) && !accepted.contains(&value.as_str()) {
            return Err(Error::Config(format!("{why}, got {value}")));
        }
    }
    if args.prediction < 0.0 || !args.prediction.is_finite() {
        return Err(Error::Config(format!(
            "the prediction weight γ (--prediction) must be ≥ 0, got {}",
            args.prediction
        )));
    }
    Ok(())
}

/// Draws a PSD model's dictionary as `atoms.png` in `dir` (one tile per column of D, each
/// scaled so that 0 is mid-grey and its largest |value| black or white), when its inputs are
/// square images. Returns the file name written, if any.
pub fn write_atoms(
    spec: &ModelSpec,
    params: &Parameters,
    dir: &Path,
) -> Result<Option<&'static str>> {
    let Some((_, dict)) = psd::tensors(&params.layout) else {
        return Ok(None);
    };
    let (d, c) = (spec.input_dim(), spec.code_dim());
    if image_side(d).is_none() {
        return Ok(None);
    }
    let values = params.tensor(dict);
    let atoms: Vec<Vec<f32>> = (0..c)
        .map(|j| {
            let column: Vec<f32> = (0..d).map(|i| values[i * c + j]).collect();
            let peak = column.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if peak > 0.0 { 0.5 / peak } else { 0.0 };
            column.iter().map(|v| 0.5 + v * scale).collect()
        })
        .collect();
    let columns = (c as f64).sqrt().ceil() as usize;
    let figure = tile_rows(atoms.iter().map(|a| a.as_slice().into()), d, columns)?.title(format!(
        "dictionary atoms (columns of D), {c} of {d} pixels"
    ));
    figure.render()?.write_png(&dir.join("atoms.png"))?;
    Ok(Some("atoms.png"))
}
