//! Learning-rate schedules: the rate of every step is a pure function of its number.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the learning rate changes over a run, after an optional linear warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// The rate is multiplied by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor per decay.
        gamma: f32,
    },
    /// Cosine decay from the base rate to zero over `total` steps.
    Cosine {
        /// Length of the decay in steps (usually the run's length).
        total: u64,
    },
}

impl Schedule {
    /// Parses `constant`, `step` or `cosine`; `total` is the run's length for cosine, and step
    /// decay halves the rate every third of the run.
    pub fn parse(name: &str, total: u64) -> Result<Self> {
        Ok(match name {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                every: (total / 3).max(1),
                gamma: 0.5,
            },
            "cosine" => Schedule::Cosine {
                total: total.max(1),
            },
            other => {
                return Err(Error::Config(format!(
                    "unknown schedule '{other}' (expected constant, step or cosine)"
                )));
            }
        })
    }

    /// The rate of 1-based step `t` for base rate `lr` with `warmup` warm-up steps.
    pub fn lr_at(&self, lr: f32, warmup: u64, t: u64) -> f32 {
        let base = f64::from(lr);
        let warm = if warmup > 0 && t <= warmup {
            t as f64 / warmup as f64
        } else {
            1.0
        };
        let decayed = match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                base * f64::from(gamma).powi(((t - 1) / every.max(1)) as i32)
            }
            Schedule::Cosine { total } => {
                let progress = ((t - 1) as f64 / total.max(1) as f64).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        (decayed * warm) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_shape_the_rate() {
        let c = Schedule::Cosine { total: 100 };
        assert_eq!(c.lr_at(1.0, 0, 1), 1.0);
        assert!((c.lr_at(1.0, 0, 51) - 0.5).abs() < 1e-6);
        assert!(c.lr_at(1.0, 0, 101) < 1e-6);
        let s = Schedule::Step {
            every: 10,
            gamma: 0.1,
        };
        assert_eq!(s.lr_at(2.0, 0, 10), 2.0);
        assert!((s.lr_at(2.0, 0, 11) - 0.2).abs() < 1e-6);
        assert!((Schedule::Constant.lr_at(1.0, 4, 2) - 0.5).abs() < 1e-6);
        assert_eq!(Schedule::Constant.lr_at(1.0, 4, 5), 1.0);
    }
}
