//! Finite-difference checks, in f64 on the CPU reference, of the gradients the training graph
//! computes: every loss, every activation, through a deep autoencoder (the op under test sits in
//! the middle of a graph, not alone).

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::graph::{StepParams, TrainingGraph, build_training_graph};
use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
use hourglass::optim::OptimizerConfig;

/// Loss of the graph's current parameters, and their gradient arena.
fn loss_and_grads(exec: &mut CpuExecutor<f64>, tg: &TrainingGraph) -> (f64, Vec<f64>) {
    // A fixed step and seed: the noise of stochastic variants is the same in every evaluation.
    let step = StepParams {
        step: 3,
        seed_lo: 5,
        ..StepParams::default()
    };
    exec.run(0..tg.graph.update_start, &[step]).unwrap();
    let loss: f64 = tg
        .terms
        .iter()
        .map(|t| t.scale * exec.view(t.values).unwrap().iter().sum::<f64>())
        .sum();
    (loss, exec.view(tg.grads).unwrap().to_vec())
}

fn check(spec: &ModelSpec) -> f64 {
    spec.validate().expect("valid spec");
    let batch = 3;
    let rows = 5;
    let tg = build_training_graph(spec, batch, rows, &OptimizerConfig::adam(1e-3));
    let mut exec = CpuExecutor::<f64>::new(tg.graph.clone()).unwrap();
    // Random parameters (biases too: zero biases would hide bias-gradient bugs) and data.
    let params: Vec<f64> = common::random(tg.layout.len, -0.8, 0.8, 11)
        .into_iter()
        .map(f64::from)
        .collect();
    let data: Vec<f64> = common::random(rows * spec.input_dim(), 0.0, 1.0, 12)
        .into_iter()
        .map(f64::from)
        .collect();
    exec.write(tg.params.buf, &params).unwrap();
    exec.write(tg.data.buf, &data).unwrap();
    exec.write_u32(tg.order.buf, &[4, 1, 3, 0, 2]).unwrap();

    let (_, grads) = loss_and_grads(&mut exec, &tg);
    let h = 1e-5;
    // Errors are relative to each gradient, with a floor at 1e-4 of the largest one: central
    // differences in f64 carry ~1e-11 of noise, which would dominate gradients near zero.
    let floor = 1e-4 * grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let mut worst = 0.0f64;
    for t in tg.layout.tensors() {
        for i in t.offset..t.offset + t.len() {
            let mut p = params.clone();
            p[i] += h;
            exec.write(tg.params.buf, &p).unwrap();
            let (up, _) = loss_and_grads(&mut exec, &tg);
            p[i] -= 2.0 * h;
            exec.write(tg.params.buf, &p).unwrap();
            let (down, _) = loss_and_grads(&mut exec, &tg);
            let numeric = (up - down) / (2.0 * h);
            let err = (numeric - grads[i]).abs() / (numeric.abs().max(grads[i].abs()) + floor);
            assert!(
                err < 1e-5,
                "{spec:?}: d loss / d {}[{}]: analytic {} numeric {numeric} (rel {err:.2e})",
                t.name,
                i - t.offset,
                grads[i]
            );
            worst = worst.max(err);
        }
    }
    exec.write(tg.params.buf, &params).unwrap();
    worst
}

#[test]
fn gradients_match_finite_differences_for_every_loss_and_activation() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut spec = ModelSpec::mirrored(&[6, 5, 3]);
            spec.activation = act;
            spec.code_activation = act;
            spec.output_activation = output;
            spec.loss = loss;
            worst = worst.max(check(&spec));
        }
    }
    eprintln!("worst relative gradient error {worst:.2e}");
}

#[test]
fn gradients_match_with_an_asymmetric_decoder() {
    let mut spec = ModelSpec::mirrored(&[7, 4, 2]);
    spec.decoder = vec![2, 6, 3, 7];
    spec.activation = Activation::Tanh;
    check(&spec);
}

fn variant(encoder: &[usize], act: Activation, code: Activation, v: Variant) -> ModelSpec {
    let mut spec = ModelSpec::mirrored(encoder);
    spec.activation = act;
    spec.code_activation = code;
    spec.variant = v;
    spec
}

#[test]
fn sparse_penalties_have_exact_gradients() {
    let l1 = Variant::Sparse {
        lambda: 0.3,
        target: None,
    };
    check(&variant(&[6, 5, 3], Activation::Tanh, Activation::Tanh, l1));
    check(&variant(
        &[6, 5, 3],
        Activation::Sigmoid,
        Activation::Identity,
        l1,
    ));
    let kl = Variant::Sparse {
        lambda: 0.7,
        target: Some(0.1),
    };
    check(&variant(
        &[6, 5, 3],
        Activation::Relu,
        Activation::Sigmoid,
        kl,
    ));
}

#[test]
fn contractive_penalty_has_exact_gradients_in_all_three_forms() {
    // Closed form: one sigmoid layer.
    let exact = Variant::Contractive {
        lambda: 0.5,
        projections: None,
    };
    check(&variant(
        &[6, 4],
        Activation::Relu,
        Activation::Sigmoid,
        exact,
    ));
    // Exact deep form, through every activation's second derivative.
    for act in Activation::ALL {
        check(&variant(&[6, 5, 3], act, Activation::Tanh, exact));
        check(&variant(&[6, 5, 3], Activation::Sigmoid, act, exact));
    }
    // Stochastic estimate, the projections held fixed.
    let stochastic = Variant::Contractive {
        lambda: 0.5,
        projections: Some(3),
    };
    check(&variant(
        &[6, 5, 3],
        Activation::Tanh,
        Activation::Sigmoid,
        stochastic,
    ));
    check(&variant(
        &[6, 4],
        Activation::Relu,
        Activation::Sigmoid,
        stochastic,
    ));
}

#[test]
fn vae_loss_has_exact_gradients() {
    for (samples, loss) in [(1, Loss::Bce), (3, Loss::Mse)] {
        let mut spec = variant(
            &[6, 5, 3],
            Activation::Tanh,
            Activation::Identity,
            Variant::Vae { beta: 0.8, samples },
        );
        spec.loss = loss;
        check(&spec);
    }
    // No trunk: the heads read the input directly.
    check(&variant(
        &[6, 2],
        Activation::Relu,
        Activation::Identity,
        Variant::Vae {
            beta: 1.0,
            samples: 2,
        },
    ));
}

#[test]
fn denoising_and_tied_models_have_exact_gradients() {
    for noise in [
        Noise::Mask { nu: 0.3 },
        Noise::Gaussian { sigma: 0.2 },
        Noise::SaltPepper { nu: 0.2 },
    ] {
        check(&variant(
            &[6, 5, 3],
            Activation::Sigmoid,
            Activation::Tanh,
            Variant::Denoising { noise },
        ));
    }
    let mut tied = variant(
        &[6, 5, 3],
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    tied.tied = true;
    check(&tied);
    tied.variant = Variant::Contractive {
        lambda: 0.4,
        projections: None,
    };
    check(&tied);
}
