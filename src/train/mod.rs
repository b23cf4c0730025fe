//! Training: a [`Trainer`] owns a model's training graph on a device and advances it step by
//! step; batches, learning rate and random streams are pure functions of the step number, so a
//! run can be split, resumed or repeated and gives the same result. [`Trainer::fit`] runs whole
//! epochs with a callback (metrics, validation, [`EarlyStop`]); [`Device`] says where it runs.

mod backend;
mod device;
mod fit;
mod schedule;

pub use backend::Backend;
pub use device::{Device, DeviceChoice};
pub use fit::{BestEpoch, EarlyStop, EpochReport, FitEvent, FitOptions, FitSummary, Length};
pub use schedule::Schedule;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::executor::MAX_STEPS_PER_SUBMIT;
use crate::graph::{StepParams, TrainingGraph, build_training_graph_clipped};
use crate::infer::Autoencoder;
use crate::model::{ModelSpec, Parameters};
use crate::optim::OptimizerConfig;
use crate::rng::permutation;

/// How to train, beyond the model itself.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Examples per step. The last partial batch of an epoch is dropped.
    pub batch_size: usize,
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
                "unknown --on-nonfinite '{other}' (expected stop, skip-step or reduce-lr)"
            ))),
        }
    }
}

impl TrainConfig {
    /// Adam at `lr`, batch `batch_size`, seed 0, shuffled.
    pub fn new(batch_size: usize, lr: f32) -> Self {
        TrainConfig {
            batch_size,
            optimizer: OptimizerConfig::adam(lr),
            seed: 0,
            shuffle: true,
            schedule: Schedule::Constant,
            warmup: 0,
            clip_grad_norm: None,
            on_nonfinite: NonFinitePolicy::Stop,
            max_resident_bytes: None,
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
}

impl LossReport {
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
    step: u64,
    order_epoch: Option<u64>,
    /// Factor on the scheduled rate, halved by [`NonFinitePolicy::ReduceLr`].
    lr_scale: f32,
    /// Skipped steps already acted on.
    skipped_seen: u64,
    /// Set when the data set does not stay on the device.
    streaming: Option<Streaming>,
}

/// A data set too large to keep on the device: the host gathers each submission's batches
/// into a window buffer of `window` batches, in the epoch's order.
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
        spec.validate()?;
        config.optimizer.validate()?;
        if data.cols != spec.input_dim() {
            return Err(Error::Config(format!(
                "the data has {} features per example but the model's input size is {}",
                data.cols,
                spec.input_dim()
            )));
        }
        if let Some(c) = config.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "--clip-grad-norm must be positive, got {c}"
            )));
        }
        if config.batch_size == 0 {
            return Err(Error::Config("the batch size must be at least 1".into()));
        }
        if data.rows < config.batch_size {
            return Err(Error::Config(format!(
                "the batch size {} is larger than the data set ({} examples)",
                config.batch_size, data.rows
            )));
        }
        let batch_bytes = (config.batch_size * data.cols * 4) as u64;
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
            .map_or(data.rows, |s| s.window * config.batch_size);
        let tg = build_training_graph_clipped(
            spec,
            config.batch_size,
            resident_rows,
            &config.optimizer,
            config.clip_grad_norm,
        );
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
        let mut backend = Backend::new(device, tg.graph.clone())?;
        if streaming.is_some() {
            // The window is gathered in order on the host: the device reads it as it is.
            backend.write_u32(tg.order.buf, &(0..resident_rows as u32).collect::<Vec<_>>());
        } else {
            backend.write(tg.data.buf, &data.values);
        }
        backend.write(tg.params.buf, &params.arena);
        Ok(Trainer {
            spec: spec.clone(),
            config: config.clone(),
            device: device.clone(),
            tg,
            backend,
            rows: data.rows,
            step: 0,
            order_epoch: None,
            lr_scale: 1.0,
            skipped_seen: 0,
            streaming,
        })
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

    /// Steps in one pass over the data (the last partial batch is dropped).
    pub fn steps_per_epoch(&self) -> u64 {
        (self.rows / self.config.batch_size) as u64
    }

    /// The training graph, for tests and tools that inspect buffers.
    pub fn graph(&self) -> &TrainingGraph {
        &self.tg
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
            _pad: 0,
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

    /// Streaming only: uploads the batches of steps `from..to` (within one epoch) as the window.
    fn load_window(&mut self, from: u64, to: u64) {
        let spe = self.steps_per_epoch();
        let batch = self.config.batch_size;
        let Some(s) = &self.streaming else { return };
        let cols = s.data.cols;
        let first = (from % spe) as usize * batch;
        let rows = (to - from) as usize * batch;
        let mut window = Vec::with_capacity(rows * cols);
        for &r in &s.order[first..first + rows] {
            window.extend_from_slice(s.data.row(r as usize));
        }
        self.backend.write(self.tg.data.buf, &window);
    }

    /// True when the data set is streamed rather than kept on the device.
    pub fn is_streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// Takes `n` optimizer steps. Steps go to the device in submissions of up to 64 that never
    /// cross an epoch (the row order changes there); nothing is read back until the end, when
    /// the loss of the last step is returned if `report` is set.
    pub fn train_steps(&mut self, n: u64, report: bool) -> Result<Option<LossReport>> {
        let spe = self.steps_per_epoch();
        let end = self.step + n;
        let ops = 0..self.tg.graph.ops.len();
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
            let batch = self.config.batch_size;
            let steps: Vec<StepParams> = if self.streaming.is_some() {
                self.load_window(self.step, chunk_end);
                (self.step..chunk_end)
                    .map(|s| self.step_params(s, (s - self.step) as usize * batch))
                    .collect()
            } else {
                (self.step..chunk_end)
                    .map(|s| self.step_params(s, (s % spe) as usize * batch))
                    .collect()
            };
            if report && chunk_end == end {
                let first =
                    self.backend
                        .run_and_read(ops.clone(), &steps, self.tg.terms[0].values)?;
                self.step = chunk_end;
                let skipped = self.check_health()?;
                let mut terms = Vec::with_capacity(self.tg.terms.len());
                for (k, term) in self.tg.terms.clone().iter().enumerate() {
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
                loss = Some(LossReport {
                    terms,
                    skipped_steps: skipped,
                });
            } else {
                self.backend.run(ops.clone(), &steps)?;
            }
            self.step = chunk_end;
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
        Ok(TrainState {
            step: self.step,
            params: self.parameters()?,
            optimizer,
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
