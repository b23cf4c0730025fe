//! The library reads no environment variable: every setting is a typed option
//! (`gpu::GpuOptions`, `data::LoadOptions`, ...), and the command line (src/bin/) maps its flags
//! and its environment variables onto them. This test reads the library's sources and fails on
//! any way of reading the environment, wgpu's own `from_env` helpers included.

use std::path::{Path, PathBuf};

/// What reads the environment: std's readers and wgpu's `*_from_env` / `with_env` helpers.
const READERS: [&str; 6] = [
    "env::var(",
    "env::var_os(",
    "env::vars(",
    "env::vars_os(",
    "from_env",
    "with_env()",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_library_reads_no_environment_variable() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bin = src.join("bin");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {}", files.len());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&bin)) {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue; // documentation may name the variables the CLI maps
            }
            if let Some(r) = READERS.iter().find(|r| line.contains(*r)) {
                found.push(format!(
                    "{}:{}: {r}: {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the library must not read the environment (add a typed option and map the variable \
         in src/bin/):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_reader() {
    // The same test over a line that reads a variable, so the check itself cannot pass vacuously.
    let line = r#"let v = std::env::var("HOURGLASS_MATMUL_TILE");"#;
    assert!(READERS.iter().any(|r| line.contains(r)));
}
