//! Data sets: loading matrices from files, and the in-memory form training reads.

pub mod csv;
pub mod embedded;
pub mod fashion;
pub mod idx;
pub mod npy;
pub mod tensors;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::read::Limits;

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

/// How [`load_with`] reads a data file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Whether a CSV file's first line is a header.
    pub csv_header: csv::CsvHeader,
    /// The most bytes a loaded matrix may take in memory as f32 (and the most bytes of text a
    /// CSV file may hold); `None`: half the memory the system reports available.
    pub max_read_bytes: Option<u64>,
    /// What messages call `max_read_bytes` when it is given (e.g. the setting that chose it).
    pub max_read_bytes_name: Option<String>,
}

impl LoadOptions {
    fn limits(&self) -> Limits {
        let name = self
            .max_read_bytes_name
            .as_deref()
            .unwrap_or("max_read_bytes");
        Limits::new(self.max_read_bytes, name)
    }
}

/// Reads a data matrix, choosing the format by extension: `.npy`, `.csv`, IDX
/// (`-ubyte`, `.idx`, optionally `.gz`), or one tensor of a safetensors file
/// (`FILE.safetensors:TENSOR`, or `FILE.safetensors` when it holds one tensor).
pub fn load(path: &Path) -> Result<Dataset> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with `options`. Every format is read as its header describes and no further: an
/// endless stream or a file longer than its header says is refused, and so is data whose values
/// would take more than the read limit in memory.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Dataset> {
    let limits = options.limits();
    if let Some((file, tensor)) = path.to_str().and_then(tensors::split_source) {
        return tensors::read_tensor_limited(Path::new(file), tensor, &limits);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    if stem.ends_with(".npy") {
        npy::read_npy_limited(path, &limits)
    } else if stem.ends_with(".csv") {
        csv::read_csv_limited(path, options.csv_header, &limits)
    } else if stem.ends_with("-ubyte") || stem.contains(".idx") {
        idx::read_idx_limited(path, &limits)
    } else {
        Err(Error::bad_file(
            path,
            "unknown data format: expected .npy, .csv, .safetensors[:TENSOR] or an IDX file \
             (…-ubyte, .idx, optionally .gz)",
        ))
    }
}

/// Labels from a file: an IDX label file (…-ubyte, .idx, optionally .gz), or anything
/// [`load`] reads holding one column (or a 1-D `.npy`) of non-negative whole numbers.
pub fn load_labels(path: &Path) -> Result<Vec<u32>> {
    let lower = path.to_string_lossy().to_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    if stem.ends_with("-ubyte") || stem.contains(".idx") {
        return idx::read_idx_labels(path);
    }
    let d = load(path)?;
    if d.cols != 1 {
        return Err(Error::bad_file(
            path,
            format!(
                "labels must be one column (one label per row), got {} columns",
                d.cols
            ),
        ));
    }
    d.values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f32 {
                Ok(v as u32)
            } else {
                Err(Error::bad_file(
                    path,
                    format!("label {i} is {v}, not a non-negative whole number"),
                ))
            }
        })
        .collect()
}

/// How features are rescaled before training (`--normalize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// The values as loaded.
    #[default]
    None,
    /// Min-max per feature: the fitted data's minimum maps to 0 and its maximum to 1.
    Unit,
    /// Per feature: zero mean and unit (population) variance on the fitted data.
    Standard,
}

impl Normalize {
    /// Parses `none`, `unit` or `standard`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Normalize::None),
            "unit" => Ok(Normalize::Unit),
            "standard" => Ok(Normalize::Standard),
            other => Err(Error::Config(format!(
                "unknown normalization '{other}' (expected none, unit or standard)"
            ))),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Unit => "unit",
            Normalize::Standard => "standard",
        }
    }
}

/// A per-feature affine map `x ↦ (x − shift) · scale`, fitted on one data set (the training
/// split) by [`normalize`] and applied unchanged to others (validation, new data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// What was fitted.
    pub kind: Normalize,
    /// Subtracted from each feature.
    pub shift: Vec<f32>,
    /// Then multiplied into each feature.
    pub scale: Vec<f32>,
}

/// Fits `kind` to the columns of `data`, in f64. A constant column (max = min, or zero
/// variance) keeps scale 1, so it maps to 0 instead of dividing by zero.
pub fn normalize(kind: Normalize, data: &Dataset) -> Normalization {
    let cols = data.cols;
    let (mut shift, mut scale) = (vec![0.0f32; cols], vec![1.0f32; cols]);
    let column = |j: usize| {
        data.values
            .iter()
            .skip(j)
            .step_by(cols.max(1))
            .map(|&v| f64::from(v))
    };
    if data.rows > 0 {
        for j in 0..cols {
            let (offset, spread) = match kind {
                Normalize::None => (0.0, 1.0),
                Normalize::Unit => {
                    let (lo, hi) = column(j)
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v), hi.max(v))
                        });
                    (lo, hi - lo)
                }
                Normalize::Standard => {
                    let n = data.rows as f64;
                    let mean = column(j).sum::<f64>() / n;
                    let var = column(j).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
            };
            shift[j] = offset as f32;
            if spread > 0.0 && spread.is_finite() {
                scale[j] = (1.0 / spread) as f32;
            }
        }
    }
    Normalization { kind, shift, scale }
}

/// The largest scale (and reciprocal of the smallest) a [`Normalization`] may hold: 2⁶⁰. A
/// feature whose spread is below 2⁻⁶⁰ is constant for f32 data, and a larger factor turns
/// ordinary values into infinities.
pub const MAX_SCALE: f32 = (1u64 << 60) as f32;

impl Normalization {
    /// Checks that every shift is finite and every scale a finite, non-zero, non-subnormal
    /// number in [2⁻⁶⁰, 2⁶⁰] in magnitude (so that applying and inverting it stay finite);
    /// the reason names the first feature that is not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some((j, s)) = self.shift.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(format!(
                "the shift of feature {j} is {s}, not a finite number"
            ));
        }
        if let Some((j, k)) =
            self.scale.iter().enumerate().find(|(_, k)| {
                !(k.is_normal() && k.abs() <= MAX_SCALE && k.abs() >= 1.0 / MAX_SCALE)
            })
        {
            return Err(format!(
                "the scale of feature {j} is {k}; a scale must be finite, non-zero and between \
                 2^-60 and 2^60 in magnitude"
            ));
        }
        Ok(())
    }

    fn check(&self, data: &Dataset) -> Result<()> {
        self.validate()
            .map_err(|e| Error::Config(format!("normalization: {e}")))?;
        if data.cols != self.shift.len() || data.cols != self.scale.len() {
            return Err(Error::Config(format!(
                "the normalization was fitted on {} features but the data has {}",
                self.shift.len(),
                data.cols
            )));
        }
        Ok(())
    }

    /// Rescales `data` in place. [`Normalize::Unit`] clips into [0, 1] what falls outside the
    /// fitted range (validation or new data beyond the training minimum or maximum, and f32
    /// rounding at the ends), as scikit-learn's `MinMaxScaler(clip=True)`: its promise is data
    /// in [0, 1], the range cross-entropy needs.
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        self.check(data)?;
        if self.kind != Normalize::None {
            let unit = self.kind == Normalize::Unit;
            for row in data.values.chunks_exact_mut(data.cols) {
                for ((v, s), k) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                    *v = (*v - s) * k;
                    if unit {
                        *v = v.clamp(0.0, 1.0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Undoes [`Normalization::apply`] in place (for reconstructions and samples).
    pub fn invert(&self, data: &mut Dataset) -> Result<()> {
        self.check(data)?;
        if self.kind != Normalize::None {
            for row in data.values.chunks_exact_mut(data.cols) {
                for ((v, s), k) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                    *v = *v / k + s;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_one_column_of_whole_numbers() {
        let dir = std::env::temp_dir().join(format!("hourglass-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert_eq!(
            load_labels(&write("ok.csv", "3\n0\n9\n")).unwrap(),
            [3, 0, 9]
        );
        let e = load_labels(&write("wide.csv", "1,2\n3,4\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("one column") && e.contains("wide.csv"), "{e}");
        let e = load_labels(&write("frac.csv", "1\n2.5\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 1 is 2.5"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Three rows of four features: varied, constant, negative, and one with an outlier.
    fn sample() -> Dataset {
        Dataset::new(
            3,
            4,
            vec![
                0.0, 5.0, -3.0, 1.0, //
                2.0, 5.0, -1.0, 1.0, //
                4.0, 5.0, -2.0, 100.0,
            ],
        )
        .unwrap()
    }

    fn column(d: &Dataset, j: usize) -> Vec<f32> {
        (0..d.rows).map(|i| d.row(i)[j]).collect()
    }

    #[test]
    fn unit_maps_each_feature_to_zero_one() {
        let mut d = sample();
        let n = normalize(Normalize::Unit, &d);
        n.apply(&mut d).unwrap();
        assert_eq!(column(&d, 0), [0.0, 0.5, 1.0]);
        assert_eq!(
            column(&d, 1),
            [0.0, 0.0, 0.0],
            "a constant feature maps to 0"
        );
        assert_eq!(column(&d, 2), [0.0, 1.0, 0.5]);
        assert_eq!(column(&d, 3), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn standard_gives_zero_mean_unit_variance() {
        let mut d = sample();
        let n = normalize(Normalize::Standard, &d);
        n.apply(&mut d).unwrap();
        for j in [0, 2, 3] {
            let c = column(&d, j);
            let mean = c.iter().sum::<f32>() / 3.0;
            let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0;
            assert!(mean.abs() < 1e-6, "feature {j}: mean {mean}");
            assert!((var - 1.0).abs() < 1e-5, "feature {j}: variance {var}");
        }
        assert_eq!(column(&d, 1), [0.0, 0.0, 0.0]);
        // The population σ of 0, 2, 4 is √(8/3).
        assert!((n.scale[0] - 1.0 / (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn statistics_come_from_the_fitted_set_only() {
        let train = sample();
        let n = normalize(Normalize::Unit, &train);
        let mut val = Dataset::new(1, 4, vec![8.0, 5.0, 0.0, 1.0]).unwrap();
        n.apply(&mut val).unwrap();
        assert_eq!(
            val.values,
            [1.0, 0.0, 1.0, 0.0],
            "clipped into [0, 1] when outside the fit"
        );
        let standard = normalize(Normalize::Standard, &train);
        let mut val = Dataset::new(1, 4, vec![8.0, 5.0, 0.0, 1.0]).unwrap();
        standard.apply(&mut val).unwrap();
        assert!(val.values[0] > 1.0, "standard scaling is not clipped");
    }

    #[test]
    fn invert_undoes_apply() {
        let original = sample();
        for kind in [Normalize::None, Normalize::Unit, Normalize::Standard] {
            let mut d = original.clone();
            let n = normalize(kind, &d);
            n.apply(&mut d).unwrap();
            n.invert(&mut d).unwrap();
            for (a, b) in d.values.iter().zip(&original.values) {
                assert!(
                    (a - b).abs() < 1e-4 * b.abs().max(1.0),
                    "{kind:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn none_is_the_identity_and_names_parse() {
        let mut d = sample();
        normalize(Normalize::None, &d).apply(&mut d).unwrap();
        assert_eq!(d, sample());
        for kind in [Normalize::None, Normalize::Unit, Normalize::Standard] {
            assert_eq!(Normalize::parse(kind.name()).unwrap(), kind);
        }
        let e = Normalize::parse("zscore").unwrap_err().to_string();
        assert!(e.contains("none, unit or standard"), "{e}");
    }

    #[test]
    fn rejects_a_different_width() {
        let n = normalize(Normalize::Unit, &sample());
        let mut d = Dataset::new(1, 3, vec![0.0; 3]).unwrap();
        let e = n.apply(&mut d).unwrap_err().to_string();
        assert!(e.contains("fitted on 4 features but the data has 3"), "{e}");
    }
}
