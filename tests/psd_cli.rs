#![cfg(feature = "cli")]
//! `--variant psd` from the command line: what it refuses (one line, exit 2, nothing written),
//! and what a run writes (metrics with the three terms and the code's sparsity, `atoms.png`,
//! the checkpoint's names and metadata), and `encode` against `encode --infer`.

mod common;

use common::cli::hourglass;

use std::path::{Path, PathBuf};

use hourglass::data::npy::{read_npy, write_npy};
use hourglass::io::checkpoint;
use hourglass::model::Variant;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-psd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// 96 rows of 8×8 "images" in [0, 1].
fn data(dir: &Path) -> PathBuf {
    let path = dir.join("x.npy");
    write_npy(&path, 96, 64, &common::random(96 * 64, 0.0, 1.0, 3)).expect("write data");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn bad_psd_flags_are_one_line_errors_with_exit_2_and_write_nothing() {
    let dir = scratch("bad");
    let x = data(&dir);
    let cases: [(&[&str], &str); 12] = [
        (&["--encoder", "64,32,16"], "exactly one code layer"),
        (&["--sparsity=-0.5"], "--sparsity"),
        (&["--prediction=-1"], "--prediction"),
        (&["--tied"], "--tied"),
        (&["--loss", "bce"], "--loss must be mse"),
        (
            &["--output-activation", "sigmoid"],
            "--output-activation must be identity",
        ),
        (
            &["--code-activation", "relu"],
            "--code-activation must be tanh",
        ),
        (&["--decoder", "16,32,64"], "--decoder 16,64"),
        (&["--inference-steps", "0"], "--inference-steps"),
        (&["--inference-steps", "10001"], "--inference-steps 10001"),
        (&["--precision", "mixed-emulated"], "--precision mixed"),
        (&["--encoder", "64,16", "--sparsity=nan"], "--sparsity"),
    ];
    for (extra, needle) in cases {
        let out = dir.join("run");
        let mut args = vec![
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--variant",
            "psd",
            "--steps",
            "2",
            "--data",
            s(&x),
            "--out",
            s(&out),
        ];
        if !extra.contains(&"--encoder") {
            args.extend(["--encoder", "64,16"]);
        }
        args.extend(extra);
        let o = hourglass(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        eprintln!("{extra:?}: {}", err.trim());
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{extra:?}: not one line: {err}"
        );
        assert!(err.contains(needle), "{extra:?}: '{needle}' not in: {err}");
        assert!(!out.exists(), "{extra:?}: wrote {}", out.display());
    }
}

#[test]
fn a_psd_run_writes_its_terms_atoms_and_checkpoint_and_encodes_both_ways() {
    let dir = scratch("run");
    let x = data(&dir);
    let out = dir.join("run");
    let o = hourglass(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--variant",
        "psd",
        "--encoder",
        "64,16",
        "--sparsity",
        "0.5",
        "--prediction",
        "1.0",
        "--inference-steps",
        "15",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--data",
        s(&x),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("atoms.png").is_file());
    let bytes = std::fs::read(out.join("atoms.png")).unwrap();
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let (w, h) = (reader.info().width, reader.info().height);
    // 16 atoms of 8×8, 4 to a row, each scaled up to at least 56 pixels.
    assert!(w >= 4 * 56 && h >= 4 * 56, "{w}×{h}");

    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let get = |k: &str| {
            line[k]
                .as_f64()
                .unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        let total = get("train_reconstruction") + get("train_sparsity") + get("train_prediction");
        assert!((get("train_loss") - total).abs() < 1e-9 * total.abs().max(1.0));
        let z = get("train_zero_fraction");
        assert!((0.0..=1.0).contains(&z));
        assert!(get("train_relative_prediction_error") >= 0.0);
    }

    let (spec, params) = checkpoint::load(&out.join("best.safetensors")).unwrap();
    assert_eq!(
        spec.variant,
        Variant::Psd {
            lambda: 0.5,
            gamma: 1.0,
            inference_steps: 15
        }
    );
    let names: Vec<(&str, Vec<usize>)> = params
        .layout
        .tensors()
        .map(|t| (t.name.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("encoder.0.weight", vec![16, 64]),
            ("encoder.0.bias", vec![16]),
            ("encoder.2.weight", vec![16]),
            ("decoder.0.weight", vec![64, 16]),
        ]
    );
    let bytes = std::fs::read(out.join("best.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut stored: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "decoder.0.weight",
            "encoder.0.bias",
            "encoder.0.weight",
            "encoder.2.weight"
        ]
    );

    let (f, h) = (dir.join("f.npy"), dir.join("h.npy"));
    let model = out.join("best.safetensors");
    let o = hourglass(&[
        "encode",
        "--device",
        "cpu",
        "--model",
        s(&model),
        "--data",
        s(&x),
        "--out",
        s(&f),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = hourglass(&[
        "encode",
        "--device",
        "cpu",
        "--model",
        s(&model),
        "--data",
        s(&x),
        "--infer",
        "--out",
        s(&h),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("inferred sparse codes"), "{said}");
    let fast = read_npy(&f).unwrap();
    let sparse = read_npy(&h).unwrap();
    assert_eq!((fast.rows, fast.cols), (96, 16));
    assert_eq!((sparse.rows, sparse.cols), (96, 16));
    let zeros = sparse.values.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 0, "h* has no exact zeros");
    assert!(!fast.values.contains(&0.0), "f(x) = g ⊙ tanh(·) is dense");

    // eval scores the objective (with the training step's inference) and the code's measures.
    let o = hourglass(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        s(&model),
        "--data",
        s(&x),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for term in ["reconstruction", "sparsity", "prediction"] {
        assert!(report["terms"][term].as_f64().is_some(), "{report}");
    }
    assert!((0.0..=1.0).contains(&report["zero_fraction"].as_f64().unwrap()));
    assert!(report["relative_prediction_error"].as_f64().unwrap() >= 0.0);

    // --infer is for PSD models only, and needs at least one step.
    let plain = dir.join("plain");
    let o = hourglass(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--encoder",
        "64,8",
        "--steps",
        "2",
        "--data",
        s(&x),
        "--out",
        s(&plain),
    ]);
    assert!(o.status.success());
    let o = hourglass(&[
        "encode",
        "--device",
        "cpu",
        "--model",
        s(&plain.join("model.safetensors")),
        "--data",
        s(&x),
        "--infer",
        "--out",
        s(&dir.join("no.npy")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--infer") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!dir.join("no.npy").exists());
    let o = hourglass(&[
        "encode",
        "--device",
        "cpu",
        "--model",
        s(&model),
        "--data",
        s(&x),
        "--infer",
        "--inference-steps",
        "0",
        "--out",
        s(&dir.join("no.npy")),
    ]);
    assert_eq!(o.status.code(), Some(2));
}
