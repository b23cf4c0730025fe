//! Conv kernel throughput (GFLOP/s, 2 × multiply-accumulates per second) on the CPU executor
//! and the GPU, at the layer shapes of the `conv_ae` workload (1x28x28, conv32k3s2,
//! conv64k3s2): the eleven conv products of one training step, each timed alone (best of
//! several runs), then summed into the samples/s the conv products alone would allow. Dense
//! matmuls are timed beside them for scale. On a software adapter (lavapipe)
//! the GPU batch is cut to 16.
//!
//! `cargo bench --bench conv` (`-- cpu` or `-- gpu` for one device only; `-- gpu --batch 256`
//! for another GPU batch)

use std::time::Instant;

use hourglass::cpu::CpuExecutor;
use hourglass::gpu::{GpuContext, GpuExecutor};
use hourglass::graph::{ConvShape, Epilogue, Graph, Op, StepParams, Tensor};
use hourglass::model::Activation;

/// The conv products of one conv_ae training step: (name, op kind, shape index).
const STEP: [(&str, &str); 11] = [
    ("enc1 forward", "fwd1"),
    ("enc2 forward", "fwd2"),
    ("dec2 forward (transposed)", "tr2"),
    ("dec1 forward (transposed)", "tr1"),
    ("dec1 input grad", "fwd1g"),
    ("dec1 weight grad", "wg1"),
    ("dec2 input grad", "fwd2g"),
    ("dec2 weight grad", "wg2"),
    ("enc2 weight grad", "wg2"),
    ("enc2 input grad", "tr2g"),
    ("enc1 weight grad", "wg1"),
];

fn shapes(batch: usize) -> (ConvShape, ConvShape) {
    (
        ConvShape::new(batch, 1, 28, 28, 32, 3, 2, 1).expect("shape"),
        ConvShape::new(batch, 32, 14, 14, 64, 3, 2, 1).expect("shape"),
    )
}

/// One op of `kind` in a graph of its own.
fn graph(kind: &str, batch: usize) -> (Graph, usize) {
    let (s1, s2) = shapes(batch);
    let s = if kind.contains('1') { s1 } else { s2 };
    let mut g = Graph::default();
    let m = |g: &mut Graph, n: &str, r, c| g.matrix(n, r, c);
    let x = m(&mut g, "x", s.batch, s.in_len());
    let y = m(&mut g, "y", s.batch, s.out_len());
    let w = m(&mut g, "w", s.out_c, s.taps());
    let relu = Activation::Relu;
    let op = match kind {
        "fwd1" | "fwd2" => Op::Conv2d {
            x,
            w,
            y: m(&mut g, "out", s.batch, s.out_len()),
            shape: s,
            epilogue: Epilogue::BiasAct {
                bias: m(&mut g, "b", 1, s.out_c),
                act: relu,
            },
        },
        "fwd1g" | "fwd2g" => Op::Conv2d {
            x,
            w,
            y: m(&mut g, "out", s.batch, s.out_len()),
            shape: s,
            epilogue: Epilogue::ActGrad { y, act: relu },
        },
        "tr1" | "tr2" => Op::Conv2dInputGrad {
            dy: y,
            w,
            dx: m(&mut g, "out", s.batch, s.in_len()),
            shape: s,
            epilogue: Epilogue::BiasAct {
                bias: m(&mut g, "b", 1, s.in_c),
                act: relu,
            },
        },
        "tr2g" => Op::Conv2dInputGrad {
            dy: y,
            w,
            dx: m(&mut g, "out", s.batch, s.in_len()),
            shape: s,
            epilogue: Epilogue::ActGrad { y: x, act: relu },
        },
        _ => Op::Conv2dWeightGrad {
            x,
            dy: y,
            dw: m(&mut g, "out", s.out_c, s.taps()),
            shape: s,
            accumulate: false,
        },
    };
    g.push(op);
    (g, s.macs())
}

/// A dense product of about `macs` multiply-accumulates: [batch, k] · [k, n]ᵀ.
fn dense(batch: usize, n: usize, k: usize) -> Graph {
    let mut g = Graph::default();
    let a: Tensor = g.matrix("a", batch, k);
    let b = g.matrix("b", n, k);
    let c = g.matrix("c", batch, n);
    g.push(Op::Matmul {
        a,
        b,
        c,
        trans_a: false,
        trans_b: true,
        epilogue: Epilogue::Store,
        gradient: None,
        loss_scale: None,
    });
    g
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// CPU seconds this process has used, all threads (lavapipe's workers included).
fn cpu_seconds() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid out-pointer to a timespec-sized struct (Linux x86-64 layout).
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// Best wall seconds and best CPU seconds of `reps` runs of `f` after one warm-up. On a
/// machine shared with other work the CPU seconds are the steadier figure: what the op costs,
/// not how much of the cores it got.
fn best(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_seconds());
            f();
            (t.elapsed().as_secs_f64(), cpu_seconds() - c)
        })
        .fold((f64::INFINITY, f64::INFINITY), |(a, b), (w, c)| {
            (a.min(w), b.min(c))
        })
}

fn fill(g: &Graph) -> Vec<Vec<f32>> {
    g.buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            (0..b.len)
                .map(|j| ((j * 7 + i * 13) % 17) as f32 / 17.0 - 0.4)
                .collect()
        })
        .collect()
}

fn report(device: &str, batch: usize, mut time: impl FnMut(&Graph) -> (f64, f64)) {
    println!("\n{device}, batch {batch}:");
    println!("| op | GFLOP/s | ms | GFLOP per CPU-second |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, macs: usize, (wall, cpu): (f64, f64)| {
        let flop = 2.0 * macs as f64 / 1e9;
        println!(
            "| {name} | {:.1} | {:.3} | {:.1} |",
            flop / wall,
            wall * 1e3,
            flop / cpu
        );
    };
    let (mut total, mut total_macs) = ((0.0, 0.0), 0usize);
    for (name, kind) in STEP {
        let (g, macs) = graph(kind, batch);
        let t = time(&g);
        total = (total.0 + t.0, total.1 + t.1);
        total_macs += macs;
        row(name, macs, t);
    }
    row("all eleven", total_macs, total);
    println!(
        "→ {:.0} samples/s for the conv products alone",
        batch as f64 / total.0
    );
    // The dense product at batch 256 too: at 16 rows a 64-row tile is mostly padding.
    let mut shapes = vec![(batch, 512, 784), (256, 512, 784), (batch, 64, 288)];
    shapes.dedup();
    for (m, n, k) in shapes {
        let g = dense(m, n, k);
        row(
            &format!("dense matmul {m}x{k} · ({n}x{k})ᵀ"),
            m * n * k,
            time(&g),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--batch N` sets the GPU batch (default 256, or 16 on a software adapter).
    let gpu_batch = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok());
    let devices = ["cpu", "gpu"];
    let only: Vec<&String> = args
        .iter()
        .filter(|a| devices.contains(&a.as_str()))
        .collect();
    let wants = |d: &str| only.is_empty() || only.iter().any(|a| *a == d);
    let step = [StepParams::default()];
    if wants("cpu") {
        report(
            &format!("CPU executor ({})", hourglass::cpu::describe()),
            256,
            |g| {
                let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
                for (i, v) in fill(g).iter().enumerate() {
                    cpu.write(i, v).unwrap();
                }
                best(60, || cpu.run(0..1, &step).unwrap())
            },
        );
    }
    if wants("gpu") {
        let Ok(ctx) = GpuContext::new(None) else {
            println!("no GPU adapter");
            return;
        };
        let software = ctx.adapter.device_type == "Cpu";
        let batch = gpu_batch.unwrap_or(if software { 16 } else { 256 });
        report(&format!("GPU {}", ctx.adapter.name), batch, |g| {
            let mut dev = GpuExecutor::new(ctx.clone(), g.clone()).expect("executor");
            for (i, v) in fill(g).iter().enumerate() {
                dev.write(i, v).expect("a float write");
            }
            best(if software { 5 } else { 20 }, || {
                dev.run(0..1, &step).expect("run");
                dev.finish().expect("finish");
            })
        });
    }
}
