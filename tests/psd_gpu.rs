//! The PSD kernels (`shaders/psd.wgsl`) against their CPU twins at awkward shapes (1, 7, 33,
//! 257 units; a batch of one), every view at a nonzero offset; then 30 training steps and the
//! converged inference on the GPU against the CPU reference.

mod common;

use hourglass::graph::psd::PsdOp;
use hourglass::graph::{BufferDesc, DType, Graph, Op, StepParams, Tensor};
use hourglass::{Autoencoder, Dataset, Device, ModelSpec, TrainConfig, Trainer};

const TOL: f64 = 1e-5;

/// Elements before and after each view in its buffer.
const PAD: usize = 3;

fn view(g: &mut Graph, name: &str, rows: usize, cols: usize) -> Tensor {
    let buf = g.buffer(name, rows * cols + 2 * PAD, DType::F32);
    Tensor {
        buf,
        offset: PAD,
        rows,
        cols,
    }
}

fn compare(what: &str, graph: Graph, range: impl Fn(&BufferDesc) -> (f32, f32), tol: f64) -> f64 {
    let ops = 0..graph.ops.len();
    common::compare_executors(what, graph, ops, range, &[], StepParams::default(), |_| tol)
}

const SHAPES: [(usize, usize); 6] = [(1, 1), (1, 7), (7, 33), (33, 7), (3, 257), (257, 1)];

#[test]
fn gain_and_its_gradient_match_the_cpu() {
    for (b, c) in SHAPES {
        let mut g = Graph::default();
        let (u, gain, f) = (
            view(&mut g, "u", b, c),
            view(&mut g, "g", 1, c),
            view(&mut g, "f", b, c),
        );
        g.push(Op::Psd(PsdOp::Gain { u, g: gain, f }));
        let (df, da, dg) = (
            view(&mut g, "df", b, c),
            view(&mut g, "da", b, c),
            view(&mut g, "dg", 1, c),
        );
        g.push(Op::Psd(PsdOp::GainGrad {
            df,
            u,
            g: gain,
            da,
            dg,
        }));
        compare(&format!("gain {b}x{c}"), g, |_| (-1.0, 1.0), TOL);
    }
}

#[test]
fn shrink_and_momentum_match_the_cpu() {
    for (b, c) in SHAPES {
        for aliased in [false, true] {
            let mut g = Graph::default();
            let (q, p, f) = (
                view(&mut g, "q", b, c),
                view(&mut g, "p", b, c),
                view(&mut g, "f", b, c),
            );
            // The first iteration starts from y = f: the same buffer bound twice.
            let y = if aliased { f } else { view(&mut g, "y", b, c) };
            let step = view(&mut g, "step", 1, 4);
            let h = view(&mut g, "h", b, c);
            g.push(Op::Psd(PsdOp::Shrink {
                y,
                q,
                p,
                f,
                step,
                h,
                gamma: 0.7,
            }));
            let (hp, y2) = (view(&mut g, "h_prev", b, c), view(&mut g, "y_next", b, c));
            g.push(Op::Psd(PsdOp::Momentum {
                h,
                h_prev: hp,
                y: y2,
                beta: 0.6,
            }));
            // step = [1/L, λ/L] in (0, 0.5): thresholds that zero some entries and keep others.
            let range = |d: &BufferDesc| {
                if d.name == "step" {
                    (0.05, 0.5)
                } else {
                    (-1.0, 1.0)
                }
            };
            compare(&format!("shrink {b}x{c} aliased {aliased}"), g, range, TOL);
        }
    }
}

#[test]
fn terms_match_the_cpu() {
    for (b, c) in SHAPES {
        let mut g = Graph::default();
        let (h, f) = (view(&mut g, "h", b, c), view(&mut g, "f", b, c));
        let (rows, df) = (view(&mut g, "rows", 5, b), view(&mut g, "df", b, c));
        g.push(Op::Psd(PsdOp::Terms {
            h,
            f,
            rows,
            df,
            lambda: 0.3,
            gamma: 0.8,
        }));
        compare(&format!("terms {b}x{c}"), g, |_| (-1.0, 1.0), TOL);
    }
}

#[test]
fn lipschitz_and_renormalisation_match_the_cpu() {
    for (d, c) in [(1, 1), (7, 1), (1, 7), (33, 7), (7, 33), (20, 257)] {
        let mut g = Graph::default();
        let dict = view(&mut g, "dict", d, c);
        let gram = view(&mut g, "gram", c, c);
        g.push(Op::Matmul {
            a: dict,
            b: dict,
            c: gram,
            trans_a: true,
            trans_b: false,
            epilogue: hourglass::graph::Epilogue::Store,
            gradient: None,
            loss_scale: None,
        });
        let (scratch, step) = (view(&mut g, "scratch", 2, c), view(&mut g, "step", 1, 4));
        g.push(Op::Psd(PsdOp::Lipschitz {
            gram,
            scratch,
            step,
            lambda: 0.4,
            gamma: 0.2,
        }));
        let renorm = view(&mut g, "renorm", d, c);
        g.push(Op::Psd(PsdOp::Renormalize { d: renorm }));
        compare(&format!("lipschitz {d}x{c}"), g, |_| (-1.0, 1.0), 1e-5);
    }
}

fn synthetic(rows: usize, d: usize, seed: u64) -> Dataset {
    Dataset::new(rows, d, common::random(rows * d, -1.0, 1.0, seed)).unwrap()
}

#[test]
fn thirty_training_steps_agree_with_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    for (d, c, batch, rows) in [(33, 7, 8, 37), (16, 33, 1, 5), (20, 12, 16, 64)] {
        let spec = ModelSpec::psd(d, c, 0.3, 0.5, 10);
        let data = synthetic(rows, d, 4);
        let config = TrainConfig::new(batch, 1e-2);
        let mut cpu = Trainer::new(&spec, &config, &data, &Device::Cpu, None).unwrap();
        let mut gpu = Trainer::new(&spec, &config, &data, &Device::Gpu(ctx.clone()), None).unwrap();
        let lc = cpu.train_steps(30, true).unwrap().unwrap();
        let lg = gpu.train_steps(30, true).unwrap().unwrap();
        let (pc, pg) = (cpu.parameters().unwrap(), gpu.parameters().unwrap());
        for t in pc.layout.tensors() {
            let e = common::assert_close(
                &format!("{d}→{c} batch {batch}: {} after 30 steps", t.name),
                pg.tensor(t),
                pc.tensor(t),
                1e-5,
            );
            eprintln!(
                "{d}→{c} batch {batch}: {} max relative difference {e:.2e}",
                t.name
            );
        }
        for ((n, a), (_, b)) in lc.terms.iter().zip(&lg.terms) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1e-3),
                "{n}: cpu {a} gpu {b}"
            );
        }
        // The inferred codes of the last batch, read from the graph's code buffer.
        let code = cpu.graph().code;
        let hc = cpu.read(code).unwrap();
        let hg = gpu.read(code).unwrap();
        let e = common::assert_close(
            &format!("{d}→{c}: the step's inferred codes"),
            &hg,
            &hc,
            1e-5,
        );
        eprintln!(
            "{d}→{c} batch {batch}: codes max relative difference {e:.2e}; cpu {lc} gpu {lg}"
        );
    }
}

#[test]
fn converged_inference_agrees_with_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let (d, c) = (33, 20);
    let spec = ModelSpec::psd(d, c, 0.3, 0.5, 10);
    let data = synthetic(300, d, 9);
    let params = hourglass::Parameters::init(&spec, 3);
    let mut on_cpu = Autoencoder::new(spec.clone(), params.clone(), Device::Cpu).unwrap();
    let mut on_gpu = Autoencoder::new(spec, params, Device::Gpu(ctx)).unwrap();
    let a = on_cpu.infer(&data, 1000).unwrap();
    let b = on_gpu.infer(&data, 1000).unwrap();
    common::assert_close("inferred codes", &b.codes.values, &a.codes.values, 1e-5);
    let rel = (a.objective() - b.objective()).abs() / a.objective();
    eprintln!(
        "objective cpu {} gpu {} (rel {rel:.2e}); iterations cpu {:?} gpu {:?}",
        a.objective(),
        b.objective(),
        a.iterations,
        b.iterations
    );
    assert!(rel < 1e-6);
    let fast_c = on_cpu.encode(&data).unwrap();
    let fast_g = on_gpu.encode(&data).unwrap();
    common::assert_close("f(x)", &fast_g.values, &fast_c.values, 1e-6);
}

#[test]
fn a_streamed_data_set_trains_exactly_like_a_resident_one() {
    let Some(ctx) = common::gpu() else { return };
    let device = Device::Gpu(ctx);
    let spec = ModelSpec::psd(24, 9, 0.2, 0.5, 6);
    let data = synthetic(100, 24, 40);
    let resident = TrainConfig::new(8, 1e-2);
    // Room for three batches: windows of three steps.
    let streamed = TrainConfig {
        max_resident_bytes: Some(3 * 8 * 24 * 4 + 100),
        ..resident.clone()
    };
    let mut a = Trainer::new(&spec, &resident, &data, &device, None).unwrap();
    let mut b = Trainer::new(&spec, &streamed, &data, &device, None).unwrap();
    assert!(!a.is_streaming() && b.is_streaming());
    let la = a.train_steps(30, true).unwrap().unwrap();
    let lb = b.train_steps(30, true).unwrap().unwrap();
    assert_eq!(la, lb);
    assert_eq!(a.parameters().unwrap(), b.parameters().unwrap());
}
