//! `hourglass train` under `mpirun` (feature `mpi`; needs Open MPI's `mpirun` on the PATH):
//! data-parallel runs of 2 and 3 ranks against one process at the same global batch, repeats,
//! resuming with another number of ranks, and the job ending promptly when a rank fails.
//! Run with `cargo test --release --features mpi --test distributed`.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hourglass::io::checkpoint;

#[path = "common/compare.rs"]
mod compare;
use compare::{same_bits, worst_scaled};

const BIN: &str = env!("CARGO_BIN_EXE_hourglass");

/// 37 rows of 12 features; global batches of 10 leave a partial batch of 7, and neither 10 nor
/// 7 divides by 3 (nor 7 by 2).
fn data(dir: &Path) -> PathBuf {
    let path = dir.join("x.csv");
    let mut text = String::new();
    for r in 0..37 {
        let row: Vec<String> = (0..12)
            .map(|c| format!("{:.6}", ((r * 12 + c) * 37 % 101) as f32 / 101.0))
            .collect();
        text += &row.join(",");
        text += "\n";
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hourglass-distributed-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `hourglass train` on `data` into `out` with the variant's flags, `steps` steps in all.
fn train_args(data: &Path, out: &Path, variant: &[&str], steps: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data",
        "DATA",
        "--encoder",
        "12,6,3",
        "--batch-size",
        "10",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--log-every",
        "3",
        "--quiet",
        "--steps",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args[2] = data.display().to_string();
    args.push(steps.to_string());
    args.push("--out".into());
    args.push(out.display().to_string());
    args.extend(variant.iter().map(|s| s.to_string()));
    args
}

fn mpirun(ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &ranks.to_string(),
        BIN,
    ]);
    c.env("RAYON_NUM_THREADS", "1").env("LP_NUM_THREADS", "1");
    c
}

fn ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Trains with `ranks` ranks (0: one process without mpirun) and returns the parameters.
fn run(ranks: usize, args: &[String]) -> Vec<f32> {
    let out = if ranks == 0 {
        Command::new(BIN)
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .output()
    } else {
        mpirun(ranks).args(args).output()
    }
    .unwrap();
    ok(out, &format!("{ranks} ranks: hourglass {}", args.join(" ")));
    let out_dir = PathBuf::from(&args[args.iter().position(|a| a == "--out").unwrap() + 1]);
    checkpoint::load(&out_dir.join("model.safetensors"))
        .unwrap()
        .1
        .arena
}

/// ‖a − b‖ / ‖b‖ and the worst element.
fn relative(a: &[f32], b: &[f32]) -> (f64, usize) {
    let (mut d, mut n, mut worst, mut at) = (0.0f64, 0.0f64, 0.0f64, 0);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let e = f64::from(x - y).abs();
        d += e * e;
        n += f64::from(y).powi(2);
        if e > worst {
            (worst, at) = (e, i);
        }
    }
    ((d / n).sqrt(), at)
}

#[test]
fn two_and_three_ranks_equal_one_process_for_every_variant() {
    let dir = scratch("equal");
    let x = data(&dir);
    let variants: [(&str, &[&str]); 4] = [
        ("plain", &[]),
        (
            "denoising",
            &["--variant", "denoising", "--noise", "gaussian:0.3"],
        ),
        ("vae", &["--variant", "vae", "--vae-samples", "2"]),
        (
            "contractive",
            &["--variant", "contractive", "--jacobian-projections", "2"],
        ),
    ];
    for (name, flags) in variants {
        let single = run(0, &train_args(&x, &dir.join(format!("{name}-1")), flags, 9));
        for ranks in [2, 3] {
            let a = dir.join(format!("{name}-{ranks}a"));
            let p = run(ranks, &train_args(&x, &a, flags, 9));
            let (rel, at) = relative(&p, &single);
            println!("{name}, {ranks} ranks: relative difference {rel:.3e}");
            assert!(
                rel <= 1e-6,
                "{name}, {ranks} ranks: parameters differ from one process by {rel:.3e} \
                 relative (worst at {at}: {} vs {})",
                p[at],
                single[at]
            );
            // Again with as many ranks: the same bytes.
            let b = dir.join(format!("{name}-{ranks}b"));
            let q = run(ranks, &train_args(&x, &b, flags, 9));
            assert!(
                p.iter().zip(&q).all(|(u, v)| u.to_bits() == v.to_bits()),
                "{name}, {ranks} ranks: a repeat gave other parameters"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_and_three_ranks_on_lavapipe_equal_one_gpu_process() {
    let dir = scratch("gpu");
    let x = data(&dir);
    let gpu = |args: Vec<String>| -> Vec<String> {
        args.into_iter()
            .map(|a| if a == "cpu" { "gpu".into() } else { a })
            .collect()
    };
    for (name, flags) in [
        ("plain", &[][..]),
        (
            "denoising",
            &["--variant", "denoising", "--noise", "mask:0.3"][..],
        ),
        ("vae", &["--variant", "vae"][..]),
    ] {
        let single = run(
            0,
            &gpu(train_args(&x, &dir.join(format!("{name}-1")), flags, 9)),
        );
        for ranks in [2, 3] {
            let p = run(
                ranks,
                &gpu(train_args(
                    &x,
                    &dir.join(format!("{name}-{ranks}")),
                    flags,
                    9,
                )),
            );
            let (rel, at) = relative(&p, &single);
            println!("GPU {name}, {ranks} ranks: relative difference {rel:.3e}");
            assert!(
                rel <= 1e-6,
                "GPU {name}, {ranks} ranks: {rel:.3e} relative from one process (worst at {at})"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The per-epoch lines of a run's metrics.jsonl: (epoch, step, train loss, val loss).
fn epochs(out: &Path) -> Vec<(u64, u64, f64, Option<f64>)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["epoch"].as_u64().unwrap(),
                v["step"].as_u64().unwrap(),
                v["train_loss"].as_f64().unwrap(),
                v["val_loss"].as_f64(),
            )
        })
        .collect()
}

#[test]
fn validation_early_stop_and_checkpoints_work_as_in_one_process() {
    let dir = scratch("fit");
    let x = data(&dir);
    let extra = [
        "--val-split",
        "0.25",
        "--checkpoint-every",
        "2",
        "--early-stop",
        "2",
        "--lr",
        "0.05",
    ];
    let one = dir.join("one");
    let mut a = train_args(&x, &one, &extra, 60);
    a.retain(|s| s != "--quiet");
    run(0, &a);
    let three = dir.join("three");
    let mut b = train_args(&x, &three, &extra, 60);
    b.retain(|s| s != "--quiet");
    let output = mpirun(3).args(&b).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Rank 0 alone prints: one "done" line.
    assert_eq!(
        stdout.matches("done at step").count() + stdout.matches("stopped at step").count(),
        1,
        "{stdout}"
    );
    assert!(stderr.contains("3 ranks: per step"), "{stderr}");
    let (e1, e3) = (epochs(&one), epochs(&three));
    assert_eq!(e1.len(), e3.len(), "epochs: {e1:?} vs {e3:?}");
    for (p, q) in e1.iter().zip(&e3) {
        assert_eq!((p.0, p.1), (q.0, q.1));
        assert!(
            (p.2 - q.2).abs() <= 1e-6 * p.2.abs(),
            "train loss {p:?} vs {q:?}"
        );
        let (pv, qv) = (p.3.unwrap(), q.3.unwrap());
        assert!(
            (pv - qv).abs() <= 1e-6 * pv.abs(),
            "val loss {p:?} vs {q:?}"
        );
    }
    for f in [
        "model.safetensors",
        "best.safetensors",
        "train_state.safetensors",
    ] {
        assert!(three.join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resumes_with_another_number_of_ranks() {
    let dir = scratch("resume");
    let x = data(&dir);
    let whole = run(0, &train_args(&x, &dir.join("whole"), &[], 9));
    let resume = |ranks: usize, out: &Path| {
        let args = vec![
            "train".to_string(),
            "--resume".into(),
            out.display().to_string(),
            "--steps".into(),
            "9".into(),
            "--quiet".into(),
        ];
        let output = if ranks == 0 {
            Command::new(BIN)
                .args(&args)
                .env("RAYON_NUM_THREADS", "1")
                .output()
        } else {
            mpirun(ranks).args(&args).output()
        }
        .unwrap();
        ok(output, &format!("--resume with {ranks} ranks"));
        checkpoint::load(&out.join("model.safetensors"))
            .unwrap()
            .1
            .arena
    };
    // 2 ranks for 5 steps, then one process to 9.
    let two_one = dir.join("two-one");
    run(2, &train_args(&x, &two_one, &[], 5));
    let p = resume(0, &two_one);
    let (rel, _) = relative(&p, &whole);
    assert!(
        rel <= 1e-6,
        "2 ranks then 1: {rel:.3e} from the one-process run"
    );
    // One process for 5 steps, then 3 ranks to 9.
    let one_three = dir.join("one-three");
    run(0, &train_args(&x, &one_three, &[], 5));
    let p = resume(3, &one_three);
    let (rel, _) = relative(&p, &whole);
    assert!(
        rel <= 1e-6,
        "1 rank then 3: {rel:.3e} from the one-process run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_job_saves_and_resumes_exactly() {
    let dir = scratch("interrupt");
    let x = data(&dir);
    let straight = run(2, &train_args(&x, &dir.join("straight"), &[], 9));
    // The command line's deterministic interrupt (as a Ctrl-C at step 3), seen by rank 0.
    let cut = dir.join("cut");
    let output = mpirun(2)
        .args(train_args(&x, &cut, &[], 9))
        .env("HOURGLASS_INTERRUPT_AT_STEP", "3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted at step 3"), "{stderr}");
    let resumed = mpirun(2)
        .args(["train", "--resume", &cut.display().to_string(), "--quiet"])
        .output()
        .unwrap();
    ok(resumed, "--resume after the interrupt");
    let p = checkpoint::load(&cut.join("model.safetensors"))
        .unwrap()
        .1
        .arena;
    assert!(
        p.iter()
            .zip(&straight)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "interrupted and resumed on 2 ranks differs from 2 ranks in one go"
    );

    // A real Ctrl-C on mpirun (which passes SIGTERM to every rank): rank 0 saves.
    let sig = dir.join("signal");
    let mut child = mpirun(2)
        .args(train_args(&x, &sig, &[], 100_000_000))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sig.join("metrics.jsonl").exists() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    let (_, state, _) = checkpoint::load_state(&sig.join("train_state.safetensors")).unwrap();
    assert!(state.step > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ranks_started_with_different_flags_are_refused() {
    let dir = scratch("mismatch");
    let x = data(&dir);
    let out = dir.join("run");
    let a = train_args(&x, &out, &[], 9);
    let mut b = a.clone();
    let seed = b.iter().position(|s| s == "--seed").unwrap() + 1;
    b[seed] = "4".into();
    // MPMD: rank 0 with --seed 3, rank 1 with --seed 4.
    let output = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1", BIN])
        .args(&a)
        .args([":", "-np", "1", BIN])
        .args(&b)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a mismatched job ran: {stderr}");
    assert!(
        stderr.contains("rank 1 of 2") && stderr.contains("differ from rank 0"),
        "{stderr}"
    );
    assert!(stderr.contains("not started with the same run"), "{stderr}");
    assert!(
        !out.join("model.safetensors").exists(),
        "a refused job wrote a model"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rank_that_cannot_open_its_data_ends_the_job_naming_itself() {
    let dir = scratch("nodata");
    let x = data(&dir);
    let out = dir.join("run");
    let a = train_args(&x, &out, &[], 9);
    let b = train_args(&dir.join("missing.csv"), &out, &[], 9);
    let started = Instant::now();
    let output = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1", BIN])
        .args(&a)
        .args([":", "-np", "1", BIN])
        .args(&b)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("rank 1 of 2 on") && stderr.contains("missing.csv"),
        "the failing rank is not named: {stderr}"
    );
    println!("ended after {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rank_whose_device_fails_ends_the_job_naming_itself() {
    // Every rank gets the same command (so the start-up check of the run passes); rank 0 sees
    // lavapipe, rank 1 is started with WGPU_BACKEND=metal and finds no GPU (what a node with
    // a missing or broken GPU gives). The job must end, not hang in rank 0's first collective,
    // with rank 1's message.
    let dir = scratch("nodevice");
    let x = data(&dir);
    let mut args = train_args(&x, &dir.join("run"), &[], 9);
    let device = args.iter().position(|a| a == "--device").unwrap();
    args[device + 1] = "gpu".into();
    let started = Instant::now();
    let output = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1", BIN])
        .args(&args)
        .args([":", "-np", "1", "env", "WGPU_BACKEND=metal", BIN])
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .env("LP_NUM_THREADS", "1")
        .env_remove("WGPU_BACKEND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("rank 1 of 2 on") && stderr.contains("no Metal adapter"),
        "the failing rank and its device are not named: {stderr}"
    );
    assert!(
        !stderr.contains("differ from rank 0"),
        "the ranks' runs should agree: {stderr}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "ended after {took:?}");
    println!("ended after {:.1} s: {stderr}", took.as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_panicking_rank_ends_the_job_naming_itself() {
    let dir = scratch("panic");
    let x = data(&dir);
    let started = Instant::now();
    let output = mpirun(3)
        .args(train_args(&x, &dir.join("run"), &[], 1000))
        .env("HOURGLASS_PANIC_AT_STEP", "6")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("of 3 on") && stderr.contains("panicked") && stderr.contains("step 6"),
        "{stderr}"
    );
    println!("ended after {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process of `rank` among the children of mpirun `parent` (by its environment).
fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 4 (after the parenthesised name) is the parent's pid.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        if env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_ends_the_job_with_an_error_within_30_seconds() {
    let dir = scratch("killed");
    let x = data(&dir);
    // Long enough to be killed mid-run.
    let args = train_args(&x, &dir.join("run"), &[], 100_000_000);
    let mut child = mpirun(2)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // mpirun's children are the ranks (Open MPI's launcher forks them directly on one host).
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Some(pid) = rank_pid(child.id(), 1) {
            break pid;
        }
        assert!(Instant::now() < deadline, "rank 1 never started");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let it get into the training loop, then kill it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the job still runs 30 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    println!(
        "ended {:.1} s after the kill: {status}",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        !status.success(),
        "the job succeeded after a rank was killed"
    );
    assert!(
        stderr.contains("rank 1") || stderr.contains("signal 9"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train_args` at `--batch-size batch` with `--accumulate k`.
fn accumulating_args(
    data: &Path,
    out: &Path,
    flags: &[&str],
    k: usize,
    batch: usize,
) -> Vec<String> {
    let mut args = train_args(data, out, flags, 9);
    let at = args.iter().position(|a| a == "--batch-size").unwrap() + 1;
    args[at] = batch.to_string();
    args.extend(["--accumulate".to_string(), k.to_string()]);
    args
}

#[test]
fn accumulating_under_mpirun_equals_one_process_at_the_whole_batch() {
    let dir = scratch("accumulate");
    let x = data(&dir);
    for (name, flags) in [
        ("plain", &[][..]),
        ("vae", &["--variant", "vae", "--vae-samples", "2"][..]),
    ] {
        // 37 rows: steps of 12 (3 micro-batches of 4), the partial one of 1 row.
        let whole = run(
            0,
            &accumulating_args(&x, &dir.join(format!("{name}-w")), flags, 1, 12),
        );
        for ranks in [0, 2] {
            let out = dir.join(format!("{name}-acc-{ranks}"));
            let p = run(ranks, &accumulating_args(&x, &out, flags, 3, 4));
            let (rel, at) = relative(&p, &whole);
            println!("{name}, --accumulate 3, {ranks} ranks: relative difference {rel:.3e}");
            assert!(
                rel <= 1e-6,
                "{name}, {ranks} ranks: {rel:.3e} (worst at {at})"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_ranks_reducing_in_f16_stay_close_to_f32_and_repeat_bit_for_bit() {
    // The bound of tests/data_parallel.rs (9 Adam steps at lr 1e-3 here, ten times smaller).
    let (atol, rtol) = (1e-4, 1e-3);
    let dir = scratch("f16");
    let x = data(&dir);
    let f16 = ["--reduce-precision", "f16"];
    for (name, flags) in [
        ("plain", &[][..]),
        ("vae", &["--variant", "vae", "--vae-samples", "2"][..]),
    ] {
        let with_f16: Vec<&str> = flags.iter().copied().chain(f16).collect();
        let f32_run = run(
            2,
            &train_args(&x, &dir.join(format!("{name}-f32")), flags, 9),
        );
        let a = run(
            2,
            &train_args(&x, &dir.join(format!("{name}-f16a")), &with_f16, 9),
        );
        let (scaled, at) = worst_scaled(&a, &f32_run, atol, rtol);
        println!(
            "{name}, 2 ranks: f16 vs f32 reduction, worst at {at}: {} vs {} ({scaled:.3} of \
             {atol:e} + {rtol:e}·|ref|)",
            a[at], f32_run[at]
        );
        assert!(
            scaled <= 1.0,
            "{name}: f16 reduction differs from f32 at {at}: {} vs {} ({scaled:.3} × the bound)",
            a[at],
            f32_run[at]
        );
        assert!(!same_bits(&a, &f32_run), "{name}: f16 changed nothing");
        let b = run(
            2,
            &train_args(&x, &dir.join(format!("{name}-f16b")), &with_f16, 9),
        );
        assert!(
            same_bits(&a, &b),
            "{name}: an f16 repeat on 2 ranks differs"
        );
    }
    // One process: nothing to reduce, the f32 run bit for bit.
    let one = run(0, &train_args(&x, &dir.join("one-f32"), &[], 9));
    let one_f16 = run(0, &train_args(&x, &dir.join("one-f16"), &f16, 9));
    assert!(same_bits(&one, &one_f16), "one process with f16 differs");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Trains with `ranks` ranks, notes shown (`args` without `--quiet`): the parameters, and the
/// buckets rank 0's per-step line names (1 when it names none: one sum).
fn run_noted(ranks: usize, args: &[String]) -> (Vec<f32>, usize) {
    let args: Vec<&String> = args.iter().filter(|a| *a != "--quiet").collect();
    let out = mpirun(ranks).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out, &format!("{ranks} ranks, noted"));
    let line = stderr
        .lines()
        .find(|l| l.contains("per step"))
        .unwrap_or_else(|| panic!("no per-step line in:\n{stderr}"));
    let buckets = line
        .split(" buckets")
        .next()
        .filter(|head| head.len() < line.len())
        .and_then(|head| head.rsplit(' ').next())
        .map_or(1, |n| n.parse().unwrap());
    let out_dir = PathBuf::from(args[args.iter().position(|a| *a == "--out").unwrap() + 1]);
    let params = checkpoint::load(&out_dir.join("model.safetensors"))
        .unwrap()
        .1
        .arena;
    (params, buckets)
}

#[test]
fn reducing_in_buckets_during_the_backward_pass_is_the_one_sum_bit_for_bit() {
    let dir = scratch("buckets");
    let x = data(&dir);
    let vae = ["--variant", "vae", "--vae-samples", "2"];
    // The CPU's cases at 2 and 3 ranks; lavapipe's (each segment and its bucket's copy one
    // submission) at 2.
    for (name, flags, accumulate, device, ranks) in [
        ("plain", &[][..], 1, "cpu", &[2, 3][..]),
        ("vae", &vae[..], 1, "cpu", &[2, 3]),
        (
            "plain, f16",
            &["--reduce-precision", "f16"][..],
            1,
            "cpu",
            &[2, 3],
        ),
        ("vae, accumulate 3", &vae[..], 3, "cpu", &[2, 3]),
        ("gpu, vae", &vae[..], 1, "gpu", &[2]),
        ("gpu, vae, accumulate 3", &vae[..], 3, "gpu", &[2]),
    ] {
        for &ranks in ranks {
            let with = |buckets: &str| -> Vec<String> {
                let mut f: Vec<&str> = flags.to_vec();
                f.extend(["--reduce-buckets", buckets]);
                let out = dir.join(format!(
                    "{}-{ranks}-{buckets}",
                    name.replace([',', ' '], "")
                ));
                let args = if accumulate == 1 {
                    train_args(&x, &out, &f, 9)
                } else {
                    accumulating_args(&x, &out, &f, accumulate, 4)
                };
                args.into_iter()
                    .map(|a| if a == "cpu" { device.into() } else { a })
                    .collect()
            };
            let (one_sum, n) = run_noted(ranks, &with("off"));
            assert_eq!(n, 1, "{name}, {ranks} ranks, off: one sum");
            // Buckets of one op's gradient each.
            let (bucketed, n) = run_noted(ranks, &with("0"));
            println!("{name}, {ranks} ranks: {n} buckets");
            assert!(n > 1, "{name}, {ranks} ranks: {n} buckets");
            assert!(
                same_bits(&bucketed, &one_sum),
                "{name}, {ranks} ranks: the bucketed reduction differs from the one sum"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
