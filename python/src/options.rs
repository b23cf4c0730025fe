//! The keywords of `hourglass.train`: the long flags of `hourglass train` with `-` spelled `_`,
//! their defaults the CLI's, resolved into the same typed library options the CLI builds (a
//! [`ModelSpec`] and a [`TrainConfig`]), so that a Python run and a CLI run with the same
//! settings are the same run.

use hourglass::data::Normalize;
use hourglass::graph::Precision;
use hourglass::model::{EncoderToken, ModelOptions, ModelSpec};
use hourglass::optim::{OptimizerConfig, OptimizerKind};
use hourglass::train::{NonFinitePolicy, ReducePrecision, Schedule, TrainConfig};
use hourglass::{Dataset, Error, Result};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// Epochs of a run that names neither `steps` nor `epochs` (the CLI's default).
pub const DEFAULT_EPOCHS: u64 = 5;

/// Flags of `hourglass train` that have no keyword here, and why.
const CLI_ONLY: &[(&str, &str)] = &[
    ("data", "pass the rows as the first argument"),
    ("dataset", "pass the rows as the first argument"),
    ("data_dir", "pass the rows as the first argument"),
    (
        "config",
        "pass the settings as keywords (e.g. **tomllib.load(f))",
    ),
    ("resume", "the CLI's run folders are resumed by the CLI"),
    ("out", "save the model with model.save(path)"),
    ("checkpoint_every", "save the model from the callback"),
];

/// The resolved keywords. Field names, types and defaults are those of the CLI's `TrainArgs`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub val_split: Option<f64>,
    /// The model settings, resolved into a spec by the library as the CLI resolves its flags.
    pub model: ModelOptions,
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub schedule: String,
    pub warmup: u64,
    pub clip_grad_norm: Option<f32>,
    pub batch_size: usize,
    /// Micro-batches of `batch_size` per optimizer step (gradient accumulation).
    pub accumulate: usize,
    pub drop_last: bool,
    pub on_nonfinite: String,
    pub precision: String,
    /// The number format of the gradient's sum between ranks (`f32` or `f16`); one process
    /// has no ranks to sum over, so it trains alike with either, as the CLI does.
    pub reduce_precision: String,
    /// The gradient's buckets between ranks, in KiB, or `off` (the CLI's `--reduce-buckets`);
    /// one process has no ranks either, so it trains alike with any.
    pub reduce_buckets: String,
    pub steps: Option<u64>,
    pub epochs: Option<u64>,
    pub early_stop: Option<u64>,
    pub no_shuffle: bool,
    pub seed: u64,
    pub device: String,
    pub init: Option<String>,
    pub log_every: Option<u64>,
    pub normalize: Option<String>,
    pub allow_nonfinite: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            val_split: None,
            model: ModelOptions::default(),
            optimizer: "adam".into(),
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: "constant".into(),
            warmup: 0,
            clip_grad_norm: None,
            batch_size: 64,
            accumulate: 1,
            drop_last: false,
            on_nonfinite: "stop".into(),
            precision: "f32".into(),
            reduce_precision: "f32".into(),
            reduce_buckets: (hourglass::train::DEFAULT_BUCKET_BYTES / 1024).to_string(),
            steps: None,
            epochs: None,
            early_stop: None,
            no_shuffle: false,
            seed: 0,
            device: "auto".into(),
            init: None,
            log_every: None,
            normalize: None,
            allow_nonfinite: false,
        }
    }
}

/// A Python float as the CLI would have parsed its decimal spelling (`repr`): `lr=1e-3` gives
/// the f32 nearest to 0.001, as `--lr 1e-3` does, not the f32 nearest to the f64 nearest.
fn as_f32(value: &Bound<'_, PyAny>) -> PyResult<f32> {
    value.extract::<f64>()?;
    let text = value.repr()?.to_string();
    text.parse::<f32>()
        .or_else(|_| value.extract::<f64>().map(|v| v as f32))
}

fn as_u64(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err("expected an int, got a bool"));
    }
    value.extract::<u64>()
}

/// Layer sizes as a list of ints or the CLI's `"784,256,32"`.
fn as_sizes(value: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    if let Ok(text) = value.cast::<PyString>() {
        let text: String = text.extract()?;
        return text
            .split(',')
            .map(|s| {
                s.trim().parse::<usize>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "'{text}' is not a list of layer sizes such as '784,256,32'"
                    ))
                })
            })
            .collect();
    }
    value
        .try_iter()?
        .map(|item| as_u64(&item?).map(|v| v as usize))
        .collect()
}

/// Encoder tokens as the CLI's `"1x28x28,conv32k3s2,32"` or a list of them (ints for dense
/// sizes, strings for shapes and conv layers: `["1x28x28", "conv32k3s2", 32]`).
fn as_tokens(value: &Bound<'_, PyAny>) -> PyResult<Vec<EncoderToken>> {
    let parse = |t: &str| {
        EncoderToken::parse(t.trim()).map_err(|e| match e {
            Error::Config(m) => PyValueError::new_err(m),
            other => PyValueError::new_err(other.to_string()),
        })
    };
    if let Ok(text) = value.cast::<PyString>() {
        let text: String = text.extract()?;
        return text.split(',').map(parse).collect();
    }
    value
        .try_iter()?
        .map(|item| {
            let item = item?;
            match item.cast::<PyString>() {
                Ok(t) => parse(&t.extract::<String>()?),
                Err(_) => as_u64(&item).map(|v| EncoderToken::Dense(v as usize)),
            }
        })
        .collect()
}

fn optional<T>(
    value: &Bound<'_, PyAny>,
    f: impl Fn(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Option<T>> {
    if value.is_none() {
        Ok(None)
    } else {
        f(value).map(Some)
    }
}

fn as_bool(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    value.extract::<bool>()
}

fn as_string(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(p) = value.extract::<std::path::PathBuf>()
        && !value.is_instance_of::<PyString>()
    {
        return Ok(p.display().to_string());
    }
    value.extract::<String>()
}

/// Every keyword `train` takes, in the CLI's order.
pub const KEYWORDS: &[&str] = &[
    "val_split",
    "encoder",
    "decoder",
    "activation",
    "code_activation",
    "output_activation",
    "loss",
    "tied",
    "variant",
    "sparsity",
    "sparsity_target",
    "noise",
    "contractive",
    "jacobian_projections",
    "beta",
    "vae_samples",
    "prediction",
    "inference_steps",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup",
    "clip_grad_norm",
    "batch_size",
    "accumulate",
    "drop_last",
    "on_nonfinite",
    "precision",
    "reduce_precision",
    "reduce_buckets",
    "steps",
    "epochs",
    "early_stop",
    "no_shuffle",
    "seed",
    "device",
    "init",
    "log_every",
    "normalize",
    "allow_nonfinite",
];

impl TrainOptions {
    /// Reads the keywords of a call; an unknown one is a `TypeError`, as for any Python
    /// function, naming the flags that only the CLI has.
    pub fn from_kwargs(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut o = TrainOptions::default();
        let Some(kwargs) = kwargs else {
            return Ok(o);
        };
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            let v = &value;
            let set = match key.as_str() {
                "val_split" => optional(v, |v| v.extract::<f64>()).map(|x| o.val_split = x),
                "encoder" => as_tokens(v).map(|x| o.model.encoder = x),
                "decoder" => optional(v, as_sizes).map(|x| o.model.decoder = x),
                "activation" => as_string(v).map(|x| o.model.activation = x),
                "code_activation" => as_string(v).map(|x| o.model.code_activation = x),
                "output_activation" => as_string(v).map(|x| o.model.output_activation = x),
                "loss" => as_string(v).map(|x| o.model.loss = x),
                "tied" => as_bool(v).map(|x| o.model.tied = x),
                "variant" => as_string(v).map(|x| o.model.variant = x),
                "sparsity" => as_f32(v).map(|x| o.model.sparsity = x),
                "sparsity_target" => optional(v, as_f32).map(|x| o.model.sparsity_target = x),
                "noise" => as_string(v).map(|x| o.model.noise = x),
                "contractive" => as_f32(v).map(|x| o.model.contractive = x),
                "jacobian_projections" => optional(v, as_u64).map(|x| {
                    o.model.jacobian_projections = x.map(|p| p.min(u64::from(u32::MAX)) as u32)
                }),
                "beta" => as_f32(v).map(|x| o.model.beta = x),
                "vae_samples" => {
                    as_u64(v).map(|x| o.model.vae_samples = x.min(u64::from(u32::MAX)) as u32)
                }
                "prediction" => as_f32(v).map(|x| o.model.prediction = x),
                "inference_steps" => {
                    as_u64(v).map(|x| o.model.inference_steps = x.min(u64::from(u32::MAX)) as u32)
                }
                "optimizer" => as_string(v).map(|x| o.optimizer = x),
                "lr" => as_f32(v).map(|x| o.lr = x),
                "momentum" => as_f32(v).map(|x| o.momentum = x),
                "weight_decay" => as_f32(v).map(|x| o.weight_decay = x),
                "schedule" => as_string(v).map(|x| o.schedule = x),
                "warmup" => as_u64(v).map(|x| o.warmup = x),
                "clip_grad_norm" => optional(v, as_f32).map(|x| o.clip_grad_norm = x),
                "batch_size" => as_u64(v).map(|x| o.batch_size = x as usize),
                "accumulate" => as_u64(v).map(|x| o.accumulate = x as usize),
                "drop_last" => as_bool(v).map(|x| o.drop_last = x),
                "on_nonfinite" => as_string(v).map(|x| o.on_nonfinite = x),
                "precision" => as_string(v).map(|x| o.precision = x),
                "reduce_precision" => as_string(v).map(|x| o.reduce_precision = x),
                "reduce_buckets" => as_string(v).map(|x| o.reduce_buckets = x),
                "steps" => optional(v, as_u64).map(|x| o.steps = x),
                "epochs" => optional(v, as_u64).map(|x| o.epochs = x),
                "early_stop" => optional(v, as_u64).map(|x| o.early_stop = x),
                "no_shuffle" => as_bool(v).map(|x| o.no_shuffle = x),
                "seed" => as_u64(v).map(|x| o.seed = x),
                "device" => as_string(v).map(|x| o.device = x),
                "init" => optional(v, as_string).map(|x| o.init = x),
                "log_every" => optional(v, as_u64).map(|x| o.log_every = x),
                "normalize" => optional(v, as_string).map(|x| o.normalize = x),
                "allow_nonfinite" => as_bool(v).map(|x| o.allow_nonfinite = x),
                other => return Err(unknown_keyword(other)),
            };
            set.map_err(|e| {
                PyTypeError::new_err(format!(
                    "train() keyword {key}={}: {}",
                    v.repr().map(|r| r.to_string()).unwrap_or_default(),
                    e
                ))
            })?;
        }
        if o.steps.is_some() && o.epochs.is_some() {
            return Err(Error::Config("give steps or epochs, not both".into()).into_py());
        }
        Ok(o)
    }

    /// The defaults as a dict, for `hourglass.train_defaults()` and the stubs' test.
    pub fn defaults_dict<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let o = TrainOptions::default();
        let d = PyDict::new(py);
        d.set_item("val_split", o.val_split)?;
        let tokens: Vec<String> = o.model.encoder.iter().map(ToString::to_string).collect();
        d.set_item("encoder", PyList::new(py, tokens)?)?;
        d.set_item("decoder", o.model.decoder)?;
        d.set_item("activation", o.model.activation)?;
        d.set_item("code_activation", o.model.code_activation)?;
        d.set_item("output_activation", o.model.output_activation)?;
        d.set_item("loss", o.model.loss)?;
        d.set_item("tied", o.model.tied)?;
        d.set_item("variant", o.model.variant)?;
        d.set_item("sparsity", f64_of(o.model.sparsity))?;
        d.set_item("sparsity_target", o.model.sparsity_target.map(f64_of))?;
        d.set_item("noise", o.model.noise)?;
        d.set_item("contractive", f64_of(o.model.contractive))?;
        d.set_item("jacobian_projections", o.model.jacobian_projections)?;
        d.set_item("beta", f64_of(o.model.beta))?;
        d.set_item("vae_samples", o.model.vae_samples)?;
        d.set_item("prediction", f64_of(o.model.prediction))?;
        d.set_item("inference_steps", o.model.inference_steps)?;
        d.set_item("optimizer", o.optimizer)?;
        d.set_item("lr", f64_of(o.lr))?;
        d.set_item("momentum", f64_of(o.momentum))?;
        d.set_item("weight_decay", f64_of(o.weight_decay))?;
        d.set_item("schedule", o.schedule)?;
        d.set_item("warmup", o.warmup)?;
        d.set_item("clip_grad_norm", o.clip_grad_norm.map(f64_of))?;
        d.set_item("batch_size", o.batch_size)?;
        d.set_item("accumulate", o.accumulate)?;
        d.set_item("drop_last", o.drop_last)?;
        d.set_item("on_nonfinite", o.on_nonfinite)?;
        d.set_item("precision", o.precision)?;
        d.set_item("reduce_precision", o.reduce_precision)?;
        d.set_item("reduce_buckets", o.reduce_buckets)?;
        d.set_item("steps", o.steps)?;
        d.set_item("epochs", o.epochs)?;
        d.set_item("early_stop", o.early_stop)?;
        d.set_item("no_shuffle", o.no_shuffle)?;
        d.set_item("seed", o.seed)?;
        d.set_item("device", o.device)?;
        d.set_item("init", o.init)?;
        d.set_item("log_every", o.log_every)?;
        d.set_item("normalize", o.normalize)?;
        d.set_item("allow_nonfinite", o.allow_nonfinite)?;
        Ok(d)
    }

    /// The `normalize` choice, `none` when not given.
    pub fn normalize_kind(&self) -> Result<Normalize> {
        self.normalize
            .as_deref()
            .map_or(Ok(Normalize::None), Normalize::parse)
    }

    /// The optimizer, as `hourglass train` builds it.
    fn optimizer(&self) -> Result<OptimizerConfig> {
        let kind = match self.optimizer.as_str() {
            "adam" => OptimizerKind::Adam,
            "adamw" => OptimizerKind::Adamw,
            "sgd" => OptimizerKind::Sgd,
            other => {
                return Err(Error::Config(format!(
                    "unknown optimizer '{other}' (expected adam, adamw or sgd)"
                )));
            }
        };
        Ok(OptimizerConfig {
            kind,
            weight_decay: self.weight_decay,
            momentum: if kind == OptimizerKind::Sgd {
                self.momentum
            } else {
                0.0
            },
            ..OptimizerConfig::adam(self.lr)
        })
    }

    /// The model spec, as `hourglass train` builds it from its flags.
    pub fn spec(&self, data: &Dataset) -> Result<ModelSpec> {
        self.model.spec(data.cols)
    }

    /// The run's length in steps for `per_epoch` steps an epoch.
    pub fn total_steps(&self, train_rows: usize) -> Result<u64> {
        // An optimizer step takes `accumulate` micro-batches, as `hourglass train` counts.
        let batch_size = self
            .batch_size
            .max(1)
            .saturating_mul(self.accumulate.max(1));
        let per_epoch = if self.drop_last {
            train_rows / batch_size
        } else {
            train_rows.div_ceil(batch_size)
        }
        .max(1) as u64;
        match (self.steps, self.epochs) {
            (Some(s), _) => Ok(s),
            (None, e) => e
                .unwrap_or(DEFAULT_EPOCHS)
                .checked_mul(per_epoch)
                .ok_or_else(|| Error::Config("epochs is too large".into())),
        }
    }

    /// The training configuration, as `hourglass train` builds it from its flags.
    pub fn train_config(&self, total: u64) -> Result<TrainConfig> {
        if self.early_stop == Some(0) || self.log_every == Some(0) {
            return Err(Error::Config(
                "early_stop and log_every must be at least 1".into(),
            ));
        }
        if let Some(c) = self.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "clip_grad_norm must be positive, got {c}"
            )));
        }
        Ok(TrainConfig {
            batch_size: self.batch_size,
            drop_last: self.drop_last,
            optimizer: self.optimizer()?,
            seed: self.seed,
            shuffle: !self.no_shuffle,
            schedule: Schedule::parse(&self.schedule, total)?,
            warmup: self.warmup,
            clip_grad_norm: self.clip_grad_norm,
            on_nonfinite: NonFinitePolicy::parse(&self.on_nonfinite)?,
            max_resident_bytes: None,
            precision: match self.precision.as_str() {
                "mixed-emulated" => Precision::Mixed,
                p => Precision::parse(p)
                    .map_err(|e| Error::Config(format!("precision: {e}, or mixed-emulated")))?,
            },
            emulate_mixed: self.precision == "mixed-emulated",
            accumulate: self.accumulate,
            reduce_precision: ReducePrecision::parse(&self.reduce_precision)
                .map_err(|e| Error::Config(format!("reduce_precision: {e}")))?,
            bucket_bytes: hourglass::train::parse_bucket_kib(&self.reduce_buckets)
                .map_err(|e| Error::Config(format!("reduce_buckets: {e}")))?,
        })
    }
}

/// An f32 default as the short decimal Python shows (0.001, not 0.0010000000474974513).
fn f64_of(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

fn unknown_keyword(key: &str) -> PyErr {
    if let Some((_, why)) = CLI_ONLY.iter().find(|(k, _)| *k == key) {
        return PyTypeError::new_err(format!(
            "train() got an unexpected keyword argument '{key}': --{} is a flag of the \
             hourglass CLI only; {why}",
            key.replace('_', "-")
        ));
    }
    let close: Vec<&str> = KEYWORDS
        .iter()
        .copied()
        .filter(|k| k.contains(key) || key.contains(k) || edit_distance(k, key) <= 2)
        .collect();
    PyTypeError::new_err(format!(
        "train() got an unexpected keyword argument '{key}'{}",
        if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", close.join(" or "))
        }
    ))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut prev = row[0];
        row[0] = i;
        for j in 1..=b.len() {
            let here = row[j];
            row[j] = (row[j] + 1)
                .min(row[j - 1] + 1)
                .min(prev + usize::from(a[i - 1] != b[j - 1]));
            prev = here;
        }
    }
    row[b.len()]
}

/// Converting a library error into the Python exception it stands for.
pub trait IntoPy {
    fn into_py(self) -> PyErr;
}

impl IntoPy for Error {
    fn into_py(self) -> PyErr {
        crate::errors::to_py(self)
    }
}
