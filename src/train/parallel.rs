//! Data-parallel steps ([`Trainer::new_data_parallel`]): each rank computes the gradient of its
//! contiguous share of the step's global batch, the ranks sum the weighted gradients in rank
//! order ([`Communicator::all_reduce_sum`], or in f16 with [`TrainConfig::reduce_precision`]),
//! and every rank applies the same update to the same parameters.
//!
//! A share of `b` rows of a global batch of `B` has the gradient of its own batch mean; weighted
//! by `b / B` and summed over the ranks it is the gradient of the whole batch's mean, which a
//! one-process run computes. The noise, VAE samples and projections of a share are keyed by the
//! rows' places in the global batch ([`crate::rng::global_element`]), so the sum is that
//! gradient up to the order of summation. The step is split — gradient, reduction, optimizer:
//! one submission computes this rank's weighted gradient and reads it back, the host reduces it
//! and writes the sum back, a second submission runs the optimizer ops.
//! With more than one rank the reduction overlaps the (last micro-batch's) backward pass,
//! bucket by bucket ([`TrainConfig::bucket_bytes`], `overlap.rs`), with the same bits.
//!
//! Gradient accumulation ([`TrainConfig::accumulate`]) comes here too, with one rank or many:
//! an optimizer step of `K × B` rows is `K` micro-batches of `B` rows in the step's order, each
//! shared by the ranks like a batch. Every micro-step ends with an on-device
//! [`Op::GradAccumulate`] that adds its gradient, weighted by its rows' share of the step's,
//! to the sum of the earlier ones; the last leaves the sum in the gradient arena (see
//! `train::micro`). The `K` micro-steps go to the device in one submission (more only for
//! over 63 of them, a streamed window of fewer micro-batches, or a reported loss, whose terms
//! are read after each micro-batch); with one rank the optimizer ops join it, so nothing is
//! read back, and with many the sum is read back once per optimizer step for the reduction.
//! A micro-batch's random numbers are keyed by its rows' places in the whole step, so the run
//! equals one at batch `K × B` up to the order of summation. One-process training without
//! accumulation never comes here, and its graph has no [`Op::GradAccumulate`].
//!
//! [`Op::GradAccumulate`]: crate::graph::Op::GradAccumulate

use std::sync::Arc;
use std::time::Instant;

use crate::distributed::{Communicator, share};
use crate::error::{Error, Result};
use crate::graph::Precision;
use crate::graph::TrainingGraph;
use crate::model::{ModelSpec, Variant};
use crate::train::overlap::{self, BucketPlan};
use crate::train::{LossReport, NonFinitePolicy, TrainConfig, Trainer};

/// The ranks, and this rank's `(first row, rows)` of a full and of the partial micro-batch
/// (the batch itself without accumulation).
pub(super) struct Parallel {
    pub comm: Arc<dyn Communicator>,
    /// Rows of a full micro-batch: the step's batch is `accumulate` of them.
    pub micro: usize,
    pub main: (usize, usize),
    pub tail: (usize, usize),
    pub stats: ParallelStats,
    /// The gradient's buckets when it is reduced while the backward pass goes on
    /// ([`TrainConfig::bucket_bytes`]; more than one rank).
    pub buckets: Option<Arc<BucketPlan>>,
}

/// Where a data-parallel trainer's steps spent their time, on this rank
/// ([`Trainer::parallel_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParallelStats {
    /// Optimizer steps taken.
    pub steps: u64,
    /// Micro-batches computed (the steps times the accumulation count, the partial steps'
    /// fewer ones counted as they are).
    pub micro_batches: u64,
    /// Seconds in this rank's forward and backward passes, the read-back of their sum
    /// included; with one rank, the optimizer ops too (they join the same submission).
    pub gradient_s: f64,
    /// Seconds in the gradient's reduction (weighting, the sum over ranks, writing it back),
    /// waiting for the slowest rank included; with buckets ([`TrainConfig::bucket_bytes`]),
    /// only the part left once the backward pass has ended (the exposed reduction).
    pub reduce_s: f64,
    /// Seconds the reduction ran, hidden behind the backward pass or not: with buckets
    /// ([`TrainConfig::bucket_bytes`]) the communication thread's time, of which `reduce_s` is
    /// the part left after the backward pass; without, `reduce_s`'s sum itself.
    pub reduce_busy_s: f64,
    /// Buckets the gradient is reduced in per step (1: after the backward pass, in one sum).
    pub buckets: usize,
    /// Seconds in the optimizer ops' submission (none of its own with one rank).
    pub update_s: f64,
    /// Submissions to the device (on the CPU: the runs that stand for them), the optimizer
    /// ops' included: 1 a step with one rank (more with a reported loss, a streamed data set
    /// or over 63 micro-batches), 2 with more ranks (with buckets, one a segment of the
    /// overlapped backward pass).
    pub submissions: u64,
    /// Gradient read-backs: none with one rank, 1 a step with more (the reduction's); with
    /// buckets, one a bucket and one of the earlier micro-steps' sum when there are some.
    pub gradient_reads: u64,
    /// Bytes of gradient this rank contributed to the sum per step: 4 a parameter, 2 with
    /// [`crate::train::ReducePrecision::F16`] over more than one rank.
    pub bytes_per_step: u64,
}

impl Parallel {
    /// Checks that the run can be split over `comm`'s ranks with global micro-batches of
    /// `batch` rows (and a partial one of `tail`), and takes this rank's shares.
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
            micro: batch,
            main: share(batch, rank, size),
            tail: share(tail, rank, size),
            comm,
            buckets: None,
        })
    }

    /// Plans the gradient's buckets of `tg`'s main and partial-batch steps when they are
    /// reduced while the backward pass goes on: `config.bucket_bytes` given, more than one
    /// rank, on the CPU or a GPU (whose segments and bucket copies are one submission each).
    pub fn plan_buckets(&mut self, tg: &TrainingGraph, config: &TrainConfig) {
        self.buckets = match config.bucket_bytes {
            Some(bytes) if self.comm.size() > 1 => {
                let ops: Vec<_> = std::iter::once(0..tg.graph.update_start)
                    .chain(tg.tail.as_ref().map(|t| t.ops.clone()))
                    .map(|r| overlap::backward_ops(tg, r))
                    .collect();
                Some(Arc::new(BucketPlan::new(&tg.graph, tg.grads, bytes, &ops)))
            }
            _ => None,
        }
        // One bucket has nothing to overlap with: the one sum, without a thread.
        .filter(|plan| plan.buckets().len() > 1);
        self.stats.buckets = self.buckets.as_ref().map_or(1, |b| b.buckets().len());
    }
}

/// What [`Trainer::new_data_parallel`] and gradient accumulation refuse, for `size` ranks and
/// global micro-batches of `batch` rows (the configured batch size, or all the rows when they
/// are fewer).
fn check(spec: &ModelSpec, config: &TrainConfig, batch: usize, size: usize) -> Result<()> {
    if size > batch {
        return Err(Error::Config(format!(
            "a batch of {batch} rows cannot be shared by {size} ranks: give a batch size (the \
             global batch) of at least {size}, or run fewer ranks"
        )));
    }
    let what = if size > 1 {
        "more than one rank"
    } else {
        "gradient accumulation"
    };
    if config.precision == Precision::Mixed {
        return Err(Error::Config(format!(
            "mixed precision is not supported with {what} yet: its loss scale would have to \
             agree between the micro-batches and ranks (use precision = f32)"
        )));
    }
    if let Variant::Sparse {
        target: Some(_), ..
    } = spec.variant
    {
        return Err(Error::Config(format!(
            "the KL sparsity penalty (a sparsity target) depends on the mean activation over \
             the whole batch, which no rank or micro-batch sees: it is not supported with \
             {what} (the L1 penalty is)"
        )));
    }
    if spec.psd_settings().is_some() {
        return Err(Error::Config(format!(
            "predictive sparse decomposition is not supported with {what} yet: its \
             dictionary renormalisation and its measures are not part of the split step"
        )));
    }
    Ok(())
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

    /// [`Trainer::train_steps`] of a data-parallel or accumulating trainer: one optimizer step
    /// at a time. The step's micro-steps (this rank's shares of its micro-batches) run on the
    /// device, their weighted gradients summed there by [`Op::GradAccumulate`] into the
    /// gradient arena, in as few submissions as the ring of steps, a streamed window and a
    /// reported loss allow (see [`Trainer::micro_groups`]). With one rank the optimizer ops
    /// join the last of them: no read-back at all. With more, the sum is read back once,
    /// reduced over the ranks, written back, and the optimizer ops run.
    ///
    /// [`Op::GradAccumulate`]: crate::graph::Op::GradAccumulate
    pub(super) fn train_steps_parallel(
        &mut self,
        n: u64,
        report: bool,
    ) -> Result<Option<LossReport>> {
        let spe = self.steps_per_epoch();
        let full = (self.rows / self.batch) as u64;
        let end = self.step + n;
        let (comm, micro_rows) = {
            let p = self.parallel.as_ref().expect("a parallel trainer");
            (p.comm.clone(), p.micro)
        };
        let one_rank = comm.size() == 1;
        let mut loss = None;
        while self.step < end {
            let s = self.step;
            self.load_order(s / spe);
            let is_tail = self.tail > 0 && s % spe == full;
            let global = if is_tail { self.tail } else { self.batch };
            let position = (s % spe) as usize * self.batch;
            let reporting = report && s + 1 == end;
            let mut values = vec![0.0f64; self.tg.terms.len()];
            let micros = self.micro_steps(s, global, position);
            let started = Instant::now();
            let update = self.step_params(s, 0);
            let buckets = self.parallel.as_ref().and_then(|p| p.buckets.clone());
            let values_ref = reporting.then_some(&mut values);
            let (grads, computed, busy, mut submissions, reads) = match &buckets {
                // With one rank the update joins the micro-steps' last submission; with more
                // their sum comes back and is reduced over the ranks (zero without rows).
                None => {
                    let run = self.run_micro_steps(
                        &micros,
                        global,
                        one_rank.then_some(update),
                        self.tg.grads,
                        values_ref,
                    )?;
                    let computed = Instant::now();
                    let reads = u64::from(run.grads.is_some());
                    let grads = if one_rank {
                        None
                    } else {
                        let mut grads = run.grads.unwrap_or_else(|| vec![0.0; self.tg.grads.len()]);
                        self.config
                            .reduce_precision
                            .all_reduce_sum(&*comm, &mut grads)?;
                        Some(grads)
                    };
                    let busy = computed.elapsed().as_secs_f64();
                    (grads, computed, busy, run.submissions, reads)
                }
                // The last micro-step's backward pass overlaps the reduction, bucket by bucket.
                Some(plan) => {
                    let r = self.overlapped_micro_steps(&micros, global, plan, values_ref)?;
                    (Some(r.grads), r.computed, r.busy_s, r.submissions, r.reads)
                }
            };
            if let Some(grads) = grads {
                self.backend.write(self.tg.grads.buf, &grads);
            }
            let reduced = Instant::now();
            if !one_rank {
                self.backend.run(self.tg.update.clone(), &[update])?;
                submissions += 1;
            }
            self.step += 1;
            let stats = &mut self.parallel.as_mut().expect("a parallel trainer").stats;
            stats.steps += 1;
            stats.micro_batches += global.div_ceil(micro_rows) as u64;
            stats.submissions += submissions;
            stats.gradient_reads += reads;
            stats.gradient_s += (computed - started).as_secs_f64();
            stats.reduce_s += (reduced - computed).as_secs_f64();
            stats.reduce_busy_s += busy;
            // The update is queued on a GPU: its time shows in the next step's read-back.
            stats.update_s += reduced.elapsed().as_secs_f64();
            // With one rank the f16 sum does nothing: the gradient stays f32.
            let width = if one_rank {
                4
            } else {
                self.config.reduce_precision.bytes()
            };
            stats.bytes_per_step = (self.tg.grads.len() * width) as u64;
            if reporting {
                loss = Some(self.parallel_report(&*comm, values)?);
            }
        }
        Ok(loss)
    }

    /// Adds the loss terms of the micro-batch just computed (the partial one's graph when
    /// `partial`), weighted by `w`, its rows' share of the step's, to `values`.
    pub(super) fn add_terms(&mut self, partial: bool, w: f64, values: &mut [f64]) -> Result<()> {
        let terms = match (&self.tg.tail, partial) {
            (Some(t), true) => t.terms.clone(),
            _ => self.tg.terms.clone(),
        };
        for (term, value) in terms.iter().zip(values.iter_mut()) {
            let v = self.backend.read(term.values)?;
            *value += w * term.scale * v.iter().map(|&x| f64::from(x)).sum::<f64>();
        }
        Ok(())
    }

    /// The loss of the step just taken over the whole global batch: `values`, this rank's
    /// term means weighted by its shares ([`Trainer::add_terms`]), summed over the ranks.
    fn parallel_report(
        &mut self,
        comm: &dyn Communicator,
        mut values: Vec<f64>,
    ) -> Result<LossReport> {
        let skipped = self.check_health()?;
        let step_terms = self.tg.terms.clone();
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
