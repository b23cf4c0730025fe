//! The training loop of `hourglass train` and the run folder it fills: checkpoints as it goes,
//! one metrics line per epoch with validation, the best model, and at the end the final model,
//! the resumable state and the pictures.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hourglass::Result;

use hourglass::cpu::regularizers::corrupt_dataset;
use hourglass::data::npy::write_npy;
use hourglass::data::{Dataset, Normalization};
use hourglass::infer::Autoencoder;
use hourglass::io::checkpoint;
use hourglass::model::{ModelSpec, Parameters, Variant};
use hourglass::train::{Device, EarlyStop, FitEvent, FitOptions, TrainConfig, Trainer};
use hourglass::viz::{image_side, reconstruction_grid, write_loss_plot};

use crate::metrics::{EpochRecord, History};
use crate::progress::Progress;
use crate::resume::{DATA_KEY, describe};
use crate::runfolder::RunFolder;
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
    /// The run's folder, locked; files go where it says until the first checkpoint.
    pub folder: &'a mut RunFolder,
    /// The [`crate::resume::DataIdentity`] recorded in the training state.
    pub data_identity: String,
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
    /// The ranks: rank 0 runs this loop, the others follow its decisions.
    pub world: &'a crate::parallel::World,
}

/// What the loop of every rank runs: `total` steps, the loss read every `--log-every` steps,
/// validation on `val`, a checkpoint every `--checkpoint-every` steps.
pub fn options<'a>(
    args: &TrainArgs,
    total: u64,
    val: Option<&'a Dataset>,
    best_so_far: Option<f64>,
) -> FitOptions<'a> {
    let mut options = FitOptions::steps(total);
    options.report_every = args.log_every;
    options.validation = val;
    options.checkpoint_every = args.checkpoint_every;
    options.best_so_far = best_so_far;
    options
}

/// What a checkpoint needs besides the trainer.
struct Saver<'a> {
    spec: &'a ModelSpec,
    config_toml: &'a str,
    data_identity: &'a str,
}

impl Saver<'_> {
    /// Writes `model.safetensors` and `train_state.safetensors`, then commits the folder (the
    /// first checkpoint replaces an old run's files).
    fn checkpoint(&self, trainer: &mut Trainer, folder: &mut RunFolder) -> Result<Parameters> {
        let params = trainer.parameters()?;
        checkpoint::save(&folder.path("model.safetensors"), self.spec, &params)?;
        let state = trainer.state()?;
        checkpoint::save_state(
            &folder.path("train_state.safetensors"),
            self.spec,
            &state,
            &[
                (CONFIG_KEY, self.config_toml.to_string()),
                (DATA_KEY, self.data_identity.to_string()),
            ],
        )?;
        folder.commit()?;
        Ok(params)
    }
}

/// Test hook of the command line only: set `INTERRUPTED` once a read at or past this step is
/// seen, as a Ctrl-C there would (the tests' deterministic interrupt).
fn interrupt_at_step() -> Option<u64> {
    std::env::var("HOURGLASS_INTERRUPT_AT_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
}

/// Set by SIGINT/SIGTERM; the loop saves at the next step boundary and stops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True when the last [`fit`] stopped for a signal (the process then exits 130).
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Routes Ctrl-C and SIGTERM to [`INTERRUPTED`]; a second signal while saving exits at once
/// (the checkpoint files are written atomically, so that loses nothing already saved).
pub fn catch_interrupts(ui: Ui) {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        ui.note(&format!("Ctrl-C will not save a checkpoint: {e}"));
    }
}

pub fn fit(run: Run) -> Result<()> {
    let ui = run.ui;
    catch_interrupts(ui);
    let out = run.folder.dir().to_path_buf();
    let saver = Saver {
        spec: run.spec,
        config_toml: run.config_toml,
        data_identity: &run.data_identity,
    };
    // Until the first checkpoint these go to the folder's staging area when an earlier run's
    // files are there to keep (see `RunFolder`).
    hourglass::io::write_atomic(&run.folder.path("config.toml"), run.config_toml.as_bytes())?;
    let staged = run.folder.path("");
    source::save_normalization(&staged, run.normalization)?;
    let mut history = if run.resuming {
        History::resume(&out, &staged, run.trainer.step())?
    } else {
        History::create(&staged)?
    };
    let interrupt_at = interrupt_at_step();

    let total = run.total;
    let per_epoch = run.trainer.steps_per_epoch();
    let epochs = total.div_ceil(per_epoch);
    // The rows an optimizer step takes: the whole data set when it is smaller than
    // --batch-size; K micro-batches of --batch-size rows with --accumulate K.
    let batch = match run.config.accumulate {
        1 => run.trainer.batch_rows().to_string(),
        k => format!(
            "{} ({k} micro-batches of {})",
            run.trainer.batch_rows(),
            run.config.batch_size
        ),
    };
    let spec = run.spec;
    ui.say(&format!(
        "training a {} ({}, {}) on {} rows × {} features of {}{}",
        describe(spec),
        run.args.activation,
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
        run.device.describe() + &run.world.describe()
    ));
    if run.args.early_stop.is_some() && run.val.is_none() {
        ui.note("--early-stop watches the training loss: there is no validation data");
    }

    let started = Instant::now();
    let elapsed_before = history.elapsed();
    let mut best = history.best();
    let mut early_stop = run.args.early_stop.map(|patience| {
        EarlyStop::resume(patience, best.map(|(_, l)| l), history.epochs_since_best())
    });
    let progress = Progress::start(total, run.trainer.step(), ui, run.args.log_every.is_some());
    let options = options(run.args, total, run.val, best.map(|(_, loss)| loss));
    // The epoch's reads so far (for the running mean the progress line shows), and where the
    // last event left off (for the rate: training time only, never validation or saving).
    let (mut read_sum, mut reads) = (0.0, 0u32);
    let (mut last_step, mut last_time) = (run.trainer.step(), Instant::now());
    let mut stopped_early = false;
    let mut skipped_before = 0;
    let mut failure = None;
    let val = run.val;
    let folder = &mut *run.folder;
    let on_nonfinite = run.args.on_nonfinite.as_str();
    let mut on_event = |trainer: &mut Trainer, event: &FitEvent<'_>| -> Result<ControlFlow<()>> {
        match event {
            FitEvent::Report { step, epoch, loss } => {
                if interrupt_at.is_some_and(|at| *step >= at) {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                }
                let examples = trainer.examples_in_steps(last_step..*step);
                let rate = examples as f64 / last_time.elapsed().as_secs_f64().max(1e-9);
                read_sum += loss.total();
                reads += 1;
                progress.read(
                    *step,
                    total,
                    *epoch,
                    epochs,
                    loss,
                    read_sum / f64::from(reads),
                    rate,
                );
            }
            FitEvent::Checkpoint { .. } => {
                if !INTERRUPTED.load(Ordering::SeqCst) {
                    saver.checkpoint(trainer, folder)?;
                    history.moved_to(&folder.path(""));
                }
            }
            FitEvent::Epoch(e) => {
                (read_sum, reads) = (0.0, 0);
                let record = EpochRecord {
                    epoch: e.epoch,
                    step: e.step,
                    train: e.train.clone(),
                    val: e.val.clone(),
                    samples_per_sec: e.samples_per_sec,
                    lr: e.lr,
                    elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
                };
                history.push(&record)?;
                progress.line(&format!(
                    "epoch {:>3}/{epochs}  step {}/{total}  loss {}{}  {:.0} samples/s  lr {:.2e}{}",
                    e.epoch,
                    e.step,
                    record.train,
                    match &record.val {
                        Some(v) => format!("  val {v}"),
                        None => String::new(),
                    },
                    record.samples_per_sec,
                    record.lr,
                    if e.improved { "  *" } else { "" },
                ));
                if record.train.skipped_steps > skipped_before {
                    progress.line(&format!(
                        "  {} steps skipped so far for a non-finite gradient (--on-nonfinite {on_nonfinite})",
                        record.train.skipped_steps
                    ));
                    skipped_before = record.train.skipped_steps;
                }
                if e.improved {
                    best = Some((e.epoch, e.monitored()));
                    let best_path = folder.path("best.safetensors");
                    checkpoint::save(&best_path, saver.spec, &trainer.parameters()?)?;
                }
                if let Some(stop) = &mut early_stop
                    && stop.update(e.monitored()).is_break()
                {
                    progress.line(&format!(
                        "early stop: no better {} loss in {} epochs",
                        if val.is_some() {
                            "validation"
                        } else {
                            "training"
                        },
                        run.args.early_stop.unwrap_or(0)
                    ));
                    stopped_early = true;
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        (last_step, last_time) = (trainer.step(), Instant::now());
        Ok(if INTERRUPTED.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    };
    let world = run.world;
    run.trainer.fit_with(&options, |trainer, event| {
        let flow = on_event(trainer, event).unwrap_or_else(|e| {
            failure = Some(e);
            ControlFlow::Break(())
        });
        world.agree(trainer, event, flow)
    })?;
    world.check_parameters(run.trainer)?;
    if let Some(e) = failure {
        return Err(e);
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        progress.finish();
        saver.checkpoint(run.trainer, run.folder)?;
        errln!(
            "interrupted at step {}: saved model.safetensors and train_state.safetensors; \
             continue with: hourglass train --resume {}",
            run.trainer.step(),
            out.display()
        );
        return Ok(());
    }
    progress.finish();

    // The final model, the state to resume from, and the best model when no epoch ended.
    let params = saver.checkpoint(run.trainer, run.folder)?;
    history.moved_to(&out);
    let best_path = out.join("best.safetensors");
    if best.is_none() || !best_path.exists() {
        checkpoint::save(&best_path, spec, &params)?;
    }
    let picture = pictures(&run, &out, &params)?;
    let atoms = match crate::psd::write_atoms(spec, &params, &out)? {
        Some(name) => format!(", {name}"),
        None => String::new(),
    };
    write_loss_plot(&out.join("loss.png"), &history.curves())?;

    // One process accumulating gradients has split steps too, but nothing to report.
    if let Some(stats) = run.trainer.parallel_stats()
        && run.world.is_parallel()
    {
        ui.note(&crate::parallel::describe_stats(run.world, &stats));
    }
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
         metrics.jsonl, config.toml, loss.png, {picture}{atoms}",
        config::absolute(&out).display()
    ));
    Ok(())
}

/// The first examples of the validation data (else the training data) above their
/// reconstructions, in the data's own scale: `reconstructions.png` for square images, else
/// `reconstructions.npy` (the inputs in the first rows, the reconstructions in the last). A
/// denoising model is shown the inputs corrupted by its own noise (seeded by the run's seed),
/// drawn as a third row between them (and written as a middle block of the `.npy`), and
/// reconstructs those.
fn pictures(run: &Run, out: &Path, params: &Parameters) -> Result<&'static str> {
    let shown = run.val.unwrap_or(run.train);
    let count = shown.rows.min(SHOWN);
    let cols = shown.cols;
    let mut originals = Dataset::new(count, cols, shown.values[..count * cols].to_vec())?;
    let mut corrupted = match run.spec.variant {
        Variant::Denoising { noise } => Some(corrupt_dataset(noise, &originals, run.config.seed)?),
        _ => None,
    };
    let mut model = Autoencoder::new(run.spec.clone(), params.clone(), run.device.clone())?;
    let mut recon = model.reconstruct(corrupted.as_ref().unwrap_or(&originals))?;
    for d in [Some(&mut originals), corrupted.as_mut(), Some(&mut recon)]
        .into_iter()
        .flatten()
    {
        run.normalization.invert(d)?;
    }
    if image_side(cols).is_some() {
        reconstruction_grid(&originals, corrupted.as_ref(), &recon, SHOWN, SHOWN)?
            .write_png(&out.join("reconstructions.png"))?;
        Ok("reconstructions.png")
    } else {
        let mut all = originals.values;
        if let Some(c) = &corrupted {
            all.extend_from_slice(&c.values);
        }
        all.extend_from_slice(&recon.values);
        let blocks = if corrupted.is_some() { 3 } else { 2 };
        write_npy(&out.join("reconstructions.npy"), blocks * count, cols, &all)?;
        Ok("reconstructions.npy")
    }
}
