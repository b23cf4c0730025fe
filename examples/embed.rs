//! Embedding Hourglass in another program: train an autoencoder on your own matrix, then encode
//! new rows with it — on a GPU if there is one, else on the CPU.
//!
//! `cargo run --release --example embed`

use hourglass::data::Dataset;
use hourglass::infer::Autoencoder;
use hourglass::model::{Activation, Loss, ModelSpec};
use hourglass::rng::{Sequence, Stream};
use hourglass::train::{Device, DeviceChoice, TrainConfig, Trainer};

/// Trains for `steps` steps on 2-D structure hidden in 16-D data and returns the codes of
/// fresh rows, with the final training loss.
pub fn run(device: &Device, steps: u64) -> hourglass::Result<(Dataset, f64)> {
    // Your data: 1024 rows of 16 features that really live on a 2-D plane.
    let mut rng = Sequence::new(7, Stream::Init, 0);
    let mut make = |rows: usize| {
        let mut values = Vec::with_capacity(rows * 16);
        for _ in 0..rows {
            let (a, b) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
            values.extend((0..16).map(|j| a * (j as f32 * 0.3).sin() + b * (j as f32 * 0.2).cos()));
        }
        Dataset::new(rows, 16, values)
    };
    let train = make(1024)?;
    let fresh = make(8)?;

    let mut spec = ModelSpec::mirrored(&[16, 8, 2]);
    spec.activation = Activation::Tanh;
    spec.output_activation = Activation::Identity;
    spec.loss = Loss::Mse;
    let config = TrainConfig {
        seed: 1,
        ..TrainConfig::new(64, 5e-3)
    };
    let mut trainer = Trainer::new(&spec, &config, &train, device, None)?;
    let loss = trainer
        .train_steps(steps, true)?
        .map_or(f64::NAN, |r| r.total());
    let mut model = Autoencoder::new(spec, trainer.parameters()?, device.clone())?;
    Ok((model.encode(&fresh)?, loss))
}

fn main() -> hourglass::Result<()> {
    let (device, note) = Device::open(DeviceChoice::Auto)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let (codes, loss) = run(&device, 2000)?;
    println!("trained on {}: final loss {loss:.5}", device.describe());
    for r in 0..codes.rows {
        println!("row {r}: code {:?}", codes.row(r));
    }
    Ok(())
}
