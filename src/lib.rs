//! Hourglass trains autoencoders on any GPU through wgpu compute shaders, with a CPU reference
//! executor that checks every GPU result.
//!
//! A [`model::ModelSpec`] compiles into one training [`graph::Graph`]: a flat list of ops over
//! numbered buffers. The [`cpu`] executor runs it with plain ndarray loops; the [`gpu`] executor
//! runs the same list as WGSL dispatches, recorded once and replayed every step.

pub mod bench;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod io;
pub mod model;
pub mod optim;
pub mod rng;
pub mod train;
#[cfg(feature = "cli")]
pub mod viz;

pub use error::{Error, Result};
pub use model::{Activation, Loss, ModelSpec};
pub use optim::{OptimizerConfig, OptimizerKind};
