//! The regularizer kernels (noise, Jacobian penalty, sparsity, VAE sampler), `AddInto`, the
//! accumulating matmul epilogue and the loss's repeated targets, each against its CPU twin on
//! seeded random inputs at awkward shapes (1, 7, 33, 257, a batch of one, K·B rows with K > 1).
//! Every view sits at a nonzero offset inside a larger buffer, so the kernels' offsets are
//! exercised too; outputs that accumulate (or must be fully overwritten) start from random
//! values.

mod common;

use hourglass::gpu::GpuExecutor;
use hourglass::gpu::executor::RowLayout;
use hourglass::graph::{BufferDesc, DType, Epilogue, Graph, Op, StepParams, Tensor};
use hourglass::model::{Activation, Loss, Noise};

const FORWARD_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

/// Elements before and after each view in its buffer.
const PAD: usize = 3;

/// A `rows × cols` view at offset `PAD` of a buffer with `PAD` spare elements after it.
fn view(g: &mut Graph, name: &str, rows: usize, cols: usize) -> Tensor {
    let buf = g.buffer(name, rows * cols + 2 * PAD, DType::F32);
    Tensor {
        buf,
        offset: PAD,
        rows,
        cols,
    }
}

/// `ops` of `graph` on both executors, every float buffer compared with `tol(name)`.
fn compare_ops(
    what: &str,
    graph: Graph,
    ops: std::ops::Range<usize>,
    range: impl Fn(&BufferDesc) -> (f32, f32),
    step: StepParams,
    tol: impl Fn(&str) -> f64,
) -> f64 {
    common::compare_executors(what, graph, ops, range, &[], step, tol)
}

/// [`compare_ops`] over every op of the graph.
fn compare(
    what: &str,
    graph: Graph,
    range: impl Fn(&BufferDesc) -> (f32, f32),
    tol: impl Fn(&str) -> f64,
) -> f64 {
    let ops = 0..graph.ops.len();
    compare_ops(what, graph, ops, range, step(), tol)
}

/// A step with a seed whose both words are nonzero, for the kernels that draw random numbers.
fn step() -> StepParams {
    StepParams {
        step: 3,
        lr: 0.01,
        seed_lo: 0x9E37_79B9,
        seed_hi: 0x0000_BEEF,
        ..Default::default()
    }
}

fn sym(_: &BufferDesc) -> (f32, f32) {
    (-1.0, 1.0)
}

fn forward(_: &str) -> f64 {
    FORWARD_TOL
}

/// Gradient tolerance for buffers whose names start with `d` or contain `grad`.
fn grads(name: &str) -> f64 {
    if name.starts_with('d') || name.contains("grad") {
        GRAD_TOL
    } else {
        FORWARD_TOL
    }
}

/// The range of an activation's outputs, kept off the saturated ends.
fn output_range(act: Activation) -> (f32, f32) {
    match act {
        Activation::Sigmoid => (0.001, 0.999),
        Activation::Tanh => (-0.999, 0.999),
        Activation::Relu => (0.0, 2.0),
        Activation::Identity | Activation::LeakyRelu => (-2.0, 2.0),
    }
}

#[test]
fn corrupt_matches_cpu() {
    let mut worst = 0.0f64;
    for (rows, cols) in [(1, 1), (1, 7), (7, 33), (257, 273)] {
        for noise in [
            Noise::Mask { nu: 0.3 },
            Noise::Gaussian { sigma: 0.5 },
            Noise::SaltPepper { nu: 0.2 },
        ] {
            let mut g = Graph::default();
            let x = view(&mut g, "x", rows, cols);
            let out = view(&mut g, "out", rows, cols);
            g.push(Op::Corrupt { x, out, noise });
            let e = compare(
                &format!("corrupt {noise:?} {rows}x{cols}"),
                g,
                |_| (0.5, 1.5),
                forward,
            );
            worst = worst.max(e);
        }
    }
    eprintln!("corrupt worst relative error {worst:.2e}");
}

#[test]
fn directions_match_cpu() {
    let mut worst = 0.0f64;
    // Exact: K = c basis vectors per example.
    for (c, batch) in [(1, 1), (7, 33), (33, 7), (2, 1)] {
        let mut g = Graph::default();
        let out = view(&mut g, "out", c * batch, c);
        g.push(Op::Directions {
            out,
            batch,
            exact: true,
        });
        let e = compare(
            &format!("exact directions c={c} B={batch}"),
            g,
            sym,
            forward,
        );
        assert_eq!(e, 0.0, "basis vectors are exact");
    }
    // Stochastic: any K.
    for (k, batch, c) in [(1, 1, 1), (3, 7, 257), (33, 1, 7), (2, 33, 33)] {
        let mut g = Graph::default();
        let out = view(&mut g, "out", k * batch, c);
        g.push(Op::Directions {
            out,
            batch,
            exact: false,
        });
        let e = compare(
            &format!("random directions K={k} B={batch} c={c}"),
            g,
            sym,
            forward,
        );
        worst = worst.max(e);
    }
    eprintln!("directions worst relative error {worst:.2e}");
}

#[test]
fn tangent_scale_matches_cpu() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (k, batch, n) in [(1, 1, 1), (3, 7, 33), (2, 1, 257), (7, 33, 7)] {
            let mut g = Graph::default();
            let r = view(&mut g, "r", k * batch, n);
            let y = view(&mut g, "y", batch, n);
            let out = view(&mut g, "out", k * batch, n);
            g.push(Op::TangentScale { r, y, act, out });
            let range = |d: &BufferDesc| match d.name.as_str() {
                "y" => output_range(act),
                _ => (-1.0, 1.0),
            };
            let e = compare(
                &format!("tangent scale {act:?} K={k} B={batch} n={n}"),
                g,
                range,
                forward,
            );
            worst = worst.max(e);
        }
    }
    eprintln!("tangent scale worst relative error {worst:.2e}");
}

#[test]
fn curvature_matches_cpu() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (k, batch, n) in [(1, 1, 1), (3, 7, 33), (2, 1, 257), (33, 7, 7)] {
            let mut g = Graph::default();
            let qa = view(&mut g, "qa", k * batch, n);
            let r = view(&mut g, "r", k * batch, n);
            let y = view(&mut g, "y", batch, n);
            let out = view(&mut g, "dcurv", batch, n);
            g.push(Op::Curvature { qa, r, y, act, out });
            let range = |d: &BufferDesc| match d.name.as_str() {
                "y" => output_range(act),
                _ => (-1.0, 1.0),
            };
            let e = compare(
                &format!("curvature {act:?} K={k} B={batch} n={n}"),
                g,
                range,
                grads,
            );
            worst = worst.max(e);
        }
    }
    eprintln!("curvature worst relative error {worst:.2e}");
}

#[test]
fn jacobian_norm_matches_cpu() {
    let mut worst = 0.0f64;
    // The last shape has more workgroups than one grid dimension holds (600,000 examples
    // packed eight to a workgroup: 75,000, folded 2-D).
    for (k, batch, d) in [
        (1, 1, 1),
        (3, 7, 257),
        (33, 1, 7),
        (2, 300, 33),
        (1, 600_000, 2),
    ] {
        let mut g = Graph::default();
        let r = view(&mut g, "r", k * batch, d);
        let rows = view(&mut g, "rows", 1, batch);
        let grad = view(&mut g, "grad", k * batch, d);
        g.push(Op::JacobianNorm {
            r,
            rows,
            grad,
            scale: 0.37,
        });
        let e = compare(
            &format!("jacobian norm K={k} B={batch} d={d}"),
            g,
            sym,
            grads,
        );
        worst = worst.max(e);
    }
    eprintln!("jacobian norm worst relative error {worst:.2e}");
}

/// The Jacobian norm at every row layout (`RowLayout`): K·d elements per example packed two
/// (300 examples of 33) and eight (1100 of 7) to a workgroup, kept whole below 256 KiB of
/// traffic (K·d = 2800, 33·784), and split over several at a batch of one or two (48·784 in 37
/// pieces, 2·20000 in 40).
#[test]
fn jacobian_norm_matches_cpu_at_every_row_layout() {
    let shapes = [
        (1, 300, 33),
        (1, 1100, 7),
        (4, 1, 700),
        (33, 1, 784),
        (48, 1, 784),
        (2, 2, 20_000),
    ];
    let layouts: Vec<RowLayout> = shapes
        .iter()
        .map(|&(k, b, d)| RowLayout::new(b, k * d, 8))
        .collect();
    assert!(layouts.iter().any(|l| l.pack() == 2) && layouts.iter().any(|l| l.pack() == 8));
    assert!(layouts.iter().any(|l| l.splits == 37) && layouts.iter().any(|l| l.splits == 40));
    let mut worst = 0.0f64;
    for ((k, batch, d), layout) in shapes.into_iter().zip(layouts) {
        let mut g = Graph::default();
        let r = view(&mut g, "r", k * batch, d);
        let rows = view(&mut g, "rows", 1, batch);
        let grad = view(&mut g, "grad", k * batch, d);
        g.push(Op::JacobianNorm {
            r,
            rows,
            grad,
            scale: 0.37,
        });
        let e = compare(
            &format!("jacobian norm K={k} B={batch} d={d} {layout:?}"),
            g,
            sym,
            grads,
        );
        worst = worst.max(e);
    }
    eprintln!("jacobian norm (row layouts) worst relative error {worst:.2e}");
}

fn contractive_graph(batch: usize, units: usize, inputs: usize) -> Graph {
    let mut g = Graph::default();
    let h = view(&mut g, "h", batch, units);
    let w = view(&mut g, "w", units, inputs);
    let rows = view(&mut g, "rows", 1, batch);
    let dz = view(&mut g, "dz", batch, units);
    let dw = view(&mut g, "dw", units, inputs);
    let scratch = view(&mut g, "scratch", 1, 2 * units);
    g.push(Op::ContractiveClosedForm {
        h,
        w,
        rows,
        dz,
        dw,
        scratch,
        lambda: 0.1,
    });
    g
}

fn contractive_range(d: &BufferDesc) -> (f32, f32) {
    match d.name.as_str() {
        "h" => (0.001, 0.999),
        _ => (-1.0, 1.0),
    }
}

#[test]
fn contractive_closed_form_matches_cpu() {
    let mut worst = 0.0f64;
    for (batch, units, inputs) in [(1, 1, 1), (7, 33, 257), (257, 7, 33), (1, 300, 7)] {
        let e = compare(
            &format!("contractive B={batch} c={units} d={inputs}"),
            contractive_graph(batch, units, inputs),
            contractive_range,
            grads,
        );
        worst = worst.max(e);
    }
    eprintln!("contractive closed form worst relative error {worst:.2e}");
}

/// The closed-form contractive penalty's per-example rows at every row layout: packed (300
/// examples of 33 units, 1100 of 7) and split (one example of 30,000 units in 30 pieces, two
/// of 24,000 in 24).
#[test]
fn contractive_closed_form_matches_cpu_at_every_row_layout() {
    let shapes = [(300, 33, 7), (1100, 7, 5), (1, 30_000, 2), (2, 24_000, 2)];
    let layouts: Vec<RowLayout> = shapes
        .iter()
        .map(|&(b, c, _)| RowLayout::new(b, c, 12))
        .collect();
    assert!(layouts.iter().any(|l| l.pack() == 2) && layouts.iter().any(|l| l.pack() == 8));
    assert!(layouts.iter().any(|l| l.splits == 30) && layouts.iter().any(|l| l.splits == 24));
    let mut worst = 0.0f64;
    for ((batch, units, inputs), layout) in shapes.into_iter().zip(layouts) {
        let e = compare(
            &format!("contractive B={batch} c={units} d={inputs} {layout:?}"),
            contractive_graph(batch, units, inputs),
            contractive_range,
            grads,
        );
        worst = worst.max(e);
    }
    eprintln!("contractive closed form (row layouts) worst relative error {worst:.2e}");
}

/// The per-row kernels whose rows are split or packed give the same bits on every run: the
/// partials are added in a fixed order, with no atomics.
#[test]
fn split_and_packed_rows_give_the_same_bits_run_to_run() {
    let Some(ctx) = common::gpu() else { return };
    let mut g = Graph::default();
    // Jacobian norm of one example over 48·784 elements (37 pieces) and a loss of 1100 short
    // rows (8 to a workgroup).
    let r = view(&mut g, "r", 48, 784);
    let rows = view(&mut g, "rows", 1, 1);
    let grad = view(&mut g, "grad", 48, 784);
    g.push(Op::JacobianNorm {
        r,
        rows,
        grad,
        scale: 0.37,
    });
    let logits = view(&mut g, "logits", 1100, 7);
    let target = view(&mut g, "target", 1100, 7);
    let lgrad = view(&mut g, "lgrad", 1100, 7);
    let row_loss = view(&mut g, "row_loss", 1, 1100);
    g.push(Op::ReconstructionLoss {
        logits,
        target,
        grad: lgrad,
        row_loss,
        loss: Loss::Bce,
        output: Activation::Sigmoid,
    });
    let run = || {
        let mut dev = GpuExecutor::new(ctx.clone(), g.clone()).expect("GPU executor");
        for (id, desc) in g.buffers.iter().enumerate() {
            dev.write(id, &common::random(desc.len, -3.0, 3.0, 77 + id as u64))
                .unwrap();
        }
        dev.run(0..g.ops.len(), &[step()]).expect("GPU run");
        [rows.buf, row_loss.buf].map(|b| dev.read_buffer(b).expect("read back"))
    };
    let (first, second) = (run(), run());
    for (a, b) in first.iter().zip(&second) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "two runs differ: {a:?} vs {b:?}"
        );
        assert!(a.iter().all(|x| x.is_finite() && *x != 0.0), "{a:?}");
    }
}

/// An op with two dispatches in the middle of a graph: a run over a sub-range of ops must
/// record exactly those ops' dispatches, and the op after it must see its results.
#[test]
fn multi_dispatch_op_keeps_op_ranges_aligned() {
    let (batch, units, inputs) = (7, 33, 5);
    let mut g = contractive_graph(batch, units, inputs);
    let dz = match g.ops[0] {
        Op::ContractiveClosedForm { dz, .. } => dz,
        _ => unreachable!(),
    };
    let first = view(&mut g, "first", 2, 3);
    g.ops.insert(
        0,
        Op::Directions {
            out: first,
            batch: 1,
            exact: false,
        },
    );
    let total = view(&mut g, "total", batch, units);
    g.push(Op::AddInto { x: dz, out: total });
    let last = view(&mut g, "last", 1, 4);
    g.push(Op::Directions {
        out: last,
        batch: 1,
        exact: false,
    });
    // Ops 1..3: the contractive op (two dispatches) and the AddInto reading its dz. Buffers
    // "first" and "last" keep their random fill on both sides.
    let e = compare_ops(
        "contractive then add_into",
        g,
        1..3,
        contractive_range,
        step(),
        grads,
    );
    eprintln!("multi-dispatch op range worst relative error {e:.2e}");
}

#[test]
fn sparse_l1_matches_cpu() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (batch, units) in [(1, 1), (7, 33), (257, 7), (2, 300)] {
            let mut g = Graph::default();
            let h = view(&mut g, "h", batch, units);
            let rows = view(&mut g, "rows", 1, batch);
            let dz = view(&mut g, "dz", batch, units);
            g.push(Op::SparseL1 {
                h,
                act,
                rows,
                dz,
                lambda: 0.2,
            });
            let range = |d: &BufferDesc| match d.name.as_str() {
                "h" => output_range(act),
                _ => (-1.0, 1.0),
            };
            let e = compare(
                &format!("sparse L1 {act:?} B={batch} c={units}"),
                g,
                range,
                grads,
            );
            worst = worst.max(e);
        }
    }
    // More examples than one grid dimension holds.
    let mut g = Graph::default();
    let h = view(&mut g, "h", 66_000, 1);
    let rows = view(&mut g, "rows", 1, 66_000);
    let dz = view(&mut g, "dz", 66_000, 1);
    g.push(Op::SparseL1 {
        h,
        act: Activation::Tanh,
        rows,
        dz,
        lambda: 0.2,
    });
    worst = worst.max(compare("sparse L1 folded rows", g, sym, grads));
    eprintln!("sparse L1 worst relative error {worst:.2e}");
}

#[test]
fn sparse_kl_matches_cpu() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (batch, units) in [(1, 1), (7, 33), (257, 7), (2, 300)] {
            let mut g = Graph::default();
            let h = view(&mut g, "h", batch, units);
            let sums = view(&mut g, "sums", 1, units);
            let terms = view(&mut g, "terms", 1, units);
            let dz = view(&mut g, "dz", batch, units);
            g.push(Op::SparseKl {
                h,
                sums,
                act,
                terms,
                dz,
                lambda: 0.3,
                target: 0.05,
            });
            let b = batch as f32;
            let range = move |d: &BufferDesc| match d.name.as_str() {
                "h" => (0.001, 0.999),
                // ρ̂ = sums / B in (0.02, 0.95): both sides of ρ.
                "sums" => (0.02 * b, 0.95 * b),
                _ => (-1.0, 1.0),
            };
            let e = compare(
                &format!("sparse KL {act:?} B={batch} c={units}"),
                g,
                range,
                grads,
            );
            worst = worst.max(e);
        }
    }
    eprintln!("sparse KL worst relative error {worst:.2e}");
}

fn sampler_range(d: &BufferDesc) -> (f32, f32) {
    match d.name.as_str() {
        "logvar" => (-3.0, 2.0),
        "eps" => (-3.0, 3.0),
        _ => (-1.0, 1.0),
    }
}

/// The last four reach every row layout: packed two (300 examples of 33) and eight (1100 of
/// 7) to a workgroup, split at a batch of one (1 × 20,000 in 20 pieces) and two (2 × 9000 in
/// 18).
const SAMPLER_SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (3, 7, 33),
    (1, 33, 257),
    (2, 1, 7),
    (4, 257, 2),
    (1, 300, 33),
    (1, 1100, 7),
    (1, 1, 20_000),
    (2, 2, 9000),
];

#[test]
fn sample_matches_cpu() {
    let layouts: Vec<RowLayout> = SAMPLER_SHAPES
        .iter()
        .map(|&(l, b, c)| RowLayout::new(b, l * c, 16))
        .collect();
    assert!(layouts.iter().any(|l| l.pack() == 2) && layouts.iter().any(|l| l.pack() == 8));
    assert!(layouts.iter().any(|l| l.splits == 20) && layouts.iter().any(|l| l.splits == 18));
    let mut worst = 0.0f64;
    for (samples, batch, units) in SAMPLER_SHAPES {
        let mut g = Graph::default();
        let mu = view(&mut g, "mu", batch, units);
        let logvar = view(&mut g, "logvar", batch, units);
        let eps = view(&mut g, "eps", samples * batch, units);
        let z = view(&mut g, "z", samples * batch, units);
        let kl_rows = view(&mut g, "kl_rows", 1, batch);
        g.push(Op::Sample {
            mu,
            logvar,
            eps,
            z,
            kl_rows,
            beta: 0.7,
        });
        let e = compare(
            &format!("sample L={samples} B={batch} c={units}"),
            g,
            sampler_range,
            forward,
        );
        worst = worst.max(e);
    }
    eprintln!("sample worst relative error {worst:.2e}");
}

#[test]
fn sample_grad_matches_cpu() {
    let mut worst = 0.0f64;
    for (samples, batch, units) in SAMPLER_SHAPES {
        let mut g = Graph::default();
        let dz = view(&mut g, "dz", samples * batch, units);
        let eps = view(&mut g, "eps", samples * batch, units);
        let mu = view(&mut g, "mu", batch, units);
        let logvar = view(&mut g, "logvar", batch, units);
        let dmu = view(&mut g, "dmu", batch, units);
        let dlogvar = view(&mut g, "dlogvar", batch, units);
        g.push(Op::SampleGrad {
            dz,
            eps,
            mu,
            logvar,
            dmu,
            dlogvar,
            beta: 0.7,
        });
        let e = compare(
            &format!("sample grad L={samples} B={batch} c={units}"),
            g,
            sampler_range,
            grads,
        );
        worst = worst.max(e);
    }
    eprintln!("sample grad worst relative error {worst:.2e}");
}

#[test]
fn add_into_matches_cpu() {
    let mut worst = 0.0f64;
    for (rows, cols) in [(1, 1), (1, 7), (33, 257)] {
        let mut g = Graph::default();
        let x = view(&mut g, "x", rows, cols);
        let out = view(&mut g, "out", rows, cols);
        g.push(Op::AddInto { x, out });
        worst = worst.max(compare(&format!("add_into {rows}x{cols}"), g, sym, forward));
    }
    eprintln!("add_into worst relative error {worst:.2e}");
}

/// More than 65,535 · 256 elements: the grid folds into y, and the random draws must still be
/// keyed by the flat element index.
#[test]
fn elementwise_kernels_fold_large_grids() {
    let len = 65_535 * 256 + 1_001;
    let mut g = Graph::default();
    let x = view(&mut g, "x", 1, len);
    let out = view(&mut g, "out", 1, len);
    let sum = view(&mut g, "sum", 1, len);
    g.push(Op::Corrupt {
        x,
        out,
        noise: Noise::Mask { nu: 0.5 },
    });
    g.push(Op::AddInto { x, out: sum });
    let e = compare(
        "corrupt + add_into, folded grid",
        g,
        |_| (0.5, 1.5),
        forward,
    );
    eprintln!("folded grid worst relative error {e:.2e}");
}

#[test]
fn matmul_accumulate_act_grad_matches_cpu() {
    let mut worst = 0.0f64;
    for (m, n, k) in [(7, 33, 257), (33, 1, 7), (1, 257, 33), (65, 130, 67)] {
        for act in Activation::ALL {
            for (trans_a, trans_b) in [(false, false), (true, false)] {
                let mut g = Graph::default();
                let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
                let a = view(&mut g, "a", ar, ac);
                let b = view(&mut g, "b", k, n);
                let c = view(&mut g, "c", m, n);
                let y = view(&mut g, "y", m, n);
                g.push(Op::Matmul {
                    a,
                    b,
                    c,
                    trans_a,
                    trans_b,
                    epilogue: Epilogue::AccumulateActGrad { y, act },
                    gradient: None,
                    loss_scale: None,
                });
                let range = |d: &BufferDesc| match d.name.as_str() {
                    "y" => output_range(act),
                    _ => (-1.0, 1.0),
                };
                let e = compare(
                    &format!("matmul accumulate+act' ({m},{n},{k}) {act:?} ta={trans_a}"),
                    g,
                    range,
                    |_| GRAD_TOL,
                );
                worst = worst.max(e);
            }
        }
    }
    eprintln!("accumulate-act-grad epilogue worst relative error {worst:.2e}");
}

#[test]
fn loss_compares_every_sample_with_its_target_row() {
    let mut worst = 0.0f64;
    for (samples, batch, cols) in [(2, 1, 1), (3, 7, 257), (2, 33, 7), (1, 5, 33)] {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut g = Graph::default();
            let logits = view(&mut g, "logits", samples * batch, cols);
            let target = view(&mut g, "target", batch, cols);
            let grad = view(&mut g, "grad", samples * batch, cols);
            let row_loss = view(&mut g, "row_loss", 1, samples * batch);
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
            let e = compare(
                &format!("{loss:?}/{output:?} L={samples} B={batch} D={cols}"),
                g,
                range,
                forward,
            );
            worst = worst.max(e);
        }
    }
    eprintln!("repeated-target loss worst relative error {worst:.2e}");
}
