//! `metrics.jsonl`: one JSON object per epoch, appended as the epoch ends, and what a resumed
//! run reads back from it (the best loss so far, the epochs since, the curves of `loss.png`).
//!
//! Keys: `epoch`, `step`, `train_loss` and `train_<term>` (the mean of the losses read during
//! the epoch), `val_loss` and `val_<term>` (on all of the validation data at the epoch's end;
//! absent without validation data), `skipped_steps` (steps of this session skipped so far for a
//! non-finite gradient), with `--precision mixed` `loss_scale` and `overflow_steps` (the dynamic
//! loss scale at the epoch's end and the steps so far skipped for an f16 overflow, which
//! halve it), for `--variant psd` `zero_fraction` and `relative_prediction_error` after each
//! prefix's terms (the inferred code's fraction of exact zeros, and ‖f(x) − h*‖ / ‖h*‖),
//! `samples_per_sec`, `lr` (of the epoch's last step) and
//! `elapsed_s` (wall-clock seconds since the run started, resumed sessions included).

use std::io::Write;
use std::path::{Path, PathBuf};

use hourglass::train::LossReport;
use hourglass::viz::LossCurves;
use hourglass::{Error, Result};
use serde_json::{Value, json};

/// One epoch's line.
pub struct EpochRecord {
    /// 1-based epoch (the last one may be partial).
    pub epoch: u64,
    /// Optimizer steps taken at its end.
    pub step: u64,
    /// Mean training loss terms over the reads of the epoch.
    pub train: LossReport,
    /// Validation loss terms.
    pub val: Option<LossReport>,
    /// Training throughput over the epoch.
    pub samples_per_sec: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f32,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

impl EpochRecord {
    /// The line's fields, in the order they are written.
    fn fields(&self) -> Vec<(String, Value)> {
        let mut f = vec![
            ("epoch".to_string(), json!(self.epoch)),
            ("step".to_string(), json!(self.step)),
        ];
        let mut put = |prefix: &str, report: &LossReport| {
            f.push((format!("{prefix}_loss"), json!(report.total())));
            for (name, value) in &report.terms {
                f.push((format!("{prefix}_{name}"), json!(value)));
            }
            // A PSD model's code: the fraction of exact zeros in h*, and ‖f(x) − h*‖ / ‖h*‖.
            if let Some(z) = report.measure("zero_fraction") {
                f.push((format!("{prefix}_zero_fraction"), json!(z)));
            }
            if let Some(e) = report.relative_prediction_error() {
                f.push((format!("{prefix}_relative_prediction_error"), json!(e)));
            }
        };
        put("train", &self.train);
        if let Some(val) = &self.val {
            put("val", val);
        }
        f.push(("skipped_steps".into(), json!(self.train.skipped_steps)));
        if let Some((scale, overflows)) = self.train.loss_scale {
            f.push(("loss_scale".into(), json!(scale)));
            f.push(("overflow_steps".into(), json!(overflows)));
        }
        f.push(("samples_per_sec".into(), json!(self.samples_per_sec)));
        // The f32 rate in its shortest form (0.001, not 0.0010000000474974513).
        let lr = self
            .lr
            .to_string()
            .parse::<f64>()
            .unwrap_or(f64::from(self.lr));
        f.push(("lr".into(), json!(lr)));
        f.push(("elapsed_s".into(), json!(self.elapsed_s)));
        f
    }
}

/// The epochs of a run so far, as written to `metrics.jsonl`.
pub struct History {
    path: PathBuf,
    lines: Vec<Value>,
}

impl History {
    /// A fresh history for a new run (the file is emptied).
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, b"").map_err(|e| Error::io(&path, e))?;
        Ok(History {
            path,
            lines: Vec::new(),
        })
    }

    /// The history of a run being resumed at `step`, read from `dir` and written to `to` (the
    /// same folder, or a staging one): lines after that step (written after the state that is
    /// resumed) are dropped.
    pub fn resume(dir: &Path, to: &Path, step: u64) -> Result<Self> {
        let path = dir.join("metrics.jsonl");
        // A metrics line is a few hundred bytes; a billion-step run stays far below this.
        let text = hourglass::io::read::read_text(&path, 1 << 30)?.unwrap_or_default();
        let (mut lines, mut kept) = (Vec::new(), String::new());
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| Error::bad_file(&path, format!("line {}: {e}", i + 1)))?;
            if value["step"].as_u64().is_some_and(|s| s <= step) {
                lines.push(value);
                kept.push_str(line);
                kept.push('\n');
            }
        }
        let path = to.join("metrics.jsonl");
        hourglass::io::write_atomic(&path, kept.as_bytes())?;
        Ok(History { path, lines })
    }

    /// The file now lives in `dir` (a staged run was committed).
    pub fn moved_to(&mut self, dir: &Path) {
        self.path = dir.join("metrics.jsonl");
    }

    /// Appends an epoch's line to the file.
    pub fn push(&mut self, record: &EpochRecord) -> Result<()> {
        let fields = record.fields();
        // Written by hand to keep the fields in order (a JSON map would sort them).
        let text: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", json!(k)))
            .collect();
        let line = format!("{{{}}}", text.join(","));
        let value = Value::Object(fields.into_iter().collect());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&self.path, e))?;
        self.lines.push(value);
        Ok(())
    }

    fn monitored(line: &Value) -> Option<f64> {
        line.get("val_loss")
            .or_else(|| line.get("train_loss"))
            .and_then(Value::as_f64)
    }

    /// The best monitored loss and its epoch.
    pub fn best(&self) -> Option<(u64, f64)> {
        self.lines
            .iter()
            .filter_map(|l| Some((l["epoch"].as_u64()?, Self::monitored(l)?)))
            .fold(None, |best, (e, v)| match best {
                Some((_, b)) if b <= v => best,
                _ => Some((e, v)),
            })
    }

    /// Epochs since the best one.
    pub fn epochs_since_best(&self) -> u64 {
        match (
            self.best(),
            self.lines.last().and_then(|l| l["epoch"].as_u64()),
        ) {
            (Some((best, _)), Some(last)) => last.saturating_sub(best),
            _ => 0,
        }
    }

    /// Seconds the run had taken when its last line was written.
    pub fn elapsed(&self) -> f64 {
        self.lines
            .last()
            .and_then(|l| l["elapsed_s"].as_f64())
            .unwrap_or(0.0)
    }

    /// The panels of `loss.png`: the total loss, then (for a loss of several terms) each term,
    /// as `(epoch, value)` points of the training and validation curves (`train_<term>` and
    /// `val_<term>` of the lines).
    pub fn curves(&self) -> Vec<LossCurves> {
        let curve = |key: &str| -> Vec<(f64, f64)> {
            self.lines
                .iter()
                .filter_map(|l| Some((l["epoch"].as_f64()?, l.get(key)?.as_f64()?)))
                .collect()
        };
        let mut terms: Vec<String> = Vec::new();
        for line in &self.lines {
            for key in line.as_object().into_iter().flat_map(|o| o.keys()) {
                if let Some(term) = key.strip_prefix("train_")
                    && term != "loss"
                    && !terms.iter().any(|t| t == term)
                {
                    terms.push(term.to_string());
                }
            }
        }
        // The reconstruction first, as the report prints it (the lines' keys come back sorted).
        // Measures (not terms of the loss) last.
        terms.sort_by_key(|t| {
            (
                hourglass::viz::MEASURES.contains(&t.as_str()),
                t != "reconstruction",
            )
        });
        let panel = |name: &str| LossCurves {
            name: name.to_string(),
            train: curve(&format!("train_{name}")),
            val: curve(&format!("val_{name}")),
        };
        let mut panels = vec![panel("loss")];
        if terms.len() > 1 {
            panels.extend(terms.iter().map(|t| panel(t)));
        }
        panels
    }
}
