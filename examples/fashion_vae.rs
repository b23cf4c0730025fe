//! A variational autoencoder on Fashion-MNIST: train on the bundled 10,000 test images, report
//! the loss terms, and decode samples from the prior N(0, I).
//!
//! `cargo run --release --example fashion_vae`

use hourglass::data::{Dataset, embedded};
use hourglass::infer::Autoencoder;
use hourglass::model::{ModelSpec, Variant};
use hourglass::rng::{Sequence, Stream, gaussian_f32};
use hourglass::train::{Device, DeviceChoice, LossReport, TrainConfig, Trainer};

/// Trains for `steps` steps and returns the last loss report and 16 decoded prior samples.
pub fn run(device: &Device, steps: u64) -> hourglass::Result<(LossReport, Dataset)> {
    let images = embedded::fashion_mnist_test()?;
    let mut spec = ModelSpec::mirrored(&[784, 400, 20]);
    spec.variant = Variant::Vae {
        beta: 1.0,
        samples: 1,
    };
    let config = TrainConfig {
        seed: 3,
        ..TrainConfig::new(128, 1e-3)
    };
    let mut trainer = Trainer::new(&spec, &config, &images, device, None)?;
    let report = trainer
        .train_steps(steps, true)?
        .expect("a reported run returns its loss");
    let mut model = Autoencoder::new(spec, trainer.parameters()?, device.clone())?;
    let mut rng = Sequence::new(9, Stream::Sampler, 0);
    let z = (0..16 * 20)
        .map(|_| gaussian_f32(rng.next_u32(), rng.next_u32()))
        .collect();
    let samples = model.decode(&Dataset::new(16, 20, z)?)?;
    Ok((report, samples))
}

fn main() -> hourglass::Result<()> {
    let (device, note) = Device::open(DeviceChoice::Auto)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let (report, samples) = run(&device, 780)?;
    println!("10 epochs on {}: loss {report}", device.describe());
    let mean: f32 = samples.values.iter().sum::<f32>() / samples.values.len() as f32;
    println!("16 samples from N(0, I) decoded: mean pixel {mean:.3}");
    Ok(())
}
