//! Every op's WGSL kernel against its CPU twin on seeded random inputs, at shapes that are not
//! multiples of the tile sizes (1, 7, 33, 257) and with a batch of one.

mod common;

use common::{gpu, random};
use hourglass::cpu::CpuExecutor;
use hourglass::gpu::GpuExecutor;
use hourglass::gpu::executor::RowLayout;
use hourglass::graph::{BufferDesc, Epilogue, Graph, Guard, Op, StepParams, Tensor};
use hourglass::model::{Activation, Loss};

const FORWARD_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

/// Every op of `graph` on both executors, every float buffer compared (see
/// [`common::compare_executors`]).
fn compare(
    what: &str,
    graph: Graph,
    range: impl Fn(&BufferDesc) -> (f32, f32),
    indices: &[(usize, Vec<u32>)],
    step: StepParams,
    tol: f64,
) -> f64 {
    let ops = 0..graph.ops.len();
    common::compare_executors(what, graph, ops, range, indices, step, |_| tol)
}

fn step() -> StepParams {
    StepParams {
        step: 3,
        batch_start: 0,
        lr: 0.01,
        bias_correction1: 1.0 - 0.9f32.powi(3),
        bias_correction2: 1.0 - 0.999f32.powi(3),
        ..Default::default()
    }
}

fn sym(_: &BufferDesc) -> (f32, f32) {
    (-1.0, 1.0)
}

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (1, 33, 257),
    (7, 33, 257),
    (257, 7, 33),
    (33, 257, 7),
    (65, 130, 67),
];

/// A matmul graph of form (trans_a, trans_b) computing an M×N result over K.
fn matmul_graph(
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    epilogue: impl Fn(&mut Graph) -> Epilogue,
) -> Graph {
    let mut g = Graph::default();
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    let a = g.matrix("a", ar, ac);
    let b = g.matrix("b", br, bc);
    let c = g.matrix("c", m, n);
    let epilogue = epilogue(&mut g);
    g.push(Op::Matmul {
        a,
        b,
        c,
        trans_a,
        trans_b,
        epilogue,
        gradient: None,
        loss_scale: None,
    });
    g
}

#[test]
fn matmul_three_layer_forms_match_cpu() {
    let mut worst = 0.0f64;
    for shape in SHAPES {
        for (ta, tb) in [(false, true), (false, false), (true, false), (true, true)] {
            let g = matmul_graph(shape, ta, tb, |_| Epilogue::Store);
            worst = worst.max(compare(
                &format!("matmul {shape:?} ta={ta} tb={tb}"),
                g,
                sym,
                &[],
                step(),
                FORWARD_TOL,
            ));
            let g = matmul_graph(shape, ta, tb, |_| Epilogue::Accumulate);
            worst = worst.max(compare(
                &format!("matmul+acc {shape:?}"),
                g,
                sym,
                &[],
                step(),
                GRAD_TOL,
            ));
        }
    }
    eprintln!("matmul worst relative error {worst:.2e}");
}

#[test]
fn large_tile_matmul_matches_cpu() {
    // At least 256 output tiles of 128×128 select shaders/matmul_large.wgsl; a short K keeps
    // this cheap on a software device. Sizes just past multiples of 128 test the edges.
    for (ta, tb) in [(false, true), (false, false), (true, false)] {
        let g = matmul_graph((2049, 2050, 7), ta, tb, |g| Epilogue::BiasAct {
            bias: g.matrix("bias", 1, 2050),
            act: Activation::Tanh,
        });
        compare(
            &format!("large matmul ta={ta} tb={tb}"),
            g,
            sym,
            &[],
            step(),
            FORWARD_TOL,
        );
    }
}

#[test]
fn matmul_epilogues_match_cpu_for_every_activation() {
    let mut worst = 0.0f64;
    for shape in [(7, 33, 257), (33, 1, 7), (1, 257, 33)] {
        for act in Activation::ALL {
            let (m, n, _) = shape;
            let g = matmul_graph(shape, false, true, |g| Epilogue::BiasAct {
                bias: g.matrix("bias", 1, n),
                act,
            });
            worst = worst.max(compare(
                &format!("linear {shape:?} {act:?}"),
                g,
                sym,
                &[],
                step(),
                FORWARD_TOL,
            ));
            let g = matmul_graph(shape, false, false, |g| Epilogue::ActGrad {
                y: g.matrix("y", m, n),
                act,
            });
            worst = worst.max(compare(
                &format!("input grad {shape:?} {act:?}"),
                g,
                sym,
                &[],
                step(),
                GRAD_TOL,
            ));
        }
    }
    eprintln!("epilogue worst relative error {worst:.2e}");
}

#[test]
fn activations_forward_and_backward_match_cpu() {
    for len in [1, 7, 257, 70_000] {
        for act in Activation::ALL {
            let mut g = Graph::default();
            let x = g.matrix("x", 1, len);
            let y = g.matrix("y", 1, len);
            g.push(Op::Activation { x, y, act });
            compare(
                &format!("{act:?} forward, {len}"),
                g,
                |_| (-20.0, 20.0),
                &[],
                step(),
                FORWARD_TOL,
            );

            let mut g = Graph::default();
            let dy = g.matrix("dy", 1, len);
            let y = g.matrix("y", 1, len);
            let dx = g.matrix("dx", 1, len);
            g.push(Op::ActivationGrad { dy, y, dx, act });
            compare(
                &format!("{act:?} backward, {len}"),
                g,
                sym,
                &[],
                step(),
                GRAD_TOL,
            );
        }
    }
}

#[test]
fn column_sum_matches_cpu() {
    for (rows, cols) in [(1, 1), (257, 7), (7, 257), (1, 33), (300, 65)] {
        for accumulate in [false, true] {
            let mut g = Graph::default();
            let x = g.matrix("x", rows, cols);
            let out = g.matrix("out", 1, cols);
            g.push(Op::ColumnSum { x, out, accumulate });
            compare(
                &format!("colsum {rows}x{cols}"),
                g,
                sym,
                &[],
                step(),
                GRAD_TOL,
            );
        }
    }
}

#[test]
fn reconstruction_losses_match_cpu() {
    for (rows, cols) in [(1, 1), (7, 257), (33, 7), (2, 784)] {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut g = Graph::default();
            let logits = g.matrix("logits", rows, cols);
            let target = g.matrix("target", rows, cols);
            let grad = g.matrix("grad", rows, cols);
            let row_loss = g.matrix("row_loss", 1, rows);
            g.push(Op::ReconstructionLoss {
                logits,
                target,
                grad,
                row_loss,
                loss,
                output,
            });
            let range = |d: &BufferDesc| match d.name.as_str() {
                "logits" => (-30.0, 30.0),
                _ => (0.0, 1.0),
            };
            compare(
                &format!("{loss:?}/{output:?} {rows}x{cols}"),
                g,
                range,
                &[],
                step(),
                FORWARD_TOL,
            );
        }
    }
}

/// Rows spread over workgroups every way `RowLayout` spreads them: one workgroup a row (7×33,
/// 33×257, batch 1), short rows packed two and eight to a workgroup (257×7 is too few rows to
/// pack; 300×33 packs 2, 1100×7 packs 8), and long rows of a small batch split over several
/// workgroups whose partials `RowSum` adds (1×30000 in 30 pieces, 3×40000 in 40).
#[test]
fn reconstruction_loss_matches_cpu_at_every_row_layout() {
    let shapes = [
        (1, 1),
        (1, 7),
        (7, 33),
        (33, 257),
        (257, 7),
        (300, 33),
        (1100, 7),
        (1, 30_000),
        (3, 40_000),
    ];
    let layouts: Vec<RowLayout> = shapes
        .iter()
        .map(|&(r, c)| RowLayout::new(r, c, 12))
        .collect();
    assert!(layouts.iter().any(|l| l.pack() == 2) && layouts.iter().any(|l| l.pack() == 8));
    assert!(layouts.iter().any(|l| l.splits == 30) && layouts.iter().any(|l| l.splits == 40));
    let mut worst = 0.0f64;
    for ((rows, cols), layout) in shapes.into_iter().zip(layouts) {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut g = Graph::default();
            let logits = g.matrix("logits", rows, cols);
            let target = g.matrix("target", rows, cols);
            let grad = g.matrix("grad", rows, cols);
            let row_loss = g.matrix("row_loss", 1, rows);
            g.push(Op::ReconstructionLoss {
                logits,
                target,
                grad,
                row_loss,
                loss,
                output,
            });
            let range = |d: &BufferDesc| match d.name.as_str() {
                "logits" => (-30.0, 30.0),
                _ => (0.0, 1.0),
            };
            worst = worst.max(compare(
                &format!("{loss:?}/{output:?} {rows}x{cols} {layout:?}"),
                g,
                range,
                &[],
                step(),
                FORWARD_TOL,
            ));
        }
    }
    eprintln!("reconstruction loss (row layouts) worst relative error {worst:.2e}");
}

/// Appends `GradNorm` over `grads` and returns the guard an optimizer reads.
fn guarded(g: &mut Graph, grads: Tensor, max_norm: Option<f32>) -> Option<Guard> {
    let max_norm = max_norm?;
    let partials = g.matrix("partials", 1, grads.len().div_ceil(2048));
    let norm_sq = g.matrix("norm_sq", 1, 1);
    let health = g.u32_matrix("health", 1, 2);
    g.push(Op::GradNorm {
        grads,
        partials,
        norm_sq,
        health,
    });
    Some(Guard { norm_sq, max_norm })
}

#[test]
fn optimizers_match_cpu() {
    for len in [1, 7, 257, 66_000] {
        // No guard; a guard without clipping; clipping that binds (random grads have norms
        // far above 0.5 at these sizes, except len 1).
        for clip in [None, Some(0.0), Some(0.5)] {
            for decoupled in [false, true] {
                let mut g = Graph::default();
                let params = g.matrix("params", 1, len);
                let grads = g.matrix("grads", 1, len);
                let m = g.matrix("m", 1, len);
                let v = g.matrix("v", 1, len);
                let guard = guarded(&mut g, grads, clip);
                g.push(Op::Adam {
                    params,
                    grads,
                    m,
                    v,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    decoupled,
                    guard,
                });
                let range = |d: &BufferDesc| {
                    if d.name == "v" {
                        (0.0, 1.0)
                    } else {
                        (-1.0, 1.0)
                    }
                };
                compare(
                    &format!("adam {len} decoupled={decoupled} clip={clip:?}"),
                    g,
                    range,
                    &[],
                    step(),
                    GRAD_TOL,
                );
            }
            let mut g = Graph::default();
            let params = g.matrix("params", 1, len);
            let grads = g.matrix("grads", 1, len);
            let velocity = g.matrix("velocity", 1, len);
            let guard = guarded(&mut g, grads, clip);
            g.push(Op::Sgd {
                params,
                grads,
                velocity,
                momentum: 0.9,
                weight_decay: 0.01,
                guard,
            });
            compare(
                &format!("sgd {len} clip={clip:?}"),
                g,
                sym,
                &[],
                step(),
                GRAD_TOL,
            );
        }
    }
}

#[test]
fn a_non_finite_gradient_skips_the_step_on_both_executors() {
    let Some(ctx) = gpu() else { return };
    let len = 5000;
    let mut g = Graph::default();
    let params = g.matrix("params", 1, len);
    let grads = g.matrix("grads", 1, len);
    let m = g.matrix("m", 1, len);
    let v = g.matrix("v", 1, len);
    let guard = guarded(&mut g, grads, Some(1.0));
    g.push(Op::Adam {
        params,
        grads,
        m,
        v,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        guard,
    });
    let health = g
        .buffers
        .iter()
        .position(|b| b.name == "health")
        .expect("health");
    let p0 = random(len, -1.0, 1.0, 1);
    for bad in [f32::NAN, f32::INFINITY] {
        let mut gr = random(len, -1.0, 1.0, 2);
        gr[4321] = bad;
        let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
        let mut dev = GpuExecutor::new(ctx.clone(), g.clone()).expect("gpu");
        for (id, data) in [(params.buf, &p0), (grads.buf, &gr)] {
            cpu.write(id, data).unwrap();
            dev.write(id, data).expect("a float write");
        }
        let s = step();
        cpu.run(0..g.ops.len(), &[s]).unwrap();
        dev.run(0..g.ops.len(), &[s]).expect("run");
        assert_eq!(
            cpu.read(params.buf).unwrap(),
            &p0[..],
            "CPU skipped the step"
        );
        assert_eq!(
            dev.read_buffer(params.buf).expect("read"),
            p0,
            "GPU skipped the step"
        );
        let h = dev
            .read_u32(Tensor {
                buf: health,
                offset: 0,
                rows: 1,
                cols: 2,
            })
            .expect("health");
        assert_eq!(h, vec![1, s.step], "GPU counted the bad step");
        assert_eq!(
            cpu.view_u32(Tensor {
                buf: health,
                offset: 0,
                rows: 1,
                cols: 2
            })
            .unwrap(),
            &[1, s.step],
            "CPU counted the bad step"
        );
    }
}

#[test]
fn gather_matches_cpu() {
    for (n, d, batch, start) in [(10, 1, 1, 9), (100, 33, 7, 50), (300, 257, 33, 0)] {
        let mut g = Graph::default();
        let data = g.matrix("data", n, d);
        let order = g.u32_matrix("order", 1, n);
        let out = g.matrix("out", batch, d);
        g.push(Op::Gather { data, order, out });
        let perm = hourglass::rng::permutation(n, 5, 0);
        let s = StepParams {
            batch_start: start as u32,
            ..step()
        };
        let err = compare("gather", g, sym, &[(order.buf, perm)], s, 0.0);
        assert_eq!(err, 0.0, "a gather copies exactly");
    }
}
