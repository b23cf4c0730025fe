//! Convolutional models over many steps: 30 training steps of every variant agree between the
//! GPU (lavapipe in CI) and the CPU reference, parameters and losses.

mod common;

use common::{assert_close, gpu, random};
use hourglass::data::Dataset;
use hourglass::model::{Activation, ModelSpec, Noise, Variant};
use hourglass::train::{Device, TrainConfig, Trainer};

/// Trains `spec` 30 steps on both executors; returns the worst parameter error (relative
/// to each tensor's largest value).
fn agreement(name: &str, spec: &ModelSpec, config: &TrainConfig) -> f64 {
    let ctx = gpu().expect("a GPU adapter (lavapipe in CI)");
    let d = spec.input_dim();
    let data = Dataset::new(70, d, random(70 * d, 0.0, 1.0, 3)).expect("data");
    let mut cpu = Trainer::new(spec, config, &data, &Device::Cpu, None).expect("cpu trainer");
    let mut dev = Trainer::new(spec, config, &data, &Device::Gpu(ctx), None).expect("gpu trainer");
    let lc = cpu
        .train_steps(30, true)
        .expect("cpu")
        .expect("loss")
        .total();
    let lg = dev
        .train_steps(30, true)
        .expect("gpu")
        .expect("loss")
        .total();
    let pc = cpu.parameters().expect("cpu params");
    let pg = dev.parameters().expect("gpu params");
    let mut worst = 0.0f64;
    for t in pc.layout.tensors() {
        worst = worst.max(assert_close(
            &format!("{name} after 30 steps: {}", t.name),
            pg.tensor(t),
            pc.tensor(t),
            // Relative to each tensor's largest value; a one-channel bias of ~5e-3 makes
            // float rounding (~5e-8 absolute) look like 1e-5.
            3e-5,
        ));
    }
    assert!(
        ((lc - lg) / lc).abs() < 1e-5,
        "{name}: final loss differs: cpu {lc} gpu {lg}"
    );
    eprintln!("{name}: loss cpu {lc:.6} gpu {lg:.6}, worst parameter error {worst:.2e}");
    worst
}

fn conv(encoder: &str, act: Activation, code: Activation, v: Variant) -> ModelSpec {
    let mut s = ModelSpec::from_encoder_str(encoder).expect("encoder");
    s.activation = act;
    s.code_activation = code;
    s.variant = v;
    s.validate().expect("valid");
    s
}

#[test]
fn thirty_steps_of_every_conv_variant_agree_between_gpu_and_cpu() {
    const E: &str = "1x7x7,conv4k3s2,5";
    let mut cases = vec![
        (
            "plain relu",
            conv(E, Activation::Relu, Activation::Identity, Variant::Plain),
        ),
        (
            "deep, even kernel",
            conv(
                "2x7x6,conv3k2s2,conv4,6",
                Activation::LeakyRelu,
                Activation::Tanh,
                Variant::Plain,
            ),
        ),
        (
            "fully convolutional",
            conv(
                "1x7x7,conv3k5s2,conv2k1",
                Activation::Tanh,
                Activation::Sigmoid,
                Variant::Plain,
            ),
        ),
        (
            "sparse L1",
            conv(
                E,
                Activation::Relu,
                Activation::Relu,
                Variant::Sparse {
                    lambda: 0.05,
                    target: None,
                },
            ),
        ),
        (
            "sparse KL",
            conv(
                E,
                Activation::Tanh,
                Activation::Sigmoid,
                Variant::Sparse {
                    lambda: 0.3,
                    target: Some(0.1),
                },
            ),
        ),
        (
            "vae",
            conv(
                E,
                Activation::Relu,
                Activation::Identity,
                Variant::Vae {
                    beta: 1.0,
                    samples: 2,
                },
            ),
        ),
        (
            "contractive (projections)",
            conv(
                E,
                Activation::Sigmoid,
                Activation::Sigmoid,
                Variant::Contractive {
                    lambda: 0.1,
                    projections: Some(3),
                },
            ),
        ),
    ];
    for noise in [
        Noise::Mask { nu: 0.3 },
        Noise::Gaussian { sigma: 0.2 },
        Noise::SaltPepper { nu: 0.2 },
    ] {
        cases.push((
            "denoising",
            conv(
                E,
                Activation::Sigmoid,
                Activation::Tanh,
                Variant::Denoising { noise },
            ),
        ));
    }
    let mut tied = conv(
        "1x7x7,conv4k3s2,conv3,5",
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    tied.tied = true;
    cases.push(("tied", tied));
    let config = TrainConfig {
        seed: 2026,
        ..TrainConfig::new(16, 3e-3)
    };
    let mut worst = 0.0f64;
    for (name, spec) in cases {
        worst = worst.max(agreement(name, &spec, &config));
    }
    eprintln!("every conv variant: worst parameter error {worst:.2e}");
}
