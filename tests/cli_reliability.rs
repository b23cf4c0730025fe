#![cfg(feature = "cli")]
//! Interruptions lose nothing: Ctrl-C saves at the next step boundary and `--resume` continues
//! exactly; a run killed at any moment never leaves a checkpoint that does not load.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hourglass::data::npy::write_npy;
use hourglass::io::checkpoint;
use hourglass::rng::{Sequence, Stream};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("x.npy");
    write_npy(&path, 256, 64, &common::random(256 * 64, 0.0, 1.0, 5)).expect("fixture");
    path
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    c.args([
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--encoder",
        "64,48,16",
    ])
    .args(["--batch-size", "16", "--seed", "4", "--data"])
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra)
    .env("XDG_RUNTIME_DIR", std::env::temp_dir())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig}");
}

/// Waits until `path` exists (the run is under way).
fn wait_for(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn ctrl_c_saves_and_resume_continues_exactly() {
    let dir = scratch("sigint");
    let data = fixture(&dir);
    let run = dir.join("run");
    let child = train(
        &data,
        &run,
        &["--steps", "10000000", "--checkpoint-every", "50"],
    )
    .spawn()
    .expect("spawn");
    wait_for(&run.join("train_state.safetensors"));
    std::thread::sleep(Duration::from_millis(150));
    signal(&child, "-INT");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "says how to continue: {err}");
    let (_, state, _) =
        checkpoint::load_state(&run.join("train_state.safetensors")).expect("state");
    assert!(state.step > 0);
    let total = (state.step + 37).to_string();

    let resumed = Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(["train", "--quiet", "--device", "cpu", "--resume"])
        .arg(&run)
        .args(["--steps", &total])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("resume");
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let straight = dir.join("straight");
    let once = train(&data, &straight, &["--steps", &total])
        .output()
        .expect("run");
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let (_, a) = checkpoint::load(&run.join("model.safetensors")).expect("resumed model");
    let (_, b) = checkpoint::load(&straight.join("model.safetensors")).expect("straight model");
    assert_eq!(
        a, b,
        "interrupted at step {} and resumed == uninterrupted",
        state.step
    );
}

#[test]
fn a_run_killed_at_any_moment_leaves_loadable_checkpoints() {
    let dir = scratch("sigkill");
    let data = fixture(&dir);
    let mut rng = Sequence::new(77, Stream::Init, 0);
    let mut loaded = 0;
    for i in 0..20 {
        let run = dir.join(format!("run{i}"));
        let mut child = train(
            &data,
            &run,
            &["--steps", "10000000", "--checkpoint-every", "3"],
        )
        .spawn()
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(20 + u64::from(rng.below(600))));
        signal(&child, "-KILL");
        child.wait().expect("wait");
        for name in ["model.safetensors", "best.safetensors"] {
            let path = run.join(name);
            if path.exists() {
                checkpoint::load(&path)
                    .unwrap_or_else(|e| panic!("kill #{i} left a corrupt {name}: {e}"));
                loaded += 1;
            }
        }
        let state = run.join("train_state.safetensors");
        if state.exists() {
            checkpoint::load_state(&state)
                .unwrap_or_else(|e| panic!("kill #{i} left a corrupt training state: {e}"));
        }
    }
    assert!(
        loaded >= 10,
        "most kills came after a checkpoint ({loaded} loaded)"
    );
}
