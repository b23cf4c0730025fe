#![cfg(feature = "cli")]
//! Issue 13, class 5: resume and init tell the truth. A training state of another model is
//! refused; flags that would change a resumed run's model or data are refused; `--init` keeps
//! its checkpoint's architecture and says which objective flags it applies; data or batch size
//! changed under a resumed run is refused naming what changed; and a run stopped exactly at an
//! epoch's end and resumed writes the same metrics, line for line, as one never stopped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourglass::data::npy::write_npy;
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-fc-rs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn write_fixture(path: &Path, rows: usize, salt: usize) {
    let values: Vec<f32> = (0..rows * 16)
        .map(|i| ((i * 7919 + 13 + salt) % 101) as f32 / 101.0)
        .collect();
    write_npy(path, rows, 16, &values).expect("fixture");
}

fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("x.npy");
    write_fixture(&path, 64, 0);
    path
}

fn hourglass(args: &[&str], interrupt_at: Option<u64>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    c.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    match interrupt_at {
        Some(step) => c.env("HOURGLASS_INTERRUPT_AT_STEP", step.to_string()),
        None => c.env_remove("HOURGLASS_INTERRUPT_AT_STEP"),
    };
    c.output().expect("run hourglass")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--encoder",
        "16,4",
        "--batch-size",
        "16",
        "--data",
        s(data),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    hourglass(&args, None)
}

fn resume(run: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--device", "cpu", "--resume", s(run)];
    args.extend_from_slice(extra);
    hourglass(&args, None)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

fn refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    for n in needles {
        assert!(line.contains(n), "'{n}' not in: {line}");
    }
    println!("{line}");
}

#[test]
fn a_state_of_another_model_is_refused() {
    let dir = scratch("spec");
    let data = fixture(&dir);
    let (plain, vae) = (dir.join("plain"), dir.join("vae"));
    ok(&train(&data, &plain, &["--epochs", "1"]));
    ok(&train(&data, &vae, &["--epochs", "1", "--variant", "vae"]));
    std::fs::copy(
        vae.join("train_state.safetensors"),
        plain.join("train_state.safetensors"),
    )
    .expect("swap the state");
    refused(
        &resume(&plain, &["--epochs", "2"]),
        &[
            "train_state.safetensors",
            "holds a vae",
            "describes a plain",
            "not this run's",
        ],
    );
}

#[test]
fn model_and_data_flags_with_resume_are_refused() {
    let dir = scratch("flags");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, &["--epochs", "1"]));
    for flags in [
        &["--encoder", "16,8"][..],
        &["--variant", "vae"],
        &["--batch-size", "8"],
        &["--data", s(&data)],
        &["--loss", "mse"],
    ] {
        let mut args = vec!["--epochs", "2"];
        args.extend_from_slice(flags);
        refused(
            &resume(&run, &args),
            &[flags[0], "run being resumed", "--config", "--out NEW_DIR"],
        );
    }
    // What may change, does: the length.
    ok(&resume(&run, &["--epochs", "2"]));
}

#[test]
fn init_refuses_architecture_flags_and_applies_objective_ones() {
    let dir = scratch("init");
    let data = fixture(&dir);
    let vae = dir.join("vae");
    ok(&train(&data, &vae, &["--epochs", "1", "--variant", "vae"]));
    let ckpt = vae.join("model.safetensors");
    let init = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--data",
            s(&data),
            "--init",
            s(&ckpt),
            "--out",
        ];
        let out = dir.join(format!("from-{}", extra.join("-").replace(['-', ','], "")));
        let out = out.to_str().unwrap().to_string();
        args.push(&out);
        args.extend_from_slice(extra);
        hourglass(&args, None)
    };
    refused(
        &init(&["--encoder", "16,8"]),
        &["--encoder with --init", "vae 16→4→16 model"],
    );
    refused(&init(&["--variant", "plain"]), &["--variant with --init"]);
    refused(
        &init(&["--noise", "mask:0.1"]),
        &["--noise applies to a denoising model"],
    );

    // No flags: the banner names the model that trains, the checkpoint's VAE.
    let o = init(&[]);
    ok(&o);
    let banner = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(banner.contains("training a vae 16→4→16 model"), "{banner}");
    // An objective flag is applied, and said so.
    let o = init(&["--beta", "0.5"]);
    ok(&o);
    assert!(
        stderr(&o).contains("with --beta as given"),
        "{}",
        stderr(&o)
    );
    let config = std::fs::read_to_string(dir.join("from-beta0.5").join("config.toml")).unwrap();
    assert!(
        config.contains("beta = 0.5") && config.contains("variant = \"vae\""),
        "{config}"
    );
}

#[test]
fn data_changed_under_a_resumed_run_is_refused_naming_what_changed() {
    let dir = scratch("data");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, &["--epochs", "1"]));
    let before = std::fs::read(run.join("metrics.jsonl")).unwrap();
    write_fixture(&data, 48, 0);
    refused(
        &resume(&run, &["--epochs", "2"]),
        &["other data", "rows 64 → 48"],
    );
    write_fixture(&data, 64, 5);
    refused(
        &resume(&run, &["--epochs", "2"]),
        &["other data", "values of the rows"],
    );
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), before);
    write_fixture(&data, 64, 0);
    ok(&resume(&run, &["--epochs", "2"]));
}

/// The metrics lines without their timing fields.
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json");
            let o = v.as_object_mut().expect("object");
            o.remove("samples_per_sec");
            o.remove("elapsed_s");
            v
        })
        .collect()
}

#[test]
fn a_stop_at_an_epoch_boundary_keeps_its_metrics_line_and_validation() {
    let dir = scratch("boundary");
    let data = fixture(&dir);
    // 48 training rows in batches of 16: 3 steps an epoch; validation on 16 rows.
    let flags = ["--epochs", "4", "--val-split", "0.25", "--seed", "3"];
    let run = dir.join("run");
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--encoder",
        "16,4",
        "--batch-size",
        "16",
        "--data",
        s(&data),
        "--out",
        s(&run),
    ];
    args.extend_from_slice(&flags);
    let stopped = hourglass(&args, Some(6));
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let lines = metrics(&run);
    assert_eq!(lines.len(), 2, "epoch 2 ended at the stop: {lines:?}");
    assert!(lines[1].get("val_loss").is_some(), "and was validated");
    ok(&resume(&run, &[]));

    let straight = dir.join("straight");
    ok(&train(&data, &straight, &flags));
    assert_eq!(metrics(&run), metrics(&straight), "line for line");
    assert_eq!(
        std::fs::read(run.join("best.safetensors")).unwrap(),
        std::fs::read(straight.join("best.safetensors")).unwrap(),
        "the best model saw every epoch"
    );
}
