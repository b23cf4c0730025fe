//! The training loop of `hourglass train` and the run folder it fills: checkpoints as it goes,
//! one metrics line per epoch with validation, the best model, and at the end the final model,
//! the resumable state and the pictures.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hourglass::data::npy::write_npy;
use hourglass::data::{Dataset, Normalization};
use hourglass::infer::{Autoencoder, evaluate};
use hourglass::io::checkpoint;
use hourglass::model::{ModelSpec, Parameters};
use hourglass::train::{Device, LossReport, TrainConfig, Trainer};
use hourglass::viz::{image_side, reconstruction_grid, write_loss_plot};
use hourglass::{Error, Result};

use crate::metrics::{EpochRecord, History};
use crate::progress::Progress;
use crate::source::{self, Source};
use crate::train::TrainArgs;
use crate::{Ui, config};

/// Examples shown in `reconstructions.png`: one row of originals above their reconstructions.
const SHOWN: usize = 16;

/// Metadata key of the resolved configuration in `train_state.safetensors`.
const CONFIG_KEY: &str = "hourglass.config";

/// Everything the loop needs, resolved by [`crate::train::run`].
pub struct Run<'a> {
    pub args: &'a TrainArgs,
    pub spec: &'a ModelSpec,
    pub config: &'a TrainConfig,
    pub config_toml: &'a str,
    pub source: &'a Source,
    pub train: &'a Dataset,
    pub val: Option<&'a Dataset>,
    pub normalization: &'a Normalization,
    pub device: &'a Device,
    pub trainer: &'a mut Trainer,
    pub total: u64,
    pub resuming: bool,
    pub ui: Ui,
}

/// Sums of loss terms over the reads of an epoch.
#[derive(Default)]
struct Mean {
    sums: Vec<(&'static str, f64)>,
    reads: usize,
    /// The run's count of skipped steps at the last read.
    skipped: u64,
    /// Mixed precision's loss scale and overflow count at the last read.
    loss_scale: Option<(f32, u64)>,
}

impl Mean {
    fn add(&mut self, report: &LossReport) {
        for (k, &(name, value)) in report.terms.iter().enumerate() {
            if self.sums.len() <= k {
                self.sums.push((name, 0.0));
            }
            self.sums[k].1 += value;
        }
        self.reads += 1;
        self.skipped = report.skipped_steps;
        self.loss_scale = report.loss_scale;
    }

    /// The mean total loss so far.
    fn total(&self) -> f64 {
        self.sums.iter().map(|(_, s)| s).sum::<f64>() / self.reads.max(1) as f64
    }

    fn take(&mut self) -> LossReport {
        let n = self.reads.max(1) as f64;
        let terms = self.sums.iter().map(|&(name, s)| (name, s / n)).collect();
        let skipped_steps = self.skipped;
        *self = Mean {
            skipped: skipped_steps,
            loss_scale: self.loss_scale,
            ..Mean::default()
        };
        LossReport {
            terms,
            skipped_steps,
            loss_scale: self.loss_scale,
        }
    }
}

fn save_state(run: &mut Run, path: &Path) -> Result<()> {
    let state = run.trainer.state()?;
    checkpoint::save_state(
        path,
        run.spec,
        &state,
        &[(CONFIG_KEY, run.config_toml.to_string())],
    )
}

fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Set by SIGINT/SIGTERM; the loop saves at the next step boundary and stops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True when the last [`fit`] stopped for a signal (the process then exits 130).
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Routes Ctrl-C and SIGTERM to [`INTERRUPTED`]; a second signal while saving exits at once
/// (the checkpoint files are written atomically, so that loses nothing already saved).
fn catch_interrupts(ui: Ui) {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        ui.note(&format!("Ctrl-C will not save a checkpoint: {e}"));
    }
}

pub fn fit(mut run: Run) -> Result<()> {
    let ui = run.ui;
    catch_interrupts(ui);
    let out = run.args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let model_path = out.join("model.safetensors");
    let best_path = out.join("best.safetensors");
    let state_path = out.join("train_state.safetensors");
    if !run.resuming {
        // A new run in an old folder: nothing of the old run may pass for this one's.
        for stale in [&best_path, &state_path] {
            remove_stale(stale)?;
        }
    }
    hourglass::io::write_atomic(&out.join("config.toml"), run.config_toml.as_bytes())?;
    source::save_normalization(&out, run.normalization)?;
    let mut history = if run.resuming {
        History::resume(&out, run.trainer.step())?
    } else {
        History::create(&out)?
    };

    let total = run.total;
    let per_epoch = run.trainer.steps_per_epoch();
    let epochs = total.div_ceil(per_epoch);
    let batch = run.config.batch_size;
    let spec = run.spec;
    ui.say(&format!(
        "training {:?} → {:?} ({}, {}) on {} rows × {} features of {}{}",
        spec.encoder,
        spec.decoder,
        run.args.variant,
        run.args.loss,
        run.train.rows,
        run.train.cols,
        run.source.describe(),
        match run.val {
            Some(v) => format!(", validating on {} rows", v.rows),
            None => String::new(),
        },
    ));
    ui.say(&format!(
        "{} {total} steps of batch {batch} ({per_epoch} steps per epoch) on {}",
        if run.resuming {
            format!(
                "resuming {} at step {} of",
                out.display(),
                run.trainer.step()
            )
        } else {
            "writing to ".to_string() + &out.display().to_string() + ":"
        },
        run.device.describe()
    ));
    if run.args.early_stop.is_some() && run.val.is_none() {
        ui.note("--early-stop watches the training loss: there is no validation data");
    }

    let read_every = run.args.log_every.unwrap_or((per_epoch / 16).clamp(1, 64));
    let started = Instant::now();
    let elapsed_before = history.elapsed();
    let mut best = history.best();
    let mut since_best = history.epochs_since_best();
    let progress = Progress::start(total, run.trainer.step(), ui, run.args.log_every.is_some());
    let mut mean = Mean::default();
    // Examples trained on (not steps × batch: a tail step of --drop-last false is smaller).
    let (mut epoch_time, mut epoch_examples) = (Duration::ZERO, 0u64);
    let (mut read_time, mut read_examples) = (Duration::ZERO, 0u64);
    let mut stopped_early = false;
    let mut skipped_before = 0;
    while run.trainer.step() < total {
        let step = run.trainer.step();
        let epoch_end = ((step / per_epoch + 1) * per_epoch).min(total);
        let mut end = epoch_end.min((step / read_every + 1) * read_every);
        if let Some(every) = run.args.checkpoint_every {
            end = end.min((step / every + 1) * every);
        }
        let report = end == epoch_end || end.is_multiple_of(read_every);
        let t0 = Instant::now();
        let loss = run.trainer.train_steps(end - step, report)?;
        let dt = t0.elapsed();
        let examples = run.trainer.examples_in_steps(step..end);
        (epoch_time, epoch_examples) = (epoch_time + dt, epoch_examples + examples);
        (read_time, read_examples) = (read_time + dt, read_examples + examples);
        let epoch = end.div_ceil(per_epoch);
        if let Some(loss) = loss {
            mean.add(&loss);
            let rate = read_examples as f64 / read_time.as_secs_f64().max(1e-9);
            progress.read(end, total, epoch, epochs, &loss, mean.total(), rate);
            (read_time, read_examples) = (Duration::ZERO, 0);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            progress.finish();
            checkpoint::save(&model_path, spec, &run.trainer.parameters()?)?;
            save_state(&mut run, &state_path)?;
            eprintln!(
                "interrupted at step {end}: saved model.safetensors and train_state.safetensors; \
                 continue with: hourglass train --resume {}",
                out.display()
            );
            return Ok(());
        }
        if run
            .args
            .checkpoint_every
            .is_some_and(|every| end.is_multiple_of(every))
            && end < total
        {
            checkpoint::save(&model_path, spec, &run.trainer.parameters()?)?;
            save_state(&mut run, &state_path)?;
        }
        if end < epoch_end {
            continue;
        }
        // The end of an epoch: validate, record, keep the best, maybe stop.
        let params = run.trainer.parameters()?;
        let val = match run.val {
            Some(v) => Some(evaluate(spec, &params, v, run.device, run.config.seed)?),
            None => None,
        };
        let record = EpochRecord {
            epoch,
            step: end,
            train: mean.take(),
            val,
            samples_per_sec: epoch_examples as f64 / epoch_time.as_secs_f64().max(1e-9),
            lr: run
                .config
                .schedule
                .lr_at(run.config.optimizer.lr, run.config.warmup, end),
            elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
        };
        (epoch_time, epoch_examples) = (Duration::ZERO, 0);
        history.push(&record)?;
        let monitored = record.monitored();
        let improved = best.is_none_or(|(_, b)| monitored < b);
        progress.line(&format!(
            "epoch {epoch:>3}/{epochs}  step {end}/{total}  loss {}{}  {:.0} samples/s  lr {:.2e}{}",
            record.train,
            match &record.val {
                Some(v) => format!("  val {v}"),
                None => String::new(),
            },
            record.samples_per_sec,
            record.lr,
            if improved { "  *" } else { "" },
        ));
        if record.train.skipped_steps > skipped_before {
            progress.line(&format!(
                "  {} steps skipped so far for a non-finite gradient (--on-nonfinite {})",
                record.train.skipped_steps, run.args.on_nonfinite
            ));
            skipped_before = record.train.skipped_steps;
        }
        if improved {
            best = Some((epoch, monitored));
            since_best = 0;
            checkpoint::save(&best_path, spec, &params)?;
        } else {
            since_best += 1;
        }
        if let Some(patience) = run.args.early_stop
            && since_best >= patience
        {
            progress.line(&format!(
                "early stop: no better {} loss in {patience} epochs",
                if run.val.is_some() {
                    "validation"
                } else {
                    "training"
                }
            ));
            stopped_early = true;
            break;
        }
    }
    progress.finish();

    // The final model, the state to resume from, and the best model when no epoch ended.
    let params = run.trainer.parameters()?;
    checkpoint::save(&model_path, spec, &params)?;
    save_state(&mut run, &state_path)?;
    if best.is_none() || !best_path.exists() {
        checkpoint::save(&best_path, spec, &params)?;
    }
    let picture = pictures(&run, &out, &params)?;
    let [train_curve, val_curve] = history.curves();
    write_loss_plot(&out.join("loss.png"), &train_curve, &val_curve)?;

    let step = run.trainer.step();
    ui.say(&format!(
        "{} at step {step} after {:.1} s{}",
        if stopped_early { "stopped" } else { "done" },
        elapsed_before + started.elapsed().as_secs_f64(),
        match best {
            Some((epoch, loss)) => format!(
                "; best {} loss {loss:.5} at epoch {epoch}",
                if run.val.is_some() {
                    "validation"
                } else {
                    "training"
                }
            ),
            None => String::new(),
        }
    ));
    ui.say(&format!(
        "wrote {}: model.safetensors, best.safetensors, train_state.safetensors, \
         metrics.jsonl, config.toml, loss.png, {picture}",
        config::absolute(&out).display()
    ));
    Ok(())
}

/// The first examples of the validation data (else the training data) above their
/// reconstructions, in the data's own scale: `reconstructions.png` for square images, else
/// `reconstructions.npy` (originals in the first rows, reconstructions in the rest).
fn pictures(run: &Run, out: &Path, params: &Parameters) -> Result<&'static str> {
    let shown = run.val.unwrap_or(run.train);
    let count = shown.rows.min(SHOWN);
    let cols = shown.cols;
    let mut originals = Dataset::new(count, cols, shown.values[..count * cols].to_vec())?;
    let mut model = Autoencoder::new(run.spec.clone(), params.clone(), run.device.clone())?;
    let mut recon = model.reconstruct(&originals)?;
    run.normalization.invert(&mut originals)?;
    run.normalization.invert(&mut recon)?;
    if image_side(cols).is_some() {
        reconstruction_grid(&originals, &recon, SHOWN, SHOWN)?
            .write_png(&out.join("reconstructions.png"))?;
        Ok("reconstructions.png")
    } else {
        let mut both = originals.values;
        both.extend_from_slice(&recon.values);
        write_npy(&out.join("reconstructions.npy"), 2 * count, cols, &both)?;
        Ok("reconstructions.npy")
    }
}
