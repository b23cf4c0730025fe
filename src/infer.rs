//! Using a trained model: encode, decode, reconstruct and evaluate data sets, in fixed-size
//! chunks through forward-only graphs built once per model. On a GPU, codes can also stay on
//! the device ([`Autoencoder::encode_to_device`]) for an application that owns it.

use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{BufferCopy, DeviceMatrix};
use crate::graph::{
    InferenceGraph, StepParams, Tensor, build_inference_graph, build_training_graph,
};
use crate::io::checkpoint;
use crate::model::{ModelSpec, Parameters, Variant};
use crate::optim::OptimizerConfig;
use crate::train::{Backend, Device, LossReport};

mod psd;

pub use psd::{CHECK_EVERY, Inferred};

/// Rows per forward pass.
const CHUNK: usize = 256;

/// How `rows` rows split into graphs of a fixed batch: `(batch, chunks, first row)` for the
/// full chunks of `CHUNK` rows (one graph) and for the remainder (a second graph of its own
/// batch size); groups with no chunk are left out.
fn chunk_groups(rows: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (full, rest) = (rows / CHUNK, rows % CHUNK);
    [
        (CHUNK, full, 0),
        (rest, usize::from(rest > 0), full * CHUNK),
    ]
    .into_iter()
    .filter(|&(_, chunks, _)| chunks > 0)
}

/// Where the rows of an on-device encode come from.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Host(&'a Dataset),
    Device(&'a DeviceMatrix),
}

struct Loaded {
    graph: InferenceGraph,
    backend: Backend,
}

/// A model on a device, ready to encode, decode and reconstruct.
///
/// Get one from a [`Trainer`](crate::train::Trainer) with
/// [`Trainer::autoencoder`](crate::train::Trainer::autoencoder), from a checkpoint with
/// [`Autoencoder::load`], or from a spec and parameters with [`Autoencoder::new`]. Rows go
/// through the model 256 at a time on the device it was given; the forward graphs are built on
/// first use and kept.
///
/// # Example
///
/// ```
/// use hourglass::{Autoencoder, Dataset, Device, ModelSpec, Parameters};
///
/// let spec = ModelSpec::builder().encoder([6, 3, 2]).build()?;
/// let params = Parameters::init(&spec, 7); // untrained, for the sake of the example
/// let mut model = Autoencoder::new(spec, params, Device::Cpu)?;
///
/// let data = Dataset::new(4, 6, vec![0.5; 24])?;
/// let codes = model.encode(&data)?; // 4 × 2
/// let again = model.decode(&codes)?; // 4 × 6, the same as model.reconstruct(&data)
/// assert_eq!((codes.rows, codes.cols), (4, 2));
/// assert_eq!(again, model.reconstruct(&data)?);
///
/// let path = std::env::temp_dir().join("hourglass-doc-autoencoder.safetensors");
/// model.save(&path)?;
/// let loaded = Autoencoder::load(&path, Device::Cpu)?;
/// assert_eq!(loaded.parameters(), model.parameters());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), hourglass::Error>(())
/// ```
pub struct Autoencoder {
    spec: ModelSpec,
    params: Parameters,
    device: Device,
    forward: Option<Loaded>,
    decoder: Option<Loaded>,
}

impl Autoencoder {
    /// Wraps `params` of `spec` for inference on `device`.
    pub fn new(spec: ModelSpec, params: Parameters, device: Device) -> Result<Self> {
        spec.validate()?;
        if params.layout != crate::model::ParamLayout::new(&spec) {
            return Err(Error::Config(
                "the parameters do not fit the model's layer sizes".into(),
            ));
        }
        Ok(Autoencoder {
            spec,
            params,
            device,
            forward: None,
            decoder: None,
        })
    }

    /// Loads a checkpoint written by [`Autoencoder::save`], `hourglass train` or
    /// [`checkpoint::save`], for use on `device`.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let (spec, params) = checkpoint::load(path.as_ref())?;
        Self::new(spec, params, device)
    }

    /// Writes the model as a checkpoint (safetensors with PyTorch names and the spec as JSON
    /// metadata; see [`checkpoint`]), atomically: a crash leaves the old file or the new one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::save(path.as_ref(), &self.spec, &self.params)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model's spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The model's parameters.
    pub fn parameters(&self) -> &Parameters {
        &self.params
    }

    fn loaded(&mut self, decode_only: bool) -> Result<&mut Loaded> {
        let slot = if decode_only {
            &mut self.decoder
        } else {
            &mut self.forward
        };
        if slot.is_none() {
            let graph = build_inference_graph(&self.spec, CHUNK, decode_only);
            let mut backend = Backend::new(&self.device, graph.graph.clone())?;
            backend.write(graph.params.buf, &self.params.arena);
            *slot = Some(Loaded { graph, backend });
        }
        Ok(slot.as_mut().expect("just loaded"))
    }

    /// Runs `data` through a forward graph chunk by chunk and collects `pick`'s rows.
    fn run(
        &mut self,
        data: &Dataset,
        decode_only: bool,
        expect_cols: usize,
        pick: fn(&InferenceGraph) -> crate::graph::Tensor,
    ) -> Result<Dataset> {
        if data.cols != expect_cols {
            return Err(Error::Config(format!(
                "the data has {} columns but the model expects {expect_cols}",
                data.cols
            )));
        }
        let loaded = self.loaded(decode_only)?;
        let out_t = pick(&loaded.graph);
        let mut out = Vec::with_capacity(data.rows * out_t.cols);
        let ops = 0..loaded.graph.graph.ops.len();
        for start in (0..data.rows).step_by(CHUNK) {
            let rows = CHUNK.min(data.rows - start);
            let mut chunk = data.values[start * data.cols..(start + rows) * data.cols].to_vec();
            // The graph has a fixed batch: pad the last chunk with zeros and drop their rows.
            chunk.resize(CHUNK * data.cols, 0.0);
            loaded.backend.write(loaded.graph.input.buf, &chunk);
            let values =
                loaded
                    .backend
                    .run_and_read(ops.clone(), &[StepParams::default()], out_t)?;
            out.extend_from_slice(&values[..rows * out_t.cols]);
        }
        Dataset::new(data.rows, out_t.cols, out)
    }

    /// The code of each row (μ for a VAE).
    pub fn encode(&mut self, data: &Dataset) -> Result<Dataset> {
        let d = self.spec.input_dim();
        self.run(data, false, d, |g| g.code)
    }

    /// The reconstruction of each row (no input corruption; a VAE decodes μ).
    pub fn reconstruct(&mut self, data: &Dataset) -> Result<Dataset> {
        let d = self.spec.input_dim();
        self.run(data, false, d, |g| g.output)
    }

    /// The decoder's output for each code row.
    pub fn decode(&mut self, codes: &Dataset) -> Result<Dataset> {
        let c = self.spec.code_dim();
        self.run(codes, true, c, |g| g.output)
    }

    /// The codes of `data`'s rows (μ for a VAE), left on the GPU in a new buffer instead of read
    /// back: what an application that owns the device (see
    /// [`GpuContext::from_wgpu`](crate::gpu::GpuContext::from_wgpu)) draws or computes with
    /// next. The result is `data.rows × code_dim` f32, row-major, at byte offset 0 (see
    /// [`DeviceMatrix`]), equal bit for bit to what [`Autoencoder::encode`] returns.
    ///
    /// The work is submitted on the context's queue and not waited for: the application's
    /// later submissions on that queue see the codes. Needs a [`Device::Gpu`].
    pub fn encode_to_device(&mut self, data: &Dataset) -> Result<DeviceMatrix> {
        self.encode_rows_on_device(Rows::Host(data))
    }

    /// As [`Autoencoder::encode_to_device`], with the rows already on the GPU: `input` is
    /// `rows × input_dim` f32 in a buffer of the same device with `COPY_SRC` usage. Its rows
    /// are copied into the model's input on the device, 256 at a time; nothing passes through
    /// host memory.
    pub fn encode_on_device(&mut self, input: &DeviceMatrix) -> Result<DeviceMatrix> {
        self.encode_rows_on_device(Rows::Device(input))
    }

    fn encode_rows_on_device(&mut self, rows: Rows<'_>) -> Result<DeviceMatrix> {
        let Device::Gpu(ctx) = &self.device else {
            return Err(Error::Config(
                "encoding into a GPU buffer needs a GPU device, not Device::Cpu".into(),
            ));
        };
        let ctx = ctx.clone();
        let (d, c) = (self.spec.input_dim(), self.spec.code_dim());
        let (n, cols) = match rows {
            Rows::Host(data) => (data.rows, data.cols),
            Rows::Device(m) => (m.rows, m.cols),
        };
        if cols != d {
            return Err(Error::Config(format!(
                "the data has {cols} columns but the model expects {d}"
            )));
        }
        if let Rows::Device(m) = rows {
            if !m.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                return Err(Error::Config(
                    "the input buffer needs COPY_SRC usage for Hourglass to copy its rows".into(),
                ));
            }
            if m.offset % 4 != 0 || m.offset + m.byte_len() > m.buffer.size() {
                return Err(Error::Config(format!(
                    "a {}×{} matrix at byte offset {} does not fit the input buffer of {} bytes \
                     (the offset must be a multiple of 4)",
                    m.rows,
                    m.cols,
                    m.offset,
                    m.buffer.size()
                )));
            }
        }
        let bytes = (n * c * 4) as u64;
        if bytes > ctx.limits.max_buffer_size {
            return Err(Error::Gpu(format!(
                "the codes of {n} rows need {bytes} bytes but the device allows buffers of at \
                 most {} bytes; encode fewer rows at a time",
                ctx.limits.max_buffer_size
            )));
        }
        let capture = ctx.capture();
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hourglass codes"),
            size: bytes.max(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::VERTEX,
            mapped_at_creation: false,
        });
        capture.finish()?;
        let loaded = self.loaded(false)?;
        let (input, code) = (loaded.graph.input, loaded.graph.code);
        let ops = 0..loaded.graph.graph.ops.len();
        let Backend::Gpu(exec) = &mut loaded.backend else {
            unreachable!("a GPU device loads GPU executors");
        };
        for start in (0..n).step_by(CHUNK) {
            let rows_now = CHUNK.min(n - start);
            let copy_in = match rows {
                Rows::Host(data) => {
                    // The graph has a fixed batch: pad the last chunk with zeros.
                    let mut chunk = data.values[start * d..(start + rows_now) * d].to_vec();
                    chunk.resize(CHUNK * d, 0.0);
                    exec.write(input.buf, &chunk)?;
                    None
                }
                // Rows past the last of a short chunk keep the previous chunk's values: rows
                // do not mix in a forward pass, and their codes are not copied out.
                Rows::Device(m) => Some(BufferCopy {
                    buffer: &m.buffer,
                    offset: m.offset + (start * d * 4) as u64,
                    tensor: Tensor {
                        rows: rows_now,
                        ..input
                    },
                }),
            };
            let copy_out = BufferCopy {
                buffer: &buffer,
                offset: (start * c * 4) as u64,
                tensor: Tensor {
                    rows: rows_now,
                    ..code
                },
            };
            exec.run_with_copies(
                copy_in,
                ops.clone(),
                &[StepParams::default()],
                Some(copy_out),
            )?;
        }
        Ok(DeviceMatrix {
            buffer,
            offset: 0,
            rows: n,
            cols: c,
        })
    }

    /// Every loss term of the model's own training objective on `data`, averaged over its rows
    /// (see [`evaluate`]).
    pub fn evaluate(&self, data: &Dataset, seed: u64) -> Result<LossReport> {
        evaluate(&self.spec, &self.params, data, &self.device, seed)
    }
}

/// The loss terms of `spec`'s training objective for `params` on all of `data`: row-weighted
/// means over chunks of up to 256 rows, in file order. Stochastic terms (denoising noise, VAE
/// samples, random projections) draw from `seed`. A denoising model is scored on corrupted
/// inputs; score it on clean ones by evaluating with `Variant::Plain`. To score many parameter
/// sets on the same data (validation every epoch), build an [`Evaluator`] once.
pub fn evaluate(
    spec: &ModelSpec,
    params: &Parameters,
    data: &Dataset,
    device: &Device,
    seed: u64,
) -> Result<LossReport> {
    Evaluator::new(spec, data, device, seed)?.evaluate(params)
}

/// [`evaluate`] on one data set, built once: the graphs, device buffers and the uploaded data
/// are kept, so each [`Evaluator::evaluate`] only writes the parameters and runs (what
/// [`Trainer::fit`](crate::train::Trainer::fit) validates with every epoch).
pub struct Evaluator {
    /// One graph per chunk size (full 256-row chunks, then the remainder), with its data.
    parts: Vec<EvalPart>,
    rows: usize,
    seed: u64,
}

struct EvalPart {
    tg: crate::graph::TrainingGraph,
    backend: Backend,
    batch: usize,
    chunks: usize,
}

impl Evaluator {
    /// Uploads `data` for scoring models of `spec` on `device`, with stochastic terms drawn
    /// from `seed`.
    pub fn new(spec: &ModelSpec, data: &Dataset, device: &Device, seed: u64) -> Result<Self> {
        spec.validate()?;
        if data.rows == 0 {
            return Err(Error::Config("cannot evaluate on an empty data set".into()));
        }
        if data.cols != spec.input_dim() {
            return Err(Error::Config(format!(
                "the data has {} columns but the model's {}",
                data.cols,
                spec.input_size_text()
            )));
        }
        crate::model::check_targets(spec, data, "the data")?;
        let mut parts = Vec::new();
        for (batch, chunks, first_row) in chunk_groups(data.rows) {
            let rows = chunks * batch;
            let tg = build_training_graph(spec, batch, rows, &OptimizerConfig::adam(1e-3));
            let mut backend = Backend::new(device, tg.graph.clone())?;
            backend.write(
                tg.data.buf,
                &data.values[first_row * data.cols..(first_row + rows) * data.cols],
            );
            backend.write_u32(tg.order.buf, &(0..rows as u32).collect::<Vec<_>>());
            parts.push(EvalPart {
                tg,
                backend,
                batch,
                chunks,
            });
        }
        Ok(Evaluator {
            parts,
            rows: data.rows,
            seed,
        })
    }

    /// The loss terms for `params` (see [`evaluate`]).
    pub fn evaluate(&mut self, params: &Parameters) -> Result<LossReport> {
        let mut sums: Vec<(&'static str, f64)> = Vec::new();
        let mut measures: Vec<(&'static str, f64)> = Vec::new();
        for part in &mut self.parts {
            if params.layout != part.tg.layout {
                return Err(Error::Config(
                    "the parameters do not fit the model this evaluator was built for".into(),
                ));
            }
            part.backend.write(part.tg.params.buf, &params.arena);
            for c in 0..part.chunks {
                let step = StepParams {
                    step: c as u32 + 1,
                    batch_start: (c * part.batch) as u32,
                    seed_lo: self.seed as u32,
                    seed_hi: (self.seed >> 32) as u32,
                    ..StepParams::default()
                };
                part.backend.run(0..part.tg.graph.update_start, &[step])?;
                for (k, term) in part.tg.terms.iter().enumerate() {
                    let v = part.backend.read(term.values)?;
                    let value = term.scale * v.iter().map(|&x| f64::from(x)).sum::<f64>();
                    if sums.len() <= k {
                        sums.push((term.name, 0.0));
                    }
                    sums[k].1 += value * part.batch as f64;
                }
                for (k, m) in part.tg.measures.iter().enumerate() {
                    let v = part.backend.read(m.values)?;
                    let value = m.scale * v.iter().map(|&x| f64::from(x)).sum::<f64>();
                    if measures.len() <= k {
                        measures.push((m.name, 0.0));
                    }
                    measures[k].1 += value * part.batch as f64;
                }
            }
        }
        Ok(LossReport {
            terms: sums
                .into_iter()
                .map(|(n, s)| (n, s / self.rows as f64))
                .collect(),
            skipped_steps: 0,
            loss_scale: None,
            measures: measures
                .into_iter()
                .map(|(n, s)| (n, s / self.rows as f64))
                .collect(),
        })
    }
}

/// The Frobenius norm ‖∂h/∂x‖_F of the encoder's Jacobian at every row of `data`, computed
/// exactly (through the contractive penalty's graph with λ = 1). Not defined for a VAE here.
pub fn jacobian_norms(
    spec: &ModelSpec,
    params: &Parameters,
    data: &Dataset,
    device: &Device,
) -> Result<Vec<f64>> {
    let mut probe = spec.clone();
    if matches!(probe.variant, Variant::Psd { .. }) {
        return Err(Error::Config(
            "Jacobian norms of a PSD model's encoder (g ⊙ tanh) are not supported".into(),
        ));
    }
    if matches!(probe.variant, Variant::Vae { .. }) {
        return Err(Error::Config(
            "Jacobian norms of a VAE's encoder heads are not supported".into(),
        ));
    }
    probe.variant = Variant::Contractive {
        lambda: 1.0,
        projections: None,
    };
    probe.validate()?;
    let mut norms = Vec::with_capacity(data.rows);
    for (batch, chunks, first_row) in chunk_groups(data.rows) {
        let tg = build_training_graph(&probe, batch, batch, &OptimizerConfig::adam(1e-3));
        let mut backend = Backend::new(device, tg.graph.clone())?;
        backend.write(tg.params.buf, &params.arena);
        backend.write_u32(tg.order.buf, &(0..batch as u32).collect::<Vec<_>>());
        let term = *tg
            .terms
            .iter()
            .find(|t| t.name == "contractive")
            .expect("a contractive graph has the term");
        for c in 0..chunks {
            let start = first_row + c * batch;
            backend.write(
                tg.data.buf,
                &data.values[start * data.cols..(start + batch) * data.cols],
            );
            let rows = backend.run_and_read(
                0..tg.graph.update_start,
                &[StepParams::default()],
                term.values,
            )?;
            norms.extend(rows.iter().map(|&x| f64::from(x).sqrt()));
        }
    }
    Ok(norms)
}

/// The exact encoder Jacobian ∂h/∂x (`c × D`, row-major) at every row of `data`. Not for VAEs.
pub fn jacobians(
    spec: &ModelSpec,
    params: &Parameters,
    data: &Dataset,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    spec.validate()?;
    if matches!(spec.variant, Variant::Vae { .. } | Variant::Psd { .. })
        || spec.encoder_layers() == 0
    {
        return Err(Error::Config(
            "Jacobians are defined here for autoencoders with an encoder, not VAEs".into(),
        ));
    }
    if data.cols != spec.input_dim() {
        return Err(Error::Config(format!(
            "the data has {} columns but the model's {}",
            data.cols,
            spec.input_size_text()
        )));
    }
    let (c, d) = (spec.code_dim(), spec.input_dim());
    // c·B rows of D: keep a batch's Jacobians within ~64 MiB.
    let batch = (16 << 20) / (c * d).max(1);
    let batch = batch.clamp(1, CHUNK).min(data.rows.max(1));
    let jg = crate::graph::build_jacobian_graph(spec, batch);
    let mut backend = Backend::new(device, jg.graph.clone())?;
    backend.write(jg.params.buf, &params.arena);
    let mut out = Vec::with_capacity(data.rows);
    for start in (0..data.rows).step_by(batch) {
        let rows = batch.min(data.rows - start);
        let mut chunk = data.values[start * d..(start + rows) * d].to_vec();
        chunk.resize(batch * d, 0.0);
        backend.write(jg.input.buf, &chunk);
        let j =
            backend.run_and_read(0..jg.graph.ops.len(), &[StepParams::default()], jg.jacobian)?;
        for b in 0..rows {
            let mut m = Vec::with_capacity(c * d);
            for k in 0..c {
                let row = k * batch + b;
                m.extend_from_slice(&j[row * d..(row + 1) * d]);
            }
            out.push(m);
        }
    }
    Ok(out)
}
