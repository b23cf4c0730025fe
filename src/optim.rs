//! Optimizer settings and the per-step quantities the host computes for the update kernels.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which update rule trains the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient (PyTorch `torch.optim.Adam`).
    Adam,
    /// Adam with decoupled weight decay (PyTorch `torch.optim.AdamW`).
    Adamw,
    /// Stochastic gradient descent with heavy-ball momentum (PyTorch `torch.optim.SGD`).
    Sgd,
}

/// Optimizer hyperparameters; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
    /// Weight decay (L2 for Adam and SGD, decoupled for AdamW).
    pub weight_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults at learning rate `lr`.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
        }
    }

    /// SGD with momentum `momentum` at learning rate `lr`.
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            momentum,
            ..Self::adam(lr)
        }
    }

    /// Rejects settings that cannot train.
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |x: f32| x.is_finite() && x >= 0.0;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "the learning rate must be positive, got {}",
                self.lr
            )));
        }
        if !finite_nonneg(self.weight_decay) {
            return Err(Error::Config(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        if !(finite_nonneg(self.momentum) && self.momentum < 1.0) {
            return Err(Error::Config(format!(
                "momentum must be in [0, 1), got {}",
                self.momentum
            )));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(finite_nonneg(b) && b < 1.0) {
                return Err(Error::Config(format!("{name} must be in [0, 1), got {b}")));
            }
        }
        Ok(())
    }

    /// Adam's bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ for the 1-based step `t`, computed once on
    /// the host in f64 so both executors use the same f32 values.
    pub fn bias_corrections(&self, t: u64) -> (f32, f32) {
        let t = t as f64;
        (
            (1.0 - f64::from(self.beta1).powf(t)) as f32,
            (1.0 - f64::from(self.beta2).powf(t)) as f32,
        )
    }
}
