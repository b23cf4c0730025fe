//! `hourglass eval`: every loss term of a trained model's objective on a data set.

use std::path::PathBuf;

use clap::Args;
use hourglass::Result;
use hourglass::infer::{Autoencoder, evaluate};
use hourglass::io::checkpoint;
use hourglass::model::Variant;
use serde_json::{Map, Value, json};

use crate::Ui;
use crate::source::{DataArgs, DeviceArg, inference_normalization};

pub const EXAMPLES: &str = "\
Examples:
  hourglass eval --model run1/best.safetensors                 # on the bundled test set
  hourglass eval --model run1/model.safetensors --data x.npy --json
  hourglass eval --model dae/model.safetensors --dataset fashion-mnist --device cpu";

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint to evaluate (model.safetensors or best.safetensors of a run).
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
    /// Print one JSON object: {"model", "data", "rows", "features", "loss", "terms": {...}}.
    #[arg(long)]
    json: bool,
    /// Seed of the stochastic terms (denoising noise, VAE samples, random projections).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: EvalArgs, ui: Ui) -> Result<()> {
    let (spec, params) = checkpoint::load(&args.model)?;
    let source = args.data.source()?;
    let (mut data, scored) =
        crate::overlap::rows_to_score(&args.model, &args.data, &source, source.load_one(ui)?)?;
    let device = args.device.open(ui, "evaluating")?;
    let model = Autoencoder::new(spec, params, device.clone())?;
    if let Some(n) = inference_normalization(&args.data, &args.model, Some(&data), ui)? {
        n.apply(&mut data)?;
    }
    hourglass::model::check_targets(model.spec(), &data, &scored)?;
    let report = model.evaluate(&data, args.seed)?;
    if !report.total().is_finite() {
        return Err(hourglass::Error::NonFinite {
            what: format!("loss ({}) on {}", report.total(), source.describe()),
            step: 0,
        });
    }
    // A denoising model's objective scores corrupted inputs; the clean score is what a user
    // of the model meets.
    let clean = match model.spec().variant {
        Variant::Denoising { .. } => {
            let mut plain = model.spec().clone();
            plain.variant = Variant::Plain;
            let r = evaluate(&plain, model.parameters(), &data, &device, args.seed)?;
            r.term("reconstruction")
        }
        _ => None,
    };
    if args.json {
        let mut terms = Map::new();
        for (name, value) in &report.terms {
            terms.insert((*name).to_string(), json!(value));
        }
        let mut out = json!({
            "model": args.model.display().to_string(),
            "data": scored,
            "rows": data.rows,
            "features": data.cols,
            "loss": report.total(),
            "terms": Value::Object(terms),
        });
        if let Some(c) = clean {
            out["clean_reconstruction"] = json!(c);
        }
        // A PSD model's code (not part of the loss).
        if let Some(z) = report.measure("zero_fraction") {
            out["zero_fraction"] = json!(z);
        }
        if let Some(e) = report.relative_prediction_error() {
            out["relative_prediction_error"] = json!(e);
        }
        outln!("{out}");
    } else {
        outln!(
            "{}: {} rows × {} features of {}",
            args.model.display(),
            data.rows,
            data.cols,
            scored
        );
        outln!("  {:<24} {:.6}", "loss", report.total());
        for (name, value) in &report.terms {
            outln!("  {:<24} {value:.6}", name);
        }
        if let Some(c) = clean {
            outln!("  {:<24} {c:.6}", "reconstruction (clean)");
        }
        if let Some(z) = report.measure("zero_fraction") {
            outln!(
                "  {:<24} {z:.6} (of the inferred code's entries)",
                "zero fraction"
            );
        }
        if let Some(e) = report.relative_prediction_error() {
            outln!("  {:<24} {e:.6} (‖f(x) − h*‖ / ‖h*‖)", "prediction error");
        }
    }
    Ok(())
}
