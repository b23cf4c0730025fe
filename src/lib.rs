//! Hourglass trains autoencoders on any GPU — Vulkan, Metal or DX12 through
//! [wgpu](https://wgpu.rs) compute shaders — and on the CPU, with one training graph and two
//! executors that check each other.
//!
//! It is a library (this crate) and a command line (`hourglass`, feature `cli`). You describe
//! a model with a [`ModelSpec`], train it with a [`Trainer`] on a [`Device`], and use it through
//! an [`Autoencoder`]: encode rows to codes, decode codes, reconstruct, evaluate, and save or
//! load checkpoints that PyTorch reads as they are.
//!
//! # Quick start
//!
//! Build a spec, train, encode, save:
//!
//! ```
//! use hourglass::train::{EarlyStop, FitEvent, FitOptions};
//! use hourglass::{Activation, Autoencoder, Dataset, Device, ModelSpec, TrainConfig, Trainer};
//!
//! # fn main() -> hourglass::Result<()> {
//! // 256 rows of 8 features in [0, 1] (any row-major f32 matrix will do; see `data::load`
//! // for .npy, CSV and IDX files).
//! let values = (0..256 * 8).map(|i| ((i * 37 % 101) as f32 / 101.0)).collect();
//! let data = Dataset::new(256, 8, values)?;
//!
//! // 8 → 6 → 3 → 6 → 8, tanh hidden layers, sigmoid output, cross-entropy loss.
//! let spec = ModelSpec::builder()
//!     .encoder([8, 6, 3])
//!     .activation(Activation::Tanh)
//!     .build()?;
//!
//! // Adam at 1e-2, batches of 32, seed 0. `Device::open(DeviceChoice::Auto)` picks a GPU
//! // when there is one; the examples here run on the CPU.
//! let config = TrainConfig::new(32, 1e-2);
//! let mut trainer = Trainer::new(&spec, &config, &data, &Device::Cpu, None)?;
//!
//! // Five epochs (8 steps each), stopping early after 2 epochs without a new best.
//! let mut stop = EarlyStop::new(2);
//! let summary = trainer.fit(&FitOptions::epochs(5), |event| {
//!     if let FitEvent::Epoch(e) = event {
//!         println!("epoch {}: loss {}", e.epoch, e.train);
//!     }
//!     stop.observe(event)
//! })?;
//! let first = summary.epochs.first().map(|e| e.train.total());
//! let last = summary.epochs.last().map(|e| e.train.total());
//! assert!(last < first); // it learns
//!
//! // Encode (3 numbers per row), then save a checkpoint and load it back.
//! let mut model = trainer.autoencoder()?;
//! let codes = model.encode(&data)?;
//! assert_eq!((codes.rows, codes.cols), (256, 3));
//! let path = std::env::temp_dir().join("hourglass-quick-start.safetensors");
//! model.save(&path)?;
//! let mut loaded = Autoencoder::load(&path, Device::Cpu)?;
//! assert_eq!(loaded.encode(&data)?, codes);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```
//!
//! The `examples/` folder has complete programs: `embed` (your own matrix, then encoding new
//! rows), `denoise` (a denoising model against a plain one on Fashion-MNIST) and `fashion_vae`
//! (a VAE and samples from its prior).
//!
//! # The model family
//!
//! Every model is a deep autoencoder: the encoder maps `encoder[0]` inputs down to
//! `encoder.last()` code units, the decoder (by default the mirror image) maps them back.
//! A convolutional model ([`SpecBuilder::encoder_str`]`("1x28x28,conv32k3s2,conv64k3s2,32")`)
//! runs `Conv2d` layers (padding K/2) on `C×H×W` inputs before its dense layers, and its
//! decoder mirrors them with `ConvTranspose2d` layers whose `output_padding` gives every
//! stage's shape back exactly; its checkpoints load into PyTorch's `nn.Sequential`
//! (`docs/pytorch-conv.md`).
//! Hidden layers share one [`Activation`]; the code and the output have their own (the output
//! is a sigmoid, for data in [0, 1], or the identity). The [`model::Variant`] picks the member
//! of the family:
//!
//! | variant | objective |
//! | --- | --- |
//! | `Plain` | reconstruction loss |
//! | `Sparse { lambda, target }` | + λ Σ\|h\| on the code, or λ Σ KL(ρ ‖ ρ̂ⱼ) with a target ρ |
//! | `Denoising { noise }` | reconstruct the clean input from a corrupted one (masking, Gaussian or salt-and-pepper noise) |
//! | `Contractive { lambda, projections }` | + λ ‖∂h/∂x‖²_F, exact or estimated with random projections |
//! | `Vae { beta, samples }` | variational: μ and log σ² heads, reparameterized samples, + β KL(q(z\|x) ‖ N(0, I)) |
//! | `Psd { lambda, gamma, inference_steps }` | predictive sparse decomposition: the code h* = argmin ‖x − Dh‖² + λ‖h‖₁ + γ‖h − f(x)‖² is inferred by FISTA inside the step; a unit-column dictionary D and a fast encoder f(x) = g ⊙ tanh(Wx + b) ([`model::psd`], [`Autoencoder::infer`]) |
//!
//! Decoder weights can be tied to the transposed encoder weights (`tied`). The [`Loss`] is the
//! squared error or the Bernoulli cross-entropy (computed from logits, `softplus(z) − x·z`),
//! summed over features and averaged over the batch. Dense-only models' weights start
//! Glorot-uniform (He-uniform for ReLU layers), biases at zero; a model with conv layers starts
//! every layer from PyTorch's default, U(±1/√fan_in) for weights and biases.
//!
//! # Training
//!
//! A [`Trainer`] holds a model's training graph on a device, with the data uploaded once (or
//! streamed a window at a time when it is larger than the device's buffers).
//! [`TrainConfig`] sets the batch size, the optimizer ([`OptimizerConfig`]: Adam, AdamW or
//! SGD with momentum, PyTorch's definitions), the learning-rate schedule and warm-up, gradient
//! clipping, and what to do about a non-finite gradient. Then either:
//!
//! - [`Trainer::fit`] runs epochs with a callback that sees every loss read
//!   ([`train::FitEvent::Report`]) and every epoch's summary ([`train::FitEvent::Epoch`],
//!   with validation when [`train::FitOptions::validation`] is given) and returns
//!   [`ControlFlow::Break`](std::ops::ControlFlow::Break) to stop; [`train::EarlyStop`] is the
//!   usual stopping rule, and the summary keeps the best epoch's parameters; or
//! - [`Trainer::train_steps`] takes `n` steps and optionally returns the last one's loss, for
//!   loops of your own.
//!
//! [`Trainer::state`] and [`Trainer::restore`] (with [`io::checkpoint::save_state`]) resume a
//! run exactly where it stopped.
//!
//! # Devices
//!
//! A [`Device`] is where graphs run:
//!
//! - [`Device::Gpu`] holds an `Arc<`[`gpu::GpuContext`]`>`: one wgpu device and queue, with
//!   its compiled pipelines, shared by every trainer and model on it.
//!   [`gpu::GpuContext::new`] opens an adapter (the preferred one, or an index into
//!   [`gpu::list_adapters`]) and creates a device with the adapter's full limits.
//! - [`Device::Cpu`] runs the same graph with the reference executor (ndarray loops,
//!   multithreaded products).
//! - [`Device::open`] resolves a [`train::DeviceChoice`]: `Gpu` insists on an adapter
//!   (software ones such as Mesa's lavapipe included), `Cpu` skips the search, and `Auto`
//!   takes a hardware GPU if there is one and otherwise the CPU, which is faster than a
//!   software GPU. It returns a note saying so when it falls back.
//!
//! **Options, not environment variables.** The library reads no environment variable and
//! writes no file it was not asked to. [`gpu::GpuOptions`] (for
//! [`gpu::GpuContext::with_options`] and [`Device::open_with`]) chooses the wgpu backends
//! (`Vulkan`, `Metal`, `Dx12`, or `Gl` for OpenGL/GLES compute), the adapter, whether mixed
//! precision may use cooperative matrices, the matmul tile or its autotuning, and the folder
//! (if any) where compiled pipelines and measured tiles are kept between runs; the default
//! keeps nothing. [`cpu::set_openblas_serial`] allows the CPU executor to make the system's
//! OpenBLAS single-threaded (a process-wide setting), which its fastest products need.
//!
//! **Bring your own wgpu device.** An application that already has a `wgpu::Device` and
//! `wgpu::Queue` (a renderer, another compute library) hands them over with
//! [`gpu::GpuContext::from_wgpu`]: Hourglass then trains and encodes on that device without
//! touching its error handlers, and [`Autoencoder::encode_to_device`] /
//! [`Autoencoder::encode_on_device`] leave the codes in a wgpu buffer
//! ([`gpu::DeviceMatrix`], row-major f32) for the application's next pass, with no trip through
//! host memory. The device needs no optional feature and limits of at least
//! [`gpu::GpuContext::minimum_limits`].
//!
//! # Reproducibility
//!
//! Every random number — initialisation, the shuffled order of each epoch, denoising noise,
//! VAE samples, contractive projections — comes from Philox 4×32-10 ([`rng`]), a counter-based
//! generator keyed by the seed and counted by (stream, step, element), with a WGSL twin that
//! gives the same numbers on the GPU. Batches and learning rates are functions of the step
//! number too. So a run is a pure function of its seed and data: the same on every repeat,
//! the same whether it was run in one go, in pieces, or stopped and resumed from a saved state
//! (bit for bit on the CPU), and how often the loss is read never changes it. The GPU and the
//! CPU agree to float rounding; the tests compare them op by op and over whole runs.
//!
//! # Architecture: one graph, two executors
//!
//! A [`ModelSpec`] compiles ([`graph::build_training_graph`]) into a
//! [`graph::TrainingGraph`]: a flat list of ops (gather the batch, corrupt, forward, loss,
//! penalties, backward, optimizer update) over numbered buffers, with the parameters,
//! gradients and optimizer state each in one arena ([`model::ParamLayout`]) so the update is
//! one op for the whole model. Two executors run that same list:
//!
//! - [`cpu::CpuExecutor`] with obviously correct loops: the reference;
//! - [`gpu::GpuExecutor`] as WGSL dispatches whose pipelines and bind groups are built once;
//!   per-step values (step number, batch offset, learning rate) sit in a ring of uniform slots,
//!   so up to 64 steps are recorded into one submission with no host round trip.
//!
//! [`train::Backend`] hides which one runs, so the [`Trainer`] and the [`infer`] functions are
//! written once. The modules:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the spec, its builder, the parameter arena and initialisation |
//! | [`graph`] | ops over buffers, and the builders of training, inference and Jacobian graphs |
//! | [`cpu`], [`gpu`] | the two executors (and, in `gpu`, the wgpu context and kernel cache) |
//! | [`train`] | [`Trainer`], [`Device`], schedules, `fit` and early stopping |
//! | [`infer`] | [`Autoencoder`]: encode, decode, reconstruct, evaluate, Jacobians |
//! | [`distributed`] | data-parallel training: the [`distributed::Communicator`] of the ranks (MPI with the feature `mpi`, threads, one process) |
//! | [`data`] | [`Dataset`], loaders (.npy, CSV, IDX), normalization, the bundled Fashion-MNIST test set |
//! | [`io`] | safetensors checkpoints and training states, atomic writes |
//! | [`optim`], [`rng`] | optimizer settings; Philox |
//! | [`bench`](mod@bench) | the benchmark workloads behind `hourglass bench` |
//! | `viz` | PNG tile grids and the loss plot (feature `cli`) |
//!
//! # Errors
//!
//! Every fallible call returns [`Result`] with the one [`Error`] type: a bad configuration, a
//! malformed file, a missing adapter, a device error or a non-finite loss, each with a message
//! that says what to change. Library code does not panic on bad input or device failures.
//!
//! # Feature flags
//!
//! - `mpi`: `distributed::MpiCommunicator`, the ranks of an `mpirun` / `srun` job through
//!   rsmpi, and `hourglass train` as one of them (needs an MPI library and libclang to build).
//! - `cli` (default): the `hourglass` binary and what only it needs — clap, indicatif, toml,
//!   ctrlc, and the `viz` module with png, plotters and a compiled-in font. Libraries that
//!   embed Hourglass turn it off: `hourglass = { version = "0.1", default-features = false }`
//!   builds the whole training and inference API without them.
#![deny(missing_docs)]

pub mod analysis;
pub mod bench;
pub mod cpu;
pub mod data;
pub mod distributed;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod io;
pub mod limits;
pub mod model;
pub mod optim;
pub mod rng;
pub mod train;
#[cfg(feature = "cli")]
pub mod viz;

pub use data::Dataset;
pub use error::{Error, Result};
pub use infer::Autoencoder;
pub use model::{Activation, Loss, ModelSpec, Parameters, SpecBuilder, Variant};
pub use optim::{OptimizerConfig, OptimizerKind};
pub use train::{Device, DeviceChoice, TrainConfig, Trainer};
