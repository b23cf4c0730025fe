//! The vector field of a denoising autoencoder on 2-D toy data: r(x) − x, the step from a point
//! to its reconstruction, which for small Gaussian corruption σ approximates σ²·∇log p(x)
//! (Alain & Bengio 2014) and so points back toward the data.
//!
//! ```
//! use hourglass::Device;
//! use hourglass::analysis::field::{Toy, grid, toy_data, train_denoiser, vector_field};
//! use hourglass::model::Noise;
//!
//! # fn main() -> hourglass::Result<()> {
//! let data = toy_data(Toy::Circle, 256, 0.05, 1)?; // 256 × 2, around the unit circle
//! let (mut model, loss) =
//!     train_denoiser(&data, Noise::Gaussian { sigma: 0.2 }, 50, 0, &Device::Cpu)?;
//! println!("loss after 50 steps: {loss}");
//! let points = grid(&data, 9, 0.5)?; // 9 × 9 points over the data, 0.5 beyond it
//! let arrows = vector_field(&mut model, &points)?;
//! assert_eq!(arrows.len(), 81);
//! # Ok(())
//! # }
//! ```

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::infer::Autoencoder;
use crate::model::{Activation, Loss, ModelSpec, Noise, Variant};
use crate::rng::{Sequence, Stream, gaussian_f32};
use crate::train::{Device, LossReport, TrainConfig, Trainer};

/// The step of the [`Stream::Init`] stream the toy points draw from, apart from the few
/// steps parameter initialisation uses (one per layer).
const TOY_STEP: u32 = 0x746F_7900;

/// A 2-D toy data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toy {
    /// The unit circle.
    Circle,
    /// A two-turn spiral from radius 0.15 to 1.
    Spiral,
}

impl Toy {
    /// Parses `circle` or `spiral`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "circle" => Ok(Toy::Circle),
            "spiral" => Ok(Toy::Spiral),
            other => Err(Error::Config(format!(
                "unknown toy data '{other}' (expected circle or spiral)"
            ))),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Toy::Circle => "circle",
            Toy::Spiral => "spiral",
        }
    }
}

/// `n` points (an `n × 2` data set) on the curve of `kind`, each moved by Gaussian noise of
/// standard deviation `noise` in both coordinates; a pure function of `seed` (Philox).
pub fn toy_data(kind: Toy, n: usize, noise: f32, seed: u64) -> Result<Dataset> {
    if n == 0 {
        return Err(Error::Config("toy data needs at least one point".into()));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(Error::Config(format!(
            "the toy data's noise must be ≥ 0, got {noise}"
        )));
    }
    let mut rng = Sequence::new(seed, Stream::Init, TOY_STEP);
    let tau = std::f32::consts::TAU;
    let mut values = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = rng.uniform(0.0, 1.0);
        let (r, angle) = match kind {
            Toy::Circle => (1.0, tau * t),
            // Uniform in arc length, roughly: denser draws where the spiral is longer.
            Toy::Spiral => {
                let s = t.sqrt();
                (0.15 + 0.85 * s, 2.0 * tau * s)
            }
        };
        let e1 = gaussian_f32(rng.next_u32(), rng.next_u32());
        let e2 = gaussian_f32(rng.next_u32(), rng.next_u32());
        values.push(r * angle.cos() + noise * e1);
        values.push(r * angle.sin() + noise * e2);
    }
    Dataset::new(n, 2, values)
}

/// The denoiser [`train_denoiser`] trains: 2 → 64 → 64 → 64 → 2, tanh hidden layers and code,
/// identity output, squared error, corrupted by `noise`.
pub fn denoiser_spec(noise: Noise) -> Result<ModelSpec> {
    ModelSpec::builder()
        .encoder([2, 64, 64])
        .decoder([64, 64, 2])
        .activation(Activation::Tanh)
        .code_activation(Activation::Tanh)
        .output_activation(Activation::Identity)
        .loss(Loss::Mse)
        .variant(Variant::Denoising { noise })
        .build()
}

/// Trains [`denoiser_spec`] on the 2-D `data` for `steps` Adam steps (learning rate 3·10⁻³,
/// batches of 64 or the whole set when smaller, seed `seed`) on `device`; returns the model and
/// the loss of the last step.
pub fn train_denoiser(
    data: &Dataset,
    noise: Noise,
    steps: u64,
    seed: u64,
    device: &Device,
) -> Result<(Autoencoder, LossReport)> {
    if data.cols != 2 {
        return Err(Error::Config(format!(
            "the denoising field is for 2-D points, got {} columns",
            data.cols
        )));
    }
    if steps == 0 {
        return Err(Error::Config("train for at least one step".into()));
    }
    let spec = denoiser_spec(noise)?;
    let config = TrainConfig {
        seed,
        ..TrainConfig::new(64.min(data.rows), 3e-3)
    };
    let mut trainer = Trainer::new(&spec, &config, data, device, None)?;
    let loss = trainer
        .train_steps(steps, true)?
        .ok_or_else(|| Error::Config("training reported no loss".into()))?;
    Ok((trainer.autoencoder()?, loss))
}

/// A `per_side × per_side` grid of points (row-major, y then x) over the bounding box of the
/// 2-D `data`, extended by `margin` on every side.
pub fn grid(data: &Dataset, per_side: usize, margin: f32) -> Result<Dataset> {
    if data.cols != 2 || data.rows == 0 {
        return Err(Error::Config(format!(
            "a grid over 2-D points needs a non-empty n × 2 data set, got {} × {}",
            data.rows, data.cols
        )));
    }
    if per_side < 2 || !(margin.is_finite() && margin >= 0.0) {
        return Err(Error::Config(format!(
            "the grid needs at least 2 points a side and a margin ≥ 0, got {per_side} and \
             {margin}"
        )));
    }
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in data.values.chunks_exact(2) {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if !(lo[0].is_finite() && lo[1].is_finite() && hi[0].is_finite() && hi[1].is_finite()) {
        return Err(Error::Config("the points are not finite".into()));
    }
    let at = |a: usize, i: usize| {
        let (l, h) = (lo[a] - margin, hi[a] + margin);
        l + (h - l) * i as f32 / (per_side - 1) as f32
    };
    let values = (0..per_side)
        .flat_map(|iy| (0..per_side).flat_map(move |ix| [at(0, ix), at(1, iy)]))
        .collect();
    Dataset::new(per_side * per_side, 2, values)
}

/// r(x) − x at every point of `points` (an `n × 2` data set): where the model moves each point.
pub fn vector_field(model: &mut Autoencoder, points: &Dataset) -> Result<Vec<[f32; 2]>> {
    if points.cols != 2 || model.spec().input_dim() != 2 {
        return Err(Error::Config(format!(
            "a vector field needs a model of 2 inputs and 2-D points, got {} and {}",
            model.spec().input_dim(),
            points.cols
        )));
    }
    let r = model.reconstruct(points)?;
    Ok(r.values
        .chunks_exact(2)
        .zip(points.values.chunks_exact(2))
        .map(|(r, x)| [r[0] - x[0], r[1] - x[1]])
        .collect())
}

/// How well a field points toward the data: the mean cosine between each vector and the
/// direction from its point to the nearest row of `data`, over the points whose nearest data
/// point is between `near.0` and `near.1` away (near the data but off it). `None` when no point
/// is in that band or every vector there is zero.
pub fn alignment(
    points: &Dataset,
    vectors: &[[f32; 2]],
    data: &Dataset,
    near: (f32, f32),
) -> Option<f64> {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (p, v) in points.values.chunks_exact(2).zip(vectors) {
        let nearest = data
            .values
            .chunks_exact(2)
            .map(|q| [q[0] - p[0], q[1] - p[1]])
            .min_by(|a, b| (a[0].hypot(a[1])).total_cmp(&b[0].hypot(b[1])))?;
        let dist = nearest[0].hypot(nearest[1]);
        let len = v[0].hypot(v[1]);
        if dist < near.0 || dist > near.1 || len == 0.0 || !len.is_finite() {
            continue;
        }
        sum += f64::from((nearest[0] * v[0] + nearest[1] * v[1]) / (dist * len));
        count += 1;
    }
    (count > 0).then(|| sum / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toy_points_lie_near_their_curve() {
        let c = toy_data(Toy::Circle, 500, 0.0, 3).unwrap();
        assert!(
            c.values
                .chunks(2)
                .all(|p| (p[0].hypot(p[1]) - 1.0).abs() < 1e-5)
        );
        let s = toy_data(Toy::Spiral, 500, 0.0, 3).unwrap();
        assert!(s.values.chunks(2).all(|p| {
            let r = p[0].hypot(p[1]);
            (0.149..=1.001).contains(&r)
        }));
        assert_eq!(
            toy_data(Toy::Circle, 10, 0.1, 3).unwrap(),
            toy_data(Toy::Circle, 10, 0.1, 3).unwrap()
        );
        assert_ne!(
            toy_data(Toy::Circle, 10, 0.1, 3).unwrap(),
            toy_data(Toy::Circle, 10, 0.1, 4).unwrap()
        );
    }

    #[test]
    fn grid_spans_the_data_and_margin() {
        let d = Dataset::new(2, 2, vec![0.0, 0.0, 1.0, 2.0]).unwrap();
        let g = grid(&d, 3, 0.5).unwrap();
        assert_eq!(g.rows, 9);
        assert_eq!(g.row(0), [-0.5, -0.5]);
        assert_eq!(g.row(1), [0.5, -0.5]);
        assert_eq!(g.row(8), [1.5, 2.5]);
    }

    #[test]
    fn alignment_of_a_field_pointing_at_the_origin() {
        let data = Dataset::new(1, 2, vec![0.0, 0.0]).unwrap();
        let pts = Dataset::new(3, 2, vec![1.0, 0.0, 0.0, 2.0, 5.0, 5.0]).unwrap();
        let toward = [[-1.0, 0.0], [0.0, -3.0], [1.0, 1.0]];
        assert_eq!(alignment(&pts, &toward, &data, (0.5, 3.0)), Some(1.0));
        let away = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]];
        assert_eq!(alignment(&pts, &away, &data, (0.5, 3.0)), Some(-1.0));
        assert_eq!(alignment(&pts, &away, &data, (10.0, 20.0)), None);
    }
}
