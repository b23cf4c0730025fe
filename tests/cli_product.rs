//! The `hourglass` command line as a user meets it: the bundled default, every command on small
//! fixtures, resuming, config files, metrics, pictures and errors. CPU device throughout except
//! one small GPU run.
#![cfg(feature = "cli")]

mod common;

use common::cli::hourglass;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hourglass::data::npy::{read_npy, write_npy};
use hourglass::viz::{GAP, MIN_TILE, PAD};
use safetensors::SafeTensors;
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-product-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `rows × cols` values in [0, 1) written as `.npy`.
fn fixture(dir: &Path, name: &str, rows: usize, cols: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    write_npy(
        &path,
        rows,
        cols,
        &common::random(rows * cols, 0.0, 1.0, seed),
    )
    .expect("fixture");
    path
}

/// Runs `hourglass args` and returns its stdout, failing the test with stderr if it failed.
fn ok(args: &[&str]) -> String {
    let out = hourglass(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hourglass {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `hourglass args`, which must fail with exit code 2 and an `error:` line containing
/// `needle`, without panicking.
fn fails(args: &[&str], needle: &str) {
    let out = hourglass(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains("error"), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: '{err}' should mention '{needle}'"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

/// Every tensor of a safetensors file, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

fn png_size(path: &Path) -> (u32, u32, png::ColorType) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let info = reader.info();
    (info.width, info.height, info.color_type)
}

fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("'{l}' is not JSON: {e}")))
        .collect()
}

/// Checks that a `w × h` figure holds `columns × rows` tiles of `side` pixels scaled up to at
/// least `MIN_TILE`, with room for text (title, labels, captions) but not for another row.
fn assert_grid((w, h): (u32, u32), columns: u32, rows: u32, side: u32) {
    let tile = side * (MIN_TILE as u32).div_ceil(side);
    let (gap, pad) = (GAP as u32, PAD as u32);
    let span = |n: u32| n * tile + (n - 1) * gap + 2 * pad;
    assert!(w >= span(columns), "{w} wide for {columns} tiles of {tile}");
    assert!(h >= span(rows), "{h} high for {rows} rows of {tile}");
    assert!(h < span(rows + 1), "{h} high: more than {rows} rows");
}

#[test]
fn default_train_uses_the_bundled_fashion_mnist() {
    let dir = scratch("default");
    let out = dir.join("run");
    let o = hourglass(&["train", "--steps", "3", "--device", "cpu", "--out", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches("Zalando").count(),
        1,
        "the licence notice, once: {err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("10000 rows × 784 features"), "{stdout}");
    for file in [
        "model.safetensors",
        "best.safetensors",
        "train_state.safetensors",
        "metrics.jsonl",
        "config.toml",
        "loss.png",
        "reconstructions.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("dataset = \"bundled\""), "{config}");
    assert!(config.contains("encoder = [784, 256, 32]"), "{config}");
    // 2×16 tiles of 28×28 (drawn 56×56): inputs above reconstructions.
    let (w, h, color) = png_size(&out.join("reconstructions.png"));
    assert_eq!(color, png::ColorType::Grayscale);
    assert_grid((w, h), 16, 2, 28);
    assert_eq!(
        png_size(&out.join("loss.png")),
        (800, 500, png::ColorType::Rgb)
    );
    let lines = metrics(&out);
    assert_eq!(lines.len(), 1, "one (partial) epoch");
    assert_eq!(
        (lines[0]["epoch"].as_u64(), lines[0]["step"].as_u64()),
        (Some(1), Some(3))
    );
}

#[test]
fn every_command_on_a_small_fixture() {
    let dir = scratch("commands");
    let data = fixture(&dir, "x.npy", 64, 64, 1);
    let run = dir.join("run");
    let (d, r) = (s(&data), s(&run));
    ok(&[
        "train",
        "--data",
        d,
        "--encoder",
        "64,16,4",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--out",
        r,
        "--quiet",
    ]);
    let model = run.join("model.safetensors");
    let m = s(&model);

    let text = ok(&["eval", "--model", m, "--data", d, "--device", "cpu"]);
    assert!(text.contains("reconstruction"), "{text}");
    let json: Value = serde_json::from_str(&ok(&[
        "eval", "--model", m, "--data", d, "--device", "cpu", "--json",
    ]))
    .expect("eval --json prints one JSON object");
    assert_eq!(json["rows"], 64);
    let terms = json["terms"].as_object().expect("terms");
    let sum: f64 = terms.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((json["loss"].as_f64().unwrap() - sum).abs() < 1e-9 * sum.abs().max(1.0));

    let codes = dir.join("codes.npy");
    ok(&[
        "encode",
        "--model",
        m,
        "--data",
        d,
        "--out",
        s(&codes),
        "--device",
        "cpu",
    ]);
    let c = read_npy(&codes).unwrap();
    assert_eq!((c.rows, c.cols), (64, 4));

    let (recon, grid_png) = (dir.join("recon.npy"), dir.join("recon.png"));
    ok(&[
        "reconstruct",
        "--model",
        m,
        "--data",
        d,
        "--out",
        s(&recon),
        "--png",
        s(&grid_png),
        "--device",
        "cpu",
    ]);
    let y = read_npy(&recon).unwrap();
    assert_eq!((y.rows, y.cols), (64, 64));
    assert!(
        y.values.iter().all(|v| (0.0..=1.0).contains(v)),
        "sigmoid outputs"
    );
    let (w, h, _) = png_size(&grid_png);
    assert_grid((w, h), 16, 2, 8);

    // Interpolation works for any autoencoder; random sampling needs a VAE.
    let walk = dir.join("walk.png");
    ok(&[
        "sample",
        "--model",
        m,
        "--interpolate",
        "0,5",
        "--n",
        "6",
        "--data",
        d,
        "--png",
        s(&walk),
        "--device",
        "cpu",
    ]);
    let (w, h, _) = png_size(&walk);
    assert_grid((w, h), 6, 1, 8);
    fails(
        &[
            "sample",
            "--model",
            m,
            "--png",
            s(&dir.join("no.png")),
            "--device",
            "cpu",
        ],
        "VAE",
    );
    assert!(!dir.join("no.png").exists());

    // A named tensor of a safetensors file is data too.
    let st = dir.join("x.safetensors");
    let values = read_npy(&data).unwrap().values;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels = [0u8; 64];
    let file = safetensors::serialize(
        [
            (
                "images",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![64, 8, 8],
                    &bytes,
                )
                .unwrap(),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![64], &labels)
                    .unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    std::fs::write(&st, file).unwrap();
    let from_st: Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        m,
        "--data",
        &format!("{}:images", s(&st)),
        "--device",
        "cpu",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        from_st["loss"], json["loss"],
        "the same rows give the same loss"
    );
    fails(
        &["eval", "--model", m, "--data", s(&st), "--device", "cpu"],
        "several tensors",
    );
}

#[test]
fn vae_samples_draw_a_grid_and_are_seeded() {
    let dir = scratch("vae");
    let data = fixture(&dir, "x.npy", 48, 64, 2);
    let run = dir.join("vae");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--variant",
        "vae",
        "--encoder",
        "64,16,4",
        "--steps",
        "10",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        s(&run),
        "--quiet",
    ]);
    let m = run.join("model.safetensors");
    let (png, a, b) = (dir.join("s.png"), dir.join("a.npy"), dir.join("b.npy"));
    ok(&[
        "sample",
        "--model",
        s(&m),
        "--n",
        "9",
        "--png",
        s(&png),
        "--out",
        s(&a),
        "--device",
        "cpu",
    ]);
    let (w, h, color) = png_size(&png);
    assert_eq!(color, png::ColorType::Grayscale);
    assert_grid((w, h), 3, 3, 8);
    ok(&[
        "sample",
        "--model",
        s(&m),
        "--n",
        "9",
        "--out",
        s(&b),
        "--device",
        "cpu",
    ]);
    assert_eq!(
        read_npy(&a).unwrap(),
        read_npy(&b).unwrap(),
        "same seed, same samples"
    );
    ok(&[
        "sample",
        "--model",
        s(&m),
        "--n",
        "9",
        "--seed",
        "1",
        "--out",
        s(&b),
        "--device",
        "cpu",
    ]);
    let (x, y) = (read_npy(&a).unwrap(), read_npy(&b).unwrap());
    assert_eq!((x.rows, x.cols), (9, 64));
    assert_ne!(x, y, "another seed, other samples");
    let text = ok(&[
        "eval",
        "--model",
        s(&m),
        "--data",
        s(&data),
        "--device",
        "cpu",
    ]);
    assert!(text.contains("kl"), "a VAE reports its KL term: {text}");
}

#[test]
fn resume_continues_exactly_where_the_run_stopped() {
    let dir = scratch("resume");
    let data = fixture(&dir, "x.npy", 96, 12, 3);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            s(&data),
            "--encoder",
            "12,6,3",
            "--batch-size",
            "18",
            "--val-split",
            "0.25",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        ok(&args);
    };
    // 72 training rows at batch 18: 4 steps per epoch, 12 steps in 3 epochs.
    let whole = dir.join("whole");
    train(&whole, &["--epochs", "3"]);
    let reference = tensors(&whole.join("model.safetensors"));
    let reference_metrics = metrics(&whole);
    assert_eq!(reference_metrics.len(), 3);

    // One epoch, then resumed to three: --epochs counts the whole run.
    let split = dir.join("split");
    train(&split, &["--epochs", "1"]);
    let after_one = split.join("saved_state.safetensors");
    std::fs::copy(split.join("train_state.safetensors"), &after_one).unwrap();
    ok(&["train", "--resume", s(&split), "--epochs", "3", "--quiet"]);
    assert_eq!(tensors(&split.join("model.safetensors")), reference);
    let resumed = metrics(&split);
    assert_eq!(resumed.len(), 3);
    for (a, b) in resumed.iter().zip(&reference_metrics) {
        for key in ["epoch", "step", "train_loss", "val_loss", "lr"] {
            assert_eq!(a[key], b[key], "{key}");
        }
    }

    // Stopped mid-epoch with periodic checkpoints, then resumed with no new flags... after
    // raising the target: the resumed run reads its config.toml.
    let mid = dir.join("mid");
    train(&mid, &["--steps", "6", "--checkpoint-every", "4"]);
    ok(&["train", "--resume", s(&mid), "--steps", "12", "--quiet"]);
    assert_eq!(tensors(&mid.join("model.safetensors")), reference);

    // A crash after step 4 of a finished run's folder: its state rolls back to the epoch-1
    // checkpoint; metrics lines written after it are dropped and written again.
    let crashed = dir.join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    for f in ["config.toml", "metrics.jsonl"] {
        std::fs::copy(whole.join(f), crashed.join(f)).unwrap();
    }
    std::fs::copy(&after_one, crashed.join("train_state.safetensors")).unwrap();
    ok(&["train", "--resume", s(&crashed), "--quiet"]);
    assert_eq!(tensors(&crashed.join("model.safetensors")), reference);
    assert_eq!(metrics(&crashed).len(), 3, "no epoch twice");

    // Nothing left to do is not an error; going backwards is.
    ok(&["train", "--resume", s(&split), "--quiet"]);
    fails(
        &["train", "--resume", s(&split), "--epochs", "1"],
        "more than",
    );
    fails(
        &["train", "--resume", s(&dir.join("nothing"))],
        "config.toml",
    );
}

#[test]
fn config_round_trips_through_config_toml() {
    let dir = scratch("config");
    let data = fixture(&dir, "x.npy", 40, 10, 4);
    let a = dir.join("a");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--encoder",
        "10,6,3",
        "--activation",
        "tanh",
        "--loss",
        "mse",
        "--output-activation",
        "identity",
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--weight-decay",
        "0.01",
        "--schedule",
        "cosine",
        "--warmup",
        "2",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--normalize",
        "standard",
        "--val-split",
        "0.2",
        "--variant",
        "denoising",
        "--noise",
        "gaussian:0.1",
        "--clip-grad-norm",
        "5",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        s(&a),
    ]);
    let config = std::fs::read_to_string(a.join("config.toml")).unwrap();
    for line in [
        "lr = 0.003",
        "normalize = \"standard\"",
        "noise = \"gaussian:0.1\"",
        "epochs = 2",
        "clip-grad-norm = 5.0",
    ] {
        assert!(
            config.contains(line),
            "config.toml lacks '{line}':\n{config}"
        );
    }
    let b = dir.join("b");
    ok(&[
        "train",
        "--config",
        s(&a.join("config.toml")),
        "--out",
        s(&b),
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read_to_string(b.join("config.toml")).unwrap(),
        config
    );
    assert_eq!(
        tensors(&b.join("model.safetensors")),
        tensors(&a.join("model.safetensors"))
    );
    assert!(b.join("normalization.json").is_file());

    // A flag on the command line wins over the file; the rest stays.
    let c = dir.join("c");
    ok(&[
        "train",
        "--config",
        s(&a.join("config.toml")),
        "--seed",
        "6",
        "--steps",
        "3",
        "--out",
        s(&c),
        "--quiet",
    ]);
    let changed = std::fs::read_to_string(c.join("config.toml")).unwrap();
    let diff: Vec<(&str, &str)> = config
        .lines()
        .zip(changed.lines())
        .filter(|(x, y)| x != y)
        .collect();
    assert_eq!(
        diff,
        [("epochs = 2", "steps = 3"), ("seed = 5", "seed = 6")],
        "{changed}"
    );

    // A hand-written file: relative paths are relative to it, unknown keys are errors.
    let sub = dir.join("configs");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        sub.join("small.toml"),
        "data = \"../x.npy\"\nencoder = [10, 4]\nsteps = 2\nbatch-size = 8\ndevice = \"cpu\"\n",
    )
    .unwrap();
    ok(&[
        "train",
        "--config",
        s(&sub.join("small.toml")),
        "--out",
        s(&dir.join("d")),
        "--quiet",
    ]);
    std::fs::write(sub.join("bad.toml"), "bogus = 1\n").unwrap();
    fails(
        &["train", "--config", s(&sub.join("bad.toml"))],
        "unknown key 'bogus'",
    );
    std::fs::write(sub.join("typo.toml"), "batch-size = \"big\"\n").unwrap();
    fails(
        &["train", "--config", s(&sub.join("typo.toml"))],
        "batch-size",
    );
    std::fs::write(sub.join("broken.toml"), "encoder = [10,\n").unwrap();
    fails(&["train", "--config", s(&sub.join("broken.toml"))], "TOML");
}

#[test]
fn metrics_early_stop_and_quiet() {
    let dir = scratch("metrics");
    let data = fixture(&dir, "x.npy", 60, 9, 5);
    let run = dir.join("run");
    let o = hourglass(&[
        "train",
        "--data",
        s(&data),
        "--encoder",
        "9,3",
        "--batch-size",
        "10",
        "--epochs",
        "3",
        "--val-split",
        "0.2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        s(&run),
    ]);
    assert!(o.status.success());
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "--quiet prints nothing"
    );
    let lines = metrics(&run);
    assert_eq!(lines.len(), 3, "one line per epoch");
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(
        text.starts_with("{\"epoch\":1,\"step\":5,\"train_loss\":"),
        "{text}"
    );
    for (k, line) in lines.iter().enumerate() {
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let expected = [
            "elapsed_s",
            "epoch",
            "lr",
            "samples_per_sec",
            "skipped_steps",
            "step",
            "train_loss",
            "train_reconstruction",
            "val_loss",
            "val_reconstruction",
        ];
        assert_eq!(keys, expected);
        assert_eq!(line["epoch"], k as u64 + 1);
        assert_eq!(
            line["step"],
            5 * (k as u64 + 1),
            "48 training rows, batch 10: four full steps and one of the last 8 rows"
        );
        assert_eq!(line["lr"], 0.001);
        assert!(line["samples_per_sec"].as_f64().unwrap() > 0.0);
    }
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["elapsed_s"].as_f64() <= w[1]["elapsed_s"].as_f64())
    );

    // A learning rate too small to move any weight: the loss never improves, so training
    // stops after the patience runs out, and the best epoch is the first.
    let stuck = dir.join("stuck");
    let text = ok(&[
        "train",
        "--data",
        s(&data),
        "--encoder",
        "9,3",
        "--batch-size",
        "10",
        "--epochs",
        "20",
        "--val-split",
        "0.2",
        "--early-stop",
        "2",
        "--lr",
        "1e-30",
        "--device",
        "cpu",
        "--out",
        s(&stuck),
    ]);
    assert!(text.contains("early stop"), "{text}");
    assert_eq!(metrics(&stuck).len(), 3);
    assert!(
        text.contains("at epoch 1"),
        "the best epoch is the first: {text}"
    );
    assert!(stuck.join("best.safetensors").is_file());
}

#[test]
fn named_data_set_trains_on_train_and_validates_on_test() {
    // A miniature MNIST-format folder: 8×8 images, train split gzipped, test split plain.
    use std::io::Write;
    let dir = scratch("named");
    let idx = |n: u32, seed: u64| {
        let mut out = vec![0, 0, 8, 3];
        for d in [n, 8, 8] {
            out.extend(d.to_be_bytes());
        }
        out.extend(
            common::random(n as usize * 64, 0.0, 255.0, seed)
                .iter()
                .map(|&v| v as u8),
        );
        out
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&idx(40, 6)).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(12, 7)).unwrap();
    let run = dir.join("run");
    let text = ok(&[
        "train",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&dir),
        "--encoder",
        "64,8",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        s(&run),
    ]);
    assert!(
        text.contains("40 rows × 64 features") && text.contains("validating on 12 rows"),
        "{text}"
    );
    assert!(metrics(&run)[0].get("val_loss").is_some());
    // The 12 validation rows are shown, not 16 training rows.
    let (w, h, _) = png_size(&run.join("reconstructions.png"));
    assert_grid((w, h), 12, 2, 8);
    let tile_span = |n: u32| n * 56 + (n - 1) * GAP as u32;
    assert!(
        w < tile_span(13) + 2 * PAD as u32 + 120,
        "{w} wide: more than 12 tiles"
    );
    fails(
        &["train", "--dataset", "fashion-mnist", "--data-dir", s(&run)],
        "dataset-fashion-mnist",
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = scratch("errors");
    let data = fixture(&dir, "x.npy", 30, 6, 8);
    let d = s(&data);
    let base = [
        "train",
        "--data",
        d,
        "--encoder",
        "6,3",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "10",
    ];
    fn join<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let val = fixture(&dir, "v.npy", 5, 7, 9);
    fails(
        &join(&base, &["--normalize", "zscore"]),
        "unknown normalization",
    );
    fails(&join(&base, &["--val-split", "1.5"]), "--val-split");
    fails(&join(&base, &["--val", s(&val)]), "validation data has 7");
    fails(&join(&base, &["--early-stop", "0"]), "at least 1");
    fails(&join(&base, &["--clip-grad-norm", "-1"]), "clip-grad-norm");
    fails(
        &join(&base, &["--on-nonfinite", "ignore"]),
        "unknown --on-nonfinite",
    );
    fails(&join(&base, &["--schedule", "linear"]), "unknown schedule");
    fails(
        &["train", "--dataset", "cifar", "--device", "cpu"],
        "unknown data set",
    );
    fails(
        &[
            "train",
            "--data",
            s(&dir.join("missing.npy")),
            "--device",
            "cpu",
        ],
        "missing.npy",
    );
    fails(
        &["eval", "--model", d, "--data", d, "--device", "cpu"],
        "x.npy",
    );
    let odd = dir.join("odd");
    ok(&join(&base, &["--steps", "2", "--out", s(&odd)]));
    assert!(
        odd.join("reconstructions.npy").is_file(),
        "non-square rows give .npy, not .png"
    );
    assert!(!odd.join("reconstructions.png").exists());
    let m = odd.join("model.safetensors");
    fails(
        &[
            "reconstruct",
            "--model",
            s(&m),
            "--data",
            d,
            "--png",
            s(&dir.join("r.png")),
            "--device",
            "cpu",
        ],
        "square images",
    );
    fails(
        &[
            "sample",
            "--model",
            s(&m),
            "--interpolate",
            "0,99",
            "--data",
            d,
            "--out",
            s(&dir.join("w.npy")),
            "--device",
            "cpu",
        ],
        "past the end",
    );
}

#[test]
fn train_and_eval_on_the_gpu_device() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("gpu");
    let data = fixture(&dir, "x.npy", 48, 64, 10);
    let run = dir.join("run");
    let text = ok(&[
        "train",
        "--data",
        s(&data),
        "--encoder",
        "64,8",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--val-split",
        "0.25",
        "--device",
        "gpu",
        "--out",
        s(&run),
    ]);
    assert!(text.contains("GPU"), "{text}");
    assert_eq!(metrics(&run).len(), 2);
    let m = run.join("model.safetensors");
    let gpu: Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&m),
        "--data",
        s(&data),
        "--device",
        "gpu",
        "--json",
    ]))
    .unwrap();
    let cpu: Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&m),
        "--data",
        s(&data),
        "--device",
        "cpu",
        "--json",
    ]))
    .unwrap();
    let (g, c) = (gpu["loss"].as_f64().unwrap(), cpu["loss"].as_f64().unwrap());
    assert!((g - c).abs() <= 1e-4 * c.abs(), "GPU {g} vs CPU {c}");
}

#[test]
fn precision_mixed_falls_back_with_a_note_and_mixed_emulated_trains() {
    let dir = scratch("precision");
    let data = fixture(&dir, "x.npy", 48, 20, 12);
    let run = |precision: &str, device: &str, out: &Path| {
        hourglass(&[
            "train",
            "--data",
            s(&data),
            "--encoder",
            "20,6",
            "--batch-size",
            "16",
            "--epochs",
            "2",
            "--precision",
            precision,
            "--device",
            device,
            "--out",
            s(out),
        ])
    };
    // No tensor cores on the CPU: a note says so and the run is an f32 run.
    let f32_run = dir.join("f32");
    let out = run("mixed", "cpu", &f32_run);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("training in f32"), "{err}");
    assert!(!tensors(&f32_run.join("train_state.safetensors")).contains_key("loss_scale"));
    assert!(metrics(&f32_run)[0].get("loss_scale").is_none());

    // Emulated mixed precision keeps its loss scale in the metrics and the training state.
    let mixed_run = dir.join("mixed");
    let out = run("mixed-emulated", "cpu", &mixed_run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = metrics(&mixed_run);
    let scale = m[1]["loss_scale"].as_f64().expect("loss_scale in metrics");
    assert!(scale > 0.0 && scale.log2().fract() == 0.0, "{scale}");
    assert!(m[1]["overflow_steps"].as_u64().is_some());
    assert!(tensors(&mixed_run.join("train_state.safetensors")).contains_key("loss_scale"));
    let config = std::fs::read_to_string(mixed_run.join("config.toml")).expect("config.toml");
    assert!(
        config.contains("precision = \"mixed-emulated\""),
        "{config}"
    );

    fails(
        &["train", "--data", s(&data), "--precision", "f8"],
        "--precision",
    );
}

#[test]
fn info_says_whether_mixed_precision_runs_on_tensor_cores() {
    let text = ok(&["info"]);
    assert!(text.contains("CPU: the reference executor"), "{text}");
    // How the CPU executor runs here: the GEMM this build links (or the gemm crate where
    // OpenBLAS chose kernels below this CPU) and the element-wise kernels' vector width.
    let cpu = format!(
        "{} products, {} element-wise kernels",
        hourglass::cpu::gemm::f32_products(),
        hourglass::cpu::vmath::widest_available()
    );
    assert!(text.contains(&cpu), "{text}");
    if let Some(ctx) = common::gpu() {
        assert!(text.contains(&ctx.adapter.name), "{text}");
        let want = if ctx.has_f16_matrix_units() {
            "mixed precision: f16 cooperative matrices (tensor cores)"
        } else {
            "mixed precision: no f16 cooperative matrices: --precision mixed falls back to f32"
        };
        assert!(text.contains(want), "{text}");
    }
}

#[test]
fn bench_profile_says_where_the_cpu_step_goes() {
    let cae = |extra: &[&str]| {
        let base = [
            "bench",
            "--workload",
            "cae",
            "--device",
            "cpu",
            "--seconds",
            "0.1",
            "--json",
        ];
        ok(&[&base[..], extra].concat())
    };
    let text = cae(&["--max-steps", "3", "--profile"]);
    let row: Value = text
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("a JSON row: {text}"));
    let ops = row["ops"]
        .as_array()
        .unwrap_or_else(|| panic!("ops: {row}"));
    let steps = row["steps"].as_u64().unwrap_or_default();
    let label = |o: &Value| o["op"].as_str().unwrap_or_default().to_string();
    // cae: two forward products, three backward ones, the contractive penalty, Adam.
    let products: Vec<String> = ops
        .iter()
        .map(label)
        .filter(|l| l.starts_with("matmul"))
        .collect();
    assert_eq!(products.len(), 5, "{products:?}");
    assert!(
        products[0].starts_with("matmul 256x784 · (1024x784)ᵀ -> 256x1024, bias + sigmoid"),
        "{products:?}"
    );
    for name in ["ContractiveClosedForm", "ReconstructionLoss", "Adam"] {
        assert!(ops.iter().any(|o| label(o) == name), "{name} in {ops:?}");
    }
    let mut total = 0.0;
    for o in ops {
        assert_eq!(
            o["calls"].as_u64(),
            Some(steps),
            "every op ran once per timed step: {o}"
        );
        let (min, mean) = (
            o["min_ms"].as_f64().unwrap_or(-1.0),
            o["mean_ms"].as_f64().unwrap_or(-1.0),
        );
        assert!(0.0 <= min && min <= mean, "{o}");
        total += mean;
    }
    // The ops are the step: their mean times add up to no more than a step took.
    let ms_per_step = row["ms_per_step"].as_f64().unwrap_or_default();
    assert!(
        total > 0.0 && total <= ms_per_step * 1.01,
        "{total} ms of ops vs {ms_per_step} ms/step"
    );
    // Without --profile the rows carry no ops.
    let plain = cae(&["--max-steps", "2"]);
    assert!(!plain.contains("\"ops\""), "{plain}");
}
