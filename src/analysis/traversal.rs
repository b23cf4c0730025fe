//! Latent traversals of a VAE: hold every latent dimension at a base code (the prior's mean 0,
//! or an input's μ), sweep one dimension over evenly spaced values, and decode. A row of the
//! decoded images shows what that dimension controls.
//!
//! ```
//! use hourglass::analysis::traversal::{traversal_codes, traverse};
//! use hourglass::model::{ModelSpec, Variant};
//! use hourglass::{Autoencoder, Device, Parameters};
//!
//! let codes = traversal_codes(&[0.0, 0.5], &[1], 5, 2.0)?;
//! assert_eq!(codes.values, [0., -2., 0., -1., 0., 0., 0., 1., 0., 2.]);
//!
//! let spec = ModelSpec::builder()
//!     .encoder([64, 16, 3])
//!     .variant(Variant::Vae { beta: 1.0, samples: 1 })
//!     .build()?;
//! let params = Parameters::init(&spec, 0); // untrained, for the example
//! let mut vae = Autoencoder::new(spec, params, Device::Cpu)?;
//! // Dimensions 0 and 2, 9 steps each over [−3, 3], the others at 0: 18 decoded rows.
//! let images = traverse(&mut vae, None, &[0, 2], 9, 3.0)?;
//! assert_eq!((images.rows, images.cols), (18, 64));
//! # Ok::<(), hourglass::Error>(())
//! ```

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::infer::Autoencoder;

/// The codes of a traversal: for each of `dims` in turn, `steps` copies of `base` whose entry
/// at that dimension runs evenly from −`range` to `range` (both ends included; one step is the
/// value 0). `dims.len() · steps` rows of `base.len()` values.
pub fn traversal_codes(base: &[f32], dims: &[usize], steps: usize, range: f32) -> Result<Dataset> {
    if base.is_empty() || dims.is_empty() || steps == 0 {
        return Err(Error::Config(format!(
            "a traversal needs a code, at least one dimension and one step, got a code of {}, \
             {} dimensions and {steps} steps",
            base.len(),
            dims.len()
        )));
    }
    if !(range.is_finite() && range >= 0.0) {
        return Err(Error::Config(format!(
            "the traversal range must be ≥ 0, got {range}"
        )));
    }
    if let Some(&bad) = dims.iter().find(|&&d| d >= base.len()) {
        return Err(Error::Config(format!(
            "dimension {bad} is past the code's {} dimensions (0-based)",
            base.len()
        )));
    }
    let value = |s: usize| {
        if steps == 1 {
            0.0
        } else {
            -range + 2.0 * range * s as f32 / (steps - 1) as f32
        }
    };
    let mut values = Vec::with_capacity(dims.len() * steps * base.len());
    for &d in dims {
        for s in 0..steps {
            let start = values.len();
            values.extend_from_slice(base);
            values[start + d] = value(s);
        }
    }
    Dataset::new(dims.len() * steps, base.len(), values)
}

/// Decodes [`traversal_codes`] around `base` (zeros, the prior's mean, when `None`) with
/// `model`: `dims.len() · steps` rows of the model's output, one dimension's sweep after
/// another.
pub fn traverse(
    model: &mut Autoencoder,
    base: Option<&[f32]>,
    dims: &[usize],
    steps: usize,
    range: f32,
) -> Result<Dataset> {
    let c = model.spec().code_dim();
    let zeros = vec![0.0; c];
    let base = base.unwrap_or(&zeros);
    if base.len() != c {
        return Err(Error::Config(format!(
            "the base code has {} values but the model's code has {c}",
            base.len()
        )));
    }
    model.decode(&traversal_codes(base, dims, steps, range)?)
}
