//! `hourglass.Model`: a trained model on a device, with the normalization it was trained
//! with, applied to inputs and undone on outputs as the CLI's `encode`, `reconstruct` and
//! `sample` do.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hourglass::analysis::hashing::{binarize, pack_bits, threshold_for};
use hourglass::data::{Normalization, Normalize};
use hourglass::infer::evaluate;
use hourglass::model::Variant;
use hourglass::rng::{Sequence, Stream, gaussian_f32};
use hourglass::{Autoencoder, Dataset, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{bytes_to_numpy, dataset, to_numpy};
use crate::errors::{guarded, to_py};
use crate::fit::{Record, record_dict};

/// The file beside a checkpoint that holds the training normalization (as in a CLI run folder).
const NORMALIZATION_FILE: &str = "normalization.json";

/// The most rows one `sample` call decodes (the CLI's limit).
const MAX_SAMPLES: usize = 1_000_000;

/// A trained autoencoder: `encode`, `reconstruct`, `decode`, `sample` (VAE), `evaluate`,
/// `save`, `state_dict`, and the `history` of the run that trained it.
#[pyclass(module = "hourglass", name = "Model", frozen)]
pub struct Model {
    inner: Mutex<Autoencoder>,
    normalization: Option<Normalization>,
    history: Vec<Record>,
}

impl Model {
    pub fn new(
        ae: Autoencoder,
        normalization: Option<Normalization>,
        history: Vec<Record>,
    ) -> Self {
        let normalization = normalization.filter(|n| n.kind != Normalize::None);
        Model {
            inner: Mutex::new(ae),
            normalization,
            history,
        }
    }

    /// Runs `f` on the model with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Autoencoder) -> hourglass::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut ae = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guarded(|| f(&mut ae))
        })
    }

    fn input(&self, x: &Bound<'_, PyAny>, what: &str) -> PyResult<Dataset> {
        let mut data = dataset(x, what, false)?;
        if let Some(n) = &self.normalization {
            n.apply(&mut data).map_err(to_py)?;
        }
        Ok(data)
    }

    fn output<'py>(&self, py: Python<'py>, mut d: Dataset) -> PyResult<Bound<'py, PyAny>> {
        if let Some(n) = &self.normalization {
            n.invert(&mut d).map_err(to_py)?;
        }
        to_numpy(py, d)
    }

    fn spec(&self) -> hourglass::ModelSpec {
        self.lock().spec().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Autoencoder> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn variant_name(v: &Variant) -> &'static str {
    match v {
        Variant::Plain => "plain",
        Variant::Sparse { .. } => "sparse",
        Variant::Denoising { .. } => "denoising",
        Variant::Contractive { .. } => "contractive",
        Variant::Vae { .. } => "vae",
        Variant::Psd { .. } => "psd",
    }
}

#[pymethods]
impl Model {
    /// The code of each row of `x` (μ for a VAE): float32 [rows, code]. With `binary=True`,
    /// each code as bits (code > `threshold`, by default 0.5 for a sigmoid code and else 0)
    /// packed 8 to a byte, most significant first: uint8 [rows, ceil(code/8)]
    /// (`np.unpackbits(a, axis=1)` undoes it).
    #[pyo3(signature = (x, *, binary = false, threshold = None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        binary: bool,
        threshold: Option<f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if threshold.is_some() && !binary {
            return Err(PyValueError::new_err(
                "threshold only applies with binary=True",
            ));
        }
        let data = self.input(x, "x")?;
        let codes = self.with(py, |ae| ae.encode(&data))?;
        if !binary {
            return to_numpy(py, codes);
        }
        let t = threshold.unwrap_or_else(|| threshold_for(self.spec().code_activation));
        let packed = pack_bits(&binarize(&codes, t)).map_err(to_py)?;
        let (rows, cols) = (packed.rows, packed.row_bytes());
        bytes_to_numpy(py, packed.bytes, rows, cols)
    }

    /// The reconstruction of each row of `x` (no input corruption; a VAE decodes μ): float32
    /// [rows, features], in the data's own scale.
    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.input(x, "x")?;
        let out = self.with(py, |ae| ae.reconstruct(&data))?;
        self.output(py, out)
    }

    /// The decoder's output for each row of `codes` [rows, code]: float32 [rows, features].
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let codes = dataset(codes, "codes", false)?;
        let out = self.with(py, |ae| ae.decode(&codes))?;
        self.output(py, out)
    }

    /// `n` rows decoded from codes drawn from a VAE's prior N(0, I) with `seed`: the same
    /// draws as `hourglass sample --n N --seed S`, and the first k the same whatever `n` is.
    #[pyo3(signature = (n, *, seed = 0))]
    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Bound<'py, PyAny>> {
        if !(1..=MAX_SAMPLES).contains(&n) {
            return Err(PyValueError::new_err(format!(
                "n must be between 1 and {MAX_SAMPLES}, got {n}"
            )));
        }
        let spec = self.spec();
        if !matches!(spec.variant, Variant::Vae { .. }) {
            return Err(PyValueError::new_err(format!(
                "sample draws codes from a VAE's prior N(0, I), but this is a {} autoencoder; \
                 train one with variant=\"vae\"",
                variant_name(&spec.variant)
            )));
        }
        let dim = spec.code_dim();
        let mut rng = Sequence::new(seed, Stream::Sampler, 0);
        let draws: Vec<f32> = (0..n * dim)
            .map(|_| gaussian_f32(rng.next_u32(), rng.next_u32()))
            .collect();
        let out = self.with(py, |ae| ae.decode(&Dataset::new(n, dim, draws)?))?;
        self.output(py, out)
    }

    /// Every loss term of the model's training objective on `x`, averaged over its rows, as
    /// `hourglass eval --json` reports it: `{"loss": total, term: value, ...}`, and for a
    /// denoising model `"clean_reconstruction"` (the loss on uncorrupted inputs). Stochastic
    /// terms draw from `seed`.
    #[pyo3(signature = (x, *, seed = 0))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let data = self.input(x, "x")?;
        let (report, clean) = self.with(py, |ae| {
            let report = ae.evaluate(&data, seed)?;
            let clean = match ae.spec().variant {
                Variant::Denoising { .. } => {
                    let mut plain = ae.spec().clone();
                    plain.variant = Variant::Plain;
                    evaluate(&plain, ae.parameters(), &data, ae.device(), seed)?
                        .term("reconstruction")
                }
                _ => None,
            };
            Ok((report, clean))
        })?;
        let d = PyDict::new(py);
        d.set_item("loss", report.total())?;
        for (name, value) in &report.terms {
            d.set_item(*name, *value)?;
        }
        if let Some(c) = clean {
            d.set_item("clean_reconstruction", c)?;
        }
        Ok(d)
    }

    /// Writes the model as a safetensors checkpoint (PyTorch names; what `hourglass train`
    /// writes as model.safetensors, and what `hourglass encode --model` reads), atomically.
    /// A model trained with `normalize` also writes its normalization.json beside it, as a CLI
    /// run folder holds it.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let normalization = self.normalization.clone();
        self.with(py, move |ae| {
            ae.save(&path)?;
            if let Some(n) = normalization {
                let beside = path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(NORMALIZATION_FILE);
                let json = serde_json::to_string(&n)
                    .map_err(|e| Error::Config(format!("normalization: {e}")))?;
                hourglass::io::write_atomic(&beside, json.as_bytes())?;
            }
            Ok(())
        })
    }

    /// The parameters as numpy arrays under PyTorch's names (`encoder.0.weight` is
    /// [out, in]), for `torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in
    /// model.state_dict().items()})` with the matching `nn.Sequential`s of `nn.Linear`.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ae = self.lock();
        let params = ae.parameters();
        let d = PyDict::new(py);
        for t in params.layout.tensors() {
            let a = numpy::PyArray1::from_slice(py, params.tensor(t));
            d.set_item(
                &t.name,
                numpy::PyArrayMethods::reshape(&a, t.shape.clone())?,
            )?;
        }
        Ok(d)
    }

    /// The epoch reports of the run that trained it (the lines of `metrics.jsonl`); empty for a
    /// loaded model.
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: PyResult<Vec<_>> = self.history.iter().map(|r| record_dict(py, r)).collect();
        PyList::new(py, items?)
    }

    /// The model spec (layer sizes, activations, loss, variant) as a dict.
    #[getter]
    fn spec_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.spec().to_json();
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Encoder layer sizes, input first, code last.
    #[getter]
    fn encoder(&self) -> Vec<usize> {
        self.spec().encoder
    }

    /// Decoder layer sizes, code first, output last.
    #[getter]
    fn decoder(&self) -> Vec<usize> {
        self.spec().decoder
    }

    /// plain, sparse, denoising, contractive or vae.
    #[getter]
    fn variant(&self) -> &'static str {
        variant_name(&self.spec().variant)
    }

    /// Where the model runs.
    #[getter]
    fn device(&self) -> String {
        self.lock().device().describe()
    }

    /// The normalization applied to inputs (and undone on outputs): none, unit or standard.
    #[getter]
    fn normalize(&self) -> &'static str {
        self.normalization
            .as_ref()
            .map_or("none", |n| n.kind.name())
    }

    fn __repr__(&self) -> String {
        let spec = self.spec();
        format!(
            "hourglass.Model({} autoencoder {:?} → {:?}, on {})",
            variant_name(&spec.variant),
            spec.encoder,
            spec.decoder,
            self.device()
        )
    }
}

/// The normalization beside a checkpoint, as `hourglass encode` reads it.
pub fn normalization_beside(path: &Path) -> hourglass::Result<Option<Normalization>> {
    let beside = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(NORMALIZATION_FILE);
    let text = match std::fs::read_to_string(&beside) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&beside, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::bad_file(&beside, format!("not a normalization file: {e}")))
}
