//! What trained models are for: using codes, Jacobians and reconstructions beyond the loss.
//!
//! | use | functions | command |
//! | --- | --- | --- |
//! | semantic hashing: codes as bits, neighbours by Hamming distance | [`hashing`], [`neighbors`], [`neighbors_within`], [`precision_at_k`] | `encode --binary`, `neighbors` |
//! | manifold tangents: the directions an encoder is most sensitive to | [`tangents`], [`tangents_at`] | `tangents` |
//! | the denoising vector field r(x) − x on 2-D toy data | [`field`] | `field` |
//! | generation: sweeping one latent dimension of a VAE | [`traversal`] | `traverse` |
//! | dimensionality reduction: 2-D codes as a scatter plot | [`Autoencoder::encode`](crate::Autoencoder::encode), then `viz::scatter` | `encode --png` |
//!
//! Everything here runs on the host except what goes through a model (encode, decode,
//! Jacobians), which runs on the model's device.

pub mod field;
pub mod hashing;
mod neighbors;
mod tangent;
pub mod traversal;

pub use neighbors::{
    Metric, distance, neighbors, neighbors_within, precision_at_k, random_precision,
};
pub use tangent::{Tangents, tangents, tangents_at};
