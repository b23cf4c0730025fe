#![cfg(feature = "cli")]
//! Every bad input gets a one-line error naming the file or flag and what is wrong, exit code 2,
//! no panic, and no output overwritten. `docs/bad-inputs.md` lists these cases and their
//! messages; run with `--nocapture` to print them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hourglass::data::npy::write_npy;
use hourglass::io::checkpoint;
use hourglass::model::{ModelSpec, Parameters};

/// A fresh folder per test (the tests run in parallel).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-bad-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn npy_header(descr: &str, shape: &str) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// Writes the bad files and returns (description, file name).
fn bad_files(dir: &Path) -> Vec<(&'static str, String)> {
    let mut files: Vec<(&'static str, &str, Vec<u8>)> = vec![
        ("npy: bad magic", "magic.npy", b"NOTNUMPY........".to_vec()),
        ("npy: header not a dict", "header.npy", {
            let mut v = b"\x93NUMPY\x01\x00\x10\x00".to_vec();
            v.extend_from_slice(b"garbage garbage\n");
            v
        }),
        ("npy: unknown dtype", "dtype.npy", {
            let mut v = npy_header("<c8", "(2, 2)");
            v.extend_from_slice(&[0; 32]);
            v
        }),
        ("npy: shape larger than the data", "short.npy", {
            let mut v = npy_header("<f4", "(1000, 784)");
            v.extend_from_slice(&[0; 64]);
            v
        }),
        (
            "IDX: bad magic",
            "magic-idx3-ubyte",
            vec![1, 2, 8, 1, 0, 0, 0, 1, 5],
        ),
        (
            "IDX: short data",
            "short-idx3-ubyte",
            vec![0, 0, 8, 2, 0, 0, 0, 9, 0, 0, 0, 9, 1, 2],
        ),
        ("IDX: bad dimensions", "dims-idx3-ubyte", vec![0, 0, 8, 0]),
        ("IDX: broken gzip", "broken-idx3-ubyte.gz", {
            let mut v = gz(&[0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]);
            v.truncate(v.len() / 2);
            v
        }),
        (
            "IDX: gzip bomb (over the inflate limit)",
            "bomb-idx3-ubyte.gz",
            {
                // 4 MiB of zero pixels in a few KiB; `run` caps inflating at 1 MiB.
                let mut v = vec![0, 0, 8, 2, 0, 0, 16, 0, 0, 0, 4, 0];
                v.resize(12 + (4 << 20), 0);
                gz(&v)
            },
        ),
        ("CSV: ragged rows", "ragged.csv", b"1,2,3\n4,5\n".to_vec()),
        (
            "CSV: non-numeric cell",
            "text.csv",
            b"1,2\n3,abc\n".to_vec(),
        ),
        ("CSV: NaN in the data", "nan.csv", b"1,2\nnan,3\n".to_vec()),
        ("unknown format", "data.xyz", b"1 2 3".to_vec()),
    ];
    files.push(("empty data set", "empty.csv", b"a,b\n".to_vec()));
    files
        .into_iter()
        .map(|(what, name, bytes)| {
            std::fs::write(dir.join(name), bytes).expect("write bad file");
            (what, name.to_string())
        })
        .collect()
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        // Small enough for the gzip bomb to hit, far above every other fixture.
        .env("HOURGLASS_MAX_READ_BYTES", (1 << 20).to_string())
        .output()
        .expect("run hourglass");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(what: &str, args: &[&str], needle: &str, out_dir: &Path, sentinel: &[u8]) {
    let (code, err) = run(args);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
        .to_string();
    eprintln!("| {what} | `{line}` |");
    assert_eq!(code, Some(2), "{what}: exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert!(
        line.contains(needle),
        "{what}: '{line}' should mention '{needle}'"
    );
    let kept = std::fs::read(out_dir.join("model.safetensors")).expect("sentinel stays");
    assert_eq!(
        kept, sentinel,
        "{what}: the previous checkpoint was overwritten"
    );
}

#[test]
fn bad_files_and_flags_are_refused_clearly_and_overwrite_nothing() {
    let dir = scratch("refused");
    // A finished run whose checkpoint must survive every failed command aimed at its folder.
    let out = dir.join("run");
    std::fs::create_dir_all(&out).expect("out");
    let spec = ModelSpec::mirrored(&[6, 3]);
    checkpoint::save(
        &out.join("model.safetensors"),
        &spec,
        &Parameters::init(&spec, 1),
    )
    .expect("sentinel");
    let sentinel = std::fs::read(out.join("model.safetensors")).expect("read sentinel");
    let o = out.to_str().expect("utf-8");

    for (what, name) in bad_files(&dir) {
        let path = dir.join(&name);
        let p = path.to_str().expect("utf-8");
        check(
            what,
            &["train", "--data", p, "--device", "cpu", "--out", o],
            &name,
            &out,
            &sentinel,
        );
    }

    let good = dir.join("good.npy");
    write_npy(&good, 30, 6, &common::random(180, 0.0, 1.0, 2)).expect("good");
    let g = good.to_str().expect("utf-8");
    let base = ["train", "--data", g, "--device", "cpu", "--out", o];
    for (what, extra, needle) in [
        (
            "data width ≠ model input",
            &["--encoder", "7,3"][..],
            "input size",
        ),
        ("zero layer size", &["--encoder", "6,0"], "positive"),
        (
            "--drop-last with a batch larger than the data set",
            &["--batch-size", "31", "--drop-last"],
            "larger than the data set",
        ),
        (
            "--accumulate 0",
            &["--accumulate", "0"],
            "--accumulate must be at least 1",
        ),
        (
            "--accumulate K with K × --batch-size larger than the data set",
            &["--accumulate", "2", "--batch-size", "16"],
            "lower --accumulate or --batch-size",
        ),
        (
            "--accumulate above 1 with mixed precision",
            &[
                "--accumulate",
                "2",
                "--batch-size",
                "8",
                "--precision",
                "mixed-emulated",
            ],
            "not supported with --accumulate above 1",
        ),
        (
            "--accumulate above 1 with --sparsity-target",
            &[
                "--accumulate",
                "2",
                "--batch-size",
                "8",
                "--variant",
                "sparse",
                "--sparsity-target",
                "0.05",
                "--code-activation",
                "sigmoid",
            ],
            "(--sparsity-target)",
        ),
        (
            "--reduce-precision other than f32 or f16",
            &["--reduce-precision", "bf16"],
            "--reduce-precision: unknown reduce precision 'bf16' (expected f32 or f16)",
        ),
        (
            "--reduce-buckets neither a size in KiB nor off",
            &["--reduce-buckets", "1MB"],
            "--reduce-buckets: '1MB' is neither a bucket size in KiB nor off",
        ),
        (
            "negative sparsity λ",
            &["--variant", "sparse", "--sparsity", "-1"],
            "≥ 0",
        ),
        (
            "noise ν outside [0, 1)",
            &["--variant", "denoising", "--noise", "mask:1.5"],
            "[0, 1)",
        ),
        (
            "VAE without a latent layer",
            &["--variant", "vae", "--encoder", "6"],
            "encoder",
        ),
        (
            "tied weights, non-mirror decoder",
            &["--tied", "--encoder", "6,3", "--decoder", "3,4,6"],
            "mirror",
        ),
        ("negative learning rate", &["--lr", "-1"], "learning rate"),
        ("unknown activation", &["--activation", "swish"], "swish"),
        (
            "BCE with identity output",
            &["--output-activation", "identity"],
            "sigmoid",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        check(what, &args, needle, &out, &sentinel);
    }

    // Checkpoints that are not what they claim.
    let ckpt_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "checkpoint: not safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json".to_vec(),
            "safetensors",
        ),
        (
            "checkpoint: no spec metadata",
            {
                let views: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
                safetensors::serialize(views, None).expect("empty")
            },
            "hourglass.spec",
        ),
    ];
    let ckpt_cases = [ckpt_cases, lying_checkpoints(&spec)].concat();
    for (what, bytes, needle) in ckpt_cases {
        let path = dir.join("bad.safetensors");
        std::fs::write(&path, bytes).expect("write");
        let p = path.to_str().expect("utf-8");
        check(
            what,
            &[
                "train", "--data", g, "--init", p, "--device", "cpu", "--out", o,
            ],
            needle,
            &out,
            &sentinel,
        );
    }
}

/// Checkpoints with the right framing but contents that contradict their spec.
fn lying_checkpoints(spec: &ModelSpec) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    use safetensors::{Dtype, tensor::TensorView};
    use std::collections::HashMap;
    let params = Parameters::init(spec, 1);
    let tensors = |edit: &dyn Fn(&str, &[usize]) -> Option<(Dtype, Vec<usize>)>,
                   extra: bool,
                   spec_json: String| {
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for t in params.layout.tensors() {
            let Some((dtype, shape)) = edit(&t.name, &t.shape) else {
                continue;
            };
            let n: usize = shape.iter().product();
            let width = if dtype == Dtype::F64 { 8 } else { 4 };
            owned.push((t.name.clone(), dtype, shape, vec![0u8; n * width]));
        }
        if extra {
            owned.push(("extra.weight".into(), Dtype::F32, vec![2], vec![0; 8]));
        }
        let views: Vec<(String, TensorView)> = owned
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
            .collect();
        let meta = HashMap::from([("hourglass.spec".to_string(), spec_json)]);
        safetensors::serialize(views, Some(meta)).expect("serialize")
    };
    let json = spec.to_json();
    let same = |_: &str, s: &[usize]| Some((Dtype::F32, s.to_vec()));
    // Two tensors claiming the same bytes.
    let overlapping = {
        let header = r#"{"encoder.0.weight":{"dtype":"F32","shape":[3,6],"data_offsets":[0,72]},"encoder.0.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#;
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(&[0; 72]);
        v
    };
    vec![
        (
            "checkpoint: wrong dtype",
            tensors(
                &|n, s| {
                    Some((
                        if n == "encoder.0.weight" {
                            Dtype::F64
                        } else {
                            Dtype::F32
                        },
                        s.to_vec(),
                    ))
                },
                false,
                json.clone(),
            ),
            "F64",
        ),
        (
            "checkpoint: shape ≠ spec",
            tensors(
                &|n, s| {
                    Some((
                        Dtype::F32,
                        if n == "encoder.0.weight" {
                            vec![2, 6]
                        } else {
                            s.to_vec()
                        },
                    ))
                },
                false,
                json.clone(),
            ),
            "shape",
        ),
        (
            "checkpoint: missing tensor",
            tensors(
                &|n, s| (n != "decoder.0.bias").then(|| (Dtype::F32, s.to_vec())),
                false,
                json.clone(),
            ),
            "missing",
        ),
        (
            "checkpoint: extra tensor",
            tensors(&same, true, json.clone()),
            "extra.weight",
        ),
        (
            "checkpoint: unknown spec version",
            tensors(
                &same,
                false,
                json.replace("\"version\":1", "\"version\":99"),
            ),
            "version",
        ),
        (
            "checkpoint: overlapping offsets",
            overlapping,
            "safetensors",
        ),
    ]
}

#[test]
fn allow_nonfinite_drops_the_bad_rows_with_a_warning() {
    let dir = scratch("allow");
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("x.csv");
    let mut text = String::from("a,b,c\n");
    for i in 0..20 {
        text.push_str(&format!(
            "{},{},0.5\n",
            i as f32 / 20.0,
            if i == 7 { "inf" } else { "0.25" }
        ));
    }
    std::fs::write(&csv, text).expect("csv");
    let out = Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args([
            "train",
            "--device",
            "cpu",
            "--encoder",
            "3,2",
            "--batch-size",
            "4",
            "--steps",
            "3",
        ])
        .arg("--data")
        .arg(&csv)
        .arg("--allow-nonfinite")
        .arg("--out")
        .arg(dir.join("run"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dropping 1 of 20 rows"), "{err}");
}
