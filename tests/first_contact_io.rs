//! Issue 13, classes 3, 4 and 7: reading is bounded (endless streams, huge sparse files, gzip
//! bombs), a closed or full stdout is not a crash, and messages a user can act on.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hourglass::data::npy::write_npy;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hourglass-fc-io-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn hourglass(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    c.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out: Output = hourglass(args)
        .envs(env.iter().copied())
        .output()
        .expect("run hourglass");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `train --data DATA` and expects exit 2 with an error line holding `needle`.
fn refused(data: &Path, env: &[(&str, &str)], needle: &str) {
    let out = data.with_extension("run");
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, err) = run(&args, env);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    eprintln!("| {} | `{line}` |", data.display());
    assert_eq!(code, Some(2), "{err}");
    assert!(line.contains(needle), "'{line}' should hold '{needle}'");
    assert!(!err.contains("panicked"), "{err}");
}

fn good_npy(dir: &Path) -> PathBuf {
    let path = dir.join("good.npy");
    let values: Vec<f32> = (0..24).map(|i| (i % 7) as f32 / 7.0).collect();
    write_npy(&path, 8, 3, &values).expect("write");
    path
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn endless_and_huge_inputs_are_refused_after_their_header() {
    let dir = scratch("bounded");
    let link = |name: &str, to: &str| {
        let p = dir.join(name);
        std::os::unix::fs::symlink(to, &p).unwrap();
        p
    };
    refused(
        &link("zero.csv", "/dev/zero"),
        &[],
        "line 1 holds a NUL byte",
    );
    refused(&link("zero.npy", "/dev/zero"), &[], "bad magic");
    refused(
        &link("zero-idx3-ubyte", "/dev/zero"),
        &[],
        "unknown IDX type code 0x00",
    );
    refused(
        &link("zero.safetensors", "/dev/zero"),
        &[],
        "not a safetensors file",
    );

    // A valid .npy header and data, then a terabyte of holes.
    let good = good_npy(&dir);
    let sparse = dir.join("sparse.npy");
    std::fs::copy(&good, &sparse).unwrap();
    let len = std::fs::metadata(&sparse).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    refused(
        &sparse,
        &[],
        &format!("data goes on past the {len} bytes its header describes"),
    );

    // A fifo fed a valid header and then zeros forever.
    let fifo = dir.join("fifo.npy");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let header = std::fs::read(&good).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                return;
            };
            let _ = f.write_all(&header);
            let zeros = vec![0u8; 1 << 16];
            while f.write_all(&zeros).is_ok() {}
        })
    };
    refused(&fifo, &[], "data goes on past");
    writer.join().unwrap();

    // Gzip bombs: what the data becomes in memory (f32 values) counts, not the inflated bytes.
    let mut idx = vec![0, 0, 8, 2, 0, 0, 16, 0, 0, 0, 4, 0];
    idx.resize(12 + (4 << 20), 0);
    let bomb = dir.join("bomb-idx3-ubyte.gz");
    std::fs::write(&bomb, gz(&idx)).unwrap();
    // 8 MiB holds the 4 MiB of inflated pixels but not the 16 MiB of f32 they become.
    refused(
        &bomb,
        &[("HOURGLASS_MAX_READ_BYTES", "8388608")],
        "4096×1024 u8 values needs 16777216 bytes in memory, more than the read limit of 8388608 bytes (HOURGLASS_MAX_READ_BYTES)",
    );
    let csv_bomb = dir.join("bomb.csv.gz");
    std::fs::write(&csv_bomb, gz(&b"0,0,0,0\n".repeat(1 << 20))).unwrap();
    refused(
        &csv_bomb,
        &[("HOURGLASS_MAX_READ_BYTES", "8388608")],
        "bytes in memory, more than the read limit of 8388608 bytes",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn train_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--encoder",
        "3,2",
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--log-every",
        "1",
        "--out",
        out,
    ]
}

const RUN_FILES: [&str; 4] = [
    "model.safetensors",
    "train_state.safetensors",
    "config.toml",
    "metrics.jsonl",
];

#[test]
fn a_full_stdout_is_not_a_crash() {
    let dir = scratch("full");
    let good = good_npy(&dir);
    let g = good.to_str().unwrap();
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };

    let r = hourglass(&train_args(g, o))
        .stdout(full())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(err.contains("note: stdout could not be written"), "{err}");
    for f in RUN_FILES {
        assert!(out.join(f).exists(), "{f} missing");
    }

    let model = out.join("model.safetensors");
    let m = model.to_str().unwrap();
    for args in [
        vec!["eval", "--model", m, "--data", g, "--device", "cpu"],
        vec!["info"],
    ] {
        let r = hourglass(&args).stdout(full()).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            ["error: cannot write the results to stdout: No space left on device (os error 28)"],
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_quietly_and_keeps_the_run() {
    let dir = scratch("pipe");
    let good = good_npy(&dir);
    let g = good.to_str().unwrap();
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let mut child = hourglass(&train_args(g, o))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `| head -1` does.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training"), "{first}");
    let r = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    for f in RUN_FILES {
        assert!(out.join(f).exists(), "{f} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cli_prints_only_through_its_one_writer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/hourglass");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "output.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for mac in ["println!", "print!", "eprintln!", "eprint!"] {
                assert!(
                    !code.contains(mac),
                    "{}:{}: {mac} panics on a closed stdout; use outln!/errln!",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn messages_a_user_can_act_on() {
    let dir = scratch("messages");
    let good = good_npy(&dir);
    let g = good.to_str().unwrap();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let base = |o: &str| {
        let mut a = vec!["train", "--data", g, "--encoder", "3,2", "--epochs", "1"];
        a.extend(["--batch-size", "2", "--device", "cpu", "-q", "--out"]);
        a.push(Box::leak(o.to_string().into_boxed_str()));
        a
    };

    // A seed above i64::MAX is kept exactly (as a string) and read back.
    let mut a = base(&out("wide"));
    a.extend(["--seed", "18446744073709551615"]);
    let (code, err) = run(&a, &[]);
    assert_eq!(code, Some(0), "{err}");
    let config = dir.join("wide/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("seed = \"18446744073709551615\""), "{text}");
    let c = config.to_str().unwrap();
    let again = out("again");
    let (code, err) = run(&["train", "--config", c, "--out", &again, "-q"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(dir.join("again/config.toml")).unwrap();
    assert!(text.contains("seed = \"18446744073709551615\""), "{text}");

    let error_line = |args: &[&str]| {
        let (code, err) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.len() <= 2,
            "{args:?}: more than an error and a hint: {err}"
        );
        eprintln!("| {args:?} | `{}` |", lines.join(" / "));
        err
    };
    // Other u64 flags that TOML cannot hold name the flag and the range.
    let mut a = base(&out("range"));
    a.extend(["--checkpoint-every", "9223372036854775808"]);
    let e = error_line(&a);
    assert!(
        e.contains(
            "--checkpoint-every 9223372036854775808 is out of range: at most 9223372036854775807"
        ),
        "{e}"
    );

    // Empty lists in a config file.
    let toml = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let empty = toml("empty.toml", "encoder = []\n");
    let mut a = base(&out("empty"));
    a.extend(["--config", &empty]);
    a.retain(|&x| x != "--encoder" && x != "3,2");
    let e = error_line(&a);
    assert!(
        e.contains("empty.toml: encoder = [] is an empty list"),
        "{e}"
    );

    // A TOML syntax error: one line with its line and column, no caret diagram.
    let broken = toml("broken.toml", "epochs = 1\nlr = \n");
    let mut a = base(&out("broken"));
    a.extend(["--config", &broken]);
    let e = error_line(&a);
    assert!(
        e.contains("broken.toml: not a valid TOML config: line 2, column"),
        "{e}"
    );
    assert!(!e.contains('|') && !e.contains('^'), "{e}");

    // Clap's usage block: one error line and one hint.
    let e = error_line(&["train", "--bogus"]);
    assert!(
        e.starts_with("error: unexpected argument '--bogus' found\nhint: "),
        "{e}"
    );
    let e = error_line(&["eval"]);
    assert!(e.contains("not provided: --model"), "{e}");
    assert!(e.contains("hint: see 'hourglass eval --help'"), "{e}");

    // pandas' integer header, and --csv-header to say either way.
    let csv = dir.join("pandas.csv");
    std::fs::write(&csv, "0,1,2\n0.1,0.2,0.3\n0.4,0.5,0.6\n").unwrap();
    let opts = hourglass::data::LoadOptions::default();
    assert_eq!(hourglass::data::load_with(&csv, &opts).unwrap().rows, 2);
    let opts = hourglass::data::LoadOptions {
        csv_header: hourglass::data::csv::CsvHeader::No,
        ..Default::default()
    };
    assert_eq!(hourglass::data::load_with(&csv, &opts).unwrap().rows, 3);
    let c = csv.to_str().unwrap();
    let e = error_line(&[
        "train",
        "--data",
        c,
        "--csv-header",
        "maybe",
        "--out",
        &out("h"),
    ]);
    assert!(
        e.contains("--csv-header must be yes, no or auto, not 'maybe'"),
        "{e}"
    );

    // A write that fails names the user's file, not our temporary one.
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let e = write_npy(&ro.join("missing-dir/x.npy"), 1, 1, &[0.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.npy") && !e.contains(".tmp"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
