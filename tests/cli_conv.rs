#![cfg(feature = "cli")]
//! Convolutional models through the command line: bad encoder strings and mismatched data are
//! one-line errors naming the token (exit 2, nothing written), and a conv model trains, and
//! works with every analysis command (`encode --binary`, `reconstruct`, `tangents`,
//! `neighbors`, and for a conv VAE `sample` and `traverse`), on the CPU.

mod common;

use common::cli::hourglass;

use std::path::{Path, PathBuf};

use hourglass::data::npy::{read_npy, write_npy};
use hourglass::io::checkpoint;
use hourglass::{ModelSpec, Parameters};

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hourglass-cli-conv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn ok(args: &[&str]) -> String {
    let out = hourglass(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {err}");
    format!("{}{err}", String::from_utf8_lossy(&out.stdout))
}

#[test]
fn bad_conv_encoders_are_one_line_errors_naming_the_token_and_write_nothing() {
    let dir = scratch("refused");
    let out = dir.join("run");
    std::fs::create_dir_all(&out).expect("out");
    let spec = ModelSpec::mirrored(&[6, 3]);
    checkpoint::save(
        &out.join("model.safetensors"),
        &spec,
        &Parameters::init(&spec, 1),
    )
    .expect("sentinel");
    let sentinel = std::fs::read(out.join("model.safetensors")).expect("sentinel");
    let data = dir.join("x.npy");
    write_npy(&data, 30, 6, &common::random(180, 0.0, 1.0, 2)).expect("data");
    let base = [
        "train",
        "--data",
        s(&data),
        "--device",
        "cpu",
        "--out",
        s(&out),
        "--steps",
        "1",
    ];
    for (what, extra, needles) in [
        (
            "data width ≠ C×H×W",
            &["--encoder", "1x2x4,conv2,3"][..],
            &["'1x2x4'", "8 values per row", "6 features"][..],
        ),
        (
            "conv without channels",
            &["--encoder", "1x2x3,conv0,3"],
            &["'conv0'", "channel count"],
        ),
        (
            "kernel 0",
            &["--encoder", "1x2x3,conv16k0,3"],
            &["'conv16k0'", "kernel size"],
        ),
        (
            "stride 0",
            &["--encoder", "1x2x3,conv16s0,3"],
            &["'conv16s0'", "stride"],
        ),
        (
            "malformed conv token",
            &["--encoder", "1x2x3,conv16q,3"],
            &["'conv16q'", "convOkKsS"],
        ),
        (
            "zero in the input shape",
            &["--encoder", "3x0x28,conv4,3"],
            &["'3x0x28'", "height"],
        ),
        (
            "conv after dense",
            &["--encoder", "1x2x3,4,conv2"],
            &["token 3", "conv2k3s1", "before the dense"],
        ),
        (
            "conv without an input shape",
            &["--encoder", "6,conv2,3"],
            &["'conv2k3s1'", "input shape first"],
        ),
        (
            "shape not first",
            &["--encoder", "6,1x2x3,3"],
            &["'1x2x3'", "first token"],
        ),
        (
            "fully convolutional VAE",
            &["--encoder", "1x2x3,conv2", "--variant", "vae"],
            &["latent size"],
        ),
        (
            "exact contractive penalty on a conv encoder",
            &["--encoder", "1x2x3,conv2,3", "--variant", "contractive"],
            &["--jacobian-projections"],
        ),
        (
            "feature maps too large to address",
            &["--encoder", "1x4000000000x4000000000,conv2"],
            &["1x4000000000x4000000000", "more values than any machine"],
        ),
        (
            "conv decoder not ending at the flattened conv output",
            &["--encoder", "1x2x3,conv2,3", "--decoder", "3,5"],
            &["flattened conv output 12"],
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let run = hourglass(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        eprintln!("| {what} | `{}` |", lines.first().unwrap_or(&""));
        assert_eq!(run.status.code(), Some(2), "{what}: {err}");
        assert_eq!(lines.len(), 1, "{what}: one error line: {err}");
        for n in needles {
            assert!(
                lines[0].contains(n),
                "{what}: '{}' should mention {n}",
                lines[0]
            );
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
        let kept = std::fs::read(out.join("model.safetensors")).expect("sentinel stays");
        assert_eq!(
            kept, sentinel,
            "{what}: the previous checkpoint was overwritten"
        );
        let files = std::fs::read_dir(&out).expect("out").count();
        assert_eq!(files, 1, "{what}: nothing else written");
    }
}

#[test]
fn a_conv_model_trains_and_every_analysis_command_takes_it() {
    let dir = scratch("analysis");
    let data = dir.join("x.npy");
    // 48 images of 1×8×8 in [0, 1].
    write_npy(&data, 48, 64, &common::random(48 * 64, 0.0, 1.0, 3)).expect("data");
    let d = s(&data);
    let run = dir.join("run");
    let text = ok(&[
        "train",
        "--data",
        d,
        "--device",
        "cpu",
        "--out",
        s(&run),
        "--encoder",
        "1x8x8,conv4k3s2,conv6s2,8",
        "--code-activation",
        "sigmoid",
        "--steps",
        "20",
        "--batch-size",
        "16",
    ]);
    assert!(text.contains("1x8x8→conv4k3s2→conv6k3s2→8"), "{text}");
    let model = run.join("model.safetensors");
    let (spec, params) = checkpoint::load(&model).expect("a conv checkpoint");
    assert_eq!(spec.conv.len(), 2);
    assert_eq!(
        params.get("encoder.0.weight").map(<[f32]>::len),
        Some(4 * 9)
    );
    // The resolved config rebuilds the same model.
    let again = dir.join("again");
    ok(&[
        "train",
        "--config",
        s(&run.join("config.toml")),
        "--data",
        d,
        "--out",
        s(&again),
    ]);
    let (spec2, params2) = checkpoint::load(&again.join("model.safetensors")).expect("again");
    assert_eq!(spec2, spec);
    assert_eq!(params2, params, "the config gives the same run");

    let m = s(&model);
    let codes = dir.join("codes.npy");
    ok(&[
        "encode",
        "--model",
        m,
        "--data",
        d,
        "--binary",
        "--out",
        s(&codes),
        "--device",
        "cpu",
    ]);
    let bits = read_npy(&codes).expect("bits");
    assert_eq!((bits.rows, bits.cols), (48, 1));
    let rec = dir.join("rec.npy");
    ok(&[
        "reconstruct",
        "--model",
        m,
        "--data",
        d,
        "--out",
        s(&rec),
        "--device",
        "cpu",
    ]);
    assert_eq!(read_npy(&rec).expect("rec").rows, 48);
    let tan = dir.join("tan.npy");
    ok(&[
        "tangents",
        "--model",
        m,
        "--data",
        d,
        "--rows",
        "0,5",
        "--k",
        "3",
        "--out",
        s(&tan),
        "--device",
        "cpu",
    ]);
    let t = read_npy(&tan).expect("tangents");
    assert_eq!((t.rows, t.cols), (6, 64));
    assert!(t.values.iter().any(|v| *v != 0.0));
    let text = ok(&[
        "neighbors",
        "--model",
        m,
        "--index",
        d,
        "--k",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(!text.is_empty());

    // A tied contractive conv model (projections), stopped and resumed: the resumed run ends
    // where an uninterrupted one does, bit for bit on the CPU.
    let flags = [
        "--data",
        d,
        "--device",
        "cpu",
        "--encoder",
        "1x8x8,conv3k3s2,4",
        "--tied",
        "--variant",
        "contractive",
        "--jacobian-projections",
        "2",
        "--batch-size",
        "16",
    ];
    let whole = dir.join("whole");
    let mut args = vec!["train", "--out", s(&whole), "--steps", "8"];
    args.extend_from_slice(&flags);
    ok(&args);
    let part = dir.join("part");
    let mut args = vec!["train", "--out", s(&part), "--steps", "3"];
    args.extend_from_slice(&flags);
    ok(&args);
    ok(&["train", "--resume", s(&part), "--steps", "8"]);
    let a = std::fs::read(whole.join("model.safetensors")).expect("whole");
    let b = std::fs::read(part.join("model.safetensors")).expect("part");
    assert_eq!(a, b, "a resumed conv run equals an uninterrupted one");

    // A conv VAE: sample and traverse decode through the transposed convs.
    let vae = dir.join("vae");
    ok(&[
        "train",
        "--data",
        d,
        "--device",
        "cpu",
        "--out",
        s(&vae),
        "--encoder",
        "1x8x8,conv4k3s2,3",
        "--variant",
        "vae",
        "--steps",
        "10",
        "--batch-size",
        "16",
    ]);
    let vm = vae.join("model.safetensors");
    let samples = dir.join("samples.npy");
    ok(&[
        "sample",
        "--model",
        s(&vm),
        "--n",
        "5",
        "--out",
        s(&samples),
        "--device",
        "cpu",
    ]);
    assert_eq!(read_npy(&samples).expect("samples").rows, 5);
    let png = dir.join("traverse.png");
    ok(&[
        "traverse",
        "--model",
        s(&vm),
        "--data",
        d,
        "--dim",
        "0,2",
        "--png",
        s(&png),
        "--device",
        "cpu",
    ]);
    assert!(png.exists());
}
