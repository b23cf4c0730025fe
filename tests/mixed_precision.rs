//! Mixed precision: products with f16 operands and f32 accumulation under a dynamic loss scale.
//! The GPU runs the f32 kernels with operands rounded to f16 (lavapipe has no cooperative
//! matrices; shaders/matmul_coop.wgsl is checked by tests/shaders.rs); every result is compared
//! with the CPU twin, and whole runs with the f32 path.

mod common;

use common::{assert_close, compare_executors, gpu, random};
use hourglass::cpu::CpuExecutor;
use hourglass::data::{Dataset, embedded};
use hourglass::gpu::GpuExecutor;
use hourglass::graph::{
    Epilogue, Graph, LOSS_SCALE_BOUNDS, LOSS_SCALE_GROWTH_INTERVAL, Op, Operand, Precision,
    StepParams, TrainingGraph,
};
use hourglass::model::{Activation, Loss, ModelSpec};
use hourglass::train::{Device, NonFinitePolicy, TrainConfig, TrainState, Trainer};

/// One product `c = op(a)·op(b)` in mixed precision, the loss scale in its own buffer.
fn product(
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    gradient: Option<Operand>,
    epilogue: impl FnOnce(&mut Graph) -> Epilogue,
) -> Graph {
    let mut g = Graph::default();
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    let a = g.matrix("a", ar, ac);
    let b = g.matrix("b", br, bc);
    let c = g.matrix("c", m, n);
    let scale = g.matrix("loss_scale", 1, 4);
    let epilogue = epilogue(&mut g);
    g.push(Op::Matmul {
        a,
        b,
        c,
        trans_a,
        trans_b,
        epilogue,
        gradient,
        loss_scale: Some(scale),
    });
    g
}

const SHAPES: [(usize, usize, usize); 5] = [
    (1, 1, 1),
    (7, 33, 257),
    (33, 7, 65),
    (65, 129, 31),
    (257, 70, 9),
];

#[test]
fn mixed_products_match_the_cpu_twin_and_round_like_f16() {
    let mut worst = 0.0f64;
    let mut rounding_seen = 0.0f64;
    for (i, &mnk) in SHAPES.iter().enumerate() {
        for (t, trans) in [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            let gradient = [None, Some(Operand::A), Some(Operand::B)][(i + t) % 3];
            let g = product(mnk, trans, gradient, |g| Epilogue::BiasAct {
                bias: g.matrix("bias", 1, mnk.1),
                act: Activation::Tanh,
            });
            let what = format!("mixed {mnk:?} trans {trans:?} gradient {gradient:?}");
            // Gradient-sized values under the scale: without it most would flush to zero.
            let range = |d: &hourglass::graph::BufferDesc| match d.name.as_str() {
                "loss_scale" => (65_536.0, 65_536.0),
                "a" if gradient == Some(Operand::A) => (-1e-5, 1e-5),
                "b" if gradient == Some(Operand::B) => (-1e-5, 1e-5),
                _ => (-1.0, 1.0),
            };
            worst = worst.max(compare_executors(
                &what,
                g.clone(),
                0..1,
                range,
                &[],
                StepParams::default(),
                |_| 2e-5,
            ));
            // The twin differs from an f32 product by f16 rounding: the test is not vacuous.
            let mut mixed = CpuExecutor::<f32>::new(g.clone()).unwrap();
            let mut plain = g.clone();
            if let Op::Matmul { loss_scale, .. } = &mut plain.ops[0] {
                *loss_scale = None;
            }
            let mut plain = CpuExecutor::<f32>::new(plain).unwrap();
            for (id, d) in g.buffers.iter().enumerate() {
                let (lo, hi) = range(d);
                let v = random(d.len, lo, hi, 1000 + id as u64);
                mixed.write(id, &v).unwrap();
                plain.write(id, &v).unwrap();
            }
            mixed.run(0..1, &[StepParams::default()]).unwrap();
            plain.run(0..1, &[StepParams::default()]).unwrap();
            let (x, y) = (mixed.read(2).unwrap(), plain.read(2).unwrap());
            let size = y.iter().fold(0.0f64, |m, b| m.max(f64::from(b.abs())));
            let diff = x
                .iter()
                .zip(y)
                .fold(0.0f64, |m, (a, b)| m.max(f64::from((a - b).abs())))
                / size.max(1e-30);
            if mnk.2 > 1 {
                rounding_seen = rounding_seen.max(diff);
            }
            assert!(diff < 2e-2, "{what}: mixed vs f32 differ by {diff:.2e}");
        }
    }
    assert!(
        rounding_seen > 1e-5,
        "mixed products equal f32 ones ({rounding_seen:.2e}): operands are not rounded"
    );
    eprintln!(
        "mixed products: GPU vs CPU twin worst {worst:.2e}; mixed vs f32 up to {rounding_seen:.2e}"
    );
}

#[test]
fn every_epilogue_and_the_large_tile_agree_in_mixed_precision() {
    let epilogues: [(&str, fn(&mut Graph, usize, usize) -> Epilogue); 5] = [
        ("store", |_, _, _| Epilogue::Store),
        ("bias+relu", |g, _, n| Epilogue::BiasAct {
            bias: g.matrix("bias", 1, n),
            act: Activation::Relu,
        }),
        ("act'", |g, m, n| Epilogue::ActGrad {
            y: g.matrix("y", m, n),
            act: Activation::Sigmoid,
        }),
        ("accumulate", |_, _, _| Epilogue::Accumulate),
        ("accumulate+act'", |g, m, n| Epilogue::AccumulateActGrad {
            y: g.matrix("y", m, n),
            act: Activation::Tanh,
        }),
    ];
    for (name, e) in epilogues {
        let mnk = (33, 65, 70);
        let g = product(mnk, (true, false), Some(Operand::B), |g| e(g, mnk.0, mnk.1));
        compare_executors(
            &format!("mixed {name}"),
            g,
            0..1,
            |d| match d.name.as_str() {
                "loss_scale" => (1024.0, 1024.0),
                "y" => (0.05, 0.95),
                _ => (-1.0, 1.0),
            },
            &[],
            StepParams::default(),
            |_| 2e-5,
        );
    }
    // 2048 × 2048 outputs give the 128×128-tile kernel its 256 workgroups.
    let g = product((2048, 2048, 3), (false, true), Some(Operand::A), |_| {
        Epilogue::Store
    });
    compare_executors(
        "mixed, 128×128 tiles",
        g,
        0..1,
        |d| match d.name.as_str() {
            "loss_scale" => (8.0, 8.0),
            _ => (-1.0, 1.0),
        },
        &[],
        StepParams::default(),
        |_| 2e-5,
    );
}

/// Runs one product on both executors with `a` and `b` given, returning (GPU, CPU) results.
fn run_product(g: &Graph, a: &[f32], b: &[f32], scale: f32) -> (Vec<f32>, Vec<f32>) {
    let ctx = gpu().expect("a GPU adapter");
    let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
    let mut dev = GpuExecutor::new(ctx, g.clone()).expect("GPU executor");
    let s = [scale, 0.0, 0.0, 0.0];
    for (id, v) in [(0, a), (1, b), (3, &s[..])] {
        cpu.write(id, v).unwrap();
        dev.write(id, v).expect("a float write");
    }
    cpu.run(0..1, &[StepParams::default()]).unwrap();
    dev.run(0..1, &[StepParams::default()]).expect("GPU run");
    (
        dev.read_buffer(2).expect("read"),
        cpu.read(2).unwrap().to_vec(),
    )
}

#[test]
fn the_loss_scale_keeps_small_gradients_and_an_overflow_poisons_the_product() {
    let (m, n, k) = (9, 11, 40);
    let g = product((m, n, k), (false, false), Some(Operand::A), |_| {
        Epilogue::Store
    });
    // Gradients of 1e-8 are below f16's smallest subnormal (6e-8): unscaled they vanish.
    let a = random(m * k, 0.5e-8, 1.5e-8, 1);
    let b = random(k * n, 0.5, 1.5, 2);
    let exact: Vec<f32> = (0..m * n)
        .map(|i| (0..k).map(|j| a[i / n * k + j] * b[j * n + i % n]).sum())
        .collect();
    let (gpu1, cpu1) = run_product(&g, &a, &b, 1.0);
    assert!(
        gpu1.iter().chain(&cpu1).all(|&x| x.abs() < 1e-9),
        "without a scale, 1e-8 gradients should flush to zero in f16"
    );
    let (gpu_s, cpu_s) = run_product(&g, &a, &b, 65_536.0);
    assert_close("scaled gradient, GPU", &gpu_s, &exact, 2e-3);
    assert_close("scaled gradient, CPU", &cpu_s, &exact, 2e-3);

    // One element beyond f16's 65,504 after scaling poisons the product on both executors.
    let mut big = random(m * k, -1.0, 1.0, 3);
    big[5] = 2.0;
    let (gpu_o, cpu_o) = run_product(&g, &big, &b, 65_536.0);
    assert!(cpu_o.iter().all(|x| x.is_nan()), "CPU: overflow gives NaN");
    assert!(
        gpu_o[..n].iter().any(|x| x.is_nan()),
        "GPU: overflow gives NaN in the tile that read it"
    );
    // At scale 1 the same values fit: nothing is poisoned.
    let (gpu_1, cpu_1) = run_product(&g, &big, &b, 1.0);
    assert!(gpu_1.iter().chain(&cpu_1).all(|x| x.is_finite()));
}

/// The update ops on their own: Σ g², forward flag, health and state given, one LossScale.
fn loss_scale_case(norm_sq: f32, forward_finite: f32, state: [f32; 4], counters: [u32; 2]) {
    let mut g = Graph::default();
    let n = g.matrix("norm_sq", 1, 1);
    let f = g.matrix("forward_finite", 1, 1);
    let s = g.matrix("state", 1, 4);
    let health = g.u32_matrix("health", 1, 2);
    g.push(Op::LossScale {
        state: s,
        norm_sq: n,
        forward_finite: f,
        health,
    });
    let ctx = gpu().expect("a GPU adapter");
    let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
    let mut dev = GpuExecutor::new(ctx, g.clone()).expect("GPU executor");
    for (id, v) in [
        (0, vec![norm_sq]),
        (1, vec![forward_finite]),
        (2, state.to_vec()),
    ] {
        cpu.write(id, &v).unwrap();
        dev.write(id, &v).expect("a float write");
    }
    cpu.write_u32(health.buf, &counters).unwrap();
    dev.write_u32(health.buf, &counters)
        .expect("an index write");
    cpu.run(0..1, &[StepParams::default()]).unwrap();
    dev.run(0..1, &[StepParams::default()]).expect("GPU run");
    let got = dev.read_buffer(2).expect("read");
    assert_eq!(got, cpu.read(2).unwrap(), "state: GPU vs CPU");
    let gh = dev.read_u32(health).expect("read health");
    assert_eq!(gh, cpu.view_u32(health).unwrap(), "health: GPU vs CPU");
    let before = state[0];
    let interval = LOSS_SCALE_GROWTH_INTERVAL as f32;
    let at_floor = before <= LOSS_SCALE_BOUNDS.0;
    if norm_sq.is_finite() {
        let grows = state[1] + 1.0 >= interval;
        assert_eq!(got[0], if grows { before * 2.0 } else { before });
        assert_eq!(got[1], if grows { 0.0 } else { state[1] + 1.0 });
        assert_eq!(gh, counters);
    } else if forward_finite == 1.0 && !at_floor {
        assert_eq!(got[0], before / 2.0, "an overflow halves the scale");
        assert_eq!(got[2], state[2] + 1.0, "and is counted");
        assert_eq!(gh[0], counters[0] - 1, "and is not a fault");
    } else {
        assert_eq!(
            got[0], before,
            "a non-finite forward pass, or an overflow at the floor, leaves the scale"
        );
        assert_eq!(gh, counters, "and stays a fault");
    }
}

#[test]
fn the_loss_scale_update_matches_its_twin_in_every_case() {
    loss_scale_case(3.5, 1.0, [65_536.0, 5.0, 0.0, 0.0], [0, 0]);
    loss_scale_case(
        3.5,
        1.0,
        [65_536.0, LOSS_SCALE_GROWTH_INTERVAL as f32 - 1.0, 2.0, 0.0],
        [0, 0],
    );
    loss_scale_case(f32::INFINITY, 1.0, [65_536.0, 7.0, 2.0, 0.0], [1, 9]);
    loss_scale_case(f32::NAN, 1.0, [1024.0, 0.0, 0.0, 0.0], [3, 2]);
    loss_scale_case(f32::NAN, 0.0, [1024.0, 4.0, 0.0, 0.0], [1, 4]);
    let floor = LOSS_SCALE_BOUNDS.0;
    loss_scale_case(f32::INFINITY, 1.0, [floor, 3.0, 40.0, 0.0], [1, 6]);
}

fn small_spec() -> ModelSpec {
    let mut spec = ModelSpec::mirrored(&[33, 17, 7]);
    spec.activation = Activation::Tanh;
    spec.loss = Loss::Bce;
    spec.output_activation = Activation::Sigmoid;
    spec
}

fn mixed(batch: usize) -> TrainConfig {
    TrainConfig {
        seed: 5,
        precision: Precision::Mixed,
        emulate_mixed: true,
        ..TrainConfig::new(batch, 3e-3)
    }
}

#[test]
fn mixed_training_agrees_between_gpu_and_cpu() {
    let Some(ctx) = gpu() else { return };
    let spec = small_spec();
    let data = Dataset::new(70, 33, random(70 * 33, 0.0, 1.0, 3)).expect("data");
    let config = mixed(16);
    let mut cpu = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("cpu");
    let mut dev = Trainer::new(&spec, &config, &data, &Device::Gpu(ctx), None).expect("gpu");
    assert_eq!(cpu.precision(), Precision::Mixed);
    assert_eq!(dev.precision(), Precision::Mixed);
    let lc = cpu.train_steps(30, true).expect("cpu").expect("loss");
    let lg = dev.train_steps(30, true).expect("gpu").expect("loss");
    let (pc, pg) = (
        cpu.parameters().expect("cpu"),
        dev.parameters().expect("gpu"),
    );
    let worst = assert_close(
        "mixed parameters after 30 steps",
        &pg.arena,
        &pc.arena,
        1e-4,
    );
    assert!(((lc.total() - lg.total()) / lc.total()).abs() < 1e-4);
    assert_eq!(lc.loss_scale, lg.loss_scale, "the loss scales agree");
    eprintln!(
        "mixed, 30 steps: loss cpu {} gpu {}, worst parameter error {worst:.2e}, scale {:?}",
        lc.total(),
        lg.total(),
        lg.loss_scale
    );
}

#[test]
fn every_variant_trains_in_mixed_precision_on_both_executors() {
    use hourglass::model::{Noise, Variant};
    let Some(ctx) = gpu() else { return };
    let cases = [
        (
            Variant::Sparse {
                lambda: 0.05,
                target: None,
            },
            &[33, 9, 5][..],
            Activation::Relu,
        ),
        (
            Variant::Denoising {
                noise: Noise::Mask { nu: 0.3 },
            },
            &[33, 9, 5],
            Activation::Identity,
        ),
        (
            Variant::Contractive {
                lambda: 0.2,
                projections: None,
            },
            &[33, 9, 5],
            Activation::Sigmoid,
        ),
        (
            Variant::Contractive {
                lambda: 0.2,
                projections: None,
            },
            &[33, 7],
            Activation::Sigmoid,
        ),
        (
            Variant::Vae {
                beta: 1.0,
                samples: 2,
            },
            &[33, 9, 4],
            Activation::Identity,
        ),
    ];
    let data = Dataset::new(40, 33, random(40 * 33, 0.0, 1.0, 4)).expect("data");
    for (variant, encoder, code) in cases {
        let mut spec = ModelSpec::mirrored(encoder);
        spec.activation = Activation::Tanh;
        spec.code_activation = code;
        spec.variant = variant;
        let config = mixed(8);
        let mut cpu = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("cpu");
        let mut dev =
            Trainer::new(&spec, &config, &data, &Device::Gpu(ctx.clone()), None).expect("gpu");
        let lc = cpu.train_steps(15, true).expect("cpu").expect("loss");
        let lg = dev.train_steps(15, true).expect("gpu").expect("loss");
        let (pc, pg) = (
            cpu.parameters().expect("cpu"),
            dev.parameters().expect("gpu"),
        );
        let worst = assert_close(
            &format!("{variant:?} in mixed precision"),
            &pg.arena,
            &pc.arena,
            1e-4,
        );
        assert!(lc.total().is_finite() && ((lc.total() - lg.total()) / lc.total()).abs() < 1e-4);
        eprintln!("{variant:?}: worst parameter error {worst:.2e}");
    }
}

#[test]
fn mixed_precision_falls_back_to_f32_without_f16_matrix_units() {
    let data = Dataset::new(20, 33, random(20 * 33, 0.0, 1.0, 3)).expect("data");
    let config = TrainConfig {
        emulate_mixed: false,
        ..mixed(4)
    };
    let t = Trainer::new(&small_spec(), &config, &data, &Device::Cpu, None).expect("cpu");
    assert_eq!(t.precision(), Precision::F32);
    assert!(t.graph().loss_scale.is_none());
    if let Some(ctx) = gpu() {
        let t = Trainer::new(
            &small_spec(),
            &config,
            &data,
            &Device::Gpu(ctx.clone()),
            None,
        )
        .expect("gpu");
        let want = if ctx.has_f16_matrix_units() {
            Precision::Mixed
        } else {
            Precision::F32
        };
        assert_eq!(t.precision(), want);
    }
}

#[test]
fn an_overflowing_scale_backs_off_without_a_fault_and_a_resumed_run_is_exact() {
    let spec = small_spec();
    let data = Dataset::new(64, 33, random(64 * 33, 0.0, 1.0, 7)).expect("data");
    let config = TrainConfig {
        on_nonfinite: NonFinitePolicy::Stop,
        ..mixed(16)
    };
    let mut t = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    let mut state = t.state().expect("state");
    // 2²⁴ times these gradients overflows f16: the first steps must back off.
    state.loss_scale = Some(vec![16_777_216.0, 0.0, 0.0, 0.0]);
    t.restore(&state).expect("restore");
    let before = t.parameters().expect("params");
    let r = t
        .train_steps(20, true)
        .expect("overflows are not faults")
        .expect("loss");
    let (scale, overflows) = r.loss_scale.expect("a mixed run reports its scale");
    assert!(overflows >= 1, "no overflow at scale 2^24");
    assert!(
        scale < 16_777_216.0 && scale.log2().fract() == 0.0,
        "scale {scale}"
    );
    assert_eq!(
        r.skipped_steps, 0,
        "overflow steps are not counted as faults"
    );
    assert_ne!(t.parameters().expect("params").arena, before.arena);

    // Resuming from a saved state (loss scale included) continues exactly.
    let mid: TrainState = t.state().expect("state");
    t.train_steps(10, false).expect("on");
    let mut again = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    again.restore(&mid).expect("restore");
    again.train_steps(10, false).expect("on");
    assert_eq!(
        again.parameters().expect("p").arena,
        t.parameters().expect("p").arena
    );
    assert_eq!(
        again.state().expect("s").loss_scale,
        t.state().expect("s").loss_scale
    );
}

#[test]
fn a_nan_in_the_data_still_stops_a_mixed_run() {
    let spec = small_spec();
    let mut values = random(32 * 33, 0.0, 1.0, 8);
    values[33 * 5 + 3] = f32::NAN;
    let data = Dataset::new(32, 33, values).expect("data");
    let config = TrainConfig {
        shuffle: false,
        ..mixed(8)
    };
    let mut t = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect("trainer");
    let err = t
        .train_steps(8, true)
        .expect_err("a NaN row must stop the run");
    assert!(err.to_string().contains("step 1"), "{err}");
    let scale = t.state().expect("state").loss_scale.expect("mixed");
    assert_eq!(scale[0], TrainingGraph::initial_loss_scale()[0]);
}

#[test]
fn a_fashion_mnist_loss_curve_in_mixed_precision_is_within_one_percent_of_f32() {
    let all = embedded::fashion_mnist_test().expect("the bundled Fashion-MNIST test set");
    let rows = 4096;
    let data = Dataset::new(rows, all.cols, all.values[..rows * all.cols].to_vec()).expect("4096");
    let spec = ModelSpec::builder()
        .encoder([784, 256, 32])
        .loss(Loss::Bce)
        .build()
        .expect("spec");
    let base = TrainConfig {
        seed: 11,
        ..TrainConfig::new(128, 1e-3)
    };
    let curve = |config: &TrainConfig| -> Vec<f64> {
        let mut t = Trainer::new(&spec, config, &data, &Device::Cpu, None).expect("trainer");
        // The loss after the first step, then every 40 steps (10 epochs of 32 in all).
        (0..9)
            .map(|i| {
                let n = if i == 0 { 1 } else { 40 };
                t.train_steps(n, true)
                    .expect("steps")
                    .expect("loss")
                    .total()
            })
            .collect()
    };
    let f32_curve = curve(&base);
    let mixed_curve = curve(&TrainConfig {
        precision: Precision::Mixed,
        emulate_mixed: true,
        ..base.clone()
    });
    let worst = f32_curve
        .iter()
        .zip(&mixed_curve)
        .map(|(a, b)| ((a - b) / a).abs())
        .fold(0.0f64, f64::max);
    eprintln!("f32 {f32_curve:.3?}\nmixed {mixed_curve:.3?}\nworst relative gap {worst:.2e}");
    assert!(f32_curve[8] < 0.6 * f32_curve[0], "the model learns");
    assert!(worst < 0.01, "mixed departs from f32 by {worst:.3}");
}
