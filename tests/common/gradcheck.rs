//! The finite-difference check of a whole training graph, in f64 on the CPU reference: every
//! parameter's analytic gradient against a central difference of the loss (tests/gradcheck.rs
//! for dense models, tests/gradcheck_conv.rs for conv models).

use hourglass::cpu::CpuExecutor;
use hourglass::graph::{StepParams, TrainingGraph, build_training_graph};
use hourglass::model::ModelSpec;
use hourglass::optim::OptimizerConfig;

/// Loss of the graph's current parameters, and their gradient arena.
pub fn loss_and_grads(exec: &mut CpuExecutor<f64>, tg: &TrainingGraph) -> (f64, Vec<f64>) {
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

/// The worst relative error between the analytic and the central-difference gradient of every
/// parameter of `spec` on a batch of 3 of 5 random rows, each asserted below 1e-5.
pub fn check(spec: &ModelSpec) -> f64 {
    spec.validate().expect("valid spec");
    let (batch, rows) = (3, 5);
    let tg = build_training_graph(spec, batch, rows, &OptimizerConfig::adam(1e-3));
    tg.graph.validate().expect("a valid graph");
    let mut exec = CpuExecutor::<f64>::new(tg.graph.clone()).unwrap();
    // Random parameters (biases too: zero biases would hide bias-gradient bugs) and data.
    let params: Vec<f64> = super::random(tg.layout.len, -0.8, 0.8, 11)
        .into_iter()
        .map(f64::from)
        .collect();
    let data: Vec<f64> = super::random(rows * spec.input_dim(), 0.0, 1.0, 12)
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
                "{}: d loss / d {}[{}]: analytic {} numeric {numeric} (rel {err:.2e})",
                spec.to_json(),
                t.name,
                i - t.offset,
                grads[i]
            );
            worst = worst.max(err);
        }
    }
    worst
}
