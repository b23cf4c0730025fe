//! The flags every command shares: where the data comes from (`--data`, `--dataset`,
//! `--data-dir`, `--normalize`) and where the work runs (`--device`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use hourglass::data::csv::CsvHeader;
use hourglass::data::fashion::{self, Split};
use hourglass::data::{self, Dataset, LoadOptions, Normalization, Normalize, embedded};
use hourglass::train::{Device, DeviceChoice};
use hourglass::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::Ui;

/// Where `--dataset mnist` looks by default.
const MNIST_DIR: &str = "/usr/share/datasets/mnist";

/// The file beside a run's checkpoints that holds the training normalization.
pub const NORMALIZATION_FILE: &str = "normalization.json";

/// The most bytes a `normalization.json` may hold (a million features' worth).
const MAX_NORMALIZATION_BYTES: u64 = 64 << 20;

/// Data flags, shared by every command that reads data.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataArgs {
    /// Data file: .npy (f32, f64, u8, ints), .csv, IDX (…-ubyte, .idx; optionally .gz) or
    /// FILE.safetensors[:TENSOR]. One row per example; u8 images scale to [0, 1].
    /// Default: the bundled Fashion-MNIST test set.
    #[arg(
        help_heading = "Data",
        long,
        value_name = "PATH",
        conflicts_with = "dataset"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// A named data set: fashion-mnist (the full 60,000/10,000 split from --data-dir), mnist
    /// (same format) or bundled (the Fashion-MNIST test set compiled in). Training uses the
    /// train split and validates on the test split; other commands read the test split.
    #[arg(help_heading = "Data", long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Folder of the IDX files of --dataset [default: /usr/share/datasets/fashion-mnist].
    #[arg(help_heading = "Data", long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Per-feature scaling: none, unit (min-max to [0, 1]) or standard (zero mean, unit
    /// variance), fitted on the training split [default: none; other commands: the run's
    /// normalization.json beside the model, if any].
    #[arg(help_heading = "Data", long, value_name = "none|unit|standard")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// Whether a CSV file's first line is a header: auto (when a cell is not a number, or the
    /// cells are 0,1,…,n−1 as pandas writes them, n ≥ 2), yes or no [default: auto].
    #[arg(help_heading = "Data", long, value_name = "yes|no|auto")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv_header: Option<String>,
    /// Drop rows holding NaN or ±Inf (with a warning) instead of refusing the file.
    #[arg(help_heading = "Data", long)]
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allow_nonfinite: bool,
}

/// Set from `--allow-nonfinite` when a command resolves its data source; read by [`load_file`].
static ALLOW_NONFINITE: AtomicBool = AtomicBool::new(false);

/// Set from `--csv-header` when a command resolves its data source; read by [`load_file`].
static CSV_HEADER: Mutex<CsvHeader> = Mutex::new(CsvHeader::Auto);

/// The environment variable that sets [`LoadOptions::max_read_bytes`]: the most bytes a data
/// file may take in memory (default: half the memory available).
const MAX_READ_BYTES_VAR: &str = "HOURGLASS_MAX_READ_BYTES";

/// How data files are read: `--csv-header`, and the read limit from [`MAX_READ_BYTES_VAR`].
fn load_options() -> Result<LoadOptions> {
    let max_read_bytes = match std::env::var(MAX_READ_BYTES_VAR) {
        Ok(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            Error::Config(format!("{MAX_READ_BYTES_VAR}={v} is not a number of bytes"))
        })?),
        Err(_) => None,
    };
    Ok(LoadOptions {
        csv_header: *CSV_HEADER.lock().unwrap_or_else(|p| p.into_inner()),
        max_read_bytes,
        max_read_bytes_name: Some(MAX_READ_BYTES_VAR.to_string()),
    })
}

/// `--device`, shared by every command that computes.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceArg {
    /// auto (a hardware GPU if present, else the CPU), gpu (any adapter, software ones such as
    /// lavapipe included) or cpu.
    #[arg(long, default_value = "auto", value_name = "auto|gpu|cpu")]
    pub device: String,
    /// `--backend` and `--adapter`.
    #[command(flatten)]
    #[serde(flatten)]
    pub gpu: crate::gpu_options::GpuArgs,
}

impl DeviceArg {
    /// Opens the device, telling the user when `auto` fell back or chose the CPU, in the words
    /// of the command's work (`doing`: "training", "encoding", ...).
    pub fn open(&self, ui: Ui, doing: &str) -> Result<Device> {
        let choice = DeviceChoice::parse(&self.device)
            .map_err(|e| crate::gpu_options::flag_error("--device", e))?;
        let options = self.gpu.options()?;
        let (device, note) = Device::open_with(choice, &options, doing)?;
        if let Some(note) = note {
            ui.note(&crate::gpu_options::reword_note(&note));
        }
        Ok(device)
    }
}

/// A resolved data source.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The Fashion-MNIST test set compiled into the library.
    Bundled,
    /// Fashion-MNIST or MNIST IDX files in a folder.
    Named {
        /// `fashion-mnist` or `mnist`.
        name: String,
        /// The folder.
        dir: PathBuf,
    },
    /// A data file (`x.safetensors:name` included).
    File(String),
}

impl DataArgs {
    /// Which source the flags name (the bundled set when none).
    pub fn source(&self) -> Result<Source> {
        ALLOW_NONFINITE.store(self.allow_nonfinite, Ordering::Relaxed);
        if let Some(h) = &self.csv_header {
            *CSV_HEADER.lock().unwrap_or_else(|p| p.into_inner()) = CsvHeader::parse(h)?;
        }
        let no_dir = |what: &str| {
            Error::Config(format!(
                "--data-dir only applies to --dataset fashion-mnist or mnist, not {what}"
            ))
        };
        match (&self.data, self.dataset.as_deref()) {
            (Some(_), Some(_)) => Err(Error::Config(
                "--data and --dataset name two data sources; give one".into(),
            )),
            (Some(_), None) if self.data_dir.is_some() => Err(no_dir("--data")),
            (Some(file), None) => Ok(Source::File(file.clone())),
            (None, None | Some("bundled")) if self.data_dir.is_some() => {
                Err(no_dir("the bundled set"))
            }
            (None, None | Some("bundled")) => Ok(Source::Bundled),
            (None, Some(name @ ("fashion-mnist" | "mnist"))) => {
                let default = if name == "mnist" {
                    MNIST_DIR
                } else {
                    fashion::DEFAULT_DIR
                };
                Ok(Source::Named {
                    name: name.to_string(),
                    dir: self
                        .data_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(default)),
                })
            }
            (None, Some(other)) => Err(Error::Config(format!(
                "unknown data set '{other}' (expected fashion-mnist, mnist or bundled)"
            ))),
        }
    }

    /// The `--normalize` choice, `none` when not given.
    pub fn normalize_kind(&self) -> Result<Normalize> {
        self.normalize
            .as_deref()
            .map_or(Ok(Normalize::None), Normalize::parse)
    }
}

impl Source {
    /// How messages name the source.
    pub fn describe(&self) -> String {
        match self {
            Source::Bundled => "the bundled Fashion-MNIST test set".into(),
            Source::Named { name, dir } => format!("{name} in {}", dir.display()),
            Source::File(file) => file.clone(),
        }
    }

    /// Training data, and validation data when the source has a test split of its own.
    pub fn load_train(&self, ui: Ui) -> Result<(Dataset, Option<Dataset>)> {
        match self {
            Source::Bundled => {
                ui.bundled_notice();
                Ok((embedded::fashion_mnist_test()?, None))
            }
            Source::Named { dir, .. } => Ok((
                fashion::load_images(dir, Split::Train)?,
                Some(fashion::load_images(dir, Split::Test)?),
            )),
            Source::File(file) => Ok((load_file(file)?, None)),
        }
    }

    /// The data of a command that reads one set: a file, the bundled set, or the test split of
    /// a named set.
    pub fn load_one(&self, ui: Ui) -> Result<Dataset> {
        match self {
            Source::Bundled => {
                ui.bundled_notice();
                embedded::fashion_mnist_test()
            }
            Source::Named { dir, .. } => fashion::load_images(dir, Split::Test),
            Source::File(file) => load_file(file),
        }
    }
}

/// Reads a data file by its name, as [`hourglass::data::load`] does. An empty data set is an
/// error.
pub fn load_file(source: &str) -> Result<Dataset> {
    let data = data::load_with(Path::new(source), &load_options()?)?;
    if data.rows == 0 {
        return Err(Error::bad_file(source, "the data set has no rows"));
    }
    let bad: Vec<usize> = (0..data.rows)
        .filter(|&r| data.row(r).iter().any(|v| !v.is_finite()))
        .collect();
    let Some(&first) = bad.first() else {
        return Ok(data);
    };
    if !ALLOW_NONFINITE.load(Ordering::Relaxed) {
        return Err(Error::bad_file(
            source,
            format!(
                "{} of {} rows hold NaN or infinite values (the first is row {first}); fix the \
                 data or pass --allow-nonfinite to drop those rows",
                bad.len(),
                data.rows
            ),
        ));
    }
    errln!(
        "warning: {source}: dropping {} of {} rows that hold NaN or infinite values (the first is row {first})",
        bad.len(),
        data.rows
    );
    let keep: Vec<f32> = (0..data.rows)
        .filter(|r| bad.binary_search(r).is_err())
        .flat_map(|r| data.row(r).to_vec())
        .collect();
    let rows = data.rows - bad.len();
    if rows == 0 {
        return Err(Error::bad_file(
            source,
            "every row holds NaN or infinite values",
        ));
    }
    Dataset::new(rows, data.cols, keep)
}

/// Writes the fitted normalization beside a run's checkpoints (or removes a stale one when
/// the run does not normalize), so that later commands apply the same statistics.
pub fn save_normalization(dir: &Path, n: &Normalization) -> Result<()> {
    let path = dir.join(NORMALIZATION_FILE);
    if n.kind == Normalize::None {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        };
    }
    let json = serde_json::to_string(n).expect("a normalization always serializes");
    hourglass::io::write_atomic(&path, json.as_bytes())
}

/// The normalization a command applies to data for the model at `model`: fitted on `data`
/// when `--normalize` is given, else the training run's `normalization.json` beside the model
/// when there is one, else none.
pub fn inference_normalization(
    args: &DataArgs,
    model: &Path,
    data: Option<&Dataset>,
    ui: Ui,
) -> Result<Option<Normalization>> {
    if let Some(kind) = &args.normalize {
        let kind = Normalize::parse(kind)?;
        let data = data.ok_or_else(|| {
            Error::Config("--normalize needs data to fit; it is read from the run instead".into())
        })?;
        return Ok(Some(data::normalize(kind, data)));
    }
    let path = model
        .parent()
        .unwrap_or(Path::new("."))
        .join(NORMALIZATION_FILE);
    // Two numbers of at most ~16 characters per feature.
    let Some(text) = hourglass::io::read::read_text(&path, MAX_NORMALIZATION_BYTES)? else {
        return Ok(None);
    };
    let n: Normalization = serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&path, format!("not a normalization file: {e}")))?;
    n.validate().map_err(|e| Error::bad_file(&path, e))?;
    ui.note(&format!(
        "applying the training run's {} normalization from {}",
        n.kind.name(),
        path.display()
    ));
    Ok(Some(n))
}
