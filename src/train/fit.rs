//! [`Trainer::fit`]: a whole run in one call, epoch by epoch, with a callback that sees every
//! loss read and every epoch's summary and can stop the run.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::infer::Evaluator;
use crate::model::Parameters;
use crate::train::{LossReport, Trainer};

/// How long a run lasts, counted from step 0: a trainer restored at step k (or fitted before)
/// goes on to the same end, so `fit` in pieces equals `fit` in one go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// This many passes over the data.
    Epochs(u64),
    /// This many optimizer steps.
    Steps(u64),
}

/// What [`Trainer::fit`] does: how long, how often it reads the loss, and what it validates on.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct FitOptions<'a> {
    /// The run's length.
    pub length: Length,
    /// Read the loss every this many steps (and at every epoch's end). Default: 16 reads an
    /// epoch, at most every 64 steps, as `hourglass train`. Each read waits for the device,
    /// and reading never changes the result.
    pub report_every: Option<u64>,
    /// Data to evaluate on after every epoch ([`crate::infer::evaluate`], seeded with the run's
    /// seed, the data uploaded once). Its loss then decides the best epoch and is what
    /// [`EarlyStop`] watches; without it, the epoch's mean training loss does.
    pub validation: Option<&'a Dataset>,
    /// Also stop at every multiple of this many steps (before the end) and tell the callback
    /// ([`FitEvent::Checkpoint`]), e.g. to save the run.
    pub checkpoint_every: Option<u64>,
    /// The best monitored loss of earlier sessions of the same run (a resumed run): an epoch
    /// is a new best ([`EpochReport::improved`], [`FitSummary::best`]) only below it.
    pub best_so_far: Option<f64>,
}

impl<'a> FitOptions<'a> {
    /// Train until `n` epochs are done.
    pub fn epochs(n: u64) -> Self {
        FitOptions {
            length: Length::Epochs(n),
            report_every: None,
            validation: None,
            checkpoint_every: None,
            best_so_far: None,
        }
    }

    /// Train until `n` steps are done.
    pub fn steps(n: u64) -> Self {
        FitOptions {
            length: Length::Steps(n),
            ..Self::epochs(0)
        }
    }

    /// Read the loss every `steps` steps (at least 1).
    pub fn report_every(self, steps: u64) -> Self {
        FitOptions {
            report_every: Some(steps),
            ..self
        }
    }

    /// Evaluate on `data` after every epoch.
    pub fn validation(self, data: &'a Dataset) -> Self {
        FitOptions {
            validation: Some(data),
            ..self
        }
    }

    /// Stop at every multiple of `steps` steps for a [`FitEvent::Checkpoint`].
    pub fn checkpoint_every(self, steps: u64) -> Self {
        FitOptions {
            checkpoint_every: Some(steps),
            ..self
        }
    }

    /// Count only epochs below `loss` as new bests (resuming a run whose best was `loss`).
    pub fn best_so_far(self, loss: f64) -> Self {
        FitOptions {
            best_so_far: Some(loss),
            ..self
        }
    }
}

/// What the callback of [`Trainer::fit`] hears, in order: the reads of an epoch, then its
/// summary.
#[derive(Clone, Copy, Debug)]
pub enum FitEvent<'a> {
    /// The loss was read after `step` steps: the loss of that step's batch alone.
    Report {
        /// Steps taken so far in the whole run.
        step: u64,
        /// The 1-based epoch the step belongs to.
        epoch: u64,
        /// The step's loss, term by term.
        loss: &'a LossReport,
    },
    /// An epoch ended (the last one may be partial when the length is in steps).
    Epoch(&'a EpochReport),
    /// `step` is a multiple of [`FitOptions::checkpoint_every`] (and not the run's end).
    Checkpoint {
        /// Steps taken so far in the whole run.
        step: u64,
    },
}

/// One epoch of a [`Trainer::fit`] run.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: u64,
    /// Steps taken in the whole run at the end of the epoch.
    pub step: u64,
    /// The mean of the losses read during the epoch (in this call to `fit`).
    pub train: LossReport,
    /// The loss on the validation data, if there is any.
    pub val: Option<LossReport>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Training throughput over the epoch (validation and the callback not counted).
    pub samples_per_sec: f64,
    /// Its monitored loss is the lowest yet (see [`FitOptions::best_so_far`]).
    pub improved: bool,
}

impl EpochReport {
    /// The loss that decides the best epoch and early stopping: the validation loss if there
    /// is one, else the mean training loss.
    pub fn monitored(&self) -> f64 {
        self.val.as_ref().unwrap_or(&self.train).total()
    }
}

/// The epoch with the lowest [`EpochReport::monitored`] loss.
#[derive(Clone, Debug, PartialEq)]
pub struct BestEpoch {
    /// 1-based epoch number.
    pub epoch: u64,
    /// Steps taken at its end.
    pub step: u64,
    /// Its monitored loss.
    pub loss: f64,
    /// The parameters at its end.
    pub params: Parameters,
}

/// What a [`Trainer::fit`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitSummary {
    /// Every epoch that ended, in order.
    pub epochs: Vec<EpochReport>,
    /// True when the callback stopped the run before its length.
    pub stopped: bool,
    /// The best epoch of this call, if one ended.
    pub best: Option<BestEpoch>,
}

/// Early stopping: stop once `patience` epochs in a row bring no new lowest monitored loss
/// (what `hourglass train --early-stop` does).
///
/// ```
/// use std::ops::ControlFlow;
/// use hourglass::train::EarlyStop;
///
/// let mut stop = EarlyStop::new(2);
/// assert!(stop.update(1.0).is_continue()); // best
/// assert!(stop.update(0.5).is_continue()); // best
/// assert!(stop.update(0.7).is_continue()); // 1 without a better one
/// assert_eq!(stop.update(0.6), ControlFlow::Break(())); // 2: stop
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStop {
    patience: u64,
    best: Option<f64>,
    since_best: u64,
}

impl EarlyStop {
    /// Stops after `patience` epochs without a new best.
    pub fn new(patience: u64) -> Self {
        EarlyStop {
            patience,
            best: None,
            since_best: 0,
        }
    }

    /// Continues the early stopping of a resumed run whose best loss was `best`,
    /// `since_best` epochs ago.
    pub fn resume(patience: u64, best: Option<f64>, since_best: u64) -> Self {
        EarlyStop {
            patience,
            best,
            since_best,
        }
    }

    /// The callback part of early stopping: passes reads through and feeds each epoch's
    /// [`EpochReport::monitored`] loss to [`EarlyStop::update`]. Use it as the callback, or call
    /// it from yours: `trainer.fit(&options, |e| stop.observe(e))`.
    pub fn observe(&mut self, event: &FitEvent<'_>) -> ControlFlow<()> {
        match event {
            FitEvent::Report { .. } | FitEvent::Checkpoint { .. } => ControlFlow::Continue(()),
            FitEvent::Epoch(e) => self.update(e.monitored()),
        }
    }

    /// Records one epoch's loss; `Break` once `patience` epochs in a row were not lower than
    /// the best before them (a NaN is never lower; patience 0 stops at the first such epoch).
    pub fn update(&mut self, loss: f64) -> ControlFlow<()> {
        if self.best.is_none_or(|b| loss < b) {
            self.best = Some(loss);
            self.since_best = 0;
            return ControlFlow::Continue(());
        }
        self.since_best += 1;
        if self.since_best >= self.patience {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The lowest loss so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Epochs since the best one.
    pub fn since_best(&self) -> u64 {
        self.since_best
    }
}

/// Sums of loss terms over the reads of an epoch.
#[derive(Default)]
struct Mean {
    sums: Vec<(&'static str, f64)>,
    measures: Vec<(&'static str, f64)>,
    reads: usize,
    skipped: u64,
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
        for (k, &(name, value)) in report.measures.iter().enumerate() {
            if self.measures.len() <= k {
                self.measures.push((name, 0.0));
            }
            self.measures[k].1 += value;
        }
        self.reads += 1;
        self.skipped = report.skipped_steps;
        self.loss_scale = report.loss_scale;
    }

    fn take(&mut self) -> LossReport {
        let n = self.reads.max(1) as f64;
        let report = LossReport {
            terms: self.sums.iter().map(|&(name, s)| (name, s / n)).collect(),
            skipped_steps: self.skipped,
            loss_scale: self.loss_scale,
            measures: self
                .measures
                .iter()
                .map(|&(name, s)| (name, s / n))
                .collect(),
        };
        *self = Mean {
            skipped: self.skipped,
            loss_scale: self.loss_scale,
            ..Mean::default()
        };
        report
    }
}

impl Trainer {
    /// Trains to the end of `options.length`, reading the loss every `report_every` steps and
    /// summarizing every epoch, and calls `callback` with each read and each summary, in
    /// order. The callback returns [`ControlFlow::Break`] to stop the run right there (after the
    /// step that was just read, or at the end of the epoch just summarized); the trainer then
    /// stands at that step, and a later `fit` continues from it. A stop at the read or
    /// checkpoint that ends an epoch first summarizes that epoch ([`FitEvent::Epoch`], with its
    /// validation), so that a run stopped and continued there reports every epoch once.
    ///
    /// The steps taken are those [`Trainer::train_steps`] would take: how often the loss is
    /// read, and whether there is a callback or validation data, never changes the parameters.
    /// Errors are those of training ([`Error::NonFinite`] under
    /// [`NonFinitePolicy::Stop`](crate::train::NonFinitePolicy::Stop), device errors) and of a
    /// validation set that does not fit the model.
    ///
    /// # Example
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use hourglass::train::{EarlyStop, FitEvent, FitOptions};
    /// use hourglass::{Dataset, Device, ModelSpec, TrainConfig, Trainer};
    ///
    /// let data = Dataset::new(64, 4, (0..256).map(|i| (i % 7) as f32 / 7.0).collect())?;
    /// let spec = ModelSpec::builder().encoder([4, 2]).build()?;
    /// let mut trainer = Trainer::new(&spec, &TrainConfig::new(16, 1e-2), &data, &Device::Cpu, None)?;
    ///
    /// let mut stop = EarlyStop::new(3);
    /// let mut reads = 0;
    /// let summary = trainer.fit(&FitOptions::epochs(10).report_every(2), |event| {
    ///     match event {
    ///         FitEvent::Report { .. } => reads += 1,
    ///         FitEvent::Epoch(e) => println!("epoch {} loss {}", e.epoch, e.train),
    ///         FitEvent::Checkpoint { .. } => {} // none: no checkpoint_every
    ///     }
    ///     stop.observe(event)
    /// })?;
    /// // 4 steps an epoch, a read every 2: 2 reads per epoch.
    /// assert_eq!(reads, 2 * summary.epochs.len());
    /// assert_eq!(trainer.step(), 4 * summary.epochs.len() as u64);
    /// # Ok::<(), hourglass::Error>(())
    /// ```
    pub fn fit(
        &mut self,
        options: &FitOptions<'_>,
        mut callback: impl FnMut(&FitEvent<'_>) -> ControlFlow<()>,
    ) -> Result<FitSummary> {
        self.fit_with(options, |_, event| callback(event))
    }

    /// As [`Trainer::fit`], with the trainer lent to the callback, e.g. to save its
    /// [`Trainer::state`] at a [`FitEvent::Checkpoint`] or its parameters at an improved epoch
    /// (what `hourglass train` does).
    pub fn fit_with(
        &mut self,
        options: &FitOptions<'_>,
        mut callback: impl FnMut(&mut Trainer, &FitEvent<'_>) -> ControlFlow<()>,
    ) -> Result<FitSummary> {
        let per_epoch = self.steps_per_epoch();
        let total = match options.length {
            Length::Epochs(n) => n.saturating_mul(per_epoch),
            Length::Steps(n) => n,
        };
        let read_every = options
            .report_every
            .unwrap_or((per_epoch / 16).clamp(1, 64));
        if read_every == 0 || options.checkpoint_every == Some(0) {
            return Err(Error::Config(
                "report_every and checkpoint_every must be at least 1 step".into(),
            ));
        }
        if let Some(val) = options.validation
            && (val.cols != self.spec.input_dim() || val.rows == 0)
        {
            return Err(Error::Config(format!(
                "the validation data has {} rows of {} features; the model needs at least one \
                 row of {}",
                val.rows,
                val.cols,
                self.spec.input_dim()
            )));
        }
        if let Some(val) = options.validation {
            crate::model::check_targets(&self.spec, val, "the validation data")?;
        }
        // Built once: the validation data stays on the device between epochs.
        let mut evaluator = match options.validation {
            Some(v) => Some(Evaluator::new(
                &self.spec,
                v,
                &self.device,
                self.config.seed,
            )?),
            None => None,
        };
        let mut summary = FitSummary::default();
        let mut best = options.best_so_far;
        let mut mean = Mean::default();
        // Time in `train_steps` only: validation and the callback are not training.
        let mut epoch_time = Duration::ZERO;
        let mut epoch_first_step = self.step;
        while self.step < total {
            let step = self.step;
            let epoch_end = ((step / per_epoch + 1) * per_epoch).min(total);
            let mut end = epoch_end.min((step / read_every + 1) * read_every);
            if let Some(every) = options.checkpoint_every {
                end = end.min((step / every + 1) * every);
            }
            let report = end == epoch_end || end.is_multiple_of(read_every);
            let started = Instant::now();
            let loss = self.train_steps(end - step, report)?;
            epoch_time += started.elapsed();
            let epoch = end.div_ceil(per_epoch);
            // A stop asked for at the read (or checkpoint) that ends an epoch still summarizes
            // that epoch first: stopping there must not lose its line and validation.
            let mut stop = false;
            if let Some(loss) = loss {
                mean.add(&loss);
                let event = FitEvent::Report {
                    step: end,
                    epoch,
                    loss: &loss,
                };
                stop = callback(self, &event).is_break();
            }
            if !stop
                && options
                    .checkpoint_every
                    .is_some_and(|every| end.is_multiple_of(every))
                && end < total
            {
                stop = callback(self, &FitEvent::Checkpoint { step: end }).is_break();
            }
            if stop && end < epoch_end {
                summary.stopped = true;
                break;
            }
            if end < epoch_end {
                continue;
            }
            let seconds = epoch_time.as_secs_f64();
            let samples = self.examples_in_steps(epoch_first_step..end) as f64;
            let params = match evaluator {
                Some(_) => Some(self.parameters()?),
                None => None,
            };
            let val = match (&mut evaluator, &params) {
                (Some(e), Some(p)) => Some(e.evaluate(p)?),
                _ => None,
            };
            let mut record = EpochReport {
                epoch,
                step: end,
                train: mean.take(),
                val,
                lr: self.lr_scale
                    * self
                        .config
                        .schedule
                        .lr_at(self.config.optimizer.lr, self.config.warmup, end),
                samples_per_sec: samples / seconds.max(1e-9),
                improved: false,
            };
            let monitored = record.monitored();
            record.improved = best.is_none_or(|b| monitored < b);
            if record.improved {
                best = Some(monitored);
                let params = match params {
                    Some(p) => p,
                    None => self.parameters()?,
                };
                summary.best = Some(BestEpoch {
                    epoch,
                    step: end,
                    loss: monitored,
                    params,
                });
            }
            let flow = callback(self, &FitEvent::Epoch(&record));
            summary.epochs.push(record);
            if stop || flow.is_break() {
                summary.stopped = true;
                break;
            }
            epoch_time = Duration::ZERO;
            epoch_first_step = end;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stop_waits_for_patience_epochs_without_a_new_best() {
        let mut stop = EarlyStop::new(2);
        let flows: Vec<bool> = [3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.9]
            .iter()
            .map(|&l| stop.update(l).is_break())
            .collect();
        assert_eq!(flows, [false, false, false, false, false, true, false]);
        assert_eq!(stop.best(), Some(0.9));
        let mut nan = EarlyStop::new(1);
        assert!(nan.update(1.0).is_continue());
        assert!(nan.update(f64::NAN).is_break());
    }
}
