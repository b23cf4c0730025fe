//! How close `encode --infer` gets to the true sparse codes of a trained PSD model, and how
//! much faster the fast encoder is: the first rows of the bundled Fashion-MNIST test set are
//! inferred with [`Autoencoder::infer`] and solved again by coordinate descent in f64, and
//! `encode` (f(x)) is timed against `infer` (h*).
//!
//! `cargo run --release --example psd_gap -- psd/best.safetensors [ROWS]`

use std::time::Instant;

use hourglass::data::Dataset;
use hourglass::data::embedded::fashion_mnist_test;
use hourglass::infer::Autoencoder;
use hourglass::model::psd::{DEFAULT_INFER_STEPS, DICTIONARY};
use hourglass::train::Device;

/// ‖x − Dh‖² + λ‖h‖₁ + γ‖h − f‖² in f64 (D row-major `[d, c]`).
fn objective(x: &[f64], dict: &[f64], h: &[f64], f: &[f64], lambda: f64, gamma: f64) -> f64 {
    let c = h.len();
    let rec: f64 = x
        .iter()
        .enumerate()
        .map(|(i, xi)| (xi - (0..c).map(|j| dict[i * c + j] * h[j]).sum::<f64>()).powi(2))
        .sum();
    let l1: f64 = h.iter().map(|v| v.abs()).sum();
    let pred: f64 = h.iter().zip(f).map(|(a, b)| (a - b).powi(2)).sum();
    rec + lambda * l1 + gamma * pred
}

/// Coordinate descent from h = f until no coordinate moves by 1e-13.
fn solve(x: &[f64], dict: &[f64], f: &[f64], lambda: f64, gamma: f64) -> Vec<f64> {
    let (d, c) = (x.len(), f.len());
    let mut h = f.to_vec();
    let mut r: Vec<f64> = (0..d)
        .map(|i| x[i] - (0..c).map(|j| dict[i * c + j] * h[j]).sum::<f64>())
        .collect();
    let norms: Vec<f64> = (0..c)
        .map(|j| (0..d).map(|i| dict[i * c + j].powi(2)).sum())
        .collect();
    for _ in 0..20_000 {
        let mut moved = 0.0f64;
        for j in 0..c {
            let dr: f64 = (0..d).map(|i| dict[i * c + j] * r[i]).sum();
            let rho = 2.0 * (dr + norms[j] * h[j]) + 2.0 * gamma * f[j];
            let new = rho.signum() * (rho.abs() - lambda).max(0.0) / (2.0 * (norms[j] + gamma));
            let delta = new - h[j];
            if delta != 0.0 {
                (0..d).for_each(|i| r[i] -= dict[i * c + j] * delta);
                h[j] = new;
                moved = moved.max(delta.abs());
            }
        }
        if moved < 1e-13 {
            break;
        }
    }
    h
}

fn main() -> hourglass::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "psd/best.safetensors".into());
    let rows: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut model = Autoencoder::load(&path, Device::Cpu)?;
    let (lambda, gamma, _) = model
        .spec()
        .psd_settings()
        .ok_or_else(|| hourglass::Error::Config(format!("{path} is not a PSD model")))?;
    let test = fashion_mnist_test()?;

    // Speed: the whole test set through f(x), and through the inference.
    let t = Instant::now();
    let fast = model.encode(&test)?;
    let encode_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let all = model.infer(&test, DEFAULT_INFER_STEPS as usize)?;
    let infer_s = t.elapsed().as_secs_f64();
    let n = test.rows as f64;
    println!(
        "encode: {:.1} µs per example; encode --infer: {:.1} µs per example ({:.0}× slower; \
         {:.0} FISTA iterations per chunk on average, converged: {})",
        1e6 * encode_s / n,
        1e6 * infer_s / n,
        infer_s / encode_s,
        all.iterations.iter().sum::<usize>() as f64 / all.iterations.len() as f64,
        all.converged
    );
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (a, b) in fast.values.iter().zip(&all.codes.values) {
        err += f64::from(a - b).powi(2);
        norm += f64::from(*b).powi(2);
    }
    println!(
        "h*: {:.1}% exact zeros; ‖f(x) − h*‖/‖h*‖ = {:.4} over the test set; objective {:.5}",
        100.0 * all.zero_fraction(),
        (err / norm).sqrt(),
        all.objective()
    );

    // The gap to an f64 solver on the first rows.
    let rows = rows.min(test.rows);
    let first = Dataset::new(rows, test.cols, test.values[..rows * test.cols].to_vec())?;
    let inferred = model.infer(&first, DEFAULT_INFER_STEPS as usize)?;
    let dict: Vec<f64> = model
        .parameters()
        .get(DICTIONARY)
        .expect("a PSD model has a dictionary")
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let (l, g) = (f64::from(lambda), f64::from(gamma));
    let (mut got, mut best) = (0.0, 0.0);
    for r in 0..rows {
        let x: Vec<f64> = first.row(r).iter().map(|&v| f64::from(v)).collect();
        let f: Vec<f64> = fast.row(r).iter().map(|&v| f64::from(v)).collect();
        let h: Vec<f64> = inferred
            .codes
            .row(r)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        got += objective(&x, &dict, &h, &f, l, g);
        best += objective(&x, &dict, &solve(&x, &dict, &f, l, g), &f, l, g);
    }
    println!(
        "objective gap of --infer on the first {rows} rows: {:.3e} relative ({:.6} vs {:.6} per row by f64 coordinate descent)",
        (got - best) / best,
        got / rows as f64,
        best / rows as f64
    );
    Ok(())
}
