//! The denoising autoencoder: the encoder sees a corrupted copy of the batch (masking,
//! Gaussian or salt-and-pepper noise, drawn afresh each step), and the loss compares the
//! reconstruction with the clean batch.

use crate::graph::build::variants::Regularizer;
use crate::graph::{Graph, Op, Tensor};
use crate::model::Noise;

/// Corrupts the input with `noise`.
pub(super) struct Denoising {
    pub noise: Noise,
}

impl Regularizer for Denoising {
    fn corrupt(&self, g: &mut Graph, x: Tensor) -> Tensor {
        let noisy = g.matrix("batch.corrupted", x.rows, x.cols);
        g.push(Op::Corrupt {
            x,
            out: noisy,
            noise: self.noise,
        });
        noisy
    }
}
