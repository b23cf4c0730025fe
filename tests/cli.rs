#![cfg(feature = "cli")]
//! The `hourglass` binary: what it writes and how it fails.

mod common;

use common::cli::hourglass;

use std::path::{Path, PathBuf};
use std::process::Output;

use hourglass::data::npy::write_npy;
use hourglass::io::checkpoint;
use hourglass::model::{ModelSpec, Parameters};
use safetensors::{Dtype, SafeTensors};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn fixture(dir: &Path, rows: usize, cols: usize) -> PathBuf {
    let path = dir.join("x.npy");
    write_npy(&path, rows, cols, &common::random(rows * cols, 0.0, 1.0, 4)).expect("fixture");
    path
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hourglass failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn train_writes_a_pytorch_style_checkpoint() {
    let dir = scratch("names");
    let data = fixture(&dir, 50, 12);
    let out = dir.join("run");
    let text = ok(&hourglass(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--encoder",
        "12,8,3",
        "--decoder",
        "3,5,12",
        "--activation",
        "tanh",
        "--loss",
        "mse",
        "--output-activation",
        "identity",
        "--steps",
        "7",
        "--batch-size",
        "10",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("loss"), "prints the loss: {text}");

    let bytes = std::fs::read(out.join("model.safetensors")).expect("checkpoint written");
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut names: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), Dtype::F32, "{n} is f32");
            (n, v.shape().to_vec())
        })
        .collect();
    names.sort();
    let expected = [
        ("decoder.0.bias", vec![5]),
        ("decoder.0.weight", vec![5, 3]),
        ("decoder.2.bias", vec![12]),
        ("decoder.2.weight", vec![12, 5]),
        ("encoder.0.bias", vec![8]),
        ("encoder.0.weight", vec![8, 12]),
        ("encoder.2.bias", vec![3]),
        ("encoder.2.weight", vec![3, 8]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    assert_eq!(names, expected);

    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("metadata");
    let json = &meta.metadata().as_ref().expect("has metadata")[checkpoint::SPEC_KEY];
    let spec: serde_json::Value = serde_json::from_str(json).expect("spec is JSON");
    assert_eq!(spec["encoder"], serde_json::json!([12, 8, 3]));
    assert_eq!(spec["decoder"], serde_json::json!([3, 5, 12]));
    assert_eq!(spec["activation"], "tanh");
    assert_eq!(spec["loss"], "mse");
    assert_eq!(spec["output_activation"], "identity");
}

#[test]
fn zero_steps_writes_the_initial_weights_and_init_continues_from_them() {
    let dir = scratch("init");
    let data = fixture(&dir, 40, 9);
    let first = dir.join("a");
    ok(&hourglass(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--encoder",
        "9,4",
        "--steps",
        "0",
        "--batch-size",
        "8",
        "--seed",
        "17",
        "--device",
        "cpu",
        "--out",
        first.to_str().unwrap(),
    ]));
    let (spec, params) = checkpoint::load(&first.join("model.safetensors")).expect("load");
    assert_eq!(spec, ModelSpec::mirrored(&[9, 4]));
    assert_eq!(
        params,
        Parameters::init(&spec, 17),
        "--steps 0 keeps the seeded init"
    );

    // --init with --steps 0 reproduces the checkpoint; with steps it trains away from it.
    let second = dir.join("b");
    let ckpt = first.join("model.safetensors");
    ok(&hourglass(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--init",
        ckpt.to_str().unwrap(),
        "--steps",
        "0",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        second.to_str().unwrap(),
    ]));
    let (_, again) = checkpoint::load(&second.join("model.safetensors")).expect("load");
    assert_eq!(again, params);
    ok(&hourglass(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--init",
        ckpt.to_str().unwrap(),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        second.to_str().unwrap(),
        // b holds the zero-step run: replacing it is asked for (issue 13).
        "--overwrite",
    ]));
    let (_, trained) = checkpoint::load(&second.join("model.safetensors")).expect("load");
    assert_ne!(trained, params);
}

#[test]
fn train_on_the_gpu_device() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("gpu");
    let data = fixture(&dir, 64, 20);
    let out = dir.join("run");
    let text = ok(&hourglass(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--encoder",
        "20,7",
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--device",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("GPU"), "says it trains on the GPU: {text}");
    assert!(out.join("model.safetensors").exists());
}

#[test]
fn bad_flags_exit_2_with_a_message_and_write_nothing() {
    let dir = scratch("bad");
    let data = fixture(&dir, 30, 6);
    let out = dir.join("run");
    for (args, needle) in [
        (vec!["--encoder", "7,3"], "input size"),
        (vec!["--encoder", "6,0"], "positive"),
        (
            vec!["--encoder", "6,3", "--batch-size", "31", "--drop-last"],
            "larger than the data set",
        ),
        (
            vec![
                "--encoder",
                "6,3",
                "--loss",
                "bce",
                "--output-activation",
                "identity",
            ],
            "sigmoid",
        ),
        (
            vec!["--encoder", "6,3", "--activation", "swish"],
            "unknown activation",
        ),
        (vec!["--encoder", "6,3", "--lr", "-1"], "learning rate"),
    ] {
        let mut full = vec!["train", "--data", data.to_str().unwrap(), "--device", "cpu"];
        full.extend(["--out", out.to_str().unwrap()]);
        full.extend(args.iter().copied());
        let o = hourglass(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: '{err}' should mention '{needle}'"
        );
        assert!(
            !out.join("model.safetensors").exists(),
            "{args:?} wrote a checkpoint"
        );
    }
    let o = hourglass(&["train", "--data", "/nonexistent/x.npy", "--device", "cpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.npy"));
}
