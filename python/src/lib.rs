//! The `hourglass._hourglass` extension module: thin bindings over the `hourglass` library
//! (no engine code here). `python/hourglass/__init__.py` re-exports it with docstrings and
//! the progress bar; `options` maps the keywords onto the CLI's typed options, `arrays`
//! converts numpy arrays, `fit` runs the loop, `model` is `hourglass.Model`.

mod arrays;
mod errors;
mod fit;
mod model;
mod options;

use std::path::PathBuf;
use std::sync::Mutex;

use hourglass::data;
use hourglass::io::checkpoint;
use hourglass::rng::{Sequence, Stream};
use hourglass::{Autoencoder, Dataset, Device, DeviceChoice, Error, Trainer};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{guarded, to_py};
use crate::model::Model;
use crate::options::TrainOptions;

/// Devices opened so far, by choice: a GPU context compiles its pipelines once per process.
static DEVICES: Mutex<Vec<(DeviceChoice, Device)>> = Mutex::new(Vec::new());

fn open_device(py: Python<'_>, name: &str) -> PyResult<Device> {
    let choice = DeviceChoice::parse(name).map_err(to_py)?;
    py.detach(|| {
        let mut open = DEVICES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, d)) = open.iter().find(|(c, _)| *c == choice) {
            return Ok(d.clone());
        }
        let (device, _note) = guarded(|| Device::open(choice))?;
        open.push((choice, device.clone()));
        Ok(device)
    })
}

/// Splits `fraction` of the rows off for validation as `hourglass train --val-split` does
/// (chosen by `seed`, stream `Split`; both parts keep their order).
fn split_off(data: Dataset, fraction: f64, seed: u64) -> hourglass::Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!(
            "val_split must be between 0 and 1, got {fraction}"
        )));
    }
    let rows = data.rows;
    let n_val = ((rows as f64 * fraction).round() as usize).max(1);
    if n_val >= rows {
        return Err(Error::Config(format!(
            "val_split {fraction} leaves no training rows out of {rows}"
        )));
    }
    let mut rng = Sequence::new(seed, Stream::Split, 0);
    let mut index: Vec<usize> = (0..rows).collect();
    for i in 0..n_val {
        let j = i + rng.below((rows - i) as u32) as usize;
        index.swap(i, j);
    }
    let mut is_val = vec![false; rows];
    for &i in &index[..n_val] {
        is_val[i] = true;
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, &v) in is_val.iter().enumerate() {
        if v { &mut val } else { &mut train }.extend_from_slice(data.row(i));
    }
    Ok((
        Dataset::new(rows - n_val, data.cols, train)?,
        Dataset::new(n_val, data.cols, val)?,
    ))
}

/// Trains a model on the rows of `x`; see `hourglass.train`.
#[pyfunction]
#[pyo3(signature = (x, *, val = None, callback = None, progress = None, **kwargs))]
fn train(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
    callback: Option<Py<PyAny>>,
    progress: Option<Py<PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Model> {
    let o = TrainOptions::from_kwargs(kwargs)?;
    let mut train = arrays::dataset(x, "x", o.allow_nonfinite)?;
    let mut val = match (val, o.val_split) {
        (Some(_), Some(_)) => {
            return Err(to_py(Error::Config(
                "val and val_split name two validation sets; give one".into(),
            )));
        }
        (Some(v), None) => Some(arrays::dataset(v, "val", o.allow_nonfinite)?),
        (None, Some(fraction)) => {
            let (t, v) = split_off(train, fraction, o.seed).map_err(to_py)?;
            train = t;
            Some(v)
        }
        (None, None) => None,
    };
    if let Some(v) = &val
        && v.cols != train.cols
    {
        return Err(to_py(Error::Config(format!(
            "the validation data has {} features but the training data has {}",
            v.cols, train.cols
        ))));
    }
    let normalization = data::normalize(o.normalize_kind().map_err(to_py)?, &train);
    normalization.apply(&mut train).map_err(to_py)?;
    if let Some(v) = &mut val {
        normalization.apply(v).map_err(to_py)?;
    }
    let (spec, init) = match &o.init {
        Some(path) => {
            let (spec, params) = checkpoint::load(path.as_ref()).map_err(to_py)?;
            (spec, Some(params))
        }
        None => (o.spec(&train).map_err(to_py)?, None),
    };
    let total = o.total_steps(train.rows).map_err(to_py)?;
    let config = o.train_config(total).map_err(to_py)?;
    let device = open_device(py, &o.device)?;
    let mut trainer =
        py.detach(|| guarded(|| Trainer::new(&spec, &config, &train, &device, init.as_ref())))?;
    if config.precision != trainer.precision() {
        let warnings = py.import("warnings")?;
        warnings.call_method1(
            "warn",
            (format!(
                "precision=\"mixed\" needs a GPU with f16 cooperative matrices (tensor cores), \
                 which {} does not have; training in f32 (precision=\"mixed-emulated\" gives \
                 mixed precision's numbers here, slowly)",
                device.describe()
            ),),
        )?;
    }
    let outcome = guarded(|| {
        fit::run(
            py,
            &mut trainer,
            total,
            val.as_ref(),
            o.early_stop,
            o.log_every,
            callback.as_ref(),
            progress.as_ref(),
        )
    })?;
    let ae = py.detach(|| {
        guarded(|| Autoencoder::new(spec.clone(), trainer.parameters()?, device.clone()))
    })?;
    let model = Model::new(ae, Some(normalization), outcome.history);
    match outcome.raised {
        None => Ok(model),
        Some(err) => {
            if err.is_instance_of::<PyKeyboardInterrupt>(py) {
                // The model as of the last finished step rides on the exception.
                err.value(py).setattr("model", Py::new(py, model)?)?;
            }
            Err(err)
        }
    }
}

/// Loads a checkpoint (a `Model.save` file, or a CLI run's model.safetensors or
/// best.safetensors, with the run's normalization.json beside it when there is one).
#[pyfunction]
#[pyo3(signature = (path, *, device = "auto"))]
fn load(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Model> {
    let device = open_device(py, device)?;
    py.detach(|| {
        guarded(|| {
            let ae = Autoencoder::load(&path, device)?;
            let normalization = model::normalization_beside(&path)?;
            Ok(Model::new(ae, normalization, Vec::new()))
        })
    })
}

/// The GPU adapters wgpu sees, in the order `device="auto"` prefers them, as dicts.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let adapters = py.detach(|| guarded(|| Ok(hourglass::gpu::list_adapters())))?;
    let items: PyResult<Vec<_>> = adapters
        .into_iter()
        .map(|a| {
            let d = PyDict::new(py);
            d.set_item("index", a.index)?;
            d.set_item("name", a.name)?;
            d.set_item("backend", a.backend)?;
            d.set_item("device_type", a.device_type)?;
            d.set_item("driver", a.driver)?;
            d.set_item("features", a.features)?;
            d.set_item("max_storage_binding", a.max_storage_binding)?;
            d.set_item("max_buffer", a.max_buffer)?;
            d.set_item("f16_matrix_units", a.f16_matrix_units)?;
            Ok(d)
        })
        .collect();
    PyList::new(py, items?)
}

/// The keywords of `train` and their defaults (those of `hourglass train`'s flags).
#[pyfunction]
fn train_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    TrainOptions::defaults_dict(py)
}

#[pymodule]
fn _hourglass(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // As the command line does: the engine's f32 products as one single-threaded OpenBLAS call
    // per rayon tile (the engine's own OpenBLAS, the system's libopenblas; numpy's wheels bundle
    // a copy of their own). Also what makes a Python run equal a CLI run bit for bit.
    hourglass::cpu::set_openblas_serial(true);
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(train_defaults, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
