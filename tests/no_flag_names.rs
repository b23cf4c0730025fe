//! Library messages name the library's settings (`loss = mse`, `variant = psd`, `sparsity`),
//! never the command line's flags: a Python or Rust caller has no `--sparsity` to pass. The CLI
//! turns them into flags through one table (src/bin/hourglass/flag_names.rs). This test reads
//! the library's sources, outside src/bin/ and outside `#[cfg(test)]` modules, and fails on any
//! code line (strings included, comments not) that spells a flag, `--name`.

#[path = "common/sources.rs"]
mod sources;

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
    let mut found = Vec::new();
    for (file, text) in sources::library_sources() {
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
