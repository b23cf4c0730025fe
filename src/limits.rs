//! Sizes are checked before anything is allocated, and numbers are finite before they are used.
//!
//! Every size a user or a file can make large (layer widths, batch × samples, a checkpoint's
//! spec) goes through checked arithmetic here: a size no machine can address is an
//! [`Error::TooLarge`] with no figure for what is available, and a graph whose buffers need more
//! memory than the machine (or the GPU adapter) offers is refused with both figures, before a
//! byte of it is allocated. The float helpers refuse NaN, infinities and values out of range.

use crate::error::{Error, Result};
use crate::graph::{DType, Graph};
use crate::model::{LayerKind, ModelSpec};
use crate::train::Device;

/// What the host offers when `/proc/meminfo` cannot be read: 16 GiB.
const FALLBACK_AVAILABLE: u64 = 16 << 30;

/// Bytes of memory the host can give now: `MemAvailable` of `/proc/meminfo`, or 16 GiB where
/// there is no such file.
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .and_then(|kib| kib.checked_mul(1024))
        .unwrap_or(FALLBACK_AVAILABLE)
}

/// The product of `dims`, or `None` when it does not fit a `usize`.
pub fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The number of trainable scalars of `spec` (weights and biases, tied weights once), or
/// `None` when it does not fit a `usize`. Needs only a spec whose widths are given; it
/// allocates nothing.
pub fn parameter_count(spec: &ModelSpec) -> Option<usize> {
    let mut total = 0usize;
    for layer in spec.layers() {
        let (weight, bias) = match layer.kind {
            LayerKind::Dense => (layer.inputs.checked_mul(layer.outputs)?, layer.outputs),
            LayerKind::Conv(st) | LayerKind::ConvTranspose(st) => {
                let w = st.out_c.checked_mul(st.in_c)?.checked_mul(st.kernel)?;
                let b = match layer.kind {
                    LayerKind::Conv(_) => st.out_c,
                    _ => st.in_c,
                };
                (w.checked_mul(st.kernel)?, b)
            }
        };
        let weight = if layer.tied_to.is_some() { 0 } else { weight };
        total = total.checked_add(weight)?.checked_add(bias)?;
    }
    // The arena pads every tensor to a 64-element boundary; leave room for that.
    total.checked_add(spec.layers().len().checked_mul(2 * 64)?)
}

/// Bytes of all of `graph`'s buffers, or `None` when they do not fit a `u64`.
pub fn graph_bytes(graph: &Graph) -> Option<u64> {
    graph.buffers.iter().try_fold(0u64, |acc, b| {
        let elem = match b.dtype {
            DType::F32 | DType::U32 => 4u64,
        };
        acc.checked_add((b.len as u64).checked_mul(elem)?)
    })
}

/// Refuses a `graph` whose buffers need more than `device` offers: the host's available
/// memory on the CPU, and on a GPU the adapter's largest buffer for each buffer. `what` names
/// the model in the message.
pub fn check_graph(graph: &Graph, device: &Device, what: &str) -> Result<()> {
    let needed = graph_bytes(graph).ok_or_else(|| Error::TooLarge {
        what: what.to_string(),
        needed: None,
        available: available_memory(),
    })?;
    if let Device::Gpu(ctx) = device {
        let max = ctx.limits.max_buffer_size;
        if let Some(b) = graph.buffers.iter().find(|b| (b.len as u64) * 4 > max) {
            return Err(Error::TooLarge {
                what: format!("{what} (its buffer '{}' on the GPU)", b.name),
                needed: Some(b.len as u64 * 4),
                available: max,
            });
        }
    }
    // Parameters, data and activations also live on the host for the CPU executor, and
    // the host keeps a copy of the parameters for a GPU run: the host check applies to both.
    check_bytes(what, needed)
}

/// Refuses `needed` bytes when the host has fewer available.
pub fn check_bytes(what: &str, needed: u64) -> Result<()> {
    let available = available_memory();
    if needed > available {
        return Err(Error::TooLarge {
            what: what.to_string(),
            needed: Some(needed),
            available,
        });
    }
    Ok(())
}

/// Refuses a spec whose parameters no machine can address, or that the host cannot hold.
pub fn check_spec(spec: &ModelSpec) -> Result<()> {
    let what = format!("a model with encoder {}", spec.encoder_text());
    let count = parameter_count(spec).ok_or_else(|| Error::TooLarge {
        what: what.clone(),
        needed: None,
        available: available_memory(),
    })?;
    check_bytes(&what, (count as u64).saturating_mul(4))
}

/// A range a float option must lie in; both ends inclusive unless said otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// The lower end itself is refused.
    pub open_lo: bool,
}

impl Interval {
    /// `[0, ∞)`.
    pub const NON_NEGATIVE: Interval = Interval {
        lo: 0.0,
        hi: f64::MAX,
        open_lo: false,
    };
    /// `(0, ∞)`.
    pub const POSITIVE: Interval = Interval {
        lo: 0.0,
        hi: f64::MAX,
        open_lo: true,
    };
    /// Any finite number.
    pub const FINITE: Interval = Interval {
        lo: f64::MIN,
        hi: f64::MAX,
        open_lo: false,
    };

    fn describe(&self) -> String {
        match (self.lo, self.hi) {
            (lo, hi) if lo == f64::MIN && hi == f64::MAX => "a finite number".into(),
            (lo, hi) if hi == f64::MAX => {
                format!(
                    "a finite number {} {lo}",
                    if self.open_lo { ">" } else { "≥" }
                )
            }
            (lo, hi) => format!(
                "a number in {}{lo}, {hi}]",
                if self.open_lo { "(" } else { "[" }
            ),
        }
    }

    /// True when `x` is finite and in the interval.
    pub fn contains(&self, x: f64) -> bool {
        x.is_finite()
            && (if self.open_lo {
                x > self.lo
            } else {
                x >= self.lo
            })
            && x <= self.hi
    }
}

/// `Ok(x)` when `x` is finite and in `range`; otherwise an [`Error::Config`] naming `name`
/// (a flag such as `--threshold`), what it must be and what it was.
pub fn check_float(name: &str, x: f64, range: Interval) -> Result<f64> {
    if range.contains(x) {
        Ok(x)
    } else {
        Err(Error::Config(format!(
            "{name} must be {}, got {x}",
            range.describe()
        )))
    }
}

/// The index and value of the first non-finite element of `values`, if there is one.
pub fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .map(|(i, &v)| (i, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_width_of_usize_max_has_no_parameter_count() {
        let spec = ModelSpec::mirrored(&[784, usize::MAX, 32]);
        assert_eq!(parameter_count(&spec), None);
        assert!(parameter_count(&ModelSpec::mirrored(&[784, 32])).unwrap() >= 2 * 784 * 32);
    }

    #[test]
    fn floats_out_of_range_are_refused_by_name() {
        let e = check_float("--seconds", f64::NAN, Interval::POSITIVE).unwrap_err();
        assert!(
            e.to_string()
                .contains("--seconds must be a finite number > 0, got NaN")
        );
        assert!(check_float("--seconds", 0.0, Interval::POSITIVE).is_err());
        assert_eq!(
            check_float("--seconds", 0.5, Interval::POSITIVE).unwrap(),
            0.5
        );
    }
}
