//! Matmul throughput (GFLOP/s) of the three dense-layer forms at the benchmark workloads' layer
//! shapes, on the GPU and the CPU executor side by side. On a software adapter (lavapipe) the
//! batch is cut to 16 so the suite finishes in minutes.
//!
//! `cargo bench --bench kernels`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hourglass::cpu::CpuExecutor;
use hourglass::gpu::{GpuContext, GpuExecutor};
use hourglass::graph::{Epilogue, Graph, Op, StepParams};
use hourglass::model::Activation;

/// (name, batch, inputs, outputs) of representative layers.
const LAYERS: [(&str, usize, usize, usize); 4] = [
    ("mnist_ae 784->512", 256, 784, 512),
    ("cae 784->1024", 256, 784, 1024),
    ("vae 400->784", 128, 400, 784),
    ("large_ae 4096->8192", 4096, 4096, 8192),
];

/// One op of the given form: forward X·Wᵀ (+bias, ReLU), input gradient dZ·W, weight
/// gradient dZᵀ·X.
fn graph(form: &str, b: usize, i: usize, o: usize) -> Graph {
    let mut g = Graph::default();
    let (a, bm, c, ta, tb) = match form {
        "forward" => (
            g.matrix("x", b, i),
            g.matrix("w", o, i),
            g.matrix("y", b, o),
            false,
            true,
        ),
        "input_grad" => (
            g.matrix("dz", b, o),
            g.matrix("w", o, i),
            g.matrix("dx", b, i),
            false,
            false,
        ),
        _ => (
            g.matrix("dz", b, o),
            g.matrix("x", b, i),
            g.matrix("dw", o, i),
            true,
            false,
        ),
    };
    let epilogue = if form == "forward" {
        Epilogue::BiasAct {
            bias: g.matrix("bias", 1, c.cols),
            act: Activation::Relu,
        }
    } else {
        Epilogue::Store
    };
    g.push(Op::Matmul {
        a,
        b: bm,
        c,
        trans_a: ta,
        trans_b: tb,
        epilogue,
        gradient: None,
        loss_scale: None,
    });
    g
}

fn matmuls(c: &mut Criterion) {
    let ctx = GpuContext::new(None).ok();
    let software = ctx.as_ref().is_none_or(|c| c.adapter.device_type == "Cpu");
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for (name, batch, i, o) in LAYERS {
        let batch = if software { 16 } else { batch };
        if software && i * o > 10_000_000 {
            continue; // large_ae's layers take minutes per call on a software device
        }
        for form in ["forward", "input_grad", "weight_grad"] {
            let g = graph(form, batch, i, o);
            group.throughput(Throughput::Elements((2 * batch * i * o) as u64));
            let id = format!("{name} b{batch} {form}");
            if let Some(ctx) = &ctx {
                let mut exec = GpuExecutor::new(ctx.clone(), g.clone()).expect("gpu executor");
                group.bench_function(format!("gpu {id}"), |bench| {
                    bench.iter(|| {
                        exec.run(0..1, &[StepParams::default()]).expect("run");
                        exec.finish().expect("finish");
                    })
                });
            }
            let mut cpu = CpuExecutor::<f32>::new(g).unwrap();
            group.bench_function(format!("cpu {id}"), |bench| {
                bench.iter(|| cpu.run(0..1, &[StepParams::default()]).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmuls);
criterion_main!(benches);
