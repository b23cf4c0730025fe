//! The benchmark workloads of `../shared/bench/workloads.md`, trained on synthetic data resident
//! on the device, and what `hourglass bench` reports about them. Timings synchronize with the
//! device inside the timed region (every timed chunk ends with a loss read-back).

use std::time::Instant;

use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::graph::Precision;
use crate::model::{Activation, LayerKind, Loss, ModelSpec, Variant};
use crate::rng::{Sequence, Stream};
use crate::train::{Device, TrainConfig, Trainer};

/// One benchmark workload: a model, its batch size, and the FLOPs counted per sample.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `mnist_ae`, `vae`, `cae`, `large_ae` or `conv_ae`.
    pub name: &'static str,
    /// The model.
    pub spec: ModelSpec,
    /// Examples per step.
    pub batch: usize,
}

impl Workload {
    /// Every workload, in the order of workloads.md.
    pub fn all() -> Vec<Workload> {
        ["mnist_ae", "vae", "cae", "large_ae", "conv_ae"]
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
            "conv_ae" => {
                // Conv2d(1, 32, 3, 2, 1) → Conv2d(32, 64, 3, 2, 1) → Linear(3136, 32) and the
                // mirror, ReLU, cross-entropy on logits.
                spec = ModelSpec::from_encoder_str("1x28x28,conv32k3s2,conv64k3s2,32")?;
                batch = 256;
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown workload '{other}' (expected mnist_ae, vae, cae, large_ae, conv_ae \
                     or all)"
                )));
            }
        }
        Ok(Workload {
            name: match name {
                "mnist_ae" => "mnist_ae",
                "vae" => "vae",
                "cae" => "cae",
                "conv_ae" => "conv_ae",
                _ => "large_ae",
            },
            spec,
            batch,
        })
    }

    /// The same workload at another batch size (`hourglass bench --batch`); the batch must be at
    /// least 1.
    pub fn with_batch(mut self, batch: usize) -> Result<Workload> {
        if batch == 0 {
            return Err(Error::Config(format!(
                "batch size must be at least 1 (got {batch}) for workload '{}'",
                self.name
            )));
        }
        // Its synthetic data (two batches at least) is sized before anything is allocated.
        let what = format!("bench batch {batch} (workload '{}')", self.name);
        let bytes = crate::limits::checked_product(&[batch, self.spec.input_dim(), 4, 2])
            .ok_or_else(|| Error::TooLarge {
                what: what.clone(),
                needed: None,
                available: crate::limits::available_memory(),
            })?;
        crate::limits::check_bytes(&what, bytes as u64)?;
        self.batch = batch;
        Ok(self)
    }

    /// Multiply-accumulates of one sample's forward pass, counted per owned weight: a dense
    /// layer's weights (not biases), a conv or transposed conv layer's kernel taps at every
    /// output position. FLOPs per sample are counted as 6 × this.
    pub fn weights(&self) -> usize {
        crate::model::ParamLayout::new(&self.spec)
            .layers
            .iter()
            .filter(|l| !l.transposed)
            .map(|l| match l.layer.kind {
                LayerKind::Dense => l.weight.len(),
                LayerKind::Conv(st) | LayerKind::ConvTranspose(st) => st.macs(),
            })
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
    /// The wgpu backend (`vulkan`, `gl`, `metal`, `dx12`), or `cpu`.
    pub backend: String,
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
    /// `f32` or `mixed`: what the products ran in (mixed falls back to f32 on devices without
    /// f16 cooperative matrices).
    pub precision: String,
    /// CPU rows only: the machine's f32 GEMM ceiling in GFLOP/s, measured in the same run through
    /// the CPU executor's own matrix product ([`SgemmProbe`]): the better of the measurements taken
    /// just before and just after this workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_sgemm_gflops: Option<f64>,
    /// CPU rows only: the training step's FLOP rate (6 × weights × samples/s) over
    /// `cpu_sgemm_gflops`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_sgemm: Option<f64>,
    /// CPU rows of a profiled run: each op's time over the timed steps, in graph order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<crate::cpu::OpTime>,
}

impl BenchResult {
    /// Records the CPU GEMM ceiling beside this result and the step's share of it.
    pub fn with_sgemm_ceiling(mut self, gflops: f64) -> BenchResult {
        self.cpu_sgemm_gflops = Some(gflops);
        self.fraction_of_sgemm = Some(self.tflops * 1e3 / gflops);
        self
    }
}

/// Side of the square f32 product [`SgemmProbe`] times.
pub const SGEMM_CEILING_SIZE: usize = 2048;

/// Times f32 2048×2048×2048 products through [`crate::cpu::kernels::matmul`], the very call
/// (one GEMM per tile on rayon's threads, see [`crate::cpu::gemm`]) the CPU executor's training
/// steps make, to give the ceiling of that path in GFLOP/s. One product takes about 0.1 s on two AVX-512
/// cores. The operands are kept between measurements, so a bench run can measure just before
/// and just after each CPU workload: on a machine shared with other work the ceiling moves by a
/// third from one second to the next, and a ceiling taken next to the workload is the fair one.
pub struct SgemmProbe {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// The best rate seen by any measurement of this probe, in GFLOP/s.
    pub best_gflops: f64,
    /// The worst per-measurement best, in GFLOP/s (how much the ceiling moved).
    pub worst_gflops: f64,
    /// Measurements taken.
    pub measurements: u32,
}

impl SgemmProbe {
    /// Allocates the operands and runs one untimed product (thread start-up, page faults).
    pub fn new() -> SgemmProbe {
        let n = SGEMM_CEILING_SIZE;
        let mut rng = Sequence::new(1, Stream::Init, 2048);
        let a: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..n * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut probe = SgemmProbe {
            a,
            b,
            c: vec![0f32; n * n],
            best_gflops: 0.0,
            worst_gflops: f64::INFINITY,
            measurements: 0,
        };
        probe.product();
        probe
    }

    fn product(&mut self) -> f64 {
        use crate::cpu::kernels::{CpuEpilogue, matmul};
        let n = SGEMM_CEILING_SIZE;
        let t = Instant::now();
        matmul(
            &self.a,
            (n, n),
            false,
            &self.b,
            (n, n),
            false,
            &mut self.c,
            CpuEpilogue::Store,
        )
        .expect("square operands of the probe's own size");
        std::hint::black_box(&self.c);
        t.elapsed().as_secs_f64()
    }

    /// The best rate, in GFLOP/s, of products repeated until `seconds` have passed (at least
    /// one, at most ten).
    pub fn measure(&mut self, seconds: f64) -> f64 {
        let flops = 2.0 * (SGEMM_CEILING_SIZE as f64).powi(3);
        let start = Instant::now();
        let mut best = f64::INFINITY;
        let mut reps = 0;
        while reps < 1 || (reps < 10 && start.elapsed().as_secs_f64() < seconds) {
            best = best.min(self.product());
            reps += 1;
        }
        let gflops = flops / best / 1e9;
        self.best_gflops = self.best_gflops.max(gflops);
        self.worst_gflops = self.worst_gflops.min(gflops);
        self.measurements += 1;
        gflops
    }
}

impl Default for SgemmProbe {
    fn default() -> Self {
        Self::new()
    }
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
/// `max_steps`) after one warm-up step, and reports throughput; with `profile`, and on the CPU,
/// also each op's time (in the timed region, at two clock reads per op).
pub fn run(
    w: &Workload,
    device: &Device,
    seconds: f64,
    min_steps: u64,
    max_steps: u64,
    precision: Precision,
    profile: bool,
) -> Result<BenchResult> {
    let data = synthetic(w);
    let config = TrainConfig {
        shuffle: false,
        precision,
        // Whole batches only: every timed step is one of the workload's batch size.
        drop_last: true,
        ..TrainConfig::new(w.batch, 1e-3)
    };
    let start = Instant::now();
    let mut trainer = Trainer::new(&w.spec, &config, &data, device, None)?;
    trainer.train_steps(1, true)?;
    let first_step_s = start.elapsed().as_secs_f64();
    if profile {
        trainer.profile_ops();
    }

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
        backend: match device {
            Device::Cpu => "cpu".into(),
            Device::Gpu(ctx) => ctx.backend().name().into(),
        },
        batch: w.batch,
        steps,
        samples_per_s,
        ms_per_step: 1e3 * elapsed / steps as f64,
        tflops: 6.0 * w.weights() as f64 * samples_per_s / 1e12,
        allocated_bytes,
        first_step_s,
        final_loss: loss,
        precision: trainer.precision().name().into(),
        cpu_sgemm_gflops: None,
        fraction_of_sgemm: None,
        ops: trainer.op_times(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_batch_overrides_and_rejects_zero() {
        let w = Workload::named("cae").unwrap().with_batch(1024).unwrap();
        assert_eq!(w.batch, 1024);
        let e = Workload::named("cae").unwrap().with_batch(0).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }

    #[test]
    fn sgemm_result_fraction() {
        let r = BenchResult {
            workload: "mnist_ae".into(),
            device: "cpu".into(),
            adapter: String::new(),
            backend: "cpu".into(),
            batch: 1,
            steps: 1,
            samples_per_s: 1.0,
            ms_per_step: 1.0,
            tflops: 0.1,
            allocated_bytes: 0,
            first_step_s: 0.0,
            final_loss: 0.0,
            precision: "f32".into(),
            cpu_sgemm_gflops: None,
            fraction_of_sgemm: None,
            ops: Vec::new(),
        }
        .with_sgemm_ceiling(200.0);
        assert_eq!(r.cpu_sgemm_gflops, Some(200.0));
        assert!((r.fraction_of_sgemm.unwrap() - 0.5).abs() < 1e-12);
    }

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
                ("large_ae", 142_606_336),
                ("conv_ae", 2_119_936)
            ]
        );
    }
}
