//! Which rows `eval` scores, and whether they trained the model. Without data flags `eval`
//! reads the bundled Fashion-MNIST test set, which is also what `train` trains on by default:
//! a score on it would then be a training loss passed off as a test one. The run folder beside
//! the checkpoint says how the model was trained (its `config.toml`); when that run trained on
//! the same rows, `eval` scores exactly the rows the run held out with `--val-split` (when no
//! data was named) or warns how many of the rows it scores the model was trained on.

use std::path::{Path, PathBuf};

use hourglass::Result;
use hourglass::data::Dataset;

use crate::source::{DataArgs, Source};
use crate::train::split_off;

/// How the run that wrote a checkpoint drew its training rows, from its `config.toml`.
struct TrainedOn {
    /// The run's folder.
    dir: PathBuf,
    source: Source,
    /// `--val-split` and `--seed`, when the run held rows out of `source`.
    split: Option<(f64, u64)>,
}

impl TrainedOn {
    /// The training data of the run beside `model`, if there is a readable `config.toml`.
    fn read(model: &Path) -> Option<Self> {
        let dir = model.parent().unwrap_or(Path::new("."));
        let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
        let table: toml::Table = text.parse().ok()?;
        let source = match (table.get("data"), table.get("dataset")) {
            (Some(toml::Value::String(file)), _) => Source::File(file.clone()),
            (None, Some(toml::Value::String(name))) if name == "bundled" => Source::Bundled,
            _ => return None, // a named set trains on its train split, eval reads the test split
        };
        let split = match (table.get("val-split"), table.get("seed")) {
            (Some(toml::Value::Float(f)), seed) => Some((
                *f,
                seed.and_then(toml::Value::as_integer).unwrap_or(0) as u64,
            )),
            _ => None,
        };
        Some(TrainedOn {
            dir: dir.to_path_buf(),
            source,
            split,
        })
    }

    /// True when `source` names the run's training source.
    fn same_source(&self, source: &Source) -> bool {
        let canonical = |f: &str| std::fs::canonicalize(f).unwrap_or_else(|_| PathBuf::from(f));
        match (&self.source, source) {
            (Source::Bundled, Source::Bundled) => true,
            (Source::File(a), Source::File(b)) => a == b || canonical(a) == canonical(b),
            _ => false,
        }
    }
}

/// The rows `eval` scores out of `data` (read from `source`) for the checkpoint `model`, and how
/// its report names them. Warns on stderr when the model trained on rows it scores.
pub fn rows_to_score(
    model: &Path,
    args: &DataArgs,
    source: &Source,
    data: Dataset,
) -> Result<(Dataset, String)> {
    let describe = source.describe();
    let Some(run) = TrainedOn::read(model).filter(|r| r.same_source(source)) else {
        return Ok((data, describe));
    };
    let named = args.data.is_some() || args.dataset.is_some();
    let rows = data.rows;
    let dir = run.dir.display();
    match run.split {
        Some((fraction, seed)) => {
            let (_, held_out) = split_off(data.clone(), fraction, seed)?;
            let trained = rows - held_out.rows;
            if named {
                errln!(
                    "warning: {trained} of these {rows} rows trained the model (the run in {dir} \
                     held out the other {} with --val-split {fraction}); without data flags eval \
                     scores only those",
                    held_out.rows
                );
                Ok((data, describe))
            } else {
                let what = format!(
                    "{describe}: the {} rows the run in {dir} held out for validation \
                     (--val-split {fraction}, --seed {seed}); the other {trained} trained it",
                    held_out.rows
                );
                Ok((held_out, what))
            }
        }
        None => {
            errln!(
                "warning: the run in {dir} trained the model on these {rows} rows: this is a \
                 training loss, not a held-out score (train with --val-split, or evaluate on \
                 other data with --data)"
            );
            Ok((data, describe))
        }
    }
}
