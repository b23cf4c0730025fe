#![cfg(feature = "cli")]
//! Issue 13, class 1: nothing a user made is destroyed without being asked. A run folder that
//! holds a run is refused without `--overwrite`; `--overwrite` and `--resume` keep the old
//! files until their first checkpoint; a failed run leaves every earlier file byte for byte;
//! one process at a time holds a folder; a killed run's temporaries go; and no command writes
//! over one of its inputs or under an extension its writer does not produce.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourglass::data::npy::write_npy;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-fc-rf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// 64 rows of 16 features in [0, 1), seeded.
fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("x.npy");
    let values: Vec<f32> = (0..64 * 16)
        .map(|i| ((i * 7919 + 13) % 101) as f32 / 101.0)
        .collect();
    write_npy(&path, 64, 16, &values).expect("fixture");
    path
}

fn hourglass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env_remove("HOURGLASS_INTERRUPT_AT_STEP")
        .output()
        .expect("run hourglass")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A small run of `epochs` epochs on `data` into `out`, with `extra` flags.
fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--encoder",
        "16,4",
        "--batch-size",
        "16",
        "--epochs",
        epochs,
        "--data",
        s(data),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    hourglass(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Every file of a folder (recursively, hidden ones included) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            for (k, v) in snapshot(&path) {
                files.insert(format!("{name}/{k}"), v);
            }
        } else {
            files.insert(name, std::fs::read(&path).expect("read"));
        }
    }
    files
}

/// The command was refused with one `error:` line containing every one of `needles`.
fn refused(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_string();
    for n in needles {
        assert!(line.contains(n), "'{n}' not in: {line}");
    }
    println!("{line}");
    line
}

#[test]
fn a_second_train_into_a_run_folder_is_refused_and_overwrite_replaces_it() {
    let dir = scratch("again");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, "3", &[]));
    let before = snapshot(&run);
    assert_eq!(
        String::from_utf8_lossy(&before["metrics.jsonl"])
            .lines()
            .count(),
        3
    );
    refused(
        &train(&data, &run, "1", &[]),
        &["already holds a run", "--resume", "--overwrite"],
    );
    assert_eq!(snapshot(&run), before, "a refused run changes nothing");

    ok(&train(&data, &run, "1", &["--overwrite"]));
    let after = snapshot(&run);
    let metrics = String::from_utf8_lossy(&after["metrics.jsonl"]).into_owned();
    assert_eq!(
        metrics.lines().count(),
        1,
        "the new one-epoch run: {metrics}"
    );
    assert!(
        after.keys().all(|k| !k.starts_with('.')),
        "no lock, staging or temporary left: {:?}",
        after.keys()
    );
}

#[test]
fn a_run_that_fails_leaves_every_earlier_file_as_it_was() {
    let dir = scratch("fail");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, "2", &[]));
    let before = snapshot(&run);

    // Values whose squares overflow f32: the first step's loss is infinite.
    let huge = dir.join("huge.npy");
    write_npy(&huge, 64, 16, &vec![1e30f32; 64 * 16]).expect("huge");
    let mse = [
        "--overwrite",
        "--loss",
        "mse",
        "--output-activation",
        "identity",
    ];
    let failed = train(&huge, &run, "2", &mse);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(
        snapshot(&run),
        before,
        "a failed --overwrite keeps the old run"
    );

    // A resumed run that fails (here a learning rate that blows up) keeps it too.
    let failed = hourglass(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&run),
        "--epochs",
        "6",
        "--lr",
        "1e30",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(
        snapshot(&run),
        before,
        "a failed resume keeps the run, config.toml included"
    );
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

#[test]
fn a_locked_run_folder_is_refused_and_a_stale_lock_taken_over() {
    let dir = scratch("lock");
    let data = fixture(&dir);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    let lock = run.join(".hourglass.lock");
    // This test process is alive: its lock holds.
    let me = std::process::id();
    std::fs::write(&lock, format!("{me} {}\n", host())).expect("lock");
    refused(
        &train(&data, &run, "1", &[]),
        &["in use by another hourglass train", &format!("pid {me}")],
    );
    assert!(!run.join("config.toml").exists(), "nothing written");

    // A process that has exited: its lock is stale.
    let mut child = Command::new("true").spawn().expect("true");
    let dead = child.id();
    child.wait().expect("wait");
    std::fs::write(&lock, format!("{dead} {}\n", host())).expect("lock");
    let o = train(&data, &run, "1", &[]);
    ok(&o);
    assert!(stderr(&o).contains(&format!("taking over the lock of pid {dead}")));
    assert!(!lock.exists(), "released at the end");
}

#[test]
fn a_killed_runs_temporaries_are_removed_by_the_next_run() {
    let dir = scratch("tmp");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, "1", &[]));
    std::fs::write(run.join(".model.safetensors.tmp-99999"), b"partial").expect("tmp");
    std::fs::create_dir_all(run.join(".hourglass-staging-99999")).expect("staging");
    std::fs::write(run.join(".hourglass-staging-99999/config.toml"), b"x").expect("staged");
    std::fs::write(run.join(".notes.txt.tmp-5"), b"the user's").expect("user file");
    let o = hourglass(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&run),
        "--epochs",
        "2",
    ]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("removed what an interrupted run left")
            && err.contains(".model.safetensors.tmp-99999"),
        "{err}"
    );
    assert!(!run.join(".model.safetensors.tmp-99999").exists());
    assert!(!run.join(".hourglass-staging-99999").exists());
    assert!(run.join(".notes.txt.tmp-5").exists(), "a user's file stays");
}

#[test]
fn no_command_writes_over_its_inputs_or_under_a_foreign_extension() {
    let dir = scratch("outputs");
    let data = fixture(&dir);
    let run = dir.join("run");
    ok(&train(&data, &run, "1", &[]));
    let model = run.join("model.safetensors");
    let hard = dir.join("hard.npy");
    std::fs::hard_link(&data, &hard).expect("hard link");
    let link = dir.join("link.npy");
    std::os::unix::fs::symlink(&data, &link).expect("symlink");
    let (data_bytes, model_bytes) = (
        std::fs::read(&data).unwrap(),
        std::fs::read(&model).unwrap(),
    );

    let base = |cmd: &'static str| -> Vec<String> {
        let mut v: Vec<String> = vec![cmd.into(), "--device".into(), "cpu".into()];
        v.extend([
            "--model".into(),
            s(&model).into(),
            "--data".into(),
            s(&data).into(),
        ]);
        if cmd == "sample" {
            v.extend([
                "--interpolate".into(),
                "0,1".into(),
                "--n".into(),
                "3".into(),
            ]);
        }
        if cmd == "tangents" {
            v.extend(["--k".into(), "2".into()]);
        }
        v
    };
    for cmd in ["encode", "reconstruct", "sample", "tangents", "neighbors"] {
        for (out, why) in [
            (&data, "an input"),
            (&hard, "the same file"),
            (&link, "the same file"),
            (&model, "an input"),
        ] {
            let mut args = base(cmd);
            args.extend(["--out".into(), s(out).into()]);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = hourglass(&refs);
            if out == &model {
                // A .safetensors name is also the wrong extension for every writer here.
                refused(&o, &["--out"]);
            } else {
                refused(&o, &["--out", why, "choose another output path"]);
            }
        }
        let mut args = base(cmd);
        args.extend(["--out".into(), s(&dir.join("codes.png")).into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(
            &hourglass(&refs),
            &["--out", "codes.png", "name the file FILE.npy"],
        );
    }
    // --png over the data, and the normalization file beside the model.
    refused(
        &hourglass(&[
            "reconstruct",
            "--device",
            "cpu",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--png",
            s(&data),
        ]),
        &["--png", "name the file FILE.png"],
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        data_bytes,
        "the data survived"
    );
    assert_eq!(
        std::fs::read(&model).unwrap(),
        model_bytes,
        "the model survived"
    );

    // train: --init from the folder it would replace.
    let best = run.join("best.safetensors");
    refused(
        &train(&data, &run, "1", &["--overwrite", "--init", s(&best)]),
        &["--out", "--init", "choose another output path"],
    );
    assert!(best.exists());
    // The good paths still work.
    ok(&hourglass(&[
        "encode",
        "--device",
        "cpu",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&dir.join("codes.npy")),
    ]));
}
