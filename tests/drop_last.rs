//! `drop_last: false`: each epoch ends with a step on its last, partial batch (PyTorch
//! `DataLoader(drop_last=False)`), run by a second step program inside the same training graph.
//! The tail step equals the CPU reference running a graph built for the tail's batch size, the
//! executors agree, resumes are exact, streaming handles the tail, and a batch larger than the
//! data set trains as one batch per epoch.

mod common;

use common::{assert_close, gpu, random};
use hourglass::cpu::CpuExecutor;
use hourglass::data::Dataset;
use hourglass::graph::build::build_training_graph_with_tail;
use hourglass::graph::{Precision, StepParams, build_training_graph_clipped};
use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
use hourglass::optim::OptimizerConfig;
use hourglass::rng::permutation;
use hourglass::train::{Device, FitOptions, Schedule, TrainConfig, TrainState, Trainer};

/// 70 rows at batch 16: four full batches and a tail of 6 an epoch.
const ROWS: usize = 70;
const BATCH: usize = 16;

fn data(cols: usize) -> Dataset {
    Dataset::new(ROWS, cols, random(ROWS * cols, 0.0, 1.0, 5)).expect("data")
}

/// A schedule and warm-up make every step's learning rate different: a tail step run with the
/// wrong step number cannot match.
fn config() -> TrainConfig {
    TrainConfig {
        seed: 11,
        drop_last: false,
        schedule: Schedule::Cosine { total: 40 },
        warmup: 3,
        ..TrainConfig::new(BATCH, 1e-2)
    }
}

/// Every variant, small: those that draw random numbers (noise, VAE samples, projections) and
/// those whose penalty depends on the batch size (sparse KL, contractive).
fn variants() -> Vec<(&'static str, ModelSpec)> {
    let spec = |encoder: &[usize], act: Activation, code: Activation, variant: Variant| {
        let mut s = ModelSpec::mirrored(encoder);
        s.activation = act;
        s.code_activation = code;
        s.variant = variant;
        s
    };
    let mut mse = spec(
        &[12, 7, 3],
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    mse.loss = Loss::Mse;
    mse.output_activation = Activation::Identity;
    let mut tied = spec(
        &[12, 7, 3],
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    tied.tied = true;
    vec![
        (
            "plain",
            spec(
                &[12, 7, 3],
                Activation::Relu,
                Activation::Identity,
                Variant::Plain,
            ),
        ),
        ("mse", mse),
        ("tied", tied),
        (
            "sparse L1",
            spec(
                &[12, 7, 3],
                Activation::Relu,
                Activation::Relu,
                Variant::Sparse {
                    lambda: 0.05,
                    target: None,
                },
            ),
        ),
        (
            "sparse KL",
            spec(
                &[12, 7, 3],
                Activation::Tanh,
                Activation::Sigmoid,
                Variant::Sparse {
                    lambda: 0.3,
                    target: Some(0.1),
                },
            ),
        ),
        (
            "denoising",
            spec(
                &[12, 7, 3],
                Activation::Relu,
                Activation::Identity,
                Variant::Denoising {
                    noise: Noise::Mask { nu: 0.3 },
                },
            ),
        ),
        (
            "contractive closed form",
            spec(
                &[12, 4],
                Activation::Relu,
                Activation::Sigmoid,
                Variant::Contractive {
                    lambda: 0.2,
                    projections: None,
                },
            ),
        ),
        (
            "contractive projections",
            spec(
                &[12, 7, 3],
                Activation::Sigmoid,
                Activation::Tanh,
                Variant::Contractive {
                    lambda: 0.2,
                    projections: Some(2),
                },
            ),
        ),
        (
            "vae",
            spec(
                &[12, 7, 3],
                Activation::Relu,
                Activation::Identity,
                Variant::Vae {
                    beta: 1.0,
                    samples: 2,
                },
            ),
        ),
    ]
}

/// What the reference gives for one step: parameters, optimizer state and the loss terms.
struct Reference {
    params: Vec<f32>,
    optimizer: Vec<Vec<f32>>,
    terms: Vec<(&'static str, f64)>,
}

/// The CPU reference running 0-based step `step` from `before` with a graph of its own built
/// for `rows` rows (no tail in it), on the epoch's order from `batch_start`: the step a trainer
/// should take on an epoch's partial batch, computed without the trainer.
#[allow(clippy::too_many_arguments)]
fn reference_step(
    spec: &ModelSpec,
    config: &TrainConfig,
    data: &Dataset,
    before: &TrainState,
    step: u64,
    epoch: u64,
    rows: usize,
    batch_start: usize,
) -> Reference {
    let tg = build_training_graph_clipped(
        spec,
        rows,
        data.rows,
        &config.optimizer,
        config.clip_grad_norm,
    );
    let mut exec = CpuExecutor::<f32>::new(tg.graph.clone()).unwrap();
    exec.write(tg.data.buf, &data.values).unwrap();
    exec.write_u32(
        tg.order.buf,
        &permutation(data.rows, config.seed, epoch as u32),
    )
    .unwrap();
    exec.write(tg.params.buf, &before.params.arena).unwrap();
    for (t, v) in tg.optimizer_state.iter().zip(&before.optimizer) {
        exec.write(t.buf, v).unwrap();
    }
    let t = step + 1;
    let (bias_correction1, bias_correction2) = config.optimizer.bias_corrections(t);
    let s = StepParams {
        step: t as u32,
        batch_start: batch_start as u32,
        lr: config.schedule.lr_at(config.optimizer.lr, config.warmup, t),
        bias_correction1,
        bias_correction2,
        seed_lo: config.seed as u32,
        seed_hi: (config.seed >> 32) as u32,
        ..StepParams::default()
    };
    exec.run(0..tg.graph.ops.len(), &[s]).unwrap();
    Reference {
        params: exec.view(tg.params).unwrap().to_vec(),
        optimizer: tg
            .optimizer_state
            .iter()
            .map(|&t| exec.view(t).unwrap().to_vec())
            .collect(),
        terms: tg
            .terms
            .iter()
            .map(|term| {
                let sum: f64 = exec
                    .view(term.values)
                    .unwrap()
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum();
                (term.name, term.scale * sum)
            })
            .collect(),
    }
}

#[test]
fn the_tail_step_equals_the_reference_running_a_graph_of_the_tail_batch() {
    for (name, spec) in variants() {
        let config = config();
        let data = data(spec.input_dim());
        let mut trainer = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
        assert_eq!(trainer.steps_per_epoch(), 5, "{name}: ⌈70 / 16⌉ steps");
        assert_eq!(
            (trainer.batch_rows(), trainer.tail_rows()),
            (BATCH, ROWS % BATCH)
        );
        assert_eq!(trainer.examples_in_steps(0..5), ROWS as u64);
        assert_eq!(trainer.examples_in_steps(3..12), 16 * 7 + 2 * 6);
        assert_eq!(trainer.examples_in_steps(5..9), 4 * 16);
        let tail = trainer.graph().tail.as_ref().expect("a tail step");
        assert_eq!(tail.rows, ROWS % BATCH, "{name}");
        assert_eq!(tail.batch.rows, ROWS % BATCH, "{name}");
        assert_eq!(trainer.graph().batch.rows, BATCH, "{name}");
        for epoch in 0..2u64 {
            // Up to just before the epoch's tail step, then the tail step with a report.
            let tail_step = epoch * 5 + 4;
            trainer
                .train_steps(tail_step - trainer.step(), false)
                .expect(name);
            let before = trainer.state().expect(name);
            let loss = trainer.train_steps(1, true).expect(name).expect("a report");
            let after = trainer.state().expect(name);
            assert_eq!(after.step, tail_step + 1);
            let want = reference_step(
                &spec,
                &config,
                &data,
                &before,
                tail_step,
                epoch,
                ROWS % BATCH,
                4 * BATCH,
            );
            assert!(
                after.params.arena == want.params,
                "{name}: epoch {epoch}'s tail step differs from the reference"
            );
            assert!(after.optimizer == want.optimizer, "{name}: optimizer state");
            // The loss of the tail step is averaged over its own 6 rows.
            assert_eq!(loss.terms, want.terms, "{name}: epoch {epoch}'s tail loss");
            assert_ne!(before.params, after.params, "{name}: the tail step trained");

            // The check has teeth: the same step on the epoch's first rows, or at a 16-row
            // batch size, gives other parameters.
            let wrong_rows = reference_step(
                &spec,
                &config,
                &data,
                &before,
                tail_step,
                epoch,
                ROWS % BATCH,
                0,
            );
            assert!(wrong_rows.params != want.params, "{name}: rows matter");
            let wrong_size =
                reference_step(&spec, &config, &data, &before, tail_step, epoch, BATCH, 54);
            assert!(
                wrong_size.params != want.params,
                "{name}: batch size matters"
            );
        }
    }
}

#[test]
fn full_steps_are_unchanged_and_whole_epochs_run_ceil_rows_over_batch_steps() {
    let spec = variants().remove(5).1; // denoising: the noise is keyed by the step
    let data = data(spec.input_dim());
    let dropping = TrainConfig {
        drop_last: true,
        ..config()
    };
    let mut a = Trainer::new(&spec, &dropping, &data, &Device::Cpu, None).expect("a");
    let mut b = Trainer::new(&spec, &config(), &data, &Device::Cpu, None).expect("b");
    assert_eq!((a.steps_per_epoch(), b.steps_per_epoch()), (4, 5));
    assert!(a.graph().tail.is_none());
    // The first epoch's four full steps are the same with and without the tail.
    a.train_steps(4, false).expect("a");
    b.train_steps(4, false).expect("b");
    assert_eq!(a.state().expect("a"), b.state().expect("b"));

    // `fit` counts epochs of five steps.
    let mut c = Trainer::new(&spec, &config(), &data, &Device::Cpu, None).expect("c");
    let summary = c.fit(&FitOptions::epochs(3), |_| {
        std::ops::ControlFlow::Continue(())
    });
    let summary = summary.expect("fit");
    assert_eq!(summary.epochs.len(), 3);
    assert_eq!(c.step(), 15);
    let mut d = Trainer::new(&spec, &config(), &data, &Device::Cpu, None).expect("d");
    d.train_steps(15, false).expect("d");
    assert_eq!(c.parameters().expect("c"), d.parameters().expect("d"));

    // A batch size that divides the rows has no tail: drop_last changes nothing.
    let even = |drop_last| TrainConfig {
        drop_last,
        ..TrainConfig::new(14, 1e-2)
    };
    let mut e = Trainer::new(&spec, &even(false), &data, &Device::Cpu, None).expect("e");
    let mut f = Trainer::new(&spec, &even(true), &data, &Device::Cpu, None).expect("f");
    assert!(e.graph().tail.is_none());
    assert_eq!(e.steps_per_epoch(), 5);
    e.train_steps(12, false).expect("e");
    f.train_steps(12, false).expect("f");
    assert_eq!(e.parameters().expect("e"), f.parameters().expect("f"));
}

#[test]
fn the_graph_keeps_the_main_step_first_and_in_place() {
    let opt = OptimizerConfig::adam(1e-3);
    for (name, spec) in variants() {
        let plain = build_training_graph_clipped(&spec, BATCH, ROWS, &opt, Some(1.0));
        let with = build_training_graph_with_tail(
            &spec,
            BATCH,
            Some(6),
            ROWS,
            &opt,
            Some(1.0),
            Precision::F32,
        );
        let (g, p) = (&with.graph, &plain.graph);
        g.validate().expect(name);
        // The main step and the update are where a graph without a tail has them, so
        // `0..update_start` (evaluation, Jacobian norms) still computes the main loss.
        assert_eq!(g.update_start, p.update_start, "{name}");
        assert_eq!(with.update, p.update_start..p.ops.len(), "{name}");
        assert_eq!(g.ops[..p.ops.len()], p.ops[..], "{name}");
        for (a, b) in g.buffers.iter().zip(&p.buffers) {
            assert_eq!(
                (&a.name, a.len, a.dtype),
                (&b.name, b.len, b.dtype),
                "{name}"
            );
        }
        assert_eq!(with.terms, plain.terms, "{name}");
        // The tail: after the update, to the end, on buffers of its own.
        let tail = with.tail.as_ref().expect("a tail");
        assert_eq!(tail.ops, p.ops.len()..g.ops.len(), "{name}");
        assert!(
            g.buffers[p.buffers.len()..]
                .iter()
                .all(|b| b.name.starts_with("tail."))
        );
        assert_eq!(tail.batch.rows, 6);
        assert_eq!(tail.terms[0].name, "reconstruction");
        let samples = match spec.variant {
            Variant::Vae { samples, .. } => samples as f64,
            _ => 1.0,
        };
        assert_eq!(tail.terms[0].scale, 1.0 / (6.0 * samples), "{name}");
        // It shares the data, order and parameters, and writes the shared gradient.
        let shared = [with.data.buf, with.order.buf, with.params.buf];
        let reads: Vec<usize> = g.ops[tail.ops.clone()]
            .iter()
            .flat_map(|op| op.inputs())
            .map(|t| t.buf)
            .collect();
        assert!(shared.iter().all(|b| reads.contains(b)), "{name}");
        assert!(
            g.ops[tail.ops.clone()]
                .iter()
                .flat_map(|op| op.outputs())
                .any(|t| t.buf == with.grads.buf),
            "{name}"
        );
        assert!(
            g.ops[tail.ops.clone()]
                .iter()
                .flat_map(|op| op.outputs())
                .all(|t| t.buf >= p.buffers.len() || t.buf == with.grads.buf),
            "{name}: the tail writes only its own buffers and the gradient"
        );
    }
}

#[test]
fn a_batch_larger_than_the_data_set_is_one_step_of_every_row_or_an_error() {
    let spec = variants().remove(0).1;
    let data = data(spec.input_dim());
    let big = TrainConfig {
        drop_last: true,
        ..TrainConfig::new(100, 1e-2)
    };
    let err = Trainer::new(&spec, &big, &data, &Device::Cpu, None)
        .err()
        .expect("an error with drop_last");
    let text = err.to_string();
    assert!(text.contains("larger than the data set"), "{text}");
    // The library names its own option; the CLI's message adds the flag (tests/cli_*).
    assert!(
        text.contains("drop_last leaves no whole batch") && !text.contains("--"),
        "{text}"
    );

    let all = TrainConfig::new(100, 1e-2);
    assert!(
        !all.drop_last,
        "the last partial batch trains by default, as in PyTorch"
    );
    let mut t = Trainer::new(&spec, &all, &data, &Device::Cpu, None).expect("trains");
    assert_eq!(t.steps_per_epoch(), 1);
    assert_eq!((t.batch_rows(), t.tail_rows()), (ROWS, 0));
    assert_eq!(t.examples_in_steps(0..3), 3 * ROWS as u64);
    assert_eq!(t.graph().batch.rows, ROWS);
    assert!(t.graph().tail.is_none());
    // The same as batches of exactly the 70 rows.
    let exact = TrainConfig {
        drop_last: true,
        ..TrainConfig::new(ROWS, 1e-2)
    };
    let mut u = Trainer::new(&spec, &exact, &data, &Device::Cpu, None).expect("exact");
    let lt = t.train_steps(3, true).expect("t").expect("loss");
    let lu = u.train_steps(3, true).expect("u").expect("loss");
    assert_eq!(lt, lu);
    assert_eq!(t.parameters().expect("t"), u.parameters().expect("u"));

    let empty = Dataset::new(0, spec.input_dim(), Vec::new());
    if let Ok(empty) = empty {
        assert!(Trainer::new(&spec, &all, &empty, &Device::Cpu, None).is_err());
    }
}

#[test]
fn resuming_across_tail_steps_is_bit_exact_on_cpu() {
    for (name, spec) in [variants().remove(5), variants().remove(8)] {
        let config = config();
        let data = data(spec.input_dim());
        let n = 13; // crosses the tails at steps 5 and 10
        let mut straight = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
        let want_loss = straight.train_steps(n, true).expect(name).expect("loss");
        let want = straight.state().expect(name);
        // Stopping before a tail step, right after one, and in the middle of an epoch.
        for a in [4, 5, 7, 9, 10] {
            let mut first = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
            first.train_steps(a, a % 2 == 0).expect(name);
            let state = first.state().expect(name);
            let mut second = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
            second.restore(&state).expect(name);
            let loss = second.train_steps(n - a, true).expect(name).expect("loss");
            assert_eq!(loss, want_loss, "{name}: resumed at {a}");
            assert!(
                second.state().expect(name) == want,
                "{name}: resumed at {a}"
            );
        }
        // Reports at tail steps: the loss of step 10 is the mean over its own six rows.
        let mut pieces = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
        pieces.train_steps(9, false).expect(name);
        let before = pieces.state().expect(name);
        let tail_loss = pieces.train_steps(1, true).expect(name).expect("loss");
        let want = reference_step(&spec, &config, &data, &before, 9, 1, 6, 64);
        assert_eq!(tail_loss.terms, want.terms, "{name}");
    }
}

#[test]
fn gpu_and_cpu_agree_over_three_epochs_with_a_tail() {
    let Some(ctx) = gpu() else { return };
    let picks = ["plain", "denoising", "contractive projections", "vae"];
    for (name, spec) in variants().into_iter().filter(|(n, _)| picks.contains(n)) {
        let config = config();
        let data = data(spec.input_dim());
        let mut cpu = Trainer::new(&spec, &config, &data, &Device::Cpu, None).expect(name);
        let mut dev =
            Trainer::new(&spec, &config, &data, &Device::Gpu(ctx.clone()), None).expect(name);
        assert_eq!(dev.steps_per_epoch(), 5);
        // 3 epochs, reading at a full step (13) and at a tail step (15).
        for steps in [13, 2] {
            let lc = cpu.train_steps(steps, true).expect(name).expect("loss");
            let lg = dev.train_steps(steps, true).expect(name).expect("loss");
            for ((n, c), (_, g)) in lc.terms.iter().zip(&lg.terms) {
                assert!(
                    ((c - g) / c).abs() < 1e-4,
                    "{name}: {n} after {} steps: cpu {c} gpu {g}",
                    cpu.step()
                );
            }
        }
        assert_eq!(dev.step(), 15);
        let pc = cpu.parameters().expect("cpu");
        let pg = dev.parameters().expect("gpu");
        for t in pc.layout.tensors() {
            assert_close(
                &format!("{name} after 3 epochs: {}", t.name),
                pg.tensor(t),
                pc.tensor(t),
                1e-4,
            );
        }
    }
}

#[test]
fn a_streamed_data_set_trains_its_tail_exactly_like_a_resident_one() {
    let Some(ctx) = gpu() else { return };
    let device = Device::Gpu(ctx);
    let spec = ModelSpec::mirrored(&[24, 7]);
    // 100 rows at batch 8: twelve full batches and a tail of four, thirteen steps an epoch.
    let data = Dataset::new(100, 24, random(100 * 24, 0.0, 1.0, 40)).expect("data");
    let resident = TrainConfig {
        seed: 9,
        drop_last: false,
        ..TrainConfig::new(8, 1e-2)
    };
    // Room for three batches: windows of three steps, the tail at the end of the fifth.
    let streamed = TrainConfig {
        max_resident_bytes: Some(3 * 8 * 24 * 4 + 100),
        ..resident.clone()
    };
    let mut a = Trainer::new(&spec, &resident, &data, &device, None).expect("resident");
    let mut b = Trainer::new(&spec, &streamed, &data, &device, None).expect("streamed");
    assert!(!a.is_streaming() && b.is_streaming());
    assert_eq!((a.steps_per_epoch(), b.steps_per_epoch()), (13, 13));
    for steps in [13, 17] {
        let la = a.train_steps(steps, true).expect("a").expect("loss");
        let lb = b.train_steps(steps, true).expect("b").expect("loss");
        assert_eq!(la, lb, "after {} steps", a.step());
    }
    assert_eq!(a.parameters().expect("a"), b.parameters().expect("b"));
}

#[cfg(feature = "cli")]
#[test]
fn the_cli_keeps_the_tail_by_default_and_refuses_drop_last_when_the_batch_is_too_large() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("hourglass-drop-last-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("x.npy");
    hourglass::data::npy::write_npy(&path, 30, 6, &random(180, 0.0, 1.0, 4)).expect("npy");
    let run = |extra: &[&str], out: &str| {
        let mut args = vec![
            "train",
            "--data",
            path.to_str().unwrap(),
            "--encoder",
            "6,3",
            "--device",
            "cpu",
            "--epochs",
            "2",
            "--out",
        ];
        let out = dir.join(out);
        args.push(out.to_str().unwrap());
        args.extend(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .args(&args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .expect("run hourglass");
        (o, out)
    };
    let (o, _) = run(&["--batch-size", "31", "--drop-last"], "big");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than the data set") && err.contains("leave it out"));

    // 30 rows at batch 8: four steps an epoch, eight in two epochs; three with --drop-last.
    let (o, out) = run(&["--batch-size", "8", "--drop-last", "true"], "dropped");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state, _) =
        hourglass::io::checkpoint::load_state(&out.join("train_state.safetensors")).expect("state");
    assert_eq!(state.step, 6);
    let (o, out) = run(&["--batch-size", "8"], "tail");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(config.contains("drop-last = false"), "{config}");
    let (_, state, _) =
        hourglass::io::checkpoint::load_state(&out.join("train_state.safetensors")).expect("state");
    assert_eq!(state.step, 8);

    // A batch larger than the data: one step an epoch.
    let (o, out) = run(&["--batch-size", "31"], "all");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state, _) =
        hourglass::io::checkpoint::load_state(&out.join("train_state.safetensors")).expect("state");
    assert_eq!(state.step, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
