//! Finite-difference checks, in f64 on the CPU reference, of the gradients the training graph
//! computes: every loss, every activation, through a deep autoencoder (the op under test sits in
//! the middle of a graph, not alone).

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::graph::{StepParams, TrainingGraph, build_training_graph};
use hourglass::model::{Activation, Loss, ModelSpec};
use hourglass::optim::OptimizerConfig;

/// Loss of the graph's current parameters, and their gradient arena.
fn loss_and_grads(exec: &mut CpuExecutor<f64>, tg: &TrainingGraph) -> (f64, Vec<f64>) {
    exec.run(0..tg.graph.update_start, &[StepParams::default()]);
    let loss: f64 = exec.view(tg.row_loss).iter().sum::<f64>() / tg.batch.rows as f64;
    (loss, exec.view(tg.grads).to_vec())
}

fn check(spec: &ModelSpec) -> f64 {
    spec.validate().expect("valid spec");
    let batch = 3;
    let rows = 5;
    let tg = build_training_graph(spec, batch, rows, &OptimizerConfig::adam(1e-3));
    let mut exec = CpuExecutor::<f64>::new(tg.graph.clone());
    // Random parameters (biases too: zero biases would hide bias-gradient bugs) and data.
    let params: Vec<f64> = common::random(tg.layout.len, -0.8, 0.8, 11)
        .into_iter()
        .map(f64::from)
        .collect();
    let data: Vec<f64> = common::random(rows * spec.input_dim(), 0.0, 1.0, 12)
        .into_iter()
        .map(f64::from)
        .collect();
    exec.write(tg.params.buf, &params);
    exec.write(tg.data.buf, &data);
    exec.write_u32(tg.order.buf, &[4, 1, 3, 0, 2]);

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
            exec.write(tg.params.buf, &p);
            let (up, _) = loss_and_grads(&mut exec, &tg);
            p[i] -= 2.0 * h;
            exec.write(tg.params.buf, &p);
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
    exec.write(tg.params.buf, &params);
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
