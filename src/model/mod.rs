//! What a model is: its specification and the layout of its parameters.

pub mod builder;
pub mod conv;
pub mod params;
pub mod psd;
pub mod spec;
pub mod targets;

pub use builder::SpecBuilder;
pub use conv::{ConvSpec, ConvStage, EncoderToken, ImageShape};
pub use params::{LayerParams, ParamLayout, ParamTensor, Parameters};
pub use spec::{Activation, LayerKind, LayerSpec, Loss, ModelSpec, Noise, Role, Variant};
pub use targets::{BCE_RANGE_HINT, check_targets};
