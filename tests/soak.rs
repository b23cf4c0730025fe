//! Long runs stay flat: resident memory on the CPU path, and live GPU buffers and resident
//! memory on the GPU path (lavapipe's device memory is host memory, so RSS covers it too).
//! CI runs a few thousand steps of a small model; `HOURGLASS_SOAK_STEPS` sets a longer soak and
//! `HOURGLASS_SOAK_WORKLOAD=mnist_ae` (any bench workload) a real-sized model.

mod common;

use hourglass::data::Dataset;
use hourglass::model::ModelSpec;
use hourglass::train::{Device, TrainConfig, Trainer};

fn steps() -> u64 {
    std::env::var("HOURGLASS_SOAK_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// Resident set size in KiB, from /proc (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

fn soak(device: Device, name: &str) {
    let (spec, batch) = match std::env::var("HOURGLASS_SOAK_WORKLOAD") {
        Ok(name) => {
            let w = hourglass::bench::Workload::named(&name).expect("workload");
            (w.spec, w.batch)
        }
        Err(_) => (ModelSpec::mirrored(&[64, 32, 8]), 32),
    };
    let d = spec.input_dim();
    let rows = batch * 16;
    let data = Dataset::new(rows, d, common::random(rows * d, 0.0, 1.0, 1)).expect("data");
    let config = TrainConfig::new(batch, 1e-3);
    let mut t = Trainer::new(&spec, &config, &data, &device, None).expect("trainer");
    let live = || match &device {
        Device::Gpu(ctx) => ctx.live_buffers(),
        Device::Cpu => 0,
    };
    // Warm up: first reads allocate staging buffers, allocators reach their steady state.
    for _ in 0..10 {
        t.train_steps(10, true).expect("train");
    }
    t.parameters().expect("params");
    let (rss0, buffers0) = (rss_kib(), live());
    let total = steps();
    let mut done = 0;
    while done < total {
        // Reports every 50 steps, a checkpoint-style parameter read every 500.
        t.train_steps(50, true).expect("train");
        done += 50;
        if done % 500 == 0 {
            t.parameters().expect("params");
        }
    }
    let (rss1, buffers1) = (rss_kib(), live());
    eprintln!(
        "{name}: {total} steps: RSS {rss0} -> {rss1} KiB, live GPU buffers {buffers0} -> {buffers1}"
    );
    assert_eq!(buffers1, buffers0, "{name}: GPU buffers leak");
    assert!(
        rss1 <= rss0 + 4096,
        "{name}: resident memory grew from {rss0} to {rss1} KiB"
    );
}

/// One test for both devices: resident memory is per process, so the two soaks must not run
/// side by side.
#[test]
fn training_memory_and_gpu_buffers_stay_flat() {
    soak(Device::Cpu, "cpu");
    if let Some(ctx) = common::gpu() {
        soak(Device::Gpu(ctx), "gpu");
    }
}
