//! The contractive penalty measures what it claims: ‖∂h/∂x‖²_F equals a Jacobian built column by
//! column with finite differences (closed form and exact deep form), and the random-projection
//! estimate is unbiased.

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::graph::{StepParams, build_inference_graph, build_training_graph};
use hourglass::model::{Activation, ModelSpec, Variant};
use hourglass::optim::OptimizerConfig;

const BATCH: usize = 4;

fn spec(
    encoder: &[usize],
    act: Activation,
    code: Activation,
    projections: Option<u32>,
) -> ModelSpec {
    let mut s = ModelSpec::mirrored(encoder);
    s.activation = act;
    s.code_activation = code;
    s.variant = Variant::Contractive {
        lambda: 1.0,
        projections,
    };
    s
}

fn params(spec: &ModelSpec) -> Vec<f64> {
    let len = hourglass::model::ParamLayout::new(spec).len;
    common::random(len, -0.9, 0.9, 21)
        .into_iter()
        .map(f64::from)
        .collect()
}

fn data(spec: &ModelSpec) -> Vec<f64> {
    common::random(BATCH * spec.input_dim(), 0.0, 1.0, 22)
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Per-example penalty rows of the training graph at `step` (λ = 1).
fn penalty_rows(spec: &ModelSpec, step: u32) -> Vec<f64> {
    let tg = build_training_graph(spec, BATCH, BATCH, &OptimizerConfig::adam(1e-3));
    let mut exec = CpuExecutor::<f64>::new(tg.graph.clone()).unwrap();
    exec.write(tg.params.buf, &params(spec)).unwrap();
    exec.write(tg.data.buf, &data(spec)).unwrap();
    exec.write_u32(tg.order.buf, &(0..BATCH as u32).collect::<Vec<_>>())
        .unwrap();
    let s = StepParams {
        step,
        seed_lo: 99,
        ..StepParams::default()
    };
    exec.run(0..tg.graph.update_start, &[s]).unwrap();
    let term = tg
        .terms
        .iter()
        .find(|t| t.name == "contractive")
        .expect("term");
    exec.view(term.values).unwrap().to_vec()
}

/// ‖J‖²_F of each example by central differences of the encoder, one input at a time.
fn brute_force(spec: &ModelSpec) -> Vec<f64> {
    let ig = build_inference_graph(spec, BATCH, false);
    let mut exec = CpuExecutor::<f64>::new(ig.graph.clone()).unwrap();
    exec.write(ig.params.buf, &params(spec)).unwrap();
    let x = data(spec);
    let d = spec.input_dim();
    let h = 1e-6;
    let mut norms = vec![0.0; BATCH];
    let mut code_at = |x: &[f64]| {
        exec.write(ig.input.buf, x).unwrap();
        exec.run(0..ig.graph.ops.len(), &[StepParams::default()])
            .unwrap();
        exec.view(ig.code).unwrap().to_vec()
    };
    for i in 0..d {
        let (mut up, mut down) = (x.clone(), x.clone());
        for b in 0..BATCH {
            up[b * d + i] += h;
            down[b * d + i] -= h;
        }
        let (cu, cd) = (code_at(&up), code_at(&down));
        let c = spec.code_dim();
        for b in 0..BATCH {
            for j in 0..c {
                let col = (cu[b * c + j] - cd[b * c + j]) / (2.0 * h);
                norms[b] += col * col;
            }
        }
    }
    norms
}

#[test]
fn exact_penalty_equals_a_brute_force_jacobian() {
    let cases = [
        spec(&[7, 5], Activation::Relu, Activation::Sigmoid, None), // closed form
        spec(&[7, 6, 3], Activation::Tanh, Activation::Sigmoid, None),
        spec(
            &[7, 6, 5, 2],
            Activation::Sigmoid,
            Activation::Identity,
            None,
        ),
        spec(&[7, 6, 3], Activation::LeakyRelu, Activation::Tanh, None),
    ];
    for s in cases {
        let exact = penalty_rows(&s, 1);
        let brute = brute_force(&s);
        for (e, b) in exact.iter().zip(&brute) {
            assert!(
                (e - b).abs() <= 1e-7 * b.abs().max(1.0),
                "{:?}/{:?}: penalty {e} vs brute-force ‖J‖² {b}",
                s.encoder,
                s.activation
            );
        }
    }
}

#[test]
fn projection_estimate_is_unbiased() {
    for encoder in [&[7usize, 5][..], &[7, 6, 3]] {
        let exact = penalty_rows(
            &spec(encoder, Activation::Tanh, Activation::Sigmoid, None),
            1,
        );
        let stochastic = spec(encoder, Activation::Tanh, Activation::Sigmoid, Some(2));
        let draws: Vec<Vec<f64>> = (1..=2000).map(|t| penalty_rows(&stochastic, t)).collect();
        for b in 0..BATCH {
            let xs: Vec<f64> = draws.iter().map(|d| d[b]).collect();
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let se = (var / n).sqrt();
            assert!(
                (mean - exact[b]).abs() < 3.0 * se,
                "{encoder:?} example {b}: estimate {mean} ± {se} vs exact {}",
                exact[b]
            );
            assert!(se > 0.0, "the estimate varies between steps");
        }
    }
}

#[test]
fn jacobian_matrices_match_the_penalty_and_a_linear_encoder_s_weight() {
    use hourglass::data::Dataset;
    use hourglass::infer::jacobians;
    use hourglass::model::Parameters;
    use hourglass::train::Device;
    // Deep tanh encoder: Σ of squares of each Jacobian equals the exact penalty row.
    let deep = spec(&[7, 6, 3], Activation::Tanh, Activation::Sigmoid, None);
    let p: Vec<f32> = params(&deep).iter().map(|&x| x as f32).collect();
    let layout = hourglass::model::ParamLayout::new(&deep);
    let x: Vec<f32> = data(&deep).iter().map(|&x| x as f32).collect();
    let ds = Dataset::new(BATCH, 7, x).expect("data");
    let params = Parameters { layout, arena: p };
    let js = jacobians(&deep, &params, &ds, &Device::Cpu).expect("jacobians");
    let rows = penalty_rows(&deep, 1);
    for (j, r) in js.iter().zip(&rows) {
        let ss: f64 = j.iter().map(|&v| f64::from(v).powi(2)).sum();
        assert!((ss - r).abs() < 1e-5 * r.max(1.0), "{ss} vs {r}");
    }
    // Linear encoder: the Jacobian is the weight matrix at every input.
    let mut linear = ModelSpec::mirrored(&[7, 3]);
    linear.code_activation = Activation::Identity;
    let lp = Parameters::init(&linear, 4);
    let w = lp.get("encoder.0.weight").expect("weight").to_vec();
    for j in jacobians(&linear, &lp, &ds, &Device::Cpu).expect("jacobians") {
        assert_eq!(j, w);
    }
}
