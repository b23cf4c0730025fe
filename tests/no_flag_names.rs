//! Library messages name the library's settings (`loss = mse`, `variant = psd`, `sparsity`),
//! never the command line's flags: a Python or Rust caller has no `--sparsity` to pass. The CLI
//! turns them into flags through one table (src/bin/hourglass/flag_names.rs). This test reads
//! the library's sources, outside src/bin/ and outside `#[cfg(test)]` modules, and fails on any
//! code line (strings included, comments not) that spells a flag, `--name`.

use std::path::{Path, PathBuf};

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

/// The first `--x` (x a lowercase letter) in the code part of `line`, comments cut off.
fn flag_in(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return None;
    }
    let code = match line.find("// ") {
        // A trailing comment; a URL's "//" inside a string has no space after it.
        Some(i) if !line[..i].ends_with(':') => &line[..i],
        _ => line,
    };
    let bytes = code.as_bytes();
    (0..bytes.len().saturating_sub(2))
        .find(|&i| {
            bytes[i] == b'-'
                && bytes[i + 1] == b'-'
                && bytes[i + 2].is_ascii_lowercase()
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        })
        .map(|i| {
            let end = code[i + 2..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(code.len(), |e| i + 2 + e);
            &code[i..end]
        })
}

#[test]
fn library_messages_name_no_command_line_flag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bin = src.join("bin");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {}", files.len());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&bin)) {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break; // a test module may check what the CLI prints
            }
            if let Some(flag) = flag_in(line) {
                found.push(format!(
                    "{}:{}: {flag}: {}",
                    file.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "library code names command-line flags (word the message in library settings and add \
         the flag to src/bin/hourglass/flag_names.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_flag() {
    // So that the test above cannot pass vacuously.
    assert_eq!(
        flag_in(r#"  "the weight (--sparsity) must be ≥ 0","#),
        Some("--sparsity")
    );
    assert_eq!(flag_in(r#"    --precision mixed""#), Some("--precision"));
    assert_eq!(flag_in("    // --sparsity in a comment"), None);
    assert_eq!(flag_in(r#"let x = a - -b; // --flag"#), None);
    assert_eq!(flag_in(r#""https://example.org/a--b""#), None);
}
