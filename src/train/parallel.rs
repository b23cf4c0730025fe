//! Data-parallel steps ([`Trainer::new_data_parallel`]): each rank computes the gradient of its
//! contiguous share of the step's global batch, the ranks sum the weighted gradients in rank
//! order ([`Communicator::all_reduce_sum`]), and every rank applies the same update to the
//! same parameters.
//!
//! A share of `b` rows of a global batch of `B` has the gradient of its own batch mean; weighted
//! by `b / B` and summed over the ranks it is the gradient of the whole batch's mean, which a
//! one-process run computes. The noise, VAE samples and projections of a share are keyed by the
//! rows' places in the global batch ([`crate::rng::global_element`]), so the sum is that
//! gradient up to the order of summation. The step is split — gradient, reduction, optimizer —
//! one step per submission; one-process training never comes here.

use std::sync::Arc;
use std::time::Instant;

use crate::distributed::{Communicator, share};
use crate::error::{Error, Result};
use crate::graph::Precision;
use crate::model::{ModelSpec, Variant};
use crate::train::{LossReport, NonFinitePolicy, TrainConfig, Trainer};

/// The ranks, and this rank's `(first row, rows)` of a full and of the partial batch.
pub(super) struct Parallel {
    pub comm: Arc<dyn Communicator>,
    pub main: (usize, usize),
    pub tail: (usize, usize),
    pub stats: ParallelStats,
}

/// Where a data-parallel trainer's steps spent their time, on this rank
/// ([`Trainer::parallel_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParallelStats {
    /// Steps taken.
    pub steps: u64,
    /// Seconds in this rank's forward and backward pass, the gradient's read-back included.
    pub gradient_s: f64,
    /// Seconds in the gradient's reduction (weighting, the sum over ranks, writing it back),
    /// waiting for the slowest rank included.
    pub reduce_s: f64,
    /// Seconds in the optimizer ops.
    pub update_s: f64,
    /// Bytes of gradient this rank contributed to the sum per step.
    pub bytes_per_step: u64,
}

impl Parallel {
    /// Checks that the run can be split over `comm`'s ranks with global batches of `batch`
    /// rows (and a partial one of `tail`), and takes this rank's shares.
    pub fn new(
        comm: Arc<dyn Communicator>,
        spec: &ModelSpec,
        config: &TrainConfig,
        batch: usize,
        tail: usize,
    ) -> Result<Self> {
        let (rank, size) = (comm.rank(), comm.size());
        check(spec, config, batch, size)?;
        Ok(Parallel {
            stats: ParallelStats::default(),
            main: share(batch, rank, size),
            tail: share(tail, rank, size),
            comm,
        })
    }
}

/// What [`Trainer::new_data_parallel`] refuses, for `size` ranks and global batches of `batch`
/// rows (the configured batch size, or all the rows when they are fewer).
fn check(spec: &ModelSpec, config: &TrainConfig, batch: usize, size: usize) -> Result<()> {
    {
        if size > batch {
            return Err(Error::Config(format!(
                "a batch of {batch} rows cannot be shared by {size} ranks: give --batch-size \
                 (the global batch) at least {size}, or run fewer ranks"
            )));
        }
        if config.precision == Precision::Mixed {
            return Err(Error::Config(
                "mixed precision is not supported with more than one rank yet: its loss scale \
                 would have to agree between the ranks (use --precision f32)"
                    .into(),
            ));
        }
        if let Variant::Sparse {
            target: Some(_), ..
        } = spec.variant
        {
            return Err(Error::Config(
                "the KL sparsity penalty (--sparsity-target) depends on the mean activation over \
                 the whole batch, which no rank sees: it is not supported with more than one \
                 rank (the L1 penalty is)"
                    .into(),
            ));
        }
        if spec.psd_settings().is_some() {
            return Err(Error::Config(
                "predictive sparse decomposition is not supported with more than one rank yet:                  its dictionary renormalisation and its measures are not part of the split step"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Trainer {
    /// As [`Trainer::new`], as one rank of a data-parallel run over `comm`: every rank must be
    /// given the same spec, config, data and initial parameters (the caller checks, e.g. with
    /// [`crate::distributed::differing_ranks`]). `config.batch_size` is the global batch;
    /// this rank takes its share ([`crate::distributed::share`]) of each. The parameters after
    /// each step are the same on every rank, and equal those of [`Trainer::new`] with the same
    /// arguments up to float summation order; with a communicator of one rank the run is the
    /// one-process run step for step.
    ///
    /// Refused: a global batch smaller than the number of ranks, mixed precision, the KL
    /// sparsity penalty (a statistic of the whole batch) and PSD models.
    pub fn new_data_parallel(
        spec: &ModelSpec,
        config: &TrainConfig,
        data: &crate::data::Dataset,
        device: &crate::train::Device,
        init: Option<&crate::model::Parameters>,
        comm: Arc<dyn Communicator>,
    ) -> Result<Self> {
        Self::build(spec, config, data, device, init, Some(comm))
    }

    /// The checks of [`Trainer::new_data_parallel`] that depend only on the run (the spec, the
    /// config, the number of training rows, the number of ranks), without building anything:
    /// the same answer on every rank of a run whose ranks agree.
    pub fn check_data_parallel(
        spec: &ModelSpec,
        config: &TrainConfig,
        rows: usize,
        size: usize,
    ) -> Result<()> {
        check(spec, config, config.batch_size.min(rows).max(1), size)
    }

    /// Where this rank's data-parallel steps spent their time so far (`None` for
    /// [`Trainer::new`]'s trainers).
    pub fn parallel_stats(&self) -> Option<ParallelStats> {
        self.parallel.as_ref().map(|p| p.stats)
    }

    /// The ranks of a data-parallel trainer (`None` for [`Trainer::new`]'s).
    pub fn communicator(&self) -> Option<&Arc<dyn Communicator>> {
        self.parallel.as_ref().map(|p| &p.comm)
    }

    /// [`Trainer::train_steps`] of a data-parallel trainer: one step at a time, split into the
    /// gradient of this rank's share, the reduction and the optimizer.
    pub(super) fn train_steps_parallel(
        &mut self,
        n: u64,
        report: bool,
    ) -> Result<Option<LossReport>> {
        let spe = self.steps_per_epoch();
        let full = (self.rows / self.batch) as u64;
        let end = self.step + n;
        let comm = self
            .parallel
            .as_ref()
            .expect("a parallel trainer")
            .comm
            .clone();
        let mut loss = None;
        while self.step < end {
            let s = self.step;
            self.load_order(s / spe);
            let is_tail = self.tail > 0 && s % spe == full;
            let p = self.parallel.as_ref().expect("a parallel trainer");
            let ((first, local), global) = if is_tail {
                (p.tail, self.tail)
            } else {
                (p.main, self.batch)
            };
            let streaming = self.streaming.is_some();
            if streaming {
                self.load_window(s, s + 1);
            }
            let position = (s % spe) as usize * self.batch;
            let mut sp = self.step_params(s, if streaming { 0 } else { position + first });
            sp.row_base = first as u32;
            sp.rows_global = global as u32;
            let ops = if is_tail {
                self.tg.tail.as_ref().map(|t| t.ops.clone())
            } else {
                Some(0..self.tg.graph.update_start)
            };
            let started = Instant::now();
            let mut grads = match ops {
                Some(ops) if local > 0 => {
                    self.backend.run(ops, &[sp])?;
                    self.backend.read(self.tg.grads)?
                }
                _ => vec![0.0; self.tg.grads.len()],
            };
            let computed = Instant::now();
            if local != global {
                let w = local as f32 / global as f32;
                grads.iter_mut().for_each(|g| *g *= w);
            }
            comm.all_reduce_sum(&mut grads)?;
            self.backend.write(self.tg.grads.buf, &grads);
            let reduced = Instant::now();
            self.backend.run(self.tg.update.clone(), &[sp])?;
            self.step += 1;
            let stats = &mut self.parallel.as_mut().expect("a parallel trainer").stats;
            stats.steps += 1;
            stats.gradient_s += (computed - started).as_secs_f64();
            stats.reduce_s += (reduced - computed).as_secs_f64();
            // The update is queued on a GPU: its time shows in the next step's read-back.
            stats.update_s += reduced.elapsed().as_secs_f64();
            stats.bytes_per_step = (grads.len() * 4) as u64;
            if report && self.step == end {
                loss = Some(self.parallel_report(&*comm, is_tail, local, global)?);
            }
        }
        Ok(loss)
    }

    /// The loss of the step just taken over the whole global batch: each rank's term means
    /// weighted by its share and summed over the ranks.
    fn parallel_report(
        &mut self,
        comm: &dyn Communicator,
        is_tail: bool,
        local: usize,
        global: usize,
    ) -> Result<LossReport> {
        let skipped = self.check_health()?;
        let step_terms = match (&self.tg.tail, is_tail) {
            (Some(t), true) => t.terms.clone(),
            (None, true) => {
                // This rank has no rows of the partial batch: its terms count zero.
                let mut terms = self.tg.terms.clone();
                terms.iter_mut().for_each(|t| t.scale = 0.0);
                terms
            }
            _ => self.tg.terms.clone(),
        };
        let w = local as f64 / global as f64;
        let mut values = Vec::with_capacity(step_terms.len());
        for term in &step_terms {
            values.push(if local == 0 {
                0.0
            } else {
                let v = self.backend.read(term.values)?;
                w * term.scale * v.iter().map(|&x| f64::from(x)).sum::<f64>()
            });
        }
        comm.all_reduce_sum_f64(&mut values)?;
        let mut terms = Vec::with_capacity(values.len());
        for (term, value) in step_terms.iter().zip(values) {
            if !value.is_finite() && self.config.on_nonfinite == NonFinitePolicy::Stop {
                return Err(Error::NonFinite {
                    what: format!("{} loss", term.name),
                    step: self.step,
                });
            }
            terms.push((term.name, value));
        }
        Ok(LossReport {
            terms,
            skipped_steps: skipped,
            loss_scale: None,
            measures: Vec::new(),
        })
    }
}
