//! One training step of each benchmark workload on the GPU and the CPU (samples/s is the
//! throughput). On a software adapter batches are cut to 16 and `large_ae` is left out.
//!
//! `cargo bench --bench step`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hourglass::bench::Workload;
use hourglass::data::Dataset;
use hourglass::gpu::GpuContext;
use hourglass::train::{Device, TrainConfig, Trainer};

fn steps(c: &mut Criterion) {
    let ctx = GpuContext::new(None).ok();
    let software = ctx.as_ref().is_none_or(|c| c.adapter.device_type == "Cpu");
    let mut group = c.benchmark_group("step");
    group.sample_size(10);
    for mut w in Workload::all() {
        if software {
            if w.name == "large_ae" {
                continue;
            }
            w.batch = 16;
        }
        let d = w.spec.input_dim();
        let rows = w.batch * 4;
        let data = Dataset::new(rows, d, vec![0.5; rows * d]).expect("data");
        let config = TrainConfig {
            shuffle: false,
            ..TrainConfig::new(w.batch, 1e-3)
        };
        group.throughput(Throughput::Elements(w.batch as u64));
        let mut devices = vec![("cpu", Device::Cpu)];
        if let Some(ctx) = &ctx {
            devices.insert(0, ("gpu", Device::Gpu(ctx.clone())));
        }
        for (name, device) in devices {
            let mut t = Trainer::new(&w.spec, &config, &data, &device, None).expect("trainer");
            group.bench_function(format!("{name} {} b{}", w.name, w.batch), |b| {
                // A reported step ends in a read-back: the time includes the device's work.
                b.iter(|| t.train_steps(1, true).expect("step"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
