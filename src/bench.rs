//! The benchmark workloads of `../shared/bench/workloads.md`, trained on synthetic data resident
//! on the device, and what `hourglass bench` reports about them. Timings synchronize with the
//! device inside the timed region (every timed chunk ends with a loss read-back).

use std::time::Instant;

use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Activation, Loss, ModelSpec, Variant};
use crate::rng::{Sequence, Stream};
use crate::train::{Device, TrainConfig, Trainer};

/// One benchmark workload: a model, its batch size, and the FLOPs counted per sample.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `mnist_ae`, `vae`, `cae` or `large_ae`.
    pub name: &'static str,
    /// The model.
    pub spec: ModelSpec,
    /// Examples per step.
    pub batch: usize,
}

impl Workload {
    /// Every workload, in the order of workloads.md.
    pub fn all() -> Vec<Workload> {
        ["mnist_ae", "vae", "cae", "large_ae"]
            .iter()
            .map(|n| Self::named(n).expect("known workload"))
            .collect()
    }

    /// The workload called `name`.
    pub fn named(name: &str) -> Result<Workload> {
        let mut spec;
        let batch;
        match name {
            "mnist_ae" => {
                spec = ModelSpec::mirrored(&[784, 512, 256, 32]);
                batch = 256;
            }
            "vae" => {
                spec = ModelSpec::mirrored(&[784, 400, 20]);
                spec.variant = Variant::Vae {
                    beta: 1.0,
                    samples: 1,
                };
                batch = 128;
            }
            "cae" => {
                spec = ModelSpec::mirrored(&[784, 1024]);
                spec.activation = Activation::Sigmoid;
                spec.code_activation = Activation::Sigmoid;
                spec.loss = Loss::Mse;
                spec.variant = Variant::Contractive {
                    lambda: 0.1,
                    projections: None,
                };
                batch = 256;
            }
            "large_ae" => {
                spec = ModelSpec::mirrored(&[4096, 8192, 4096, 1024]);
                spec.output_activation = Activation::Identity;
                spec.loss = Loss::Mse;
                batch = 4096;
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown workload '{other}' (expected mnist_ae, vae, cae, large_ae or all)"
                )));
            }
        }
        Ok(Workload {
            name: match name {
                "mnist_ae" => "mnist_ae",
                "vae" => "vae",
                "cae" => "cae",
                _ => "large_ae",
            },
            spec,
            batch,
        })
    }

    /// Weights (not biases) of the model: FLOPs per sample are counted as 6 × this.
    pub fn weights(&self) -> usize {
        crate::model::ParamLayout::new(&self.spec)
            .layers
            .iter()
            .filter(|l| !l.transposed)
            .map(|l| l.weight.len())
            .sum()
    }
}

/// What one workload measured on one device.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Workload name.
    pub workload: String,
    /// `gpu` or `cpu`.
    pub device: String,
    /// The adapter or CPU description.
    pub adapter: String,
    /// Examples per step.
    pub batch: usize,
    /// Steps timed.
    pub steps: u64,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Milliseconds per optimizer step.
    pub ms_per_step: f64,
    /// 6 × weights × samples/s, in TFLOP/s.
    pub tflops: f64,
    /// Bytes the executor allocated for the graph's buffers (parameters, optimizer state,
    /// activations, data): the device memory the run holds.
    pub allocated_bytes: u64,
    /// Seconds from opening the device to the end of the first training step (start-up,
    /// shader compilation, upload).
    pub first_step_s: f64,
    /// Loss after the timed steps (a sanity check that training ran).
    pub final_loss: f64,
}

/// Synthetic inputs in [0, 1).
fn synthetic(w: &Workload) -> Dataset {
    // Eight distinct batches, or two where eight would take more than 64 MiB (large_ae), so
    // the data set does not dominate the memory the run reports.
    let batches = if w.batch * w.spec.input_dim() * 4 * 8 > 64 << 20 {
        2
    } else {
        8
    };
    let rows = w.batch * batches;
    let d = w.spec.input_dim();
    let mut rng = Sequence::new(1, Stream::Init, 77);
    let values = (0..rows * d).map(|_| rng.uniform(0.0, 1.0)).collect();
    Dataset::new(rows, d, values).expect("sizes match")
}

/// Trains `w` on `device` for about `seconds` (at least `min_steps` timed steps, at most
/// `max_steps`) after one warm-up step, and reports throughput.
pub fn run(
    w: &Workload,
    device: &Device,
    seconds: f64,
    min_steps: u64,
    max_steps: u64,
) -> Result<BenchResult> {
    let data = synthetic(w);
    let config = TrainConfig {
        shuffle: false,
        ..TrainConfig::new(w.batch, 1e-3)
    };
    let start = Instant::now();
    let mut trainer = Trainer::new(&w.spec, &config, &data, device, None)?;
    trainer.train_steps(1, true)?;
    let first_step_s = start.elapsed().as_secs_f64();

    // Time chunks of steps, each ending in a read-back, until the budget is spent.
    let mut chunk = 1u64;
    let mut steps = 0u64;
    let mut elapsed = 0.0;
    let mut loss = 0.0;
    while (elapsed < seconds || steps < min_steps) && steps < max_steps {
        let n = chunk.min(max_steps - steps);
        let t = Instant::now();
        loss = trainer
            .train_steps(n, true)?
            .map(|r| r.total())
            .unwrap_or(f64::NAN);
        elapsed += t.elapsed().as_secs_f64();
        steps += n;
        // Grow the chunk so read-backs are a vanishing share of the timed work.
        if chunk < 256 {
            chunk *= 2;
        }
    }
    let samples_per_s = (steps as usize * w.batch) as f64 / elapsed;
    let graph = trainer.graph();
    let allocated_bytes = graph.graph.buffers.iter().map(|b| b.len as u64 * 4).sum();
    Ok(BenchResult {
        workload: w.name.into(),
        device: match device {
            Device::Cpu => "cpu".into(),
            Device::Gpu(_) => "gpu".into(),
        },
        adapter: device.describe(),
        batch: w.batch,
        steps,
        samples_per_s,
        ms_per_step: 1e3 * elapsed / steps as f64,
        tflops: 6.0 * w.weights() as f64 * samples_per_s / 1e12,
        allocated_bytes,
        first_step_s,
        final_loss: loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_weights_match_workloads_md() {
        let w: Vec<(&str, usize)> = Workload::all()
            .iter()
            .map(|w| (w.name, w.weights()))
            .collect();
        assert_eq!(
            w,
            [
                ("mnist_ae", 1_081_344),
                ("vae", 651_200),
                ("cae", 1_605_632),
                ("large_ae", 142_606_336)
            ]
        );
    }
}
