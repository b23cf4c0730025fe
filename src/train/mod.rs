//! Training: a [`Trainer`] owns a model's training graph on a device and advances it step by
//! step; batches, learning rate and random streams are pure functions of the step number, so a
//! run can be split, resumed or repeated and gives the same result. [`Trainer::fit`] runs whole
//! epochs with a callback (metrics, validation, [`EarlyStop`]); [`Device`] says where it runs.

mod backend;
mod device;
mod fit;
mod micro;
mod overlap;
mod parallel;
mod schedule;

pub use crate::distributed::ReducePrecision;
pub use backend::Backend;
pub use device::{Device, DeviceChoice};
pub use fit::{BestEpoch, EarlyStop, EpochReport, FitEvent, FitOptions, FitSummary, Length};
pub use overlap::{DEFAULT_BUCKET_BYTES, parse_bucket_kib};
pub use parallel::ParallelStats;
pub use schedule::Schedule;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::executor::MAX_STEPS_PER_SUBMIT;
use crate::graph::build::{build_accumulating_training_graph, build_training_graph_with_tail};
use crate::graph::{Precision, StepParams, TrainingGraph};
use crate::infer::Autoencoder;
use crate::model::{ModelSpec, Parameters};
use crate::optim::OptimizerConfig;
use crate::rng::permutation;

/// How to train, beyond the model itself.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Examples per step. The last partial batch of an epoch is trained on too unless
    /// `drop_last` is set.
    pub batch_size: usize,
    /// Train on the last `rows % batch_size` examples of each epoch's order as a last, smaller
    /// step of the epoch, its loss averaged over its own rows (false, the default, as PyTorch's
    /// `DataLoader(drop_last=False)` and Keras do), or drop them (true). With false, a batch
    /// size larger than the data set trains on all of it, one step an epoch; with true that is
    /// an error (there is no whole batch to train on).
    pub drop_last: bool,
    /// Update rule and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Seed of every random stream (initialisation, shuffling, noise).
    pub seed: u64,
    /// Visit the examples in a fresh random order each epoch (else in file order).
    pub shuffle: bool,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Steps of linear learning-rate warm-up.
    pub warmup: u64,
    /// Rescale each step's gradient so its global L2 norm is at most this.
    pub clip_grad_norm: Option<f32>,
    /// What to do once a step's gradient was not finite (the step itself is always skipped
    /// on the device, so the parameters stay the last finite ones).
    pub on_nonfinite: NonFinitePolicy,
    /// Keep the data set on the GPU when it takes at most this many bytes (default: as much as
    /// the device's largest buffer); larger sets are streamed, a window of batches at a time,
    /// with the same batches in the same order.
    pub max_resident_bytes: Option<u64>,
    /// Number format of the matrix products. [`Precision::Mixed`] runs them in f16 with f32
    /// accumulation and dynamic loss scaling on GPUs with f16 cooperative matrices (tensor
    /// cores); elsewhere it would only be slower, so the run falls back to f32 unless
    /// `emulate_mixed` is set. [`Trainer::precision`] says which one runs.
    pub precision: Precision,
    /// Run [`Precision::Mixed`] even without f16 matrix units, rounding operands to f16 in f32
    /// arithmetic: the numbers of a mixed-precision run without its speed, to check on any
    /// machine (the CPU included) how a model trains in mixed precision.
    pub emulate_mixed: bool,
    /// Gradient accumulation: each optimizer step takes this many micro-batches of
    /// `batch_size` rows (default 1). The step's batch is `accumulate × batch_size` rows and
    /// its gradient the mean over all of them, so a run equals, up to float rounding, one at
    /// `batch_size × accumulate` with the same random numbers (they are keyed by the example's
    /// place in the step's whole batch). Steps, epochs, schedules and checkpoints count
    /// optimizer steps. With drop_last false the epoch's partial step is split into whole
    /// micro-batches and one smaller last one. The micro-batches' gradients are summed on the
    /// device, in a buffer the size of the parameters, and a step's micro-batches go to it in
    /// one submission (see [`Trainer::parallel_stats`]). Refused: 0, a step larger than the data set,
    /// and what data-parallel training refuses (mixed precision, the KL sparsity penalty,
    /// PSD).
    pub accumulate: usize,
    /// The number format of the gradient's sum over the ranks of a data-parallel run
    /// ([`Trainer::new_data_parallel`]): [`ReducePrecision::F32`] (the default), or
    /// [`ReducePrecision::F16`], half the bytes per step: each rank's weighted gradient is
    /// rounded to f16, the f16 values summed in f32 in rank order and the sum rounded to f16
    /// ([`crate::distributed::Communicator::all_reduce_sum_f16`]), so a run still repeats bit
    /// for bit with the same number of ranks. f16's range applies: a gradient element beyond
    /// ±65504 becomes infinite (the step is non-finite, handled by `on_nonfinite`), and ones
    /// below 6.1e-5 in magnitude keep fewer digits (below 3e-8 they become 0). With one rank
    /// (one process, with or without accumulation) there is nothing to reduce: F16 does
    /// nothing, and the run is the F32 run bit for bit.
    pub reduce_precision: ReducePrecision,
    /// Data-parallel runs (CPU or GPU): the gradient is summed over the ranks in buckets of at
    /// least this many bytes of f32 (one op's gradient is never split), each on a
    /// communication thread as soon as the backward pass has finished it, while the backward
    /// pass goes on (PyTorch DDP's `bucket_cap_mb`); default [`DEFAULT_BUCKET_BYTES`], 1 MiB.
    /// `None`: one sum of the whole gradient after the backward pass. The parameters are the
    /// same bits either way on the CPU, lavapipe and GL (with accumulation on a GPU whose
    /// compiler fuses the device's `acc + w·g` into an FMA, the last bit can differ: the
    /// bucketed path does that sum on the host). With gradient accumulation only the last micro-batch's backward
    /// pass overlaps (the sum is taken once per optimizer step); one rank always takes the
    /// one sum.
    pub bucket_bytes: Option<usize>,
}

/// The response to steps whose gradient was NaN or infinite, seen at the next report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinitePolicy {
    /// Stop with [`Error::NonFinite`] naming the first bad step.
    #[default]
    Stop,
    /// Carry on; the bad steps were skipped.
    SkipStep,
    /// Carry on at half the learning rate (halved again at each later report with new ones).
    ReduceLr,
}

impl NonFinitePolicy {
    /// Parses `stop`, `skip-step` or `reduce-lr`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "stop" => Ok(NonFinitePolicy::Stop),
            "skip-step" | "skip_step" => Ok(NonFinitePolicy::SkipStep),
            "reduce-lr" | "reduce_lr" => Ok(NonFinitePolicy::ReduceLr),
            other => Err(Error::Config(format!(
                "unknown on_nonfinite policy '{other}' (expected stop, skip-step or reduce-lr)"
            ))),
        }
    }
}

impl TrainConfig {
    /// Adam at `lr`, batch `batch_size`, seed 0, shuffled.
    pub fn new(batch_size: usize, lr: f32) -> Self {
        TrainConfig {
            batch_size,
            drop_last: false,
            optimizer: OptimizerConfig::adam(lr),
            seed: 0,
            shuffle: true,
            schedule: Schedule::Constant,
            warmup: 0,
            clip_grad_norm: None,
            on_nonfinite: NonFinitePolicy::Stop,
            max_resident_bytes: None,
            precision: Precision::F32,
            accumulate: 1,
            emulate_mixed: false,
            reduce_precision: ReducePrecision::F32,
            bucket_bytes: Some(DEFAULT_BUCKET_BYTES),
        }
    }
}

/// The loss of one step, term by term.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossReport {
    /// `(name, batch-mean value)` of every term, reconstruction first.
    pub terms: Vec<(&'static str, f64)>,
    /// Steps of the run so far skipped for a non-finite gradient.
    pub skipped_steps: u64,
    /// Mixed precision: the dynamic loss scale after the step, and the steps of the run so far
    /// skipped because the scaled gradients overflowed f16 (which halves the scale; these are
    /// not faults and not counted in `skipped_steps`).
    pub loss_scale: Option<(f32, u64)>,
    /// `(name, batch-mean value)` of what the model measures beside its loss (not part of
    /// [`LossReport::total`]): a PSD model's `zero_fraction` (of the inferred code's entries),
    /// `prediction_sq` (‖h* − f(x)‖²) and `code_sq` (‖h*‖²). Empty for other models.
    pub measures: Vec<(&'static str, f64)>,
}

impl LossReport {
    /// The value of the measure called `name`.
    pub fn measure(&self, name: &str) -> Option<f64> {
        self.measures
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// A PSD model's relative prediction error ‖f(x) − h*‖ / ‖h*‖ over the rows read.
    pub fn relative_prediction_error(&self) -> Option<f64> {
        let (e, h) = (self.measure("prediction_sq")?, self.measure("code_sq")?);
        Some(if h > 0.0 { (e / h).sqrt() } else { f64::NAN })
    }

    /// The total loss: the sum of the terms.
    pub fn total(&self) -> f64 {
        self.terms.iter().map(|(_, v)| v).sum()
    }

    /// The value of the term called `name`.
    pub fn term(&self, name: &str) -> Option<f64> {
        self.terms.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

impl std::fmt::Display for LossReport {
    /// `12.34567`, or `12.34567 (reconstruction 12.00000 + kl 0.34567)` with several terms.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.5}", self.total())?;
        if self.terms.len() > 1 {
            let parts: Vec<String> = self
                .terms
                .iter()
                .map(|(n, v)| format!("{n} {v:.5}"))
                .collect();
            write!(f, " ({})", parts.join(" + "))?;
        }
        Ok(())
    }
}

/// Everything needed to continue a run exactly: with the same spec, config and data, a trainer
/// restored from this state takes the same steps as one that never stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The parameters.
    pub params: Parameters,
    /// Optimizer state arenas (Adam m and v, or SGD velocity).
    pub optimizer: Vec<Vec<f32>>,
    /// Mixed precision's loss-scale state (see [`crate::graph::Op::LossScale`]).
    pub loss_scale: Option<Vec<f32>>,
}

/// A model being trained on one device.
///
/// [`Trainer::new`] builds the model's training graph on the device and uploads the data once;
/// [`Trainer::fit`] then runs whole epochs with a callback, or [`Trainer::train_steps`] takes
/// steps in loops of your own. The result is read with [`Trainer::parameters`] or
/// [`Trainer::autoencoder`], and [`Trainer::state`] / [`Trainer::restore`] resume a run.
///
/// # Example
///
/// ```
/// use hourglass::{Dataset, Device, ModelSpec, TrainConfig, Trainer};
///
/// let data = Dataset::new(40, 5, (0..200).map(|i| (i % 5) as f32 / 5.0).collect())?;
/// let spec = ModelSpec::builder().encoder([5, 2]).build()?;
/// let config = TrainConfig { seed: 42, ..TrainConfig::new(10, 1e-2) };
/// let mut trainer = Trainer::new(&spec, &config, &data, &Device::Cpu, None)?;
/// assert_eq!(trainer.steps_per_epoch(), 4);
///
/// // 10 steps, reading the loss of the last one.
/// let loss = trainer.train_steps(10, true)?.expect("asked for a report");
/// println!("step {}: loss {loss}", trainer.step());
///
/// // The same seed gives the same run, in one go or in pieces.
/// let mut again = Trainer::new(&spec, &config, &data, &Device::Cpu, None)?;
/// again.train_steps(3, false)?;
/// again.train_steps(7, false)?;
/// assert_eq!(again.parameters()?, trainer.parameters()?);
/// # Ok::<(), hourglass::Error>(())
/// ```
pub struct Trainer {
    spec: ModelSpec,
    config: TrainConfig,
    device: Device,
    tg: TrainingGraph,
    backend: Backend,
    rows: usize,
    /// Rows of a full batch: the configured batch size, or the whole data set when that is
    /// smaller and `drop_last` is false.
    batch: usize,
    /// Rows of the epoch's last, partial batch (0: none, every step is a full batch).
    tail: usize,
    step: u64,
    order_epoch: Option<u64>,
    /// Factor on the scheduled rate, halved by [`NonFinitePolicy::ReduceLr`].
    lr_scale: f32,
    /// Skipped steps already acted on.
    skipped_seen: u64,
    /// Set when the data set does not stay on the device.
    streaming: Option<Streaming>,
    /// What the products run in (the config's choice after any fallback).
    precision: Precision,
    /// Data-parallel training: the ranks and this rank's share of each batch.
    parallel: Option<parallel::Parallel>,
}

/// A data set too large to keep on the device: the host gathers each submission's batches
/// into a window buffer of `window` batches, in the epoch's order (an epoch's partial last
/// batch, with `drop_last` false, goes at the end of its window like any other).
struct Streaming {
    data: Dataset,
    window: usize,
    order: Vec<u32>,
}

impl Trainer {
    /// Builds the training graph of `spec` on `device`, uploads `data` once and initialises
    /// the parameters from `init` or, if `None`, from the seed.
    pub fn new(
        spec: &ModelSpec,
        config: &TrainConfig,
        data: &Dataset,
        device: &Device,
        init: Option<&Parameters>,
    ) -> Result<Self> {
        Self::build(spec, config, data, device, init, None)
    }

    fn build(
        spec: &ModelSpec,
        config: &TrainConfig,
        data: &Dataset,
        device: &Device,
        init: Option<&Parameters>,
        comm: Option<std::sync::Arc<dyn crate::distributed::Communicator>>,
    ) -> Result<Self> {
        spec.validate()?;
        config.optimizer.validate()?;
        if spec.psd_settings().is_some() && config.precision == Precision::Mixed {
            return Err(Error::Config(
                "PSD (variant = psd) trains in f32 only (its inference is iterative): leave out \
                 precision = mixed"
                    .into(),
            ));
        }
        if data.cols != spec.input_dim() {
            return Err(Error::Config(format!(
                "the data has {} features per example but the model's {}",
                data.cols,
                spec.input_size_text()
            )));
        }
        crate::model::check_targets(spec, data, "the training data")?;
        if let Some(c) = config.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "clip_grad_norm must be positive, got {c}"
            )));
        }
        if config.batch_size == 0 {
            return Err(Error::Config("the batch size must be at least 1".into()));
        }
        if data.rows == 0 {
            return Err(Error::Config(format!(
                "the batch size {} is larger than the data set (0 examples)",
                config.batch_size
            )));
        }
        if data.rows < config.batch_size && config.drop_last {
            return Err(Error::Config(format!(
                "the batch size {} is larger than the data set ({} examples), so drop_last \
                 leaves no whole batch to train on; turn drop_last off to train on all \
                 of them as one batch per epoch",
                config.batch_size, data.rows
            )));
        }
        if config.accumulate == 0 {
            return Err(Error::Config(
                "the accumulation count must be at least 1 (micro-batches per optimizer step)"
                    .into(),
            ));
        }
        if config.accumulate > 1 && config.batch_size.saturating_mul(config.accumulate) > data.rows
        {
            return Err(Error::Config(format!(
                "accumulating {} micro-batches of {} rows makes optimizer steps of {} rows, \
                 more than the data set's {} examples: lower the accumulation count or the \
                 batch size",
                config.accumulate,
                config.batch_size,
                config.batch_size.saturating_mul(config.accumulate),
                data.rows
            )));
        }
        // Micro-batches of `micro` rows (the graph's batch); optimizer steps of `batch` rows
        // (`accumulate` micro-batches), then with `drop_last` false the partial one of `tail`,
        // whose last micro-batch has `tail % micro` rows.
        let micro = config.batch_size.min(data.rows);
        let batch = micro * config.accumulate;
        let tail = if config.drop_last {
            0
        } else {
            data.rows % batch
        };
        // Accumulation is the split step of data-parallel training, with one rank when no
        // communicator is given.
        let comm = match comm {
            None if config.accumulate > 1 => {
                Some(std::sync::Arc::new(crate::distributed::SingleProcess)
                    as std::sync::Arc<dyn crate::distributed::Communicator>)
            }
            c => c,
        };
        let mut parallel = match comm {
            Some(comm) => Some(parallel::Parallel::new(
                comm,
                spec,
                config,
                micro,
                tail % micro,
            )?),
            None => None,
        };
        // This rank's rows of a full and of the partial batch (all of them in one process).
        let (local_batch, local_tail) = match &parallel {
            Some(p) => (p.main.1, p.tail.1),
            None => (batch, tail),
        };
        let batch_bytes = (local_batch * data.cols * 4) as u64;
        let limit = match (config.max_resident_bytes, device) {
            (Some(limit), Device::Gpu(_)) => limit,
            (None, Device::Gpu(ctx)) => ctx
                .limits
                .max_buffer_size
                .min(ctx.limits.max_storage_buffer_binding_size),
            (_, Device::Cpu) => u64::MAX,
        };
        let streaming = (data.values.len() as u64 * 4 > limit).then(|| Streaming {
            data: data.clone(),
            window: ((limit / batch_bytes.max(1)) as usize).clamp(1, MAX_STEPS_PER_SUBMIT),
            order: Vec::new(),
        });
        let resident_rows = streaming
            .as_ref()
            .map_or(data.rows, |s| s.window * local_batch);
        let precision = match (config.precision, device) {
            (Precision::F32, _) => Precision::F32,
            _ if config.emulate_mixed => Precision::Mixed,
            (Precision::Mixed, Device::Gpu(ctx)) if ctx.has_f16_matrix_units() => Precision::Mixed,
            (Precision::Mixed, _) => Precision::F32,
        };
        // Accumulating and data-parallel graphs sum their micro-steps' gradients on the device
        // (`Op::GradAccumulate`); the one-process graph without accumulation has no such op.
        let build = if parallel.is_some() {
            build_accumulating_training_graph
        } else {
            build_training_graph_with_tail
        };
        let tg = build(
            spec,
            local_batch,
            (local_tail > 0).then_some(local_tail),
            resident_rows,
            &config.optimizer,
            config.clip_grad_norm,
            precision,
        );
        crate::limits::check_graph(
            &tg.graph,
            device,
            &format!(
                "training a model with encoder {} in batches of {micro}",
                spec.encoder_text()
            ),
        )?;
        let params = match init {
            Some(p) => {
                if p.layout != tg.layout {
                    return Err(Error::Config(
                        "the initial parameters do not fit this model's layer sizes".into(),
                    ));
                }
                p.clone()
            }
            None => Parameters::init(spec, config.seed),
        };
        if let Some(p) = &mut parallel {
            p.plan_buckets(&tg, config);
        }
        let mut backend = Backend::new(device, tg.graph.clone())?;
        if streaming.is_some() {
            // The window is gathered in order on the host: the device reads it as it is.
            backend.write_u32(tg.order.buf, &(0..resident_rows as u32).collect::<Vec<_>>());
        } else {
            backend.write(tg.data.buf, &data.values);
        }
        backend.write(tg.params.buf, &params.arena);
        if let Some(t) = tg.loss_scale {
            backend.write(t.buf, &TrainingGraph::initial_loss_scale());
        }
        Ok(Trainer {
            spec: spec.clone(),
            config: config.clone(),
            device: device.clone(),
            tg,
            backend,
            rows: data.rows,
            batch,
            tail,
            step: 0,
            order_epoch: None,
            lr_scale: 1.0,
            skipped_seen: 0,
            streaming,
            precision,
            parallel,
        })
    }

    /// What the matrix products run in: the config's precision, or f32 where
    /// [`Precision::Mixed`] fell back (no f16 matrix units and no `emulate_mixed`).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The model being trained.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The device it trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model as trained so far, ready to encode, decode and save, on the trainer's device
    /// (a read-back of the parameters on the GPU).
    pub fn autoencoder(&mut self) -> Result<Autoencoder> {
        Autoencoder::new(self.spec.clone(), self.parameters()?, self.device.clone())
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Optimizer steps in one pass over the data: ⌊rows / batch⌋, plus one for the last partial batch
    /// when `drop_last` is false and the batch size does not divide the rows (⌈rows / batch⌉).
    pub fn steps_per_epoch(&self) -> u64 {
        (self.rows / self.batch + usize::from(self.tail > 0)) as u64
    }

    /// Rows of a full optimizer step: the configured batch size (times
    /// [`TrainConfig::accumulate`]), or the number of examples when that is smaller and
    /// `drop_last` is false (then every step is one batch of all of them).
    pub fn batch_rows(&self) -> usize {
        self.batch
    }

    /// Rows of each epoch's last, partial batch: `rows % batch_rows()` with `drop_last` false,
    /// 0 when there is no such step.
    pub fn tail_rows(&self) -> usize {
        self.tail
    }

    /// Examples the 0-based steps `steps` train on, counted with repeats: a full batch each,
    /// but [`Trainer::tail_rows`] for each epoch's last step when there is a partial batch.
    pub fn examples_in_steps(&self, steps: std::ops::Range<u64>) -> u64 {
        let n = steps.end.saturating_sub(steps.start);
        let full = n * self.batch as u64;
        if self.tail == 0 {
            return full;
        }
        // The tail steps are those with s % spe == spe − 1: ⌊to / spe⌋ of them below `to`.
        let spe = self.steps_per_epoch();
        let tails = (steps.end / spe).saturating_sub(steps.start / spe).min(n);
        full - tails * (self.batch - self.tail) as u64
    }

    /// The values of a view of the training graph's buffers as the last step left them
    /// (e.g. [`TrainingGraph::code`]: a PSD model's inferred codes).
    pub fn read(&mut self, t: crate::graph::Tensor) -> Result<Vec<f32>> {
        self.backend.read(t)
    }

    /// The training graph, for tests and tools that inspect buffers.
    pub fn graph(&self) -> &TrainingGraph {
        &self.tg
    }

    /// Starts timing every op of the following steps on the CPU executor (from zero if it
    /// already was); `false`, and nothing done, on a GPU. Read it with [`Trainer::op_times`].
    pub fn profile_ops(&mut self) -> bool {
        self.backend.profile()
    }

    /// Per op, in graph order: how often it ran and how long it took since
    /// [`Trainer::profile_ops`] (CPU only; empty otherwise).
    pub fn op_times(&self) -> Vec<crate::cpu::OpTime> {
        self.backend.op_times()
    }

    /// The values of 0-based `step`, whose batch starts at `batch_start` in the resident order.
    fn step_params(&self, step: u64, batch_start: usize) -> StepParams {
        let t = step + 1;
        let (bc1, bc2) = self.config.optimizer.bias_corrections(t);
        StepParams {
            step: t as u32,
            batch_start: batch_start as u32,
            lr: self.lr_scale
                * self
                    .config
                    .schedule
                    .lr_at(self.config.optimizer.lr, self.config.warmup, t),
            bias_correction1: bc1,
            bias_correction2: bc2,
            seed_lo: self.config.seed as u32,
            seed_hi: (self.config.seed >> 32) as u32,
            row_base: 0,
            rows_global: 0,
            accumulate_weight: 0.0,
            accumulate_flags: 0,
        }
    }

    fn load_order(&mut self, epoch: u64) {
        if self.order_epoch == Some(epoch) {
            return;
        }
        let order = if self.config.shuffle {
            permutation(self.rows, self.config.seed, epoch as u32)
        } else {
            (0..self.rows as u32).collect()
        };
        match &mut self.streaming {
            Some(s) => s.order = order,
            None => self.backend.write_u32(self.tg.order.buf, &order),
        }
        self.order_epoch = Some(epoch);
    }

    /// Streaming only: uploads the batches of steps `from..to` (within one epoch) as the window:
    /// each step's rows of the epoch's order, or this rank's share of them.
    fn load_window(&mut self, from: u64, to: u64) {
        let spe = self.steps_per_epoch();
        let full = (self.rows / self.batch) as u64;
        let Some(s) = &self.streaming else { return };
        let mut window = Vec::new();
        for step in from..to {
            // Where the step's batch starts in the epoch's order; the partial batch ends at `rows`.
            let position = (step % spe) as usize * self.batch;
            let is_tail = self.tail > 0 && step % spe == full;
            let (first, count) = match (&self.parallel, is_tail) {
                (Some(p), false) => p.main,
                (Some(p), true) => p.tail,
                (None, false) => (0, self.batch),
                (None, true) => (0, self.tail),
            };
            let start = position + first;
            for &r in &s.order[start..start + count] {
                window.extend_from_slice(s.data.row(r as usize));
            }
        }
        self.backend.write(self.tg.data.buf, &window);
    }

    /// True when the data set is streamed rather than kept on the device.
    pub fn is_streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// Takes `n` optimizer steps. Steps go to the device in submissions of up to 64 that never
    /// cross an epoch (the row order changes there); nothing is read back until the end, when
    /// the loss of the last step is returned if `report` is set. With `drop_last` false, the
    /// last step of each epoch trains on the partial batch, in a submission of its own, and its
    /// loss is averaged over its own rows.
    pub fn train_steps(&mut self, n: u64, report: bool) -> Result<Option<LossReport>> {
        if self.parallel.is_some() {
            return self.train_steps_parallel(n, report);
        }
        let spe = self.steps_per_epoch();
        let full = (self.rows / self.batch) as u64;
        let end = self.step + n;
        let main_ops = 0..self.tg.update.end;
        let mut loss = None;
        while self.step < end {
            let epoch = self.step / spe;
            let per_submit = self
                .streaming
                .as_ref()
                .map_or(MAX_STEPS_PER_SUBMIT, |s| s.window);
            let chunk_end = end
                .min((epoch + 1) * spe)
                .min(self.step + per_submit as u64);
            self.load_order(epoch);
            let streaming = self.streaming.is_some();
            if streaming {
                self.load_window(self.step, chunk_end);
            }
            // Full batches up to `main_end`; the chunk's last step is the partial batch when it
            // reaches position `full` of the epoch.
            let main_end = if self.tail > 0 {
                chunk_end.min(epoch * spe + full)
            } else {
                chunk_end
            };
            let first = self.step;
            let batch_start = |s: u64| {
                if streaming {
                    (s - first) as usize * self.batch
                } else {
                    (s % spe) as usize * self.batch
                }
            };
            let steps: Vec<StepParams> = (first..main_end)
                .map(|s| self.step_params(s, batch_start(s)))
                .collect();
            let tail_step =
                (main_end < chunk_end).then(|| self.step_params(main_end, batch_start(main_end)));
            let read = report && chunk_end == end;
            let mut first_term = None;
            if !steps.is_empty() {
                if read && tail_step.is_none() {
                    first_term = Some(self.backend.run_and_read(
                        main_ops.clone(),
                        &steps,
                        self.tg.terms[0].values,
                    )?);
                } else {
                    self.backend.run(main_ops.clone(), &steps)?;
                }
            }
            if let Some(sp) = tail_step {
                let tail = self.tg.tail.as_ref().expect("a graph with a tail step");
                let (tail_ops, tail_loss) = (tail.ops.clone(), tail.terms[0].values);
                self.backend.run(tail_ops, &[sp])?;
                if read {
                    first_term = Some(self.backend.run_and_read(
                        self.tg.update.clone(),
                        &[sp],
                        tail_loss,
                    )?);
                } else {
                    self.backend.run(self.tg.update.clone(), &[sp])?;
                }
            }
            self.step = chunk_end;
            if let Some(first) = first_term {
                let skipped = self.check_health()?;
                let step_terms = match (&self.tg.tail, tail_step) {
                    (Some(t), Some(_)) => t.terms.clone(),
                    _ => self.tg.terms.clone(),
                };
                let mut terms = Vec::with_capacity(step_terms.len());
                for (k, term) in step_terms.iter().enumerate() {
                    let values = if k == 0 {
                        first.clone()
                    } else {
                        self.backend.read(term.values)?
                    };
                    let value = term.scale * values.iter().map(|&x| f64::from(x)).sum::<f64>();
                    if !value.is_finite() && self.config.on_nonfinite == NonFinitePolicy::Stop {
                        return Err(Error::NonFinite {
                            what: format!("{} loss", term.name),
                            step: chunk_end,
                        });
                    }
                    terms.push((term.name, value));
                }
                let loss_scale = match self.tg.loss_scale {
                    Some(t) => {
                        let v = self.backend.read(t)?;
                        Some((v[0], v[2] as u64))
                    }
                    None => None,
                };
                let step_measures = match (&self.tg.tail, tail_step) {
                    (Some(t), Some(_)) => t.measures.clone(),
                    _ => self.tg.measures.clone(),
                };
                let mut measures = Vec::with_capacity(step_measures.len());
                for m in &step_measures {
                    let values = self.backend.read(m.values)?;
                    let sum: f64 = values.iter().map(|&x| f64::from(x)).sum();
                    measures.push((m.name, m.scale * sum));
                }
                loss = Some(LossReport {
                    terms,
                    skipped_steps: skipped,
                    loss_scale,
                    measures,
                });
            }
        }
        Ok(loss)
    }

    /// Reads how many steps the device skipped for a non-finite gradient and applies the
    /// policy to new ones; returns the total.
    fn check_health(&mut self) -> Result<u64> {
        let h = self.backend.read_u32(self.tg.health)?;
        let (count, first) = (u64::from(h[0]), u64::from(h[1]));
        if count > self.skipped_seen {
            match self.config.on_nonfinite {
                NonFinitePolicy::Stop => {
                    return Err(Error::NonFinite {
                        what: format!(
                            "gradient ({count} step{} skipped, the parameters are those before \
                             the first)",
                            if count == 1 { "" } else { "s" }
                        ),
                        step: first,
                    });
                }
                NonFinitePolicy::SkipStep => {}
                NonFinitePolicy::ReduceLr => self.lr_scale *= 0.5,
            }
            self.skipped_seen = count;
        }
        Ok(count)
    }

    /// The learning rate the next step will use.
    pub fn current_lr(&self) -> f32 {
        self.lr_scale
            * self.config.schedule.lr_at(
                self.config.optimizer.lr,
                self.config.warmup,
                self.step + 1,
            )
    }

    /// The run's state, for [`Trainer::restore`] (a read-back on the GPU).
    pub fn state(&mut self) -> Result<TrainState> {
        let mut optimizer = Vec::new();
        for t in self.tg.optimizer_state.clone() {
            optimizer.push(self.backend.read(t)?);
        }
        let loss_scale = match self.tg.loss_scale {
            Some(t) => Some(self.backend.read(t)?),
            None => None,
        };
        Ok(TrainState {
            step: self.step,
            params: self.parameters()?,
            optimizer,
            loss_scale,
        })
    }

    /// Continues from `state`: parameters, optimizer state and step. Batches, noise and the
    /// learning rate are functions of the step, so nothing else needs restoring.
    pub fn restore(&mut self, state: &TrainState) -> Result<()> {
        if state.params.layout != self.tg.layout
            || state.optimizer.len() != self.tg.optimizer_state.len()
            || state
                .optimizer
                .iter()
                .any(|o| o.len() != self.tg.layout.len)
        {
            return Err(Error::Config(
                "the saved training state does not fit this model and optimizer".into(),
            ));
        }
        self.backend.write(self.tg.params.buf, &state.params.arena);
        for (t, values) in self.tg.optimizer_state.clone().iter().zip(&state.optimizer) {
            self.backend.write(t.buf, values);
        }
        // A state saved by an f32 run (or a malformed one) restarts the loss scale.
        if let Some(t) = self.tg.loss_scale {
            match &state.loss_scale {
                Some(v) if v.len() == t.len() && v[0].is_finite() && v[0] > 0.0 => {
                    self.backend.write(t.buf, v)
                }
                _ => self
                    .backend
                    .write(t.buf, &TrainingGraph::initial_loss_scale()),
            }
        }
        self.step = state.step;
        self.order_epoch = None;
        Ok(())
    }

    /// The current parameters (a read-back on the GPU).
    pub fn parameters(&mut self) -> Result<Parameters> {
        let arena = self.backend.read(self.tg.params)?;
        Ok(Parameters {
            layout: self.tg.layout.clone(),
            arena,
        })
    }
}
