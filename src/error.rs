//! The one error type of the crate: every failure a user can meet is a value with a message that
//! says what went wrong and, where there is one, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in Hourglass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model specification or a training option that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A data or checkpoint file that could not be read or is malformed.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file that was being read.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An operating-system I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// No GPU adapter could be found or opened.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),

    /// The GPU reported an error (validation, out of memory, device lost).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A size that needs more memory than the machine has, or more than any machine can address
    /// (`needed` is then `None`); refused before anything is allocated.
    #[error("{}", too_large(what, needed, *available))]
    TooLarge {
        /// What was being sized (a model, a flag, a file).
        what: String,
        /// Bytes it needs, when that is a number a `u64` can hold.
        needed: Option<u64>,
        /// Bytes the machine (or the GPU adapter) offers.
        available: u64,
    },

    /// A collective operation between the processes of a data-parallel run failed, or the
    /// processes disagree (different flags, data or model on different ranks).
    #[error("{0}")]
    Distributed(String),

    /// Training produced a non-finite value.
    #[error("non-finite {what}{}", if *step == 0 { String::new() } else { format!(" at step {step}") })]
    NonFinite {
        /// Which quantity went bad (e.g. "loss").
        what: String,
        /// The 1-based optimizer step at which it was seen (0: outside training, e.g. `eval`).
        step: u64,
    },
}

impl Error {
    /// Shorthand for a malformed-file error.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an I/O error on a named file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

fn too_large(what: &str, needed: &Option<u64>, available: u64) -> String {
    match needed {
        Some(n) => format!("{what} needs {n} bytes of memory but {available} bytes are available"),
        None => format!("{what} has more parameters than any machine can address"),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
