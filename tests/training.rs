//! End-to-end training: the GPU and CPU executors agree over many steps, and a linear
//! autoencoder finds the PCA subspace.

mod common;

use common::{assert_close, gpu, random};
use hourglass::data::Dataset;
use hourglass::model::{Activation, Loss, ModelSpec};
use hourglass::optim::{OptimizerConfig, OptimizerKind};
use hourglass::rng::{Sequence, Stream};
use hourglass::train::{Device, TrainConfig, Trainer};

fn agreement(spec: &ModelSpec, config: &TrainConfig, steps: u64) -> f64 {
    let Some(ctx) = gpu() else { return 0.0 };
    let data = Dataset::new(
        70,
        spec.input_dim(),
        random(70 * spec.input_dim(), 0.0, 1.0, 3),
    )
    .expect("data");
    let mut cpu = Trainer::new(spec, config, &data, &Device::Cpu, None).expect("cpu trainer");
    let mut gpu = Trainer::new(spec, config, &data, &Device::Gpu(ctx), None).expect("gpu trainer");
    let lc = cpu
        .train_steps(steps, true)
        .expect("cpu")
        .expect("loss")
        .total();
    let lg = gpu
        .train_steps(steps, true)
        .expect("gpu")
        .expect("loss")
        .total();
    let pc = cpu.parameters().expect("cpu params");
    let pg = gpu.parameters().expect("gpu params");
    let mut worst = 0.0f64;
    for t in pc.layout.tensors() {
        worst = worst.max(assert_close(
            &format!(
                "{:?} after {steps} steps: {}",
                config.optimizer.kind, t.name
            ),
            pg.tensor(t),
            pc.tensor(t),
            1e-4,
        ));
    }
    assert!(
        ((lc - lg) / lc).abs() < 1e-4,
        "final loss differs: cpu {lc} gpu {lg}"
    );
    eprintln!(
        "{:?} {:?}: {steps} steps, loss cpu {lc:.6} gpu {lg:.6}, worst parameter error {worst:.2e}",
        config.optimizer.kind, spec.activation
    );
    worst
}

#[test]
fn fifty_adam_steps_agree_between_gpu_and_cpu() {
    let mut spec = ModelSpec::mirrored(&[33, 17, 7]);
    spec.decoder = vec![7, 20, 33];
    let config = TrainConfig {
        seed: 42,
        ..TrainConfig::new(16, 1e-3)
    };
    // 70 rows at batch 16: 4 steps an epoch, so 50 steps cross 12 reshuffles.
    agreement(&spec, &config, 50);
}

#[test]
fn other_optimizers_losses_and_activations_agree() {
    let mut spec = ModelSpec::mirrored(&[33, 9, 4]);
    spec.activation = Activation::Tanh;
    spec.code_activation = Activation::Sigmoid;
    spec.loss = Loss::Mse;
    spec.output_activation = Activation::Identity;
    let mut config = TrainConfig::new(7, 1e-2);
    config.optimizer = OptimizerConfig::sgd(0.05, 0.9);
    config.optimizer.weight_decay = 1e-3;
    agreement(&spec, &config, 30);
    config.optimizer = OptimizerConfig {
        kind: OptimizerKind::Adamw,
        weight_decay: 0.01,
        ..OptimizerConfig::adam(3e-3)
    };
    spec.activation = Activation::LeakyRelu;
    spec.output_activation = Activation::Sigmoid;
    agreement(&spec, &config, 30);
}

/// Data near a 3-D subspace of R^20 with distinct variances along it, plus an offset.
fn low_rank_data(rows: usize, dim: usize, rank: usize, seed: u64) -> (Dataset, Vec<f64>) {
    let mut rng = Sequence::new(seed, Stream::Init, 7);
    let basis: Vec<f32> = (0..rank * dim).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let offset: Vec<f32> = (0..dim).map(|_| rng.uniform(0.0, 1.0)).collect();
    let mut values = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let z: Vec<f32> = (0..rank)
            .map(|r| rng.uniform(-1.0, 1.0) * (3 - r) as f32)
            .collect();
        for j in 0..dim {
            let signal: f32 = (0..rank).map(|r| z[r] * basis[r * dim + j]).sum();
            values.push(offset[j] + signal + 0.01 * rng.uniform(-1.0, 1.0));
        }
    }
    // The top-`rank` principal directions of the centred data, by eigen-decomposition.
    let mean: Vec<f64> = (0..dim)
        .map(|j| {
            (0..rows)
                .map(|i| f64::from(values[i * dim + j]))
                .sum::<f64>()
                / rows as f64
        })
        .collect();
    let mut cov = vec![0.0; dim * dim];
    for i in 0..rows {
        for a in 0..dim {
            for b in 0..dim {
                cov[a * dim + b] += (f64::from(values[i * dim + a]) - mean[a])
                    * (f64::from(values[i * dim + b]) - mean[b]);
            }
        }
    }
    let (_, vectors) = common::symmetric_eigen(&cov, dim);
    let top: Vec<f64> = (0..dim)
        .flat_map(|i| (0..rank).map(move |j| (i, j)))
        .map(|(i, j)| vectors[i * dim + j])
        .collect();
    (Dataset::new(rows, dim, values).expect("data"), top)
}

#[test]
fn linear_autoencoder_finds_the_pca_subspace() {
    let (dim, rank) = (20, 3);
    let (data, pca) = low_rank_data(400, dim, rank, 9);
    let mut spec = ModelSpec::mirrored(&[dim, rank]);
    spec.activation = Activation::Identity;
    spec.code_activation = Activation::Identity;
    spec.output_activation = Activation::Identity;
    spec.loss = Loss::Mse;
    let config = TrainConfig {
        seed: 1,
        ..TrainConfig::new(40, 1e-2)
    };
    let mut trainer = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    let loss = trainer
        .train_steps(3000, true)
        .expect("train")
        .expect("loss");
    let params = trainer.parameters().expect("params");
    // The decoder's columns span the reconstructions' subspace: [dim, rank] row-major.
    let w: Vec<f64> = params
        .get("decoder.0.weight")
        .expect("decoder weight")
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    let learned = common::orthonormal_columns(&w, dim, rank);
    let truth = common::orthonormal_columns(&pca, dim, rank);
    let angle = common::largest_principal_angle(&learned, &truth);
    eprintln!("linear AE: final loss {loss:.5}, largest principal angle to PCA {angle:.4} rad");
    assert!(angle < 0.05, "largest principal angle {angle} rad ≥ 0.05");
    // A random 3-D subspace is far from the PCA one: the check has teeth.
    let random_basis = common::orthonormal_columns(
        &random(dim * rank, -1.0, 1.0, 77)
            .into_iter()
            .map(f64::from)
            .collect::<Vec<_>>(),
        dim,
        rank,
    );
    assert!(common::largest_principal_angle(&random_basis, &truth) > 0.5);
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one_bit_for_bit_on_cpu() {
    use hourglass::io::checkpoint;
    use hourglass::model::Variant;
    use hourglass::train::Schedule;
    let mut spec = ModelSpec::mirrored(&[12, 6, 3]);
    spec.variant = Variant::Denoising {
        noise: hourglass::model::Noise::Mask { nu: 0.3 },
    };
    let data = Dataset::new(50, 12, random(50 * 12, 0.0, 1.0, 8)).expect("data");
    let config = TrainConfig {
        seed: 3,
        schedule: Schedule::Cosine { total: 20 },
        warmup: 3,
        ..TrainConfig::new(8, 1e-2)
    };
    let mut straight = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    straight.train_steps(20, false).expect("train");
    let want = straight.parameters().expect("params");

    let mut first = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    first.train_steps(9, false).expect("train");
    let dir = std::env::temp_dir().join(format!("hourglass-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("state.safetensors");
    checkpoint::save_state(&path, &spec, &first.state().expect("state"), &[]).expect("save");
    drop(first);
    let (spec2, state, _) = checkpoint::load_state(&path).expect("load");
    assert_eq!(spec2, spec);
    let mut second = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    second.restore(&state).expect("restore");
    second.train_steps(11, false).expect("train");
    assert_eq!(
        second.parameters().expect("params"),
        want,
        "bit-exact resume"
    );
    // The saved step matters: resuming at the wrong step diverges.
    let mut wrong = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    let mut off = state.clone();
    off.step += 1;
    wrong.restore(&off).expect("restore");
    wrong.train_steps(10, false).expect("train");
    assert_ne!(wrong.parameters().expect("params"), want);
}

#[test]
fn thirty_steps_of_every_variant_agree_between_gpu_and_cpu() {
    use hourglass::model::{Noise, Variant};
    let base = |encoder: &[usize], act: Activation, code: Activation| {
        let mut s = ModelSpec::mirrored(encoder);
        s.activation = act;
        s.code_activation = code;
        s
    };
    let mut cases = Vec::new();
    for (name, variant, encoder, act, code) in [
        (
            "sparse L1",
            Variant::Sparse {
                lambda: 0.05,
                target: None,
            },
            &[33, 9, 5][..],
            Activation::Relu,
            Activation::Relu,
        ),
        (
            "sparse KL",
            Variant::Sparse {
                lambda: 0.3,
                target: Some(0.1),
            },
            &[33, 9, 5],
            Activation::Tanh,
            Activation::Sigmoid,
        ),
        (
            "denoising mask",
            Variant::Denoising {
                noise: Noise::Mask { nu: 0.3 },
            },
            &[33, 9, 5],
            Activation::Relu,
            Activation::Identity,
        ),
        (
            "denoising gaussian",
            Variant::Denoising {
                noise: Noise::Gaussian { sigma: 0.2 },
            },
            &[33, 7],
            Activation::Relu,
            Activation::Tanh,
        ),
        (
            "denoising salt-pepper",
            Variant::Denoising {
                noise: Noise::SaltPepper { nu: 0.2 },
            },
            &[33, 7],
            Activation::Relu,
            Activation::Sigmoid,
        ),
        (
            "contractive closed form",
            Variant::Contractive {
                lambda: 0.2,
                projections: None,
            },
            &[33, 7],
            Activation::Relu,
            Activation::Sigmoid,
        ),
        (
            "contractive exact deep",
            Variant::Contractive {
                lambda: 0.2,
                projections: None,
            },
            &[33, 9, 5],
            Activation::Tanh,
            Activation::Sigmoid,
        ),
        (
            "contractive projections",
            Variant::Contractive {
                lambda: 0.2,
                projections: Some(3),
            },
            &[33, 9, 5],
            Activation::Sigmoid,
            Activation::Tanh,
        ),
        (
            "vae",
            Variant::Vae {
                beta: 1.0,
                samples: 2,
            },
            &[33, 9, 4],
            Activation::Relu,
            Activation::Identity,
        ),
        (
            "vae without trunk",
            Variant::Vae {
                beta: 0.5,
                samples: 1,
            },
            &[33, 4],
            Activation::Relu,
            Activation::Identity,
        ),
    ] {
        let mut s = base(encoder, act, code);
        s.variant = variant;
        cases.push((name, s));
    }
    let mut tied = base(&[33, 9, 5], Activation::Tanh, Activation::Identity);
    tied.tied = true;
    cases.push(("tied", tied));
    let config = TrainConfig {
        seed: 2026,
        ..TrainConfig::new(16, 3e-3)
    };
    for (name, spec) in cases {
        eprint!("{name}: ");
        agreement(&spec, &config, 30);
    }
}

#[test]
fn a_nan_in_the_data_is_caught_and_never_reaches_the_parameters() {
    use hourglass::train::NonFinitePolicy;
    let spec = ModelSpec::mirrored(&[10, 4]);
    let mut values = random(40 * 10, 0.0, 1.0, 6);
    values[23 * 10 + 3] = f32::NAN; // row 23: in the third batch of 8, in file order
    let data = Dataset::new(40, 10, values).expect("data");
    for (device, name) in [(Some(Device::Cpu), "cpu"), (gpu().map(Device::Gpu), "gpu")] {
        let Some(device) = device else { continue };
        let config = TrainConfig {
            shuffle: false,
            ..TrainConfig::new(8, 1e-2)
        };
        let mut t = Trainer::new(&spec, &config, &data, &device, None).expect("trainer");
        t.train_steps(2, false).expect("two clean steps");
        let before = t.parameters().expect("params");
        let err = t.train_steps(1, true).expect_err("step 3 has a NaN");
        assert!(
            matches!(err, hourglass::Error::NonFinite { step: 3, .. }),
            "{name}: {err}"
        );
        assert_eq!(
            t.parameters().expect("params"),
            before,
            "{name}: step 3 was skipped"
        );

        let config = TrainConfig {
            on_nonfinite: NonFinitePolicy::SkipStep,
            clip_grad_norm: Some(1.0),
            ..config
        };
        let mut t = Trainer::new(&spec, &config, &data, &device, None).expect("trainer");
        let report = t
            .train_steps(10, true)
            .expect("skips and goes on")
            .expect("report");
        assert_eq!(
            report.skipped_steps, 2,
            "{name}: epochs 1 and 2 each hit row 23 once"
        );
        let p = t.parameters().expect("params");
        assert!(
            p.arena.iter().all(|x| x.is_finite()),
            "{name}: parameters stay finite"
        );
    }
}

#[test]
fn clipped_training_agrees_between_gpu_and_cpu() {
    let spec = ModelSpec::mirrored(&[33, 9, 5]);
    let config = TrainConfig {
        clip_grad_norm: Some(0.3),
        seed: 8,
        ..TrainConfig::new(16, 1e-2)
    };
    agreement(&spec, &config, 30);
}

#[test]
fn two_trainings_in_one_process_do_not_interfere() {
    let Some(ctx) = gpu() else { return };
    let device = Device::Gpu(ctx);
    let spec_a = ModelSpec::mirrored(&[20, 6]);
    let mut spec_b = ModelSpec::mirrored(&[20, 9, 3]);
    spec_b.variant = hourglass::model::Variant::Denoising {
        noise: hourglass::model::Noise::Mask { nu: 0.2 },
    };
    let data_a = Dataset::new(64, 20, random(64 * 20, 0.0, 1.0, 30)).expect("data");
    let data_b = Dataset::new(48, 20, random(48 * 20, 0.0, 1.0, 31)).expect("data");
    let config = TrainConfig::new(16, 1e-2);
    let solo = |spec: &ModelSpec, data: &Dataset| {
        let mut t = Trainer::new(spec, &config, data, &device, None).expect("trainer");
        t.train_steps(12, false).expect("train");
        t.parameters().expect("params")
    };
    let (want_a, want_b) = (solo(&spec_a, &data_a), solo(&spec_b, &data_b));
    // Interleaved on the same device, queue and kernel cache, and from two threads.
    let mut a = Trainer::new(&spec_a, &config, &data_a, &device, None).expect("trainer");
    let mut b = Trainer::new(&spec_b, &config, &data_b, &device, None).expect("trainer");
    for _ in 0..4 {
        a.train_steps(3, true).expect("a");
        b.train_steps(3, false).expect("b");
    }
    assert_eq!(a.parameters().expect("a"), want_a);
    assert_eq!(b.parameters().expect("b"), want_b);
    let threads: Vec<_> = [
        (spec_a.clone(), data_a.clone()),
        (spec_b.clone(), data_b.clone()),
    ]
    .into_iter()
    .map(|(spec, data)| {
        let device = device.clone();
        let config = config.clone();
        std::thread::spawn(move || {
            let mut t = Trainer::new(&spec, &config, &data, &device, None).expect("trainer");
            t.train_steps(12, true).expect("train");
            t.parameters().expect("params")
        })
    })
    .collect();
    let got: Vec<_> = threads
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(got, vec![want_a, want_b]);
}

#[test]
fn a_streamed_data_set_trains_exactly_like_a_resident_one() {
    let Some(ctx) = gpu() else { return };
    let device = Device::Gpu(ctx);
    let spec = ModelSpec::mirrored(&[24, 7]);
    let data = Dataset::new(100, 24, random(100 * 24, 0.0, 1.0, 40)).expect("data");
    let resident = TrainConfig {
        seed: 9,
        ..TrainConfig::new(8, 1e-2)
    };
    // Room for three batches: windows of three steps, twelve steps an epoch.
    let streamed = TrainConfig {
        max_resident_bytes: Some(3 * 8 * 24 * 4 + 100),
        ..resident.clone()
    };
    let mut a = Trainer::new(&spec, &resident, &data, &device, None).expect("resident");
    let mut b = Trainer::new(&spec, &streamed, &data, &device, None).expect("streamed");
    assert!(!a.is_streaming() && b.is_streaming());
    let la = a.train_steps(30, true).expect("a").expect("loss");
    let lb = b.train_steps(30, true).expect("b").expect("loss");
    assert_eq!(la, lb);
    assert_eq!(a.parameters().expect("a"), b.parameters().expect("b"));
}
