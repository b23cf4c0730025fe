//! Data sets: loading matrices from files, and the in-memory form training reads.

pub mod csv;
pub mod idx;
pub mod npy;

use std::path::Path;

use crate::error::{Error, Result};

/// A data set of `rows` examples of `cols` features, row-major f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Number of examples.
    pub rows: usize,
    /// Features per example.
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub values: Vec<f32>,
}

impl Dataset {
    /// Wraps a row-major matrix, checking its size.
    pub fn new(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(Error::Config(format!(
                "a {rows}×{cols} data set needs {} values, got {}",
                rows.saturating_mul(cols),
                values.len()
            )));
        }
        Ok(Dataset { rows, cols, values })
    }

    /// Example `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a data matrix, choosing the format by extension: `.npy`, `.csv`, IDX
/// (`-ubyte`, `.idx`, optionally `.gz`).
pub fn load(path: &Path) -> Result<Dataset> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    if stem.ends_with(".npy") {
        npy::read_npy(path)
    } else if stem.ends_with(".csv") {
        csv::read_csv(path)
    } else if stem.ends_with("-ubyte") || stem.contains(".idx") {
        idx::read_idx(path)
    } else {
        Err(Error::bad_file(
            path,
            "unknown data format: expected .npy, .csv or an IDX file (…-ubyte, .idx, optionally .gz)",
        ))
    }
}
