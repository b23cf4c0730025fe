//! What a model is: its specification and the layout of its parameters.

pub mod builder;
pub mod params;
pub mod psd;
pub mod spec;
pub mod targets;

pub use builder::SpecBuilder;
pub use params::{LayerParams, ParamLayout, ParamTensor, Parameters};
pub use spec::{Activation, LayerSpec, Loss, ModelSpec, Noise, Role, Variant};
pub use targets::{BCE_RANGE_HINT, check_targets};
