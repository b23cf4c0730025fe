//! The library reads no environment variable: every setting is a typed option
//! (`gpu::GpuOptions`, `data::LoadOptions`, ...), and the command line (src/bin/) maps its flags
//! and its environment variables onto them. This test reads the library's sources and fails on
//! any way of reading the environment, wgpu's own `from_env` helpers included.

#[path = "common/sources.rs"]
mod sources;

/// What reads the environment: std's readers and wgpu's `*_from_env` / `with_env` helpers.
const READERS: [&str; 6] = [
    "env::var(",
    "env::var_os(",
    "env::vars(",
    "env::vars_os(",
    "from_env",
    "with_env()",
];

#[test]
fn the_library_reads_no_environment_variable() {
    let mut found = Vec::new();
    for (file, text) in sources::library_sources() {
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
