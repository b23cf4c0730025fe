//! Manifold tangents: the input directions an encoder is most sensitive to at a point, the top
//! right singular vectors of its Jacobian ∂h/∂x (Rifai et al. 2011: a contractive
//! autoencoder's leading singular vectors span the tangent plane of the data manifold).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::infer::{Autoencoder, jacobians};

/// What [`tangents`] returns: the singular values, descending, and the right singular vector
/// of each.
pub type Tangents = (Vec<f32>, Vec<Vec<f32>>);

/// The top `k` singular values (descending) of the `c × d` row-major matrix `jacobian`, and
/// their right singular vectors (each `d` values, unit length).
///
/// Computed through the `c × c` symmetric matrix J·Jᵀ = U Σ² Uᵀ, diagonalised by cyclic Jacobi
/// rotations in f64; then vᵢ = Jᵀuᵢ / σᵢ (re-orthogonalised against the earlier vᵢ). A
/// Jacobian of rank r < k gives only r pairs: singular values at or below
/// σ₁ · max(c, d) · ε_f32 count as zero, since their directions are not determined (a zero
/// Jacobian gives none). Each vector's sign is chosen so that its largest-magnitude component
/// is positive.
///
/// Errors: `k` of 0, a zero dimension, or a slice that is not `c·d` long.
///
/// ```
/// use hourglass::analysis::tangents;
///
/// // J = [[3, 0, 0], [0, 0, -2]]: σ = (3, 2), v = (e₁, e₃).
/// let j = [3.0, 0.0, 0.0, 0.0, 0.0, -2.0];
/// let (sigma, v) = tangents(&j, 2, 3, 5)?; // asks for 5, the rank is 2
/// assert_eq!(sigma.len(), 2);
/// assert!((sigma[0] - 3.0).abs() < 1e-6 && (sigma[1] - 2.0).abs() < 1e-6);
/// assert!((v[0][0] - 1.0).abs() < 1e-6 && (v[1][2] - 1.0).abs() < 1e-6);
/// # Ok::<(), hourglass::Error>(())
/// ```
pub fn tangents(jacobian: &[f32], c: usize, d: usize, k: usize) -> Result<Tangents> {
    if c == 0 || d == 0 || k == 0 {
        return Err(Error::Config(format!(
            "tangents need a non-empty Jacobian and k ≥ 1, got c = {c}, D = {d}, k = {k}"
        )));
    }
    if c.checked_mul(d) != Some(jacobian.len()) {
        return Err(Error::Config(format!(
            "a {c}×{d} Jacobian needs {} values, got {}",
            c.saturating_mul(d),
            jacobian.len()
        )));
    }
    let j: Vec<f64> = jacobian.iter().map(|&x| f64::from(x)).collect();
    let row = |r: usize| &j[r * d..(r + 1) * d];
    let mut gram = vec![0.0f64; c * c];
    for a in 0..c {
        for b in a..c {
            let s: f64 = row(a).iter().zip(row(b)).map(|(x, y)| x * y).sum();
            gram[a * c + b] = s;
            gram[b * c + a] = s;
        }
    }
    let (values, u) = symmetric_eigen(&gram, c);
    let sigma: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let tol = sigma[0] * c.max(d) as f64 * f64::from(f32::EPSILON);
    let mut out_sigma = Vec::new();
    let mut out_v: Vec<Vec<f64>> = Vec::new();
    for (i, &s) in sigma.iter().enumerate().take(k) {
        if s <= tol || s == 0.0 {
            break;
        }
        // vᵢ = Jᵀuᵢ / σᵢ, with uᵢ the i-th column of u.
        let mut v = vec![0.0f64; d];
        for r in 0..c {
            let w = u[r * c + i];
            v.iter_mut().zip(row(r)).for_each(|(v, &x)| *v += w * x);
        }
        // The squared Gram matrix costs accuracy on small σ: restore orthogonality.
        for prev in &out_v {
            let dot: f64 = v.iter().zip(prev).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(prev).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            break;
        }
        let big = v
            .iter()
            .fold(0.0f64, |m, &x| if x.abs() > m.abs() { x } else { m });
        let scale = big.signum() / norm;
        v.iter_mut().for_each(|x| *x *= scale);
        out_sigma.push(s as f32);
        out_v.push(v);
    }
    let vectors = out_v
        .into_iter()
        .map(|v| v.into_iter().map(|x| x as f32).collect())
        .collect();
    Ok((out_sigma, vectors))
}

/// [`tangents`] of `model`'s encoder at every row of `data`: the exact Jacobians from
/// [`jacobians`] (on the model's device), then the top `k` singular values and right
/// singular vectors of each. Not for VAEs.
///
/// ```
/// use hourglass::analysis::tangents_at;
/// use hourglass::{Activation, Autoencoder, Dataset, Device, ModelSpec, Parameters};
///
/// let spec = ModelSpec::builder()
///     .encoder([9, 4])
///     .code_activation(Activation::Sigmoid)
///     .build()?;
/// let model = Autoencoder::new(spec.clone(), Parameters::init(&spec, 1), Device::Cpu)?;
/// let data = Dataset::new(2, 9, vec![0.5; 18])?;
/// let per_row = tangents_at(&model, &data, 2)?;
/// let (sigma, vectors) = &per_row[0];
/// assert_eq!((sigma.len(), vectors[0].len()), (2, 9));
/// assert!(sigma[0] >= sigma[1]);
/// # Ok::<(), hourglass::Error>(())
/// ```
pub fn tangents_at(model: &Autoencoder, data: &Dataset, k: usize) -> Result<Vec<Tangents>> {
    let spec = model.spec();
    let (c, d) = (spec.code_dim(), spec.input_dim());
    jacobians(spec, model.parameters(), data, model.device())?
        .iter()
        .map(|j| tangents(j, c, d, k))
        .collect()
}

/// Eigen-decomposition of a symmetric `n×n` matrix by cyclic Jacobi rotations: eigenvalues in
/// descending order, eigenvectors as the columns of the row-major `n×n` result.
fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= scale * 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if theta == 0.0 {
                    1.0
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = idx.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (col, &i) in idx.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + col] = v[k * n + i];
        }
    }
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let (vals, vecs) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[0].abs() - h).abs() < 1e-12 && (vecs[0] - vecs[2]).abs() < 1e-12);
    }

    #[test]
    fn rank_one_jacobian_gives_one_tangent() {
        // Three equal rows (1, 2, 2): σ₁ = 3·√3, v₁ = (1, 2, 2)/3.
        let j = [1.0, 2.0, 2.0].repeat(3);
        let (s, v) = tangents(&j, 3, 3, 3).unwrap();
        assert_eq!(s.len(), 1);
        assert!((s[0] - 3.0 * 3f32.sqrt()).abs() < 1e-5, "{s:?}");
        for (got, want) in v[0].iter().zip([1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", v[0]);
        }
        assert_eq!(tangents(&[0.0; 6], 2, 3, 2).unwrap().0.len(), 0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(tangents(&[1.0; 5], 2, 3, 1).is_err());
        assert!(tangents(&[1.0; 6], 2, 3, 0).is_err());
    }
}
