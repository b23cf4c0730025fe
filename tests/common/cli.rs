//! Running the `hourglass` binary of this build from a test.

use std::process::{Command, Output};

/// `hourglass ARGS…`, its output captured (with `XDG_RUNTIME_DIR` set, as Mesa's drivers want).
pub fn hourglass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run hourglass")
}
