//! What a model is: its specification and the layout of its parameters.

pub mod builder;
pub mod conv;
pub mod layers;
pub mod options;
pub mod params;
pub mod psd;
pub mod spec;
pub mod targets;

pub use builder::SpecBuilder;
pub use conv::{ConvSpec, ConvStage, EncoderToken, ImageShape};
pub use layers::{LayerKind, LayerSpec, Role};
pub use options::ModelOptions;
pub use params::{LayerParams, ParamLayout, ParamTensor, Parameters};
pub use spec::{Activation, Loss, ModelSpec, Noise, Variant};
pub use targets::{BCE_RANGE_HINT, check_targets};
