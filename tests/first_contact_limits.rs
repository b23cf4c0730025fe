#![cfg(feature = "cli")]
//! Issue 13, classes 2 and 6: sizes are checked before anything is allocated, and non-finite
//! numbers never pass silently. Every case runs the CLI on the CPU and expects one `error:`
//! line naming the flag or file, the documented exit code, and no output file written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourglass::io::checkpoint::{self, SPEC_KEY};
use hourglass::model::{ModelSpec, Parameters};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-limits-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn hourglass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("runs")
}

/// The one error line of a failed command, after checking its exit code.
fn refused(args: &[&str], code: i32) -> String {
    let out = hourglass(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"))
        .to_string();
    println!("{args:?}\n  -> {line}");
    line
}

/// 64 rows of 6 features in [0, 1] as CSV.
fn data(dir: &Path) -> String {
    let path = dir.join("d.csv");
    let text: String = (0..64)
        .map(|r| {
            (0..6)
                .map(|c| format!("{:.3}", ((r * 7 + c * 13) % 29) as f32 / 29.0))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A tiny checkpoint with the given parameters written through the library.
fn model(dir: &Path, edit: impl FnOnce(&mut Parameters)) -> String {
    let spec = ModelSpec::mirrored(&[6, 4, 3]);
    let mut params = Parameters::init(&spec, 1);
    edit(&mut params);
    let path = dir.join("m.safetensors");
    checkpoint::save(&path, &spec, &params).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn layer_widths_beyond_memory_or_addressing_are_refused_before_allocation() {
    let dir = scratch("widths");
    let d = data(&dir);
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let base = [
        "train", "-q", "--device", "cpu", "--epochs", "1", "--data", &d, "--out", o,
    ];
    let line = refused(&[&base[..], &["--encoder", "6,999999999999,3"]].concat(), 2);
    assert!(
        line.contains("encoder [6, 999999999999, 3] needs"),
        "{line}"
    );
    assert!(line.contains("bytes are available"), "{line}");
    let line = refused(
        &[&base[..], &["--encoder", "6,18446744073709551615,3"]].concat(),
        2,
    );
    assert!(
        line.contains("more parameters than any machine can address"),
        "{line}"
    );
    // Siblings: counts that multiply the batch's buffers.
    for extra in [
        ["--variant", "vae", "--vae-samples", "4000000000"],
        [
            "--variant",
            "contractive",
            "--jacobian-projections",
            "4000000000",
        ],
    ] {
        let line = refused(
            &[&base[..], &["--encoder", "6,4,3"], &extra[..]].concat(),
            2,
        );
        assert!(
            line.contains("needs") && line.contains("bytes are available"),
            "{line}"
        );
    }
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn bench_batch_and_seconds_are_checked() {
    let line = refused(
        &[
            "bench",
            "-q",
            "--workload",
            "mnist_ae",
            "--device",
            "cpu",
            "--batch",
            "99999999999",
        ],
        2,
    );
    assert!(
        line.contains("--batch 99999999999 (workload 'mnist_ae') needs"),
        "{line}"
    );
    for s in ["nan", "-1", "0", "inf"] {
        let line = refused(
            &[
                "bench",
                "-q",
                "--workload",
                "mnist_ae",
                "--device",
                "cpu",
                "--seconds",
                s,
            ],
            2,
        );
        assert!(
            line.contains("--seconds must be a finite number > 0"),
            "{line}"
        );
    }
}

/// `m` with its spec's hidden width 4 rewritten to `width` in the safetensors header.
fn lie_about_the_width(m: &str, width: &str) {
    let bytes = std::fs::read(m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    assert!(header.contains(SPEC_KEY));
    let lying = header
        .replace(
            r#"\"encoder\":[6,4,3]"#,
            &format!(r#"\"encoder\":[6,{width},3]"#),
        )
        .replace(
            r#"\"decoder\":[3,4,6]"#,
            &format!(r#"\"decoder\":[3,{width},6]"#),
        );
    assert_ne!(lying, header, "the spec is in the header: {header}");
    let mut new = (lying.len() as u64).to_le_bytes().to_vec();
    new.extend_from_slice(lying.as_bytes());
    new.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(m, &new).unwrap();
}

#[test]
fn a_checkpoint_whose_spec_lies_is_refused_before_it_is_sized() {
    let dir = scratch("lying");
    let d = data(&dir);
    // A lie the machine could hold: the tensors disagree with it.
    let m = model(&dir, |_| {});
    lie_about_the_width(&m, "5");
    let line = refused(
        &["eval", "-q", "--device", "cpu", "--model", &m, "--data", &d],
        2,
    );
    assert!(line.contains(&m), "{line}");
    assert!(
        line.contains("has shape [4, 6] but the spec needs [5, 6]"),
        "{line}"
    );
    // A lie no machine could hold is refused from the spec's arithmetic alone.
    let m = model(&dir, |_| {});
    lie_about_the_width(&m, "4000000000000");
    let line = refused(
        &["eval", "-q", "--device", "cpu", "--model", &m, "--data", &d],
        2,
    );
    assert!(line.contains(&m), "{line}");
    assert!(
        line.contains("needs") && line.contains("bytes are available"),
        "{line}"
    );
    let m = model(&dir, |_| {});
    lie_about_the_width(&m, "18446744073709551615");
    let line = refused(
        &["eval", "-q", "--device", "cpu", "--model", &m, "--data", &d],
        2,
    );
    assert!(
        line.contains("more parameters than any machine can address"),
        "{line}"
    );
}

#[test]
fn non_finite_weights_are_refused_by_every_loader() {
    let dir = scratch("nanweights");
    let d = data(&dir);
    for bad in [f32::NAN, f32::INFINITY] {
        let m = model(&dir, |p| p.arena[3] = bad);
        let rec = dir.join("r.npy");
        let init_out = dir.join("init");
        for args in [
            vec!["eval", "-q", "--device", "cpu", "--model", &m, "--data", &d],
            vec![
                "encode",
                "-q",
                "--device",
                "cpu",
                "--model",
                &m,
                "--data",
                &d,
                "--out",
                dir.join("c.npy").to_str().unwrap(),
            ],
            vec![
                "reconstruct",
                "-q",
                "--device",
                "cpu",
                "--model",
                &m,
                "--data",
                &d,
                "--out",
                rec.to_str().unwrap(),
            ],
            vec![
                "train",
                "-q",
                "--device",
                "cpu",
                "--epochs",
                "1",
                "--data",
                &d,
                "--init",
                &m,
                "--out",
                init_out.to_str().unwrap(),
            ],
        ] {
            let line = refused(&args, 2);
            assert!(line.contains(&m), "{line}");
            assert!(
                line.contains("tensor 'encoder.0.weight' holds a non-finite value"),
                "{line}"
            );
        }
        assert!(!rec.exists() && !init_out.join("model.safetensors").exists());
    }
}

#[test]
fn a_normalization_that_breaks_numbers_is_refused_naming_the_file() {
    let dir = scratch("norm");
    let d = data(&dir);
    let m = model(&dir, |_| {});
    let norm = dir.join("normalization.json");
    let rec = dir.join("r.npy");
    for (scale, shift) in [
        ("0.0", "0.0"),
        ("1e-40", "0.0"),
        ("1e30", "0.0"),
        ("1.0", "1e39"),
    ] {
        let s = format!(
            r#"{{"kind":"standard","shift":[{shift},0,0,0,0,0],"scale":[{scale},1,1,1,1,1]}}"#
        );
        std::fs::write(&norm, s).unwrap();
        let line = refused(
            &[
                "reconstruct",
                "-q",
                "--device",
                "cpu",
                "--model",
                &m,
                "--data",
                &d,
                "--out",
                rec.to_str().unwrap(),
            ],
            2,
        );
        assert!(line.contains(norm.to_str().unwrap()), "{line}");
        assert!(line.contains("feature 0"), "{line}");
        assert!(!rec.exists());
    }
}

#[test]
fn non_finite_float_flags_are_refused_by_name() {
    let dir = scratch("floats");
    let d = data(&dir);
    let m = model(&dir, |_| {});
    for t in ["nan", "inf", "1e39"] {
        let line = refused(
            &[
                "encode",
                "-q",
                "--device",
                "cpu",
                "--model",
                &m,
                "--data",
                &d,
                "--binary",
                "--threshold",
                t,
                "--out",
                dir.join("b.npy").to_str().unwrap(),
            ],
            2,
        );
        assert!(line.contains("--threshold"), "{line}");
        assert!(line.contains("must be a finite number"), "{line}");
    }
    assert!(!dir.join("b.npy").exists());
}

#[test]
fn a_non_finite_loss_in_eval_exits_1() {
    let dir = scratch("evalnan");
    let spec = ModelSpec::builder()
        .encoder([6, 4, 3])
        .output_activation(hourglass::Activation::Identity)
        .build()
        .unwrap();
    let m = dir.join("mse.safetensors");
    checkpoint::save(&m, &spec, &Parameters::init(&spec, 1)).unwrap();
    let m = m.to_str().unwrap().to_string();
    // Finite data whose squares overflow f32: the loss is infinite.
    let path = dir.join("big.csv");
    let row = vec!["3e38"; 6].join(",");
    std::fs::write(&path, format!("{row}\n{row}\n")).unwrap();
    let line = refused(
        &[
            "eval",
            "-q",
            "--device",
            "cpu",
            "--model",
            &m,
            "--data",
            path.to_str().unwrap(),
        ],
        1,
    );
    assert!(line.contains("non-finite loss"), "{line}");
}
