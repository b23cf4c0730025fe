//! What a loss can be trained on: cross-entropy's targets are probabilities, so data outside
//! [0, 1] would train to a meaningless, unbounded-below loss (−18 million on raw features)
//! while every number looked finite. It is refused before anything runs, with the two ways
//! out the README gives.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Loss, ModelSpec};

/// The fixes for cross-entropy on data outside [0, 1].
pub const BCE_RANGE_HINT: &str = "use loss = mse with output_activation = identity, or Normalize::Unit to scale each \
     feature into [0, 1]";

/// Checks that `data` can be the targets of `spec`'s loss: with cross-entropy (`Loss::Bce`)
/// every value must lie in [0, 1]. `what` names the data in the message ("x.npy", "the
/// validation data"). Mean squared error takes any finite values. Non-finite values are left to
/// the checks made for them (the loader refuses them, training stops on a non-finite loss).
pub fn check_targets(spec: &ModelSpec, data: &Dataset, what: &str) -> Result<()> {
    if spec.loss != Loss::Bce {
        return Ok(());
    }
    let outside = |v: &f32| v.is_finite() && !(0.0..=1.0).contains(v);
    let Some(first) = data.values.iter().position(outside) else {
        return Ok(());
    };
    let (lo, hi) = data
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let cols = data.cols.max(1);
    Err(Error::Config(format!(
        "cross-entropy (loss = bce) needs data in [0, 1], but {what} holds values from {lo} to \
         {hi} (the first outside is row {}, feature {}: {}); {BCE_RANGE_HINT}",
        first / cols,
        first % cols,
        data.values[first]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_takes_only_probabilities_and_mse_anything() {
        let mut spec = ModelSpec::mirrored(&[3, 2]);
        let ok = Dataset::new(2, 3, vec![0.0, 0.5, 1.0, 1.0, 0.0, 0.25]).unwrap();
        check_targets(&spec, &ok, "ok").unwrap();
        let nan = Dataset::new(1, 3, vec![0.0, f32::NAN, 1.0]).unwrap();
        check_targets(&spec, &nan, "nan").unwrap();
        let bad = Dataset::new(2, 3, vec![0.0, 0.5, 1.0, 1.0, -2.5, 7.0]).unwrap();
        let e = check_targets(&spec, &bad, "x.npy").unwrap_err().to_string();
        assert!(e.contains("x.npy holds values from -2.5 to 7"), "{e}");
        assert!(e.contains("row 1, feature 1: -2.5"), "{e}");
        assert!(
            e.contains("loss = mse with output_activation = identity"),
            "{e}"
        );
        assert!(e.contains("Normalize::Unit") && !e.contains("--"), "{e}");
        spec.loss = Loss::Mse;
        check_targets(&spec, &bad, "x.npy").unwrap();
    }
}
