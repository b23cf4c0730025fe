//! Data-parallel training without MPI: ranks as threads of one process
//! ([`hourglass::distributed::ThreadGroup`]) against one process at the same global batch. The
//! same checks under `mpirun` are in tests/distributed.rs (feature `mpi`).

mod common;
#[path = "common/compare.rs"]
mod compare;
use compare::{same_bits, worst_scaled};

use std::sync::Arc;

use hourglass::distributed::{Communicator, ThreadGroup};
use hourglass::model::{Noise, Variant};
use hourglass::{Activation, Dataset, Device, ModelSpec, TrainConfig, Trainer};

fn data(rows: usize, cols: usize) -> Dataset {
    let values = (0..rows * cols)
        .map(|i| ((i * 37 + 11) % 101) as f32 / 101.0)
        .collect();
    Dataset::new(rows, cols, values).unwrap()
}

fn spec(variant: Variant) -> ModelSpec {
    ModelSpec::builder()
        .encoder([7, 5, 3])
        .activation(Activation::Tanh)
        .variant(variant)
        .build()
        .unwrap()
}

fn variants() -> Vec<(&'static str, Variant)> {
    vec![
        ("plain", Variant::Plain),
        (
            "denoising",
            Variant::Denoising {
                noise: Noise::Gaussian { sigma: 0.3 },
            },
        ),
        (
            "vae",
            Variant::Vae {
                beta: 1.0,
                samples: 2,
            },
        ),
        (
            "contractive",
            Variant::Contractive {
                lambda: 0.1,
                projections: Some(2),
            },
        ),
        (
            "sparse-l1",
            Variant::Sparse {
                lambda: 0.01,
                target: None,
            },
        ),
    ]
}

/// 37 rows in global batches of 10: three full steps and a partial one of 7 an epoch.
const ROWS: usize = 37;
const STEPS: u64 = 9;

fn config() -> TrainConfig {
    TrainConfig {
        seed: 5,
        ..TrainConfig::new(10, 1e-2)
    }
}

fn one_process(spec: &ModelSpec) -> (Vec<f32>, f64) {
    one_process_on(spec, &config(), &Device::Cpu)
}

fn one_process_on(spec: &ModelSpec, config: &TrainConfig, device: &Device) -> (Vec<f32>, f64) {
    let mut t = Trainer::new(spec, config, &data(ROWS, 7), device, None).unwrap();
    let loss = t.train_steps(STEPS, true).unwrap().unwrap().total();
    (t.parameters().unwrap().arena, loss)
}

/// Every rank's parameters and last loss after [`STEPS`] steps on `ranks` threads.
fn threads(spec: &ModelSpec, ranks: usize) -> Vec<(Vec<f32>, f64)> {
    threads_on(spec, &config(), &Device::Cpu, ranks)
}

fn threads_on(
    spec: &ModelSpec,
    config: &TrainConfig,
    device: &Device,
    ranks: usize,
) -> Vec<(Vec<f32>, f64)> {
    let group = ThreadGroup::new(ranks);
    std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|c| {
                scope.spawn(move || {
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let mut t = Trainer::new_data_parallel(
                        spec,
                        config,
                        &data(ROWS, 7),
                        device,
                        None,
                        comm,
                    )
                    .unwrap();
                    assert_eq!(t.is_streaming(), config.max_resident_bytes.is_some());
                    // In two pieces: a split run is the same run.
                    t.train_steps(4, false).unwrap();
                    let loss = t.train_steps(STEPS - 4, true).unwrap().unwrap().total();
                    (t.parameters().unwrap().arena, loss)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// ‖a − b‖ / ‖b‖, and the worst element.
fn relative(a: &[f32], b: &[f32]) -> (f64, usize) {
    let (mut d, mut n, mut worst, mut at) = (0.0f64, 0.0f64, 0.0f64, 0);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let e = f64::from(x - y).abs();
        d += e * e;
        n += f64::from(y) * f64::from(y);
        if e > worst {
            (worst, at) = (e, i);
        }
    }
    ((d / n).sqrt(), at)
}

#[test]
fn two_and_three_ranks_train_as_one_process_at_the_same_global_batch() {
    for (name, variant) in variants() {
        let spec = spec(variant);
        let (single, single_loss) = one_process(&spec);
        for ranks in [1, 2, 3] {
            let runs = threads(&spec, ranks);
            for (rank, (p, _)) in runs.iter().enumerate() {
                // Bit-identical on every rank.
                assert!(
                    p.iter()
                        .zip(&runs[0].0)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: rank {rank} of {ranks} holds different parameters"
                );
            }
            let (rel, at) = relative(&runs[0].0, &single);
            println!("{name}, {ranks} ranks: relative difference {rel:.3e} (worst at {at})");
            if ranks == 1 {
                assert_eq!(
                    runs[0].0, single,
                    "{name}: one rank is not the one-process run"
                );
            }
            assert!(
                rel <= 1e-6,
                "{name}, {ranks} ranks: parameters differ from one process by {rel:.3e} \
                 relative, worst at {at}: {} vs {}",
                runs[0].0[at],
                single[at]
            );
            let loss_rel = (runs[0].1 - single_loss).abs() / single_loss.abs();
            assert!(
                loss_rel <= 1e-6,
                "{name}, {ranks} ranks: loss {} vs {single_loss}",
                runs[0].1
            );
            // The same number of ranks again: the same bits.
            let again = threads(&spec, ranks);
            assert!(
                again[0]
                    .0
                    .iter()
                    .zip(&runs[0].0)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}, {ranks} ranks: a repeat differs"
            );
        }
    }
}

#[test]
fn ranks_streaming_their_shares_on_the_gpu_equal_one_process() {
    let device = Device::Gpu(common::gpu().expect("a GPU adapter"));
    // Room for about 2 batches of 10 rows: the data (37 × 7 floats) is streamed, a window of a
    // rank's shares at a time.
    let config = TrainConfig {
        max_resident_bytes: Some(2 * 10 * 7 * 4 + 16),
        ..config()
    };
    for (name, variant) in variants().into_iter().take(3) {
        let spec = spec(variant);
        let (single, _) = one_process_on(&spec, &config, &device);
        for ranks in [2, 3] {
            let runs = threads_on(&spec, &config, &device, ranks);
            let (rel, at) = relative(&runs[0].0, &single);
            println!("GPU streaming {name}, {ranks} ranks: relative difference {rel:.3e}");
            assert!(
                rel <= 1e-6,
                "{name}, {ranks} ranks: {rel:.3e} (worst at {at})"
            );
            for (rank, (p, _)) in runs.iter().enumerate() {
                assert_eq!(p, &runs[0].0, "{name}: rank {rank} of {ranks} differs");
            }
        }
    }
}

#[test]
fn ranks_without_rows_of_the_partial_batch_still_agree() {
    // 37 rows in batches of 18: a partial batch of 1 row, which 2 of 3 ranks have no share of,
    // every third step; the last of the 9 steps (whose loss is read) is one.
    let config = TrainConfig {
        batch_size: 18,
        ..config()
    };
    for (name, variant) in variants() {
        let spec = spec(variant);
        let (single, loss) = one_process_on(&spec, &config, &Device::Cpu);
        let runs = threads_on(&spec, &config, &Device::Cpu, 3);
        let (rel, at) = relative(&runs[0].0, &single);
        assert!(rel <= 1e-6, "{name}: {rel:.3e} (worst at {at})");
        assert!(
            (runs[0].1 - loss).abs() <= 1e-6 * loss.abs(),
            "{name}: loss {} vs {loss}",
            runs[0].1
        );
        for (rank, (p, _)) in runs.iter().enumerate() {
            assert_eq!(p, &runs[0].0, "{name}: rank {rank} differs");
        }
    }
}

#[test]
fn refuses_what_cannot_be_shared() {
    let group = ThreadGroup::new(3);
    let sparse_kl = ModelSpec::builder()
        .encoder([7, 5, 3])
        .code_activation(Activation::Sigmoid)
        .variant(Variant::Sparse {
            lambda: 0.1,
            target: Some(0.05),
        })
        .build()
        .unwrap();
    let mut small = config();
    small.batch_size = 2;
    std::thread::scope(|scope| {
        for c in group {
            let (sparse_kl, small) = (&sparse_kl, &small);
            scope.spawn(move || {
                let comm: Arc<dyn Communicator> = Arc::new(c);
                let d = data(ROWS, 7);
                let e = Trainer::new_data_parallel(
                    &spec(Variant::Plain),
                    small,
                    &d,
                    &Device::Cpu,
                    None,
                    comm.clone(),
                )
                .err()
                .expect("a batch of 2 over 3 ranks is refused");
                assert!(e.to_string().contains("give a batch size"), "{e}");
                let e =
                    Trainer::new_data_parallel(sparse_kl, &config(), &d, &Device::Cpu, None, comm)
                        .err()
                        .expect("KL sparsity is refused");
                assert!(e.to_string().contains("sparsity"), "{e}");
            });
        }
    });
}

/// Gradient accumulation: 41 rows, steps of 3 micro-batches of 4 (12 rows), so each epoch has
/// three full steps and a partial one of 5 rows (a micro-batch of 4 and one of 1).
const ACC_ROWS: usize = 41;

fn accumulating(k: usize, batch: usize) -> TrainConfig {
    TrainConfig {
        accumulate: k,
        batch_size: batch,
        ..config()
    }
}

/// Parameters and last loss after [`STEPS`] steps of `config` on `ranks` threads (0: a plain
/// [`Trainer::new`]), the run split in two calls and, when `resume` is set, restored from a
/// saved state into a new trainer between them (mid-epoch: 5 of 4 steps an epoch).
fn run_acc(
    spec: &ModelSpec,
    config: &TrainConfig,
    device: &Device,
    ranks: usize,
    resume: bool,
) -> Vec<(Vec<f32>, f64)> {
    let d = data(ACC_ROWS, 7);
    let make = |comm: Option<Arc<dyn Communicator>>| match comm {
        Some(c) => Trainer::new_data_parallel(spec, config, &d, device, None, c).unwrap(),
        None => Trainer::new(spec, config, &d, device, None).unwrap(),
    };
    let go = |comm: Option<Arc<dyn Communicator>>| {
        let mut t = make(comm.clone());
        t.train_steps(5, false).unwrap();
        if resume {
            let state = t.state().unwrap();
            t = make(comm);
            t.restore(&state).unwrap();
        }
        let loss = t.train_steps(STEPS - 5, true).unwrap().unwrap().total();
        (t.parameters().unwrap().arena, loss)
    };
    if ranks == 0 {
        return vec![go(None)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|c| {
                let go = &go;
                scope.spawn(move || go(Some(Arc::new(c) as Arc<dyn Communicator>)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn assert_close(name: &str, got: &[(Vec<f32>, f64)], want: &(Vec<f32>, f64)) {
    for (rank, (p, _)) in got.iter().enumerate() {
        assert!(
            p.iter()
                .zip(&got[0].0)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: rank {rank} holds different parameters"
        );
    }
    let (rel, at) = relative(&got[0].0, &want.0);
    let loss_rel = (got[0].1 - want.1).abs() / want.1.abs();
    println!("{name}: relative difference {rel:.3e} (worst at {at}), loss {loss_rel:.3e}");
    assert!(
        rel <= 1e-6,
        "{name}: parameters differ by {rel:.3e} relative, worst at {at}: {} vs {}",
        got[0].0[at],
        want.0[at]
    );
    assert!(loss_rel <= 1e-6, "{name}: loss {} vs {}", got[0].1, want.1);
}

#[test]
fn accumulating_three_micro_batches_equals_one_step_at_three_times_the_batch() {
    let d = data(ACC_ROWS, 7);
    for (name, variant) in variants() {
        let spec = spec(variant);
        let whole = run_acc(&spec, &accumulating(1, 12), &Device::Cpu, 0, false).remove(0);
        let t = Trainer::new(&spec, &accumulating(3, 4), &d, &Device::Cpu, None).unwrap();
        assert_eq!(
            (t.steps_per_epoch(), t.batch_rows(), t.tail_rows()),
            (4, 12, 5)
        );
        // One process, then 2 and 3 ranks (3 ranks: the micro-batch of 1 row has one owner).
        for ranks in [0, 2, 3] {
            let acc = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, ranks, false);
            assert_close(
                &format!("{name}, accumulate 3, {ranks} ranks"),
                &acc,
                &whole,
            );
            let again = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, ranks, false);
            assert!(
                again[0]
                    .0
                    .iter()
                    .zip(&acc[0].0)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}, {ranks} ranks: a repeat differs"
            );
        }
        // Differs from not accumulating (the test can fail): a step of 4 rows is another run.
        let small = run_acc(&spec, &accumulating(1, 4), &Device::Cpu, 0, false).remove(0);
        assert!(relative(&small.0, &whole.0).0 > 1e-4, "{name}");
    }
}

#[test]
fn accumulating_runs_resume_mid_epoch_bit_for_bit() {
    for (name, variant) in variants().into_iter().take(3) {
        let spec = spec(variant);
        for ranks in [0, 2] {
            let straight = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, ranks, false);
            let resumed = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, ranks, true);
            assert_eq!(
                straight[0].0, resumed[0].0,
                "{name}, {ranks} ranks: resuming at step 5 changed the run"
            );
        }
    }
}

#[test]
fn accumulating_on_the_gpu_equals_one_step_at_three_times_the_batch() {
    let device = Device::Gpu(common::gpu().expect("a GPU adapter"));
    for (name, variant) in variants().into_iter().take(3) {
        let spec = spec(variant);
        let whole = run_acc(&spec, &accumulating(1, 12), &device, 0, false).remove(0);
        for ranks in [0, 2] {
            let acc = run_acc(&spec, &accumulating(3, 4), &device, ranks, false);
            assert_close(
                &format!("GPU {name}, accumulate 3, {ranks} ranks"),
                &acc,
                &whole,
            );
        }
        // Streamed: windows of 4 shares of 2 rows (a step's 3 micro-batches in one
        // submission), of 2 (2 ranks: submissions of 2 and 1 micro-batches; one process: a
        // micro-batch of 4 rows at a time).
        for (ranks, resident) in [(2, 2 * 4 * 7 * 4 + 16), (2, 2 * 2 * 7 * 4 + 16), (0, 128)] {
            let streamed = TrainConfig {
                max_resident_bytes: Some(resident),
                ..accumulating(3, 4)
            };
            let acc = run_acc(&spec, &streamed, &device, ranks, false);
            assert_close(
                &format!("GPU streaming {name}, accumulate 3, {ranks} ranks, {resident} bytes"),
                &acc,
                &whole,
            );
        }
    }
}

/// The gradient sum on the device (`Op::GradAccumulate`): lavapipe's run equals the CPU's up
/// to float order (the products sum in other orders), and a repeat gives the same bits.
#[test]
fn accumulating_on_the_gpu_equals_the_cpu_and_repeats_bit_for_bit() {
    let device = Device::Gpu(common::gpu().expect("a GPU adapter"));
    for (name, variant) in variants().into_iter().take(3) {
        let spec = spec(variant);
        for ranks in [0, 2] {
            let what = format!("{name}, accumulate 3, {ranks} ranks");
            let cpu = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, ranks, false);
            let gpu = run_acc(&spec, &accumulating(3, 4), &device, ranks, false);
            let (e, at) = worst_scaled(&gpu[0].0, &cpu[0].0, 1e-6, 1e-5);
            println!("{what}: GPU vs CPU worst {e:.3} at {at}");
            assert!(
                e <= 1.0,
                "{what}: GPU {} vs CPU {} at {at}",
                gpu[0].0[at],
                cpu[0].0[at]
            );
            let again = run_acc(&spec, &accumulating(3, 4), &device, ranks, false);
            for (rank, (p, _)) in again.iter().enumerate() {
                assert!(
                    same_bits(p, &gpu[rank].0),
                    "{what}: rank {rank}'s repeat differs"
                );
            }
        }
    }
}

/// Submissions and gradient read-backs of an accumulating run, and which graphs carry the
/// accumulation op.
#[test]
fn accumulating_submits_once_a_step_and_reads_back_only_for_the_reduction() {
    let d = data(ACC_ROWS, 7);
    let spec = spec(Variant::Plain);
    let count = |t: &Trainer| {
        t.graph()
            .graph
            .ops
            .iter()
            .filter(|op| matches!(op, hourglass::graph::Op::GradAccumulate { .. }))
            .count()
    };
    // Without accumulation in one process: no accumulation op, no split step.
    let plain = Trainer::new(&spec, &accumulating(1, 4), &d, &Device::Cpu, None).unwrap();
    assert_eq!(count(&plain), 0);
    assert!(plain.parallel_stats().is_none());
    // One process: eight steps are two epochs of three full steps (three micro-batches each)
    // and a partial one (a micro-batch of 4 rows and one of 1), each one submission, the
    // update included, and nothing read back.
    let mut t = Trainer::new(&spec, &accumulating(3, 4), &d, &Device::Cpu, None).unwrap();
    assert_eq!(count(&t), 2, "the main and the tail step programs");
    t.train_steps(8, false).unwrap();
    let s = t.parallel_stats().unwrap();
    assert_eq!(
        (s.steps, s.micro_batches, s.submissions, s.gradient_reads),
        (8, 22, 8, 0)
    );
    // A reported step reads each micro-batch's loss terms: a submission a micro-batch.
    t.train_steps(1, true).unwrap();
    let s = t.parallel_stats().unwrap();
    assert_eq!((s.steps, s.submissions, s.gradient_reads), (9, 11, 0));
    // Two ranks: the micro-steps and the read-back of their sum, then the update: two
    // submissions and one read-back a step (rank 1 has no row of the 1-row micro-batch).
    let stats: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|c| {
                let (spec, d) = (&spec, &d);
                scope.spawn(move || {
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let config = accumulating(3, 4);
                    let mut t =
                        Trainer::new_data_parallel(spec, &config, d, &Device::Cpu, None, comm)
                            .unwrap();
                    t.train_steps(8, false).unwrap();
                    t.parallel_stats().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, s) in stats.iter().enumerate() {
        assert_eq!(
            (s.steps, s.submissions, s.gradient_reads),
            (8, 16, 8),
            "rank {rank}"
        );
    }
}

/// More micro-steps than one submission's ring of 64 holds: 70 micro-batches of one row a
/// step, in two submissions (64, then 6 and the update), equal one step of 70 rows.
#[test]
fn accumulating_more_micro_batches_than_a_submission_holds_equals_the_whole_batch() {
    // 150 rows: two steps of 70 and a partial one of 10 an epoch.
    let d = data(150, 7);
    let spec = spec(Variant::Plain);
    let run = |config: &TrainConfig| {
        let mut t = Trainer::new(&spec, config, &d, &Device::Cpu, None).unwrap();
        t.train_steps(3, false).unwrap();
        let stats = t.parallel_stats();
        (t.parameters().unwrap().arena, stats)
    };
    let (whole, none) = run(&accumulating(1, 70));
    assert!(none.is_none());
    let (acc, stats) = run(&accumulating(70, 1));
    let s = stats.unwrap();
    assert_eq!((s.steps, s.micro_batches, s.submissions), (3, 150, 5));
    let (rel, at) = relative(&acc, &whole);
    println!("accumulate 70 x 1 vs batch 70: relative difference {rel:.3e} (worst at {at})");
    assert!(
        rel <= 1e-6,
        "{rel:.3e} at {at}: {} vs {}",
        acc[at],
        whole[at]
    );
}

#[test]
fn refuses_what_cannot_be_accumulated() {
    let d = data(ACC_ROWS, 7);
    let plain = spec(Variant::Plain);
    let refused = |spec: &ModelSpec, config: &TrainConfig| {
        Trainer::new(spec, config, &d, &Device::Cpu, None)
            .err()
            .expect("refused")
            .to_string()
    };
    let e = refused(&plain, &accumulating(0, 4));
    assert!(e.contains("accumulation count must be at least 1"), "{e}");
    let e = refused(&plain, &accumulating(11, 4));
    assert!(e.contains("44 rows, more than the data set's 41"), "{e}");
    let e = refused(
        &plain,
        &TrainConfig {
            precision: hourglass::graph::Precision::Mixed,
            emulate_mixed: true,
            ..accumulating(2, 4)
        },
    );
    assert!(e.contains("with gradient accumulation"), "{e}");
    let sparse_kl = ModelSpec::builder()
        .encoder([7, 5, 3])
        .code_activation(Activation::Sigmoid)
        .variant(Variant::Sparse {
            lambda: 0.1,
            target: Some(0.05),
        })
        .build()
        .unwrap();
    let e = refused(&sparse_kl, &accumulating(2, 4));
    assert!(e.contains("with gradient accumulation"), "{e}");
    assert!(!e.contains("--"), "library messages name no flag: {e}");
    // Accumulating 1 is not accumulating: the KL penalty trains.
    Trainer::new(&sparse_kl, &accumulating(1, 4), &d, &Device::Cpu, None).unwrap();
}

/// Every rank's parameters and bytes reduced per step after [`STEPS`] steps of `config` on
/// `ranks` threads.
fn reduced(spec: &ModelSpec, config: &TrainConfig, ranks: usize) -> Vec<(Vec<f32>, u64)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|c| {
                scope.spawn(move || {
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let d = data(ROWS, 7);
                    let mut t =
                        Trainer::new_data_parallel(spec, config, &d, &Device::Cpu, None, comm)
                            .unwrap();
                    t.train_steps(STEPS, false).unwrap();
                    let bytes = t.parallel_stats().unwrap().bytes_per_step;
                    (t.parameters().unwrap().arena, bytes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// f16 reduction against f32 reduction at the same number of ranks after [`STEPS`] steps of
/// Adam at lr 1e-2: within `ATOL + RTOL·|f32 run's value|` on every parameter. An f16 share
/// is off by up to 2⁻¹¹ relative, which moves Adam's normalised step by about as much: 9 steps
/// of 1e-2 × 2⁻¹⁰ (share and sum) ≈ 9e-5 at most. Measured: 2e-5–3e-5 on the worst element
/// (0.17–0.29 of this bound), 1.6e-5–2e-5 relative in norm.
const F16_ATOL: f64 = 1e-4;
const F16_RTOL: f64 = 1e-3;

#[test]
fn reducing_in_f16_halves_the_bytes_stays_close_to_f32_and_repeats_bit_for_bit() {
    use hourglass::train::ReducePrecision;
    let f16 = TrainConfig {
        reduce_precision: ReducePrecision::F16,
        ..config()
    };
    for (name, variant) in variants() {
        let spec = spec(variant);
        for ranks in [2, 3] {
            let want = reduced(&spec, &config(), ranks);
            let got = reduced(&spec, &f16, ranks);
            for (rank, (p, _)) in got.iter().enumerate() {
                assert!(
                    same_bits(p, &got[0].0),
                    "{name}, {ranks} ranks, f16: rank {rank} holds different parameters"
                );
            }
            let params = want[0].0.len() as u64;
            assert_eq!(want[0].1, 4 * params, "{name}: f32 bytes per step");
            assert_eq!(
                got[0].1,
                2 * params,
                "{name}: f16 halves the bytes per step"
            );
            let (p, q) = (&got[0].0, &want[0].0);
            let (scaled, at) = worst_scaled(p, q, F16_ATOL, F16_RTOL);
            let (rel, _) = relative(p, q);
            println!(
                "{name}, {ranks} ranks: f16 vs f32 reduction: relative {rel:.3e}, worst at \
                 {at}: {} vs {} ({scaled:.3} of {F16_ATOL:e} + {F16_RTOL:e}·|ref|)",
                p[at], q[at]
            );
            assert!(
                scaled <= 1.0,
                "{name}, {ranks} ranks: f16 reduction differs from f32 at {at}: {} vs {} \
                 (|d| is {scaled:.3} × ({F16_ATOL:e} + {F16_RTOL:e}·|ref|))",
                p[at],
                q[at]
            );
            // The test can fail: rounding to f16 changes the run.
            assert!(
                !same_bits(p, q),
                "{name}, {ranks} ranks: f16 changed nothing"
            );
            // The same number of ranks again: the same bits.
            let again = reduced(&spec, &f16, ranks);
            assert!(
                same_bits(&again[0].0, p),
                "{name}, {ranks} ranks: an f16 repeat differs"
            );
        }
    }
    // One rank has nothing to reduce: f16 is the f32 run, bit for bit, with f32's bytes.
    let spec = spec(Variant::Plain);
    let (one_f32, one_f16) = (reduced(&spec, &config(), 1), reduced(&spec, &f16, 1));
    assert!(same_bits(&one_f16[0].0, &one_f32[0].0), "one rank, f16");
    assert_eq!(one_f16[0].1, one_f32[0].1);
}

#[test]
fn reducing_in_f16_with_accumulation_repeats_bit_for_bit() {
    use hourglass::train::ReducePrecision;
    let spec = spec(Variant::Plain);
    let f16 = TrainConfig {
        reduce_precision: ReducePrecision::F16,
        ..accumulating(3, 4)
    };
    let want = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, 2, false);
    let got = run_acc(&spec, &f16, &Device::Cpu, 2, false);
    let (scaled, at) = worst_scaled(&got[0].0, &want[0].0, F16_ATOL, F16_RTOL);
    println!("accumulate 3, 2 ranks: f16 vs f32 reduction, worst {scaled:.3} at {at}");
    assert!(scaled <= 1.0, "{scaled:.3} at {at}");
    assert!(!same_bits(&got[0].0, &want[0].0));
    let again = run_acc(&spec, &f16, &Device::Cpu, 2, false);
    assert!(same_bits(&again[0].0, &got[0].0));
    // One process, accumulating: nothing reduced, f16 changes nothing.
    let one = run_acc(&spec, &accumulating(3, 4), &Device::Cpu, 0, false);
    let one_f16 = run_acc(&spec, &f16, &Device::Cpu, 0, false);
    assert!(same_bits(&one[0].0, &one_f16[0].0));
}

/// Every rank's parameters and statistics after [`STEPS`] steps of `config` over `rows` rows
/// on `ranks` threads, in two calls.
fn bucketed_run(
    spec: &ModelSpec,
    config: &TrainConfig,
    rows: usize,
    ranks: usize,
) -> Vec<(Vec<f32>, hourglass::train::ParallelStats)> {
    bucketed_run_on(spec, config, rows, ranks, &Device::Cpu)
}

/// [`bucketed_run`] on `device`.
fn bucketed_run_on(
    spec: &ModelSpec,
    config: &TrainConfig,
    rows: usize,
    ranks: usize,
    device: &Device,
) -> Vec<(Vec<f32>, hourglass::train::ParallelStats)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::new(ranks)
            .into_iter()
            .map(|c| {
                scope.spawn(move || {
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let d = data(rows, 7);
                    let mut t =
                        Trainer::new_data_parallel(spec, config, &d, device, None, comm).unwrap();
                    t.train_steps(4, false).unwrap();
                    t.train_steps(STEPS - 4, true).unwrap();
                    (t.parameters().unwrap().arena, t.parallel_stats().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn reducing_in_buckets_during_the_backward_pass_is_the_one_sum_bit_for_bit() {
    use hourglass::train::ReducePrecision;
    let one_sum = |c: TrainConfig| TrainConfig {
        bucket_bytes: None,
        ..c
    };
    // Batches of 10 (a partial one of 7), of 18 (a partial one of 1 row, which 2 of 3 ranks
    // have no share of), 3 micro-batches of 4 (the last partial one of 2 rows: a rank without
    // rows of it), each reduced in f32 and f16.
    let setups: Vec<(&str, TrainConfig, usize)> = vec![
        ("batch 10", config(), ROWS),
        (
            "batch 18",
            TrainConfig {
                batch_size: 18,
                ..config()
            },
            ROWS,
        ),
        ("accumulate 3", accumulating(3, 4), ACC_ROWS),
    ];
    for (name, variant) in variants() {
        let spec = spec(variant);
        for (setup, base, rows) in &setups {
            for precision in [ReducePrecision::F32, ReducePrecision::F16] {
                let base = TrainConfig {
                    reduce_precision: precision,
                    ..base.clone()
                };
                for ranks in [2, 3] {
                    let what = format!("{name}, {setup}, {}, {ranks} ranks", precision.name());
                    let want = bucketed_run(&spec, &one_sum(base.clone()), *rows, ranks);
                    assert_eq!(want[0].1.buckets, 1, "{what}: one sum");
                    // Every op's gradient a bucket of its own, and buckets of a few ops.
                    for bytes in [0, 64] {
                        let config = TrainConfig {
                            bucket_bytes: Some(bytes),
                            ..base.clone()
                        };
                        let got = bucketed_run(&spec, &config, *rows, ranks);
                        for (rank, (p, stats)) in got.iter().enumerate() {
                            assert!(stats.buckets > 1, "{what}: {} buckets", stats.buckets);
                            assert_eq!(stats.bytes_per_step, want[rank].1.bytes_per_step);
                            assert!(
                                same_bits(p, &want[rank].0),
                                "{what}, buckets of {bytes} bytes: rank {rank} differs from \
                                 the one sum"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The GPU's bucketed reduction (each segment and its bucket's copy one submission, the bucket
/// mapped once the next segment is submitted) against its one sum, on fewer cases than the
/// CPU's test (lavapipe is slow): two variants, 2 ranks, batch 10 (a partial one of 7) and
/// 3 micro-batches of 4, f32 and f16.
#[test]
fn reducing_in_buckets_on_the_gpu_is_the_one_sum_bit_for_bit() {
    use hourglass::train::ReducePrecision;
    let device = Device::Gpu(common::gpu().expect("a GPU adapter"));
    let setups: Vec<(&str, TrainConfig, usize)> = vec![
        ("batch 10", config(), ROWS),
        ("accumulate 3", accumulating(3, 4), ACC_ROWS),
    ];
    let chosen = variants()
        .into_iter()
        .filter(|(name, _)| ["plain", "vae"].contains(name));
    for (name, variant) in chosen {
        let spec = spec(variant);
        for (setup, base, rows) in &setups {
            for precision in [ReducePrecision::F32, ReducePrecision::F16] {
                let base = TrainConfig {
                    reduce_precision: precision,
                    ..base.clone()
                };
                let what = format!("gpu, {name}, {setup}, {}", precision.name());
                let one_sum = TrainConfig {
                    bucket_bytes: None,
                    ..base.clone()
                };
                let want = bucketed_run_on(&spec, &one_sum, *rows, 2, &device);
                assert_eq!(want[0].1.buckets, 1, "{what}: one sum");
                let config = TrainConfig {
                    bucket_bytes: Some(0),
                    ..base
                };
                let got = bucketed_run_on(&spec, &config, *rows, 2, &device);
                for (rank, (p, stats)) in got.iter().enumerate() {
                    assert!(stats.buckets > 2, "{what}: {} buckets", stats.buckets);
                    assert!(
                        stats.gradient_reads >= STEPS * stats.buckets as u64,
                        "{what}: a read a bucket"
                    );
                    assert!(
                        same_bits(p, &want[rank].0),
                        "{what}: rank {rank} differs from the one sum"
                    );
                }
            }
        }
    }
}
