//! The library's errors as Python exceptions, and the guard that keeps a Rust panic from
//! crossing into Python.
//!
//! | library error | Python exception |
//! | --- | --- |
//! | `Config` (bad settings, bad data) | `ValueError`, the CLI's message |
//! | `Io` (a file could not be read or written) | `OSError` with `errno` and `filename` (so `FileNotFoundError` for a missing file) |
//! | `BadFile` (a malformed checkpoint or file) | `OSError`, the message naming the file |
//! | `NoAdapter`, `Gpu` (the device), `NonFinite` (training diverged) | `RuntimeError` |

use std::panic::{AssertUnwindSafe, catch_unwind};

use hourglass::Error;
use pyo3::PyErr;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};

pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Config(reason) => PyValueError::new_err(reason),
        Error::Io { path, source } => match source.raw_os_error() {
            // OSError(errno, strerror, filename): FileNotFoundError for a missing file.
            Some(errno) => {
                PyOSError::new_err((errno, source.to_string(), path.display().to_string()))
            }
            None => PyOSError::new_err(message),
        },
        Error::BadFile { .. } => PyOSError::new_err(message),
        // A size the machine cannot hold is a bad setting or bad data, not a device failure.
        Error::TooLarge { .. } => PyValueError::new_err(message),
        Error::NoAdapter(_) | Error::Gpu(_) | Error::NonFinite { .. } | Error::Distributed(_) => {
            PyRuntimeError::new_err(message)
        }
    }
}

/// Runs `f`, turning a library error into its exception and a panic (a bug in Hourglass: the
/// library does not panic on caller input) into a `RuntimeError` instead of unwinding into
/// the interpreter.
pub fn guarded<T>(f: impl FnOnce() -> hourglass::Result<T>) -> Result<T, PyErr> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_py),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(PyRuntimeError::new_err(format!(
                "internal error in hourglass (please report it): {what}"
            )))
        }
    }
}
