#![cfg(feature = "cli")]
//! Every variant trains from the command line on both devices, and two processes can train on
//! one GPU at once without disturbing each other.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hourglass::data::npy::write_npy;
use hourglass::io::checkpoint;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-var-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn train(data: &Path, out: &Path, device: &str, steps: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    c.args([
        "train",
        "--quiet",
        "--device",
        device,
        "--batch-size",
        "8",
        "--steps",
        steps,
    ])
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra)
    .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

#[test]
fn every_variant_trains_from_the_command_line_on_cpu_and_gpu() {
    let dir = scratch("all");
    let data = dir.join("x.npy");
    write_npy(&data, 40, 16, &common::random(40 * 16, 0.0, 1.0, 3)).expect("fixture");
    let gpu = common::gpu().is_some();
    for (name, flags) in [
        ("tied", &["--encoder", "16,6", "--tied"][..]),
        (
            "sparse",
            &[
                "--encoder",
                "16,6",
                "--variant",
                "sparse",
                "--sparsity",
                "0.1",
            ],
        ),
        (
            "sparse-kl",
            &[
                "--encoder",
                "16,6",
                "--variant",
                "sparse",
                "--code-activation",
                "sigmoid",
                "--sparsity-target",
                "0.05",
            ],
        ),
        (
            "denoising",
            &[
                "--encoder",
                "16,6",
                "--variant",
                "denoising",
                "--noise",
                "gaussian:0.1",
            ],
        ),
        (
            "contractive",
            &[
                "--encoder",
                "16,8,4",
                "--variant",
                "contractive",
                "--contractive",
                "0.1",
            ],
        ),
        (
            "contractive-projections",
            &[
                "--encoder",
                "16,8,4",
                "--variant",
                "contractive",
                "--jacobian-projections",
                "2",
            ],
        ),
        (
            "vae",
            &[
                "--encoder",
                "16,8,3",
                "--variant",
                "vae",
                "--beta",
                "0.5",
                "--vae-samples",
                "2",
            ],
        ),
        (
            "psd",
            &[
                "--encoder",
                "16,12",
                "--variant",
                "psd",
                "--sparsity",
                "0.2",
                "--prediction",
                "0.5",
                "--inference-steps",
                "8",
            ],
        ),
    ] {
        let mut models = Vec::new();
        for device in ["cpu", "gpu"] {
            if device == "gpu" && !gpu {
                continue;
            }
            let out = dir.join(format!("{name}-{device}"));
            let o = train(&data, &out, device, "4", flags)
                .output()
                .expect("run");
            assert!(
                o.status.success(),
                "{name} on {device}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let (_, params) = checkpoint::load(&out.join("model.safetensors")).expect("checkpoint");
            models.push(params);
        }
        if let [cpu, gpu] = models.as_slice() {
            common::assert_close(
                &format!("{name}: GPU vs CPU after 4 steps"),
                &gpu.arena,
                &cpu.arena,
                1e-4,
            );
        }
    }
}

#[test]
fn two_processes_train_on_one_gpu_at_once() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("two");
    let data = dir.join("x.npy");
    write_npy(&data, 256, 32, &common::random(256 * 32, 0.0, 1.0, 4)).expect("fixture");
    let args = ["--encoder", "32,16,4"];
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            train(&data, &dir.join(n), "gpu", "300", &args)
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let solo = dir.join("solo");
    let o = train(&data, &solo, "gpu", "300", &args)
        .output()
        .expect("solo");
    assert!(o.status.success());
    let load = |n: &str| {
        checkpoint::load(&dir.join(n).join("model.safetensors"))
            .expect("load")
            .1
    };
    let want = load("solo");
    assert_eq!(
        load("a"),
        want,
        "process a, sharing the GPU, equals a run alone"
    );
    assert_eq!(
        load("b"),
        want,
        "process b, sharing the GPU, equals a run alone"
    );
}
