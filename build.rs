//! Picks the CPU executor's f32 GEMM: the system's OpenBLAS when this machine can link it, the
//! pure-Rust `gemm` crate otherwise, so that an application depending on this crate builds on
//! a machine without OpenBLAS. The features force either choice: `openblas` (a build error
//! naming the package to install when it cannot be linked) or `rust-gemm`.
//!
//! The probe links a three-line program against `-lopenblas` with the same `rustc`, using
//! pkg-config's search path when pkg-config knows OpenBLAS. It sets `cfg(hourglass_openblas)`.
//! CI checks the fallback on a machine that has OpenBLAS by making the probe look for a library
//! that does not exist: `HOURGLASS_OPENBLAS_PROBE_LIB=absent cargo check` (a build-time knob
//! for that test only; the built library reads no environment).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hourglass_openblas)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=HOURGLASS_OPENBLAS_PROBE_LIB");
    let forced = std::env::var_os("CARGO_FEATURE_OPENBLAS").is_some();
    let rust_only = std::env::var_os("CARGO_FEATURE_RUST_GEMM").is_some();
    if forced && rust_only {
        panic!("the features `openblas` and `rust-gemm` exclude each other: enable one of them");
    }
    if rust_only {
        return;
    }
    let search = pkg_config_search_path();
    let linked = probe(search.as_deref());
    if !linked {
        if forced {
            panic!(
                "the `openblas` feature is on but this machine cannot link -lopenblas: install \
                 OpenBLAS (Debian/Ubuntu: apt-get install libopenblas-dev; macOS: brew install \
                 openblas) or build without the feature to use the pure-Rust GEMM"
            );
        }
        println!(
            "cargo::warning=OpenBLAS not found: the CPU executor uses the pure-Rust gemm crate \
             (apt-get install libopenblas-dev for faster f32 products)"
        );
        return;
    }
    if let Some(dir) = search {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    println!("cargo::rustc-cfg=hourglass_openblas");
}

/// The `-L` directory `pkg-config --libs openblas` names, if any.
fn pkg_config_search_path() -> Option<PathBuf> {
    let out = Command::new("pkg-config")
        .args(["--libs", "openblas"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|flag| flag.strip_prefix("-L").map(PathBuf::from))
}

/// Whether a program calling OpenBLAS links on this machine.
fn probe(search: Option<&Path>) -> bool {
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let source = out_dir.join("openblas_probe.rs");
    let lib = std::env::var("HOURGLASS_OPENBLAS_PROBE_LIB").unwrap_or_else(|_| "openblas".into());
    let program = format!(
        "#[link(name = \"{lib}\")]\n\
         unsafe extern \"C\" {{ fn openblas_set_num_threads(n: i32); }}\n\
         fn main() {{ unsafe {{ openblas_set_num_threads(1) }} }}\n"
    );
    if std::fs::write(&source, program).is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2021", "--crate-name", "openblas_probe", "-o"])
        .arg(out_dir.join("openblas_probe"))
        .arg(&source);
    if let Some(target) = std::env::var_os("TARGET") {
        cmd.arg("--target").arg(target);
    }
    if let Some(dir) = search {
        cmd.arg("-L").arg(format!("native={}", dir.display()));
    }
    cmd.output().is_ok_and(|o| o.status.success())
}
