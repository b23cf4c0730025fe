//! Smoke runs of the examples: each example's `run` with a few steps, on the CPU and (for one)
//! on the GPU. The examples are compiled in as modules, so these test exactly their code.

#![allow(dead_code)]

mod common;

#[path = "../examples/denoise.rs"]
mod denoise;
#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/fashion_vae.rs"]
mod fashion_vae;

use hourglass::train::Device;

#[test]
fn embed_trains_and_encodes_on_cpu_and_gpu() {
    let (codes, loss) = embed::run(&Device::Cpu, 300).expect("embed on cpu");
    assert_eq!((codes.rows, codes.cols), (8, 2));
    assert!(loss.is_finite());
    if let Some(ctx) = common::gpu() {
        let (gpu_codes, _) = embed::run(&Device::Gpu(ctx), 20).expect("embed on gpu");
        assert_eq!(gpu_codes.cols, 2);
    }
}

#[test]
fn fashion_vae_runs() {
    let (report, samples) = fashion_vae::run(&Device::Cpu, 20).expect("vae");
    assert!(report.term("kl").is_some_and(|kl| kl > 0.0));
    assert!(samples.values.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn denoise_runs() {
    let (plain, denoising) = denoise::run(&Device::Cpu, 30).expect("denoise");
    assert!(plain.is_finite() && denoising.is_finite());
}
