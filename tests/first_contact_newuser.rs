#![cfg(feature = "cli")]
//! Issue 13, class 8: what a new user hits in an afternoon. The default batch size on a small
//! file, cross-entropy on raw data, flags that change nothing, Mesa's display errors on a
//! headless machine, and `eval` scoring the rows a model was trained on. Every case runs the
//! CLI on the CPU with tiny models.

mod common;

use common::cli::hourglass;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourglass::data::npy::write_npy;
use hourglass::io::checkpoint;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-newuser-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A `rows × cols` .npy of values drawn from [lo, hi).
fn npy(dir: &Path, name: &str, rows: usize, cols: usize, lo: f32, hi: f32) -> String {
    let path = dir.join(name);
    let values = common::random(rows * cols, lo, hi, rows as u64 + 7);
    write_npy(&path, rows, cols, &values).expect("npy");
    path.display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `train` on the CPU with `extra` flags into `dir/out`.
fn train(data: &str, out: &Path, extra: &[&str]) -> Output {
    let out = s(out);
    let mut args = vec!["train", "--data", data, "--device", "cpu", "--out", &out];
    args.extend(extra);
    hourglass(&args)
}

fn steps_taken(run: &Path) -> u64 {
    let (_, state, _) =
        checkpoint::load_state(&run.join("train_state.safetensors")).expect("train state");
    state.step
}

#[test]
fn the_default_batch_size_on_a_small_file_trains_as_one_batch_and_drop_last_is_opt_in() {
    let dir = scratch("batch");
    let x40 = npy(&dir, "x40.npy", 40, 6, 0.0, 1.0);
    // Batch 64 (the default) on 40 rows: one step of all 40 an epoch, said in a note.
    let o = train(
        &x40,
        &dir.join("small"),
        &["--encoder", "6,3", "--epochs", "3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--batch-size 64 is larger than the 40 training rows"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("3 steps of batch 40"), "{}", stdout(&o));
    assert_eq!(steps_taken(&dir.join("small")), 3);
    let config = std::fs::read_to_string(dir.join("small/config.toml")).expect("config");
    assert!(config.contains("drop-last = false"), "{config}");

    // --drop-last asks for whole batches: there are none, so it is refused before any file.
    for flag in [&["--drop-last"][..], &["--drop-last", "true"]] {
        let out = dir.join("dropped");
        let mut extra = vec!["--encoder", "6,3", "--epochs", "1"];
        extra.extend(flag);
        let o = train(&x40, &out, &extra);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("the batch size 64 is larger than the data set (40 examples)")
                && err.contains("leave it out"),
            "{err}"
        );
        assert!(!out.exists(), "nothing written for a refused run");
    }

    // 70 rows at batch 16: five steps an epoch by default (the partial batch of 6 trains),
    // four with `--drop-last` (given as a bare flag before another flag), five with `false`.
    let x70 = npy(&dir, "x70.npy", 70, 6, 0.0, 1.0);
    let common = ["--encoder", "6,3", "--batch-size", "16"];
    for (name, extra, want) in [
        ("keep", &["--epochs", "2"][..], 10),
        ("drop", &["--drop-last", "--epochs", "2"], 8),
        (
            "keep-explicit",
            &["--drop-last", "false", "--epochs", "2"],
            10,
        ),
    ] {
        let out = dir.join(name);
        let args: Vec<&str> = common.iter().chain(extra).copied().collect();
        let o = train(&x70, &out, &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(steps_taken(&out), want, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cross_entropy_on_data_outside_zero_one_is_refused_with_the_readme_hint() {
    let dir = scratch("bce");
    let raw = npy(&dir, "raw.npy", 50, 6, -40.0, 90.0);
    let hint = "use --loss mse --output-activation identity, or --normalize unit";
    let out = dir.join("run");
    let o = train(&raw, &out, &["--encoder", "6,3", "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cross-entropy (--loss bce) needs data in [0, 1]")
            && err.contains(&format!("but {raw} holds values from"))
            && err.contains(hint),
        "{err}"
    );
    assert!(!out.exists(), "refused before the run folder is made");

    // Standard scaling leaves [0, 1]: refused, naming it.
    let o = train(
        &raw,
        &out,
        &[
            "--encoder",
            "6,3",
            "--epochs",
            "1",
            "--normalize",
            "standard",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("after --normalize standard holds values"),
        "{}",
        stderr(&o)
    );

    // Both ways out of the hint train. With --normalize unit, validation rows beyond the
    // training range are clipped into [0, 1] instead of refused.
    let wide_val = npy(&dir, "val.npy", 9, 6, -80.0, 150.0);
    let o = train(
        &raw,
        &dir.join("unit"),
        &[
            "--encoder",
            "6,3",
            "--epochs",
            "1",
            "--normalize",
            "unit",
            "--val",
            &wide_val,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(
        &raw,
        &dir.join("mse"),
        &[
            "--encoder",
            "6,3",
            "--epochs",
            "1",
            "--loss",
            "mse",
            "--output-activation",
            "identity",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Validation data outside [0, 1] is refused too, naming its file.
    let unit = npy(&dir, "unit.npy", 50, 6, 0.0, 1.0);
    let o = train(
        &unit,
        &dir.join("val"),
        &["--encoder", "6,3", "--epochs", "1", "--val", &wide_val],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("but {wide_val} holds values")),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("val").exists());

    // And so is eval of a cross-entropy model on such data.
    let o = train(
        &unit,
        &dir.join("ok"),
        &["--encoder", "6,3", "--epochs", "1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let model = s(&dir.join("ok/model.safetensors"));
    let o = hourglass(&["eval", "--model", &model, "--data", &raw, "--device", "cpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs data in [0, 1]") && stderr(&o).contains(hint),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flag_that_affects_no_layer_is_warned_about() {
    let dir = scratch("unused");
    let x = npy(&dir, "x.npy", 32, 6, 0.0, 1.0);
    let warnings = |extra: &[&str]| {
        let mut args = vec!["--epochs", "1", "--overwrite"];
        args.extend(extra);
        let o = train(&x, &dir.join("run"), &args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // The only encoder layer is the code layer: --activation changes nothing.
    let w = warnings(&[
        "--encoder",
        "6,3",
        "--activation",
        "sigmoid",
        "--variant",
        "contractive",
    ]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("--activation affects nothing") && w[0].contains("no hidden layer"),
        "{w:?}"
    );
    // With a hidden layer it does, and nothing is said.
    assert!(warnings(&["--encoder", "6,4,3", "--activation", "sigmoid"]).is_empty());
    // A variant's settings on another variant, SGD's momentum with Adam, a VAE's code.
    let w = warnings(&[
        "--encoder",
        "6,4,2",
        "--noise",
        "gaussian:0.1",
        "--beta",
        "2",
        "--momentum",
        "0.5",
    ]);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w.iter()
            .any(|l| l.contains("--noise") && l.contains("--variant denoising"))
    );
    assert!(
        w.iter()
            .any(|l| l.contains("--beta") && l.contains("--variant vae"))
    );
    assert!(
        w.iter()
            .any(|l| l.contains("--momentum") && l.contains("--optimizer sgd"))
    );
    let w = warnings(&[
        "--encoder",
        "6,4,2",
        "--variant",
        "vae",
        "--code-activation",
        "tanh",
        "--beta",
        "0.5",
        "--loss",
        "mse",
        "--output-activation",
        "identity",
    ]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("--code-activation") && w[0].contains("VAE"),
        "{w:?}"
    );
    // Flags the model uses are never named.
    assert!(
        warnings(&[
            "--encoder",
            "6,4,2",
            "--variant",
            "denoising",
            "--noise",
            "mask:0.1"
        ])
        .is_empty()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_headless_gpu_probe_prints_no_display_errors_and_notes_name_the_command() {
    let dir = scratch("headless");
    let x = npy(&dir, "x.npy", 20, 6, 0.0, 1.0);
    let o = train(&x, &dir.join("run"), &["--encoder", "6,3", "--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = s(&dir.join("run/model.safetensors"));
    let headless = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("NODEVICE_SELECT")
            .env_remove("MESA_VK_DEVICE_SELECT")
            .output()
            .expect("run hourglass")
    };
    // `info` probes every adapter (four Vulkan instances before the fix, four Mesa errors).
    let o = headless(&["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", stderr(&o));
    let recon = s(&dir.join("recon.npy"));
    for (args, doing) in [
        (vec!["eval", "--model", &model, "--data", &x], "evaluating"),
        (
            vec!["encode", "--model", &model, "--data", &x, "--out", &recon],
            "encoding",
        ),
        (
            vec![
                "reconstruct",
                "--model",
                &model,
                "--data",
                &x,
                "--out",
                &recon,
            ],
            "reconstructing",
        ),
    ] {
        let o = headless(&args);
        let err = stderr(&o);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(!err.contains("XDG_RUNTIME_DIR"), "{args:?}: {err}");
        assert!(!err.contains("training on"), "{args:?}: {err}");
        // Where `auto` finds no hardware GPU it says so in the command's words.
        if err.contains("on the CPU") {
            assert!(
                err.contains(&format!("{doing} on the CPU")),
                "{args:?}: {err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn val_loss_of_last_epoch(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("json");
    last["val_loss"].as_f64().expect("val_loss")
}

fn eval_json(args: &[&str]) -> (serde_json::Value, String) {
    let o = hourglass(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let json = serde_json::from_str(stdout(&o).trim()).expect("eval --json");
    (json, stderr(&o))
}

#[test]
fn eval_without_data_scores_only_the_rows_a_bundled_run_held_out() {
    let dir = scratch("overlap");
    // One epoch on the bundled set with a tenth held out: 9,000 rows train, 1,000 validate.
    let split = dir.join("split");
    let o = hourglass(&[
        "train",
        "--encoder",
        "784,4",
        "--epochs",
        "1",
        "--batch-size",
        "500",
        "--val-split",
        "0.1",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        &s(&split),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = s(&split.join("model.safetensors"));
    let (json, err) = eval_json(&["eval", "--model", &model, "--device", "cpu", "--json"]);
    assert_eq!(json["rows"], 1000, "{json}");
    let data = json["data"].as_str().expect("data");
    assert!(
        data.contains("the 1000 rows the run in")
            && data.contains("(--val-split 0.1, --seed 3); the other 9000 trained it"),
        "{data}"
    );
    assert!(!err.contains("warning"), "{err}");
    // Exactly the rows training validated on: the same loss as the epoch's validation.
    assert_eq!(json["loss"].as_f64(), Some(val_loss_of_last_epoch(&split)));

    // Naming the bundled set scores all of it, with a warning about the 9,000.
    let (json, err) = eval_json(&[
        "eval",
        "--model",
        &model,
        "--dataset",
        "bundled",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(json["rows"], 10000);
    assert!(
        err.contains("warning: 9000 of these 10000 rows trained the model"),
        "{err}"
    );

    // A run that trained on every bundled row: eval warns that its score is a training loss.
    let all = dir.join("all");
    let o = hourglass(&[
        "train",
        "--encoder",
        "784,4",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--out",
        &s(&all),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (json, err) = eval_json(&[
        "eval",
        "--model",
        &s(&all.join("model.safetensors")),
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(json["rows"], 10000);
    assert!(
        err.contains("trained the model on these 10000 rows: this is a training loss"),
        "{err}"
    );

    // The same for a file: eval on the file a run split warns how many rows trained it; on
    // other data it says nothing.
    let x = npy(&dir, "x.npy", 40, 6, 0.0, 1.0);
    let o = train(
        &x,
        &dir.join("file"),
        &["--encoder", "6,3", "--epochs", "1", "--val-split", "0.25"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let model = s(&dir.join("file/model.safetensors"));
    let o = hourglass(&["eval", "--model", &model, "--data", &x, "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: 30 of these 40 rows trained the model"),
        "{}",
        stderr(&o)
    );
    let other = npy(&dir, "other.npy", 12, 6, 0.0, 1.0);
    let o = hourglass(&[
        "eval", "--model", &model, "--data", &other, "--device", "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
