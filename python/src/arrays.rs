//! numpy arrays in and out: a 2-D array of float32, float64, uint8 (scaled to [0, 1], as the
//! CLI reads u8 `.npy` files) or integers becomes a row-major f32 [`Dataset`]; results come back
//! as numpy arrays that own the library's buffers (no copy).

use hourglass::Dataset;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn rows_of<T: numpy::Element + Copy + Send + Sync>(
    py: Python<'_>,
    a: &PyReadonlyArray2<'_, T>,
    f: impl Fn(T) -> f32 + Send + Sync,
) -> Vec<f32> {
    // `as_slice` also accepts a Fortran-ordered array, whose memory is column by column.
    match a.as_slice() {
        Ok(s) if a.is_c_contiguous() => py.detach(|| s.iter().map(|&v| f(v)).collect()),
        _ => a.as_array().iter().map(|&v| f(v)).collect(),
    }
}

/// `x` as a data set; `what` names it in messages (`x`, `val`, `codes`). Rows holding NaN or
/// ±Inf are refused, as the CLI refuses such a file, unless `allow_nonfinite` drops them.
pub fn dataset(x: &Bound<'_, PyAny>, what: &str, allow_nonfinite: bool) -> PyResult<Dataset> {
    let py = x.py();
    let arr = py.import("numpy")?.call_method1("asarray", (x,))?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a 2-D array [rows, features], got shape {shape:?}{}",
            if shape.len() == 1 {
                " (one row is x[None, :])"
            } else {
                ""
            }
        )));
    }
    let (rows, cols) = (shape[0], shape[1]);
    if rows == 0 {
        return Err(PyValueError::new_err(format!("{what} has no rows")));
    }
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let itemsize: usize = dtype.getattr("itemsize")?.extract()?;
    let values = match (kind.as_str(), itemsize) {
        ("f", 4) => rows_of(py, &arr.extract::<PyReadonlyArray2<f32>>()?, |v| v),
        ("f", 8) => rows_of(py, &arr.extract::<PyReadonlyArray2<f64>>()?, |v| v as f32),
        ("u", 1) => rows_of(py, &arr.extract::<PyReadonlyArray2<u8>>()?, |v| {
            f32::from(v) / 255.0
        }),
        ("i" | "u" | "b" | "f", _) => {
            let a = arr.call_method1("astype", ("float32",))?;
            rows_of(py, &a.extract::<PyReadonlyArray2<f32>>()?, |v| v)
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what} has dtype {}; expected float32, float64, uint8 or integers",
                dtype.str()?
            )));
        }
    };
    let data = Dataset::new(rows, cols, values).map_err(crate::errors::to_py)?;
    finite_rows(data, what, allow_nonfinite)
}

/// The CLI's rule for non-finite rows (`hourglass train --allow-nonfinite`), for an array.
fn finite_rows(data: Dataset, what: &str, allow: bool) -> PyResult<Dataset> {
    let bad: Vec<usize> = (0..data.rows)
        .filter(|&r| data.row(r).iter().any(|v| !v.is_finite()))
        .collect();
    let Some(&first) = bad.first() else {
        return Ok(data);
    };
    if !allow {
        return Err(PyValueError::new_err(format!(
            "{what}: {} of {} rows hold NaN or infinite values (the first is row {first}); fix \
             the data or pass allow_nonfinite=True to drop those rows",
            bad.len(),
            data.rows
        )));
    }
    let keep: Vec<f32> = (0..data.rows)
        .filter(|r| bad.binary_search(r).is_err())
        .flat_map(|r| data.row(r).to_vec())
        .collect();
    let rows = data.rows - bad.len();
    if rows == 0 {
        return Err(PyValueError::new_err(format!(
            "{what}: every row holds NaN or infinite values"
        )));
    }
    Dataset::new(rows, data.cols, keep).map_err(crate::errors::to_py)
}

/// A data set as a float32 numpy array [rows, cols] that takes over its buffer.
pub fn to_numpy<'py>(py: Python<'py>, d: Dataset) -> PyResult<Bound<'py, PyAny>> {
    let (rows, cols) = (d.rows, d.cols);
    Ok(PyArray1::from_vec(py, d.values)
        .reshape([rows, cols])?
        .into_any())
}

/// Bytes as a uint8 numpy array [rows, cols].
pub fn bytes_to_numpy<'py>(
    py: Python<'py>,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, bytes)
        .reshape([rows, cols])?
        .into_any())
}
