#![cfg(feature = "cli")]
//! `--backend` on the command line: `info --backend gl` lists Mesa's llvmpipe through EGL
//! without a display, a run on GL records its backend and adapter in `config.toml` and its
//! bench rows, and a bad backend (flag or WGPU_BACKEND) is one line naming where it came from,
//! exit 2, nothing written.

use std::path::PathBuf;
use std::process::{Command, Output};

fn hourglass(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env_remove("WGPU_BACKEND")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hourglass")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-backend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn info_lists_the_gl_adapter_and_wgpu_backend_is_honoured() {
    for (args, env) in [
        (&["info", "--backend", "gl"][..], &[][..]),
        (&["info"][..], &[("WGPU_BACKEND", "gl")][..]),
    ] {
        let out = hourglass(args, env);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("GPU backends searched: Gl"), "{stdout}");
        assert!(
            stdout.contains("backend Gl"),
            "an OpenGL adapter (llvmpipe): {stdout}"
        );
        assert!(!stdout.contains("backend Vulkan"), "{stdout}");
    }
    // The flag wins over the variable.
    let out = hourglass(&["info", "--backend", "vulkan"], &[("WGPU_BACKEND", "gl")]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("backend Vulkan") && !stdout.contains("backend Gl"),
        "{stdout}"
    );
}

#[test]
fn a_bad_backend_is_one_line_naming_its_source() {
    let dir = scratch("bad");
    for (args, env, names) in [
        (
            vec!["info", "--backend", "cuda"],
            vec![],
            "--backend: unknown backend 'cuda'",
        ),
        (
            vec!["info"],
            vec![("WGPU_BACKEND", "cuda")],
            "WGPU_BACKEND=cuda",
        ),
        (
            vec!["info"],
            vec![("HOURGLASS_MATMUL_TILE", "48")],
            "HOURGLASS_MATMUL_TILE=48",
        ),
    ] {
        let out = hourglass(&args, &env);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(names), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let run = dir.join("run");
    let out = hourglass(
        &[
            "train",
            "--device",
            "gpu",
            "--backend",
            "cuda",
            "--encoder",
            "784,8",
            "--steps",
            "1",
            "--out",
            run.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    assert!(!run.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_on_gl_records_backend_and_adapter() {
    let dir = scratch("run");
    let run = dir.join("run");
    let out = hourglass(
        &[
            "train",
            "--device",
            "gpu",
            "--backend",
            "gl",
            "--encoder",
            "784,8",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ],
        // HOME in the scratch folder: the pipeline cache and tiles land there, not in ~.
        &[("HOME", dir.to_str().unwrap()), ("XDG_CACHE_HOME", "")],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config.toml");
    assert!(config.contains("backend = \"gl\""), "{config}");
    assert!(config.contains("adapter = 0"), "{config}");
    assert!(config.contains("(Gl, "), "the adapter in words: {config}");

    let out = hourglass(
        &[
            "bench",
            "--workload",
            "mnist_ae",
            "--device",
            "gpu",
            "--backend",
            "gl",
            "--seconds",
            "0.1",
            "--max-steps",
            "1",
            "--batch",
            "8",
            "--json",
        ],
        &[("HOME", dir.to_str().unwrap())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\"backend\":\"gl\""), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_estimates_a_step_on_a_named_target_and_refuses_an_unknown_one() {
    let out = hourglass(
        &[
            "bench",
            "--workload",
            "mnist_ae",
            "--device",
            "cpu",
            "--seconds",
            "0.1",
            "--max-steps",
            "1",
            "--batch",
            "8",
            "--profile",
            "--target",
            "h200",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("mnist_ae  h200 estimate: "), "{stdout}");
    assert!(
        stdout.contains("Matmul") && stdout.contains("Adam"),
        "per dispatch: {stdout}"
    );
    let out = hourglass(&["bench", "--device", "cpu", "--target", "tpu"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--target tpu: unknown GPU"), "{stderr}");
}

#[test]
fn gpu_flags_with_device_cpu_are_warned_about() {
    let dir = scratch("cpu");
    let run = dir.join("run");
    let out = hourglass(
        &[
            "train",
            "--device",
            "cpu",
            "--backend",
            "gl",
            "--encoder",
            "784,8",
            "--steps",
            "1",
            "--batch-size",
            "8",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --backend affects nothing in this run: it chooses a GPU"),
        "{stderr}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config.toml");
    assert!(config.contains("# Trained on CPU"), "{config}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn info_adapter_shows_that_adapter_and_refuses_one_that_does_not_exist() {
    // Lavapipe (Vulkan) is adapter 0 here; `info --adapter 0` shows it alone, marked as the one
    // `--device gpu --adapter 0` opens, with its limits.
    let all = hourglass(&["info", "--backend", "vulkan"], &[]);
    let (all_out, stderr) = text(&all);
    assert!(all.status.success(), "{stderr}");
    let out = hourglass(&["info", "--backend", "vulkan", "--adapter", "0"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let first = all_out
        .lines()
        .find(|l| l.starts_with("[0] "))
        .expect("info lists adapter [0]");
    let name = first.split("  <-").next().unwrap();
    assert!(
        stdout.contains(&format!(
            "{name}  <- --device gpu --adapter 0 (and --device auto --adapter 0)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("    buffers: max"), "its limits: {stdout}");
    assert!(!stdout.contains("\n[1] "), "that adapter only: {stdout}");
    let count = all_out.lines().filter(|l| l.starts_with('[')).count();

    let out = hourglass(&["info", "--backend", "vulkan", "--adapter", "99"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let found = if count == 1 {
        "1 adapter".to_string()
    } else {
        format!("{count} adapters")
    };
    assert!(
        stderr.contains(&format!("--adapter 99 does not exist: wgpu found {found}")),
        "{stderr}"
    );
    assert!(
        stdout.is_empty(),
        "nothing printed before the refusal: {stdout}"
    );
}
