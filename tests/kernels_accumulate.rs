//! `grad_accumulate` (Op::GradAccumulate, shaders/grad_accumulate.wgsl,
//! cpu::kernels::grad_accumulate): the WGSL kernel against its CPU twin on seeded random
//! gradients of awkward lengths (1, 7, 33, 257, 66,000), for every combination of the
//! accumulation flags, and the micro-steps of an optimizer step recorded into one run — each
//! micro-step gathering its own gradient, as a backward pass would write it — against the
//! weighted sum computed here.

mod common;
#[path = "common/compare.rs"]
#[allow(dead_code)]
mod compare;

use common::{gpu, random};
use compare::worst_scaled;
use hourglass::cpu::CpuExecutor;
use hourglass::gpu::GpuExecutor;
use hourglass::graph::{
    ACCUMULATE_FIRST, ACCUMULATE_LAST, ACCUMULATE_STEP, BufferDesc, Graph, Op, StepParams,
};

const LENGTHS: [usize; 5] = [1, 7, 33, 257, 66_000];
/// One product and one sum a element in f32 (the GPU may fuse them): a few ulps.
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn sym(_: &BufferDesc) -> (f32, f32) {
    (-1.0, 1.0)
}

fn accumulate_graph(len: usize) -> Graph {
    let mut g = Graph::default();
    let grads = g.matrix("grads", 1, len);
    let acc = g.matrix("acc", 1, len);
    g.push(Op::GradAccumulate { grads, acc });
    g.validate().expect("a valid graph");
    g
}

#[test]
fn grad_accumulate_matches_cpu_for_every_flag() {
    let first = ACCUMULATE_FIRST;
    let last = ACCUMULATE_LAST;
    let step = ACCUMULATE_STEP;
    for len in LENGTHS {
        for flags in [
            0,
            first | last,
            step,
            step | first,
            step | last,
            step | first | last,
        ] {
            for w in [1.0f32, 0.37, 1.0 / 3.0] {
                let sp = StepParams {
                    step: 2,
                    accumulate_weight: w,
                    accumulate_flags: flags,
                    ..Default::default()
                };
                let tol = |_: &str| RTOL;
                common::compare_executors(
                    &format!("grad_accumulate len {len} flags {flags:#b} w {w}"),
                    accumulate_graph(len),
                    0..1,
                    sym,
                    &[],
                    sp,
                    tol,
                );
            }
        }
    }
}

#[test]
fn grad_accumulate_without_the_step_flag_changes_nothing() {
    // On the CPU twin (the GPU is held to it above): a step of a run that does not accumulate.
    let len = 33;
    let g = accumulate_graph(len);
    let mut cpu = CpuExecutor::<f32>::new(g).unwrap();
    let (gv, av) = (random(len, -1.0, 1.0, 7), random(len, -1.0, 1.0, 8));
    cpu.write(0, &gv).unwrap();
    cpu.write(1, &av).unwrap();
    let sp = StepParams {
        accumulate_weight: 0.5,
        accumulate_flags: ACCUMULATE_FIRST | ACCUMULATE_LAST,
        ..Default::default()
    };
    cpu.run(0..1, &[sp]).unwrap();
    assert_eq!(cpu.read(0).unwrap(), &gv[..]);
    assert_eq!(cpu.read(1).unwrap(), &av[..]);
}

/// `k` micro-steps in one run: each gathers row `j` of `data` into the gradient (at its own
/// `batch_start`) and accumulates it with weight `w[j]`. Returns the gradient after the run on
/// the CPU and, with a GPU, on it, and the weighted sum computed here in f64.
fn micro_steps(len: usize, w: &[f32]) -> (Vec<f32>, Option<Vec<f32>>, Vec<f32>) {
    let k = w.len();
    let mut g = Graph::default();
    let data = g.matrix("data", k, len);
    let order = g.u32_matrix("order", 1, k);
    let grads = g.matrix("grads", 1, len);
    let acc = g.matrix("acc", 1, len);
    g.push(Op::Gather {
        data,
        order,
        out: grads,
    });
    g.push(Op::GradAccumulate { grads, acc });
    g.validate().expect("a valid graph");
    let values = random(k * len, -1.0, 1.0, 40 + len as u64);
    // A stale accumulator and gradient: the first micro-step must not read either.
    let stale = random(len, -1.0, 1.0, 41);
    let order_v: Vec<u32> = (0..k as u32).rev().collect();
    let steps: Vec<StepParams> = (0..k)
        .map(|j| {
            let mut flags = ACCUMULATE_STEP;
            if j == 0 {
                flags |= ACCUMULATE_FIRST;
            }
            if j + 1 == k {
                flags |= ACCUMULATE_LAST;
            }
            StepParams {
                step: 1,
                batch_start: j as u32,
                accumulate_weight: w[j],
                accumulate_flags: flags,
                ..Default::default()
            }
        })
        .collect();
    let want: Vec<f32> = (0..len)
        .map(|i| {
            (0..k)
                .map(|j| f64::from(w[j]) * f64::from(values[order_v[j] as usize * len + i]))
                .sum::<f64>() as f32
        })
        .collect();
    let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
    cpu.write(data.buf, &values).unwrap();
    cpu.write_u32(order.buf, &order_v).unwrap();
    cpu.write(acc.buf, &stale).unwrap();
    cpu.run(0..2, &steps).unwrap();
    let on_cpu = cpu.read(grads.buf).unwrap().to_vec();
    let on_gpu = gpu().map(|ctx| {
        let mut dev = GpuExecutor::new(ctx, g).unwrap();
        dev.write(data.buf, &values).unwrap();
        dev.write_u32(order.buf, &order_v).unwrap();
        dev.write(acc.buf, &stale).unwrap();
        dev.run(0..2, &steps).unwrap();
        dev.read(grads).unwrap()
    });
    (on_cpu, on_gpu, want)
}

#[test]
fn grad_accumulate_micro_steps_in_one_run_sum_their_weighted_gradients() {
    for len in LENGTHS {
        // One micro-step (a rank's whole share), equal thirds, unequal shares of a partial
        // batch (4, 4, 1 rows of 9), and the ring's 64.
        let shares: Vec<Vec<f32>> = vec![
            vec![1.0],
            vec![1.0 / 3.0; 3],
            vec![4.0 / 9.0, 4.0 / 9.0, 1.0 / 9.0],
            vec![1.0 / 64.0; 64],
        ];
        for w in shares {
            let (cpu, dev, want) = micro_steps(len, &w);
            let what = format!("len {len}, {} micro-steps", w.len());
            let (e, at) = worst_scaled(&cpu, &want, ATOL, RTOL);
            println!("{what}: CPU worst {e:.3} at {at}");
            assert!(e <= 1.0, "{what}: CPU {} vs {} at {at}", cpu[at], want[at]);
            if let Some(dev) = dev {
                let (e, at) = worst_scaled(&dev, &cpu, ATOL, RTOL);
                println!("{what}: GPU worst {e:.3} at {at}");
                assert!(
                    e <= 1.0,
                    "{what}: GPU {} vs CPU {} at {at}",
                    dev[at],
                    cpu[at]
                );
            }
        }
    }
}
