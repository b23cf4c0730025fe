//! Predictive sparse decomposition (`--variant psd`) on the CPU reference: the Lipschitz
//! estimate converges to ‖D‖₂², the inference reaches the objective's minimum as an
//! independent f64 coordinate-descent solver finds it, the parameter gradients match finite
//! differences in f64, and a dictionary is recovered from synthetic sparse data.

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::cpu::psd::{lipschitz, power_iteration};
use hourglass::graph::psd::{LIPSCHITZ_MARGIN, POWER_ITERATIONS, fista_betas};
use hourglass::graph::{StepParams, build_training_graph};
use hourglass::model::psd::{DICTIONARY, GAIN};
use hourglass::optim::OptimizerConfig;
use hourglass::rng::{Sequence, Stream};
use hourglass::{Autoencoder, Dataset, Device, ModelSpec, Parameters, TrainConfig, Trainer};

/// `[d, c]` row-major with unit columns, uniform entries before scaling.
fn unit_columns(d: usize, c: usize, seed: u64) -> Vec<f64> {
    let mut m: Vec<f64> = common::random(d * c, -1.0, 1.0, seed)
        .into_iter()
        .map(f64::from)
        .collect();
    for j in 0..c {
        let n = (0..d).map(|i| m[i * c + j].powi(2)).sum::<f64>().sqrt();
        for i in 0..d {
            m[i * c + j] /= n;
        }
    }
    m
}

fn gram(dict: &[f64], d: usize, c: usize) -> Vec<f64> {
    let mut g = vec![0.0; c * c];
    for a in 0..c {
        for b in 0..c {
            g[a * c + b] = (0..d).map(|i| dict[i * c + a] * dict[i * c + b]).sum();
        }
    }
    g
}

#[test]
fn power_iteration_converges_to_the_spectral_norm_and_bounds_it_with_the_margin() {
    for (d, c, seed) in [
        (1, 1, 1),
        (7, 7, 2),
        (33, 7, 3),
        (7, 33, 4),
        (16, 64, 5),
        (64, 33, 6),
    ] {
        let dict = unit_columns(d, c, seed);
        let g = gram(&dict, d, c);
        let (eig, _) = common::symmetric_eigen(&g, c);
        let top = eig[0];
        let mut scratch = vec![0.0f64; 2 * c];
        let mut last_err = f64::INFINITY;
        let mut errors = Vec::new();
        for it in [1u32, 4, 16, POWER_ITERATIONS] {
            let est = power_iteration(&g, c, it, &mut scratch);
            // A Rayleigh quotient: never above the top eigenvalue.
            assert!(est <= top * (1.0 + 1e-12), "{d}x{c}: {est} > λ_max {top}");
            let err = (top - est) / top;
            assert!(
                err <= last_err + 1e-12,
                "{d}x{c}: error grew to {err} at {it}"
            );
            last_err = err;
            errors.push(err);
        }
        eprintln!(
            "{d}x{c}: λ_max {top:.6}, relative error after 1/4/16/{POWER_ITERATIONS} iterations {errors:?}"
        );
        assert!(
            last_err < 0.02,
            "{d}x{c}: {last_err:.3e} after {POWER_ITERATIONS} iterations"
        );
        // The step the kernel writes: L ≥ 2(λ_max + γ), so 1/L is a safe FISTA step.
        let gamma = 0.3;
        let mut step = [0.0f64; 4];
        lipschitz(&g, c, 0.5, gamma, &mut scratch, &mut step);
        let l_true = 2.0 * (top + f64::from(gamma));
        assert!(
            step[3] >= l_true * (1.0 - 1e-9),
            "{d}x{c}: L {} < {l_true}",
            step[3]
        );
        assert!(step[3] <= 2.0 * (f64::from(LIPSCHITZ_MARGIN) * top + f64::from(gamma)) + 1e-9);
        assert!((step[0] - 1.0 / step[3]).abs() < 1e-15 && (step[1] - 0.5 * step[0]).abs() < 1e-15);
    }
}

#[test]
fn fista_betas_follow_beck_and_teboulle() {
    let b = fista_betas(5);
    assert_eq!(b[0], 0.0);
    // t_2 = (1 + √5)/2, t_3 = (1 + √(1 + 4 t_2²))/2; β_2 = (t_2 − 1)/t_3.
    let t2 = (1.0 + 5f64.sqrt()) / 2.0;
    let t3 = (1.0 + (1.0 + 4.0 * t2 * t2).sqrt()) / 2.0;
    assert!((f64::from(b[1]) - (t2 - 1.0) / t3).abs() < 1e-7);
    assert!(b.windows(2).all(|w| w[1] > w[0]) && b[4] < 1.0);
}

/// The PSD objective of one row in f64.
fn objective(x: &[f64], dict: &[f64], h: &[f64], f: &[f64], lambda: f64, gamma: f64) -> f64 {
    let (d, c) = (x.len(), h.len());
    let rec: f64 = (0..d)
        .map(|i| {
            let r: f64 = (0..c).map(|j| dict[i * c + j] * h[j]).sum();
            (x[i] - r).powi(2)
        })
        .sum();
    let l1: f64 = h.iter().map(|v| v.abs()).sum();
    let pred: f64 = h.iter().zip(f).map(|(a, b)| (a - b).powi(2)).sum();
    rec + lambda * l1 + gamma * pred
}

/// Coordinate descent on one row, in f64, until no coordinate moves by 1e-15: the test's
/// own solver of min_h ‖x − Dh‖² + λ‖h‖₁ + γ‖h − f‖².
fn coordinate_descent(x: &[f64], dict: &[f64], f: &[f64], lambda: f64, gamma: f64) -> Vec<f64> {
    let (d, c) = (x.len(), f.len());
    let mut h = vec![0.0; c];
    let mut r = x.to_vec(); // x − Dh
    let norms: Vec<f64> = (0..c)
        .map(|j| (0..d).map(|i| dict[i * c + j].powi(2)).sum())
        .collect();
    for _sweep in 0..100_000 {
        let mut moved = 0.0f64;
        for j in 0..c {
            let dr: f64 = (0..d).map(|i| dict[i * c + j] * r[i]).sum();
            let rho = 2.0 * (dr + norms[j] * h[j]) + 2.0 * gamma * f[j];
            let a = 2.0 * (norms[j] + gamma);
            let new = rho.signum() * (rho.abs() - lambda).max(0.0) / a;
            let delta = new - h[j];
            if delta != 0.0 {
                for i in 0..d {
                    r[i] -= dict[i * c + j] * delta;
                }
                h[j] = new;
                moved = moved.max(delta.abs());
            }
        }
        if moved < 1e-15 {
            break;
        }
    }
    h
}

/// The fast encoder g ⊙ tanh(Wx + b) of `params` in f64.
fn fast_encoder(params: &Parameters, x: &[f64], c: usize) -> Vec<f64> {
    let w = params.get("encoder.0.weight").unwrap();
    let b = params.get("encoder.0.bias").unwrap();
    let g = params.get(GAIN).unwrap();
    let d = x.len();
    (0..c)
        .map(|j| {
            let a: f64 =
                (0..d).map(|i| f64::from(w[j * d + i]) * x[i]).sum::<f64>() + f64::from(b[j]);
            f64::from(g[j]) * a.tanh()
        })
        .collect()
}

#[test]
fn inference_reaches_the_minimum_an_independent_solver_finds() {
    for (d, c, lambda, gamma, seed) in [
        (20, 12, 0.3f32, 0.5f32, 1u64),
        (12, 30, 0.2, 0.1, 2),
        (7, 1, 0.1, 0.0, 3),
    ] {
        let spec = ModelSpec::psd(d, c, lambda, gamma, 5);
        // Random weights with nonzero biases and gains, the dictionary with unit columns.
        let mut params = Parameters::init(&spec, seed);
        let gain = params.layout.extra[0].clone();
        for (k, v) in params.arena[gain.offset..gain.offset + c]
            .iter_mut()
            .enumerate()
        {
            *v = 0.5 + 0.1 * k as f32;
        }
        let rows = 33;
        let data = Dataset::new(rows, d, common::random(rows * d, -1.0, 1.0, 50 + seed)).unwrap();
        let mut model = Autoencoder::new(spec, params.clone(), Device::Cpu).unwrap();
        let inferred = model.infer(&data, 5000).unwrap();
        let dict: Vec<f64> = params
            .get(DICTIONARY)
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let (mut got, mut best) = (0.0, 0.0);
        for r in 0..rows {
            let x: Vec<f64> = data.row(r).iter().map(|&v| f64::from(v)).collect();
            let f = fast_encoder(&params, &x, c);
            let h: Vec<f64> = inferred
                .codes
                .row(r)
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let h_cd = coordinate_descent(&x, &dict, &f, f64::from(lambda), f64::from(gamma));
            got += objective(&x, &dict, &h, &f, f64::from(lambda), f64::from(gamma));
            best += objective(&x, &dict, &h_cd, &f, f64::from(lambda), f64::from(gamma));
        }
        let gap = (got - best) / best;
        eprintln!(
            "{d}→{c}, λ {lambda}, γ {gamma}: objective {:.8} vs coordinate descent {:.8}, relative gap {gap:.2e}, {:?} iterations, {:.1}% zeros",
            got / rows as f64,
            best / rows as f64,
            inferred.iterations,
            100.0 * inferred.zero_fraction()
        );
        assert!(gap.abs() < 1e-4, "relative objective gap {gap:.3e}");
        assert!(
            inferred.converged,
            "stopped at the cap: {:?}",
            inferred.iterations
        );
        // The objective it reports is the one recomputed here.
        assert!((inferred.objective() - got / rows as f64).abs() < 1e-4 * got / rows as f64);
    }
}

#[test]
fn parameter_gradients_match_finite_differences_of_the_minimized_objective() {
    // With γ > 0 the objective is strongly convex in h: h* is unique and, by the envelope
    // theorem, the gradient of min_h E(h, θ) is ∂E/∂θ at h* — what the graph computes with h*
    // held fixed. 300 FISTA iterations in f64 reach h* to rounding.
    let (d, c) = (6, 4);
    let spec = ModelSpec::psd(d, c, 0.2, 0.7, 300);
    let (batch, rows) = (3, 5);
    let tg = build_training_graph(&spec, batch, rows, &OptimizerConfig::adam(1e-3));
    let mut exec = CpuExecutor::<f64>::new(tg.graph.clone()).unwrap();
    let mut params: Vec<f64> = common::random(tg.layout.len, -0.8, 0.8, 11)
        .into_iter()
        .map(f64::from)
        .collect();
    let (gain, dict) = (&tg.layout.extra[0], &tg.layout.extra[1]);
    for v in &mut params[gain.offset..gain.offset + c] {
        *v += 1.0;
    }
    let data: Vec<f64> = common::random(rows * d, -1.0, 1.0, 12)
        .into_iter()
        .map(f64::from)
        .collect();
    exec.write(tg.params.buf, &params).unwrap();
    exec.write(tg.data.buf, &data).unwrap();
    exec.write_u32(tg.order.buf, &[4, 1, 3, 0, 2]).unwrap();
    let loss_and_grads = |exec: &mut CpuExecutor<f64>, p: &[f64]| {
        exec.write(tg.params.buf, p).unwrap();
        exec.run(0..tg.graph.update_start, &[StepParams::default()])
            .unwrap();
        let loss: f64 = tg
            .terms
            .iter()
            .map(|t| t.scale * exec.view(t.values).unwrap().iter().sum::<f64>())
            .sum();
        (loss, exec.view(tg.grads).unwrap().to_vec())
    };
    let (_, grads) = loss_and_grads(&mut exec, &params);
    let zeros = exec
        .view(tg.measures[0].values)
        .unwrap()
        .iter()
        .sum::<f64>();
    assert!(
        zeros > 0.0,
        "some code entries should be exactly zero (λ active)"
    );
    let h = 1e-6;
    let floor = 1e-4 * grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let mut worst = 0.0f64;
    for t in tg.layout.tensors() {
        for i in t.offset..t.offset + t.len() {
            let mut p = params.clone();
            p[i] += h;
            let (up, _) = loss_and_grads(&mut exec, &p);
            p[i] -= 2.0 * h;
            let (down, _) = loss_and_grads(&mut exec, &p);
            let numeric = (up - down) / (2.0 * h);
            let err = (numeric - grads[i]).abs() / (numeric.abs().max(grads[i].abs()) + floor);
            assert!(
                err < 1e-5,
                "d loss / d {}[{}]: analytic {} numeric {numeric} (rel {err:.2e})",
                t.name,
                i - t.offset,
                grads[i]
            );
            worst = worst.max(err);
        }
    }
    assert!(dict.len() == d * c);
    eprintln!("worst relative gradient error {worst:.2e}");
}

/// `n` rows of x = D₀h₀ + noise with 3-sparse h₀ (entries ±[0.5, 1.5]).
fn synthetic(d0: &[f64], d: usize, c0: usize, n: usize, noise: f32, seed: u64) -> Dataset {
    let mut rng = Sequence::new(seed, Stream::Init, 77);
    let mut values = Vec::with_capacity(n * d);
    for _ in 0..n {
        let mut h = vec![0.0f64; c0];
        let mut picked = 0;
        while picked < 3 {
            let j = rng.below(c0 as u32) as usize;
            if h[j] == 0.0 {
                let mag = f64::from(rng.uniform(0.5, 1.5));
                h[j] = if rng.uniform(0.0, 1.0) < 0.5 {
                    -mag
                } else {
                    mag
                };
                picked += 1;
            }
        }
        for i in 0..d {
            let x: f64 = (0..c0).map(|j| d0[i * c0 + j] * h[j]).sum();
            values.push(x as f32 + noise * rng.uniform(-1.0, 1.0));
        }
    }
    Dataset::new(n, d, values).unwrap()
}

#[test]
fn learns_the_dictionary_of_synthetic_sparse_data() {
    // A complete dictionary, and one twice overcomplete.
    for c in [10, 20] {
        recovers(c);
    }
}

fn recovers(c: usize) {
    let (d, c0) = (20, 10);
    let d0 = unit_columns(d, c0, 7);
    let data = synthetic(&d0, d, c0, 2000, 0.02, 8);
    let spec = ModelSpec::psd(d, c, 0.4, 1.0, 30);
    let config = TrainConfig::new(50, 1e-2);
    let mut trainer = Trainer::new(&spec, &config, &data, &Device::Cpu, None).unwrap();
    let first = trainer.train_steps(1, true).unwrap().unwrap();
    let mut errors = vec![first.relative_prediction_error().unwrap()];
    let mut last = first.clone();
    for _ in 0..15 {
        let r = trainer.train_steps(80, true).unwrap().unwrap();
        errors.push(r.relative_prediction_error().unwrap());
        last = r;
    }
    let params = trainer.parameters().unwrap();
    let dict = params.get(DICTIONARY).unwrap();
    // Unit columns after every update.
    for j in 0..c {
        let n: f64 = (0..d).map(|i| f64::from(dict[i * c + j]).powi(2)).sum();
        assert!((n - 1.0).abs() < 1e-5, "column {j} has norm² {n}");
    }
    let cosines: Vec<f64> = (0..c0)
        .map(|a| {
            (0..c)
                .map(|b| {
                    (0..d)
                        .map(|i| d0[i * c0 + a] * f64::from(dict[i * c + b]))
                        .sum::<f64>()
                        .abs()
                })
                .fold(0.0, f64::max)
        })
        .collect();
    let mean = cosines.iter().sum::<f64>() / c0 as f64;
    let zeros = last.measure("zero_fraction").unwrap();
    eprintln!(
        "{c} atoms for {c0}: mean best |cosine| {mean:.4} ({cosines:.3?}); zero fraction {zeros:.3}; relative prediction error {errors:.3?}; last {last}"
    );
    assert!(mean > 0.9, "mean best |cosine| {mean:.4}");
    assert!(zeros > 0.5, "h* should be sparse: {zeros:.3} of it is zero");
    let end = *errors.last().unwrap();
    assert!(
        end < 0.5 * errors[0],
        "‖f − h*‖/‖h*‖ should fall: {errors:.3?}"
    );
}

#[test]
fn encode_is_the_fast_encoder_and_decode_multiplies_by_the_dictionary() {
    let (d, c) = (13, 7);
    let spec = ModelSpec::psd(d, c, 0.2, 0.5, 4);
    let mut params = Parameters::init(&spec, 5);
    let n = params.layout.len;
    params.arena = common::random(n, -0.7, 0.7, 6);
    let data = Dataset::new(9, d, common::random(9 * d, -1.0, 1.0, 7)).unwrap();
    let mut model = Autoencoder::new(spec, params.clone(), Device::Cpu).unwrap();
    let codes = model.encode(&data).unwrap();
    let dict = params.get(DICTIONARY).unwrap();
    let mut want_codes = Vec::new();
    let mut want_recon = Vec::new();
    for r in 0..data.rows {
        let x: Vec<f64> = data.row(r).iter().map(|&v| f64::from(v)).collect();
        let f = fast_encoder(&params, &x, c);
        want_codes.extend(f.iter().map(|&v| v as f32));
        for i in 0..d {
            let y: f64 = (0..c).map(|j| f64::from(dict[i * c + j]) * f[j]).sum();
            want_recon.push(y as f32);
        }
    }
    common::assert_close("f(x)", &codes.values, &want_codes, 1e-6);
    let recon = model.reconstruct(&data).unwrap();
    common::assert_close("D f(x)", &recon.values, &want_recon, 1e-5);
    let decoded = model.decode(&codes).unwrap();
    common::assert_close("decode(encode(x))", &decoded.values, &recon.values, 1e-6);
}

#[test]
fn the_lipschitz_cap_holds_for_a_dictionary_without_unit_columns() {
    // A checkpoint's D edited by hand (or columns not yet renormalised): ‖D‖₂² may exceed c,
    // and the cap is trace(DᵀD) = ‖D‖_F², still an upper bound.
    for (d, c, scale) in [(7, 3, 3.0), (33, 7, 0.1), (5, 20, 2.5)] {
        let dict: Vec<f64> = unit_columns(d, c, 9).iter().map(|v| v * scale).collect();
        let g = gram(&dict, d, c);
        let (eig, _) = common::symmetric_eigen(&g, c);
        let (mut scratch, mut step) = (vec![0.0f64; 2 * c], [0.0f64; 4]);
        lipschitz(&g, c, 0.1, 0.0, &mut scratch, &mut step);
        assert!(
            step[3] >= 2.0 * eig[0] * (1.0 - 1e-9),
            "{d}x{c}×{scale}: L {} < {}",
            step[3],
            2.0 * eig[0]
        );
    }
}
