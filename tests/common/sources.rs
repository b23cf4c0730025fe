//! The library's own sources, `src/` without the command line's `src/bin/`, for the tests that
//! read them (tests/no_environment.rs, tests/no_flag_names.rs). Included by `#[path]` so that
//! those tests do not compile the rest of tests/common.

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

/// Every `.rs` file of the library with its text, outside src/bin/.
pub fn library_sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bin = src.join("bin");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {}", files.len());
    files
        .into_iter()
        .filter(|f| !f.starts_with(&bin))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read");
            (f, text)
        })
        .collect()
}
