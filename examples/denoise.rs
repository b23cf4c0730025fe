//! A denoising autoencoder on Fashion-MNIST: trained to undo masking noise that zeroes half of
//! each image, compared with a plain autoencoder of the same size on masked held-out images.
//!
//! `cargo run --release --example denoise`

use hourglass::data::{Dataset, embedded};
use hourglass::infer::evaluate;
use hourglass::model::{ModelSpec, Noise, Variant};
use hourglass::train::{Device, DeviceChoice, TrainConfig, Trainer};

/// Trains a plain and a denoising model for `steps` steps each and returns their mean
/// reconstruction losses on masked held-out images (plain, denoising).
pub fn run(device: &Device, steps: u64) -> hourglass::Result<(f64, f64)> {
    let all = embedded::fashion_mnist_test()?;
    let split = 9000 * all.cols;
    let train = Dataset::new(9000, all.cols, all.values[..split].to_vec())?;
    let held_out = Dataset::new(1000, all.cols, all.values[split..].to_vec())?;
    let noise = Noise::Mask { nu: 0.5 };
    let denoising = ModelSpec {
        variant: Variant::Denoising { noise },
        ..ModelSpec::mirrored(&[784, 256, 32])
    };
    let plain = ModelSpec {
        variant: Variant::Plain,
        ..denoising.clone()
    };
    let config = TrainConfig {
        seed: 5,
        ..TrainConfig::new(100, 1e-3)
    };
    let masked_loss = |spec: &ModelSpec| -> hourglass::Result<f64> {
        let mut trainer = Trainer::new(spec, &config, &train, device, None)?;
        trainer.train_steps(steps, false)?;
        // Scored with the denoising spec: masked inputs, clean targets.
        let report = evaluate(&denoising, &trainer.parameters()?, &held_out, device, 1)?;
        Ok(report.term("reconstruction").unwrap_or(f64::NAN))
    };
    Ok((masked_loss(&plain)?, masked_loss(&denoising)?))
}

fn main() -> hourglass::Result<()> {
    let (device, note) = Device::open(DeviceChoice::Auto)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let (plain, denoising) = run(&device, 900)?;
    println!(
        "reconstruction loss of half-masked held-out images ({})",
        device.describe()
    );
    println!("  plain autoencoder:     {plain:.2}");
    println!("  denoising autoencoder: {denoising:.2}");
    Ok(())
}
