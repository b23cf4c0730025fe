//! The WGSL Philox twin (`shaders/rng.wgsl`) against `hourglass::rng`, through the ops that draw
//! random numbers: the same words bit for bit (masks and salt-and-pepper values must be
//! identical) and Gaussian values to a few ulp; then the moments of 10⁶ draws on each side.

mod common;

use common::gpu;
use hourglass::cpu::CpuExecutor;
use hourglass::gpu::GpuExecutor;
use hourglass::graph::{Graph, Op, StepParams, Tensor};
use hourglass::model::Noise;
use hourglass::rng::{Stream, element_block, gaussian_f32, unit_f32, unit_open_f32};

const DRAWS: usize = 1_000_000;

/// Steps with ordinary, all-ones and zero key words, so every carry path of the 16-bit
/// multiply is taken.
const STEPS: [(u32, u32, u32); 3] = [
    (0x9E37_79B9, 0x0000_BEEF, 3),
    (u32::MAX, u32::MAX, u32::MAX),
    (1, 0, 1),
];

fn step_params((seed_lo, seed_hi, step): (u32, u32, u32)) -> StepParams {
    StepParams {
        step,
        seed_lo,
        seed_hi,
        ..Default::default()
    }
}

/// Runs a one-op graph on both executors from the same input `fill` and returns the output
/// view as (GPU, CPU). `None` when the GPU tests are skipped.
fn run_both(
    graph: Graph,
    fill: &[(usize, Vec<f32>)],
    out: Tensor,
    s: StepParams,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let ctx = gpu()?;
    let mut cpu = CpuExecutor::<f32>::new(graph.clone()).unwrap();
    let mut gpu = GpuExecutor::new(ctx, graph.clone()).expect("GPU executor");
    for (id, v) in fill {
        cpu.write(*id, v).unwrap();
        gpu.write(*id, v).expect("a float write");
    }
    let ops = 0..graph.ops.len();
    cpu.run(ops.clone(), &[s]).unwrap();
    let got = gpu.run_and_read(ops, &[s], out).expect("GPU run");
    Some((got, cpu.view(out).unwrap().to_vec()))
}

fn corrupt_graph(n: usize, noise: Noise) -> (Graph, Tensor) {
    let mut g = Graph::default();
    let x = g.matrix("x", 1, n);
    let out = g.matrix("out", 1, n);
    g.push(Op::Corrupt { x, out, noise });
    (g, out)
}

fn directions_graph(n: usize) -> (Graph, Tensor) {
    let mut g = Graph::default();
    let out = g.matrix("out", 1, n);
    g.push(Op::Directions {
        out,
        batch: 1,
        exact: false,
    });
    (g, out)
}

#[test]
fn wgsl_philox_words_equal_the_rust_ones_bit_for_bit() {
    let n = 100_003;
    // Inputs in [1, 2): a zero or a one in the output can only come from the noise.
    let x: Vec<f32> = (0..n).map(|i| 1.0 + (i % 1000) as f32 / 1000.0).collect();
    for st in STEPS {
        let s = step_params(st);
        // Masks compare the top 24 bits of word 0 with ν; salt-and-pepper values are bit 31
        // of word 1.
        for noise in [
            Noise::Mask { nu: 0.1 },
            Noise::Mask { nu: 0.5 },
            Noise::Mask { nu: 0.9 },
            Noise::SaltPepper { nu: 0.75 },
        ] {
            let (g, out) = corrupt_graph(n, noise);
            let Some((got, want)) = run_both(g, &[(0, x.clone())], out, s) else {
                return;
            };
            let differ: Vec<usize> = (0..n)
                .filter(|&i| got[i].to_bits() != want[i].to_bits())
                .collect();
            assert!(
                differ.is_empty(),
                "{noise:?} at {st:?}: {} of {n} elements differ, first at {:?}",
                differ.len(),
                &differ[..differ.len().min(5)]
            );
            let zeros = want.iter().filter(|&&v| v == 0.0).count();
            assert!(zeros > 0 && zeros < n, "{noise:?}: {zeros} zeros of {n}");
        }
    }
}

#[test]
fn wgsl_gaussians_match_rust_to_a_few_ulp() {
    let n = 200_003;
    for st in STEPS {
        let s = step_params(st);
        let (g, out) = directions_graph(n);
        let Some((got, want)) = run_both(g, &[], out, s) else {
            return;
        };
        let (worst, at) = got
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(i, (&a, &b))| {
                let e = (f64::from(a) - f64::from(b)).abs() / f64::from(b).abs().max(1.0);
                (if e.is_nan() { f64::INFINITY } else { e }, i)
            })
            .fold((0.0f64, 0), |m, e| if e.0 > m.0 { e } else { m });
        eprintln!(
            "gaussians at {st:?}: worst |gpu − cpu| / max(1, |cpu|) = {worst:.2e} at {at} \
             (gpu {}, cpu {})",
            got[at], want[at]
        );
        assert!(
            worst <= 1e-6,
            "gaussian {at} at {st:?}: gpu {} cpu {} (error {worst:.2e})",
            got[at],
            want[at]
        );
    }
}

/// Mean and variance in f64.
fn moments(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for x in v {
        n += 1.0;
        sum += x;
        sq += x * x;
    }
    let mean = sum / n;
    (mean, sq / n - mean * mean)
}

/// Checks mean 0, variance 1 and fourth moment 3 of standard normal draws, each within five
/// standard errors.
fn assert_standard_normal(what: &str, g: &[f32]) {
    let n = g.len() as f64;
    let (mean, var) = moments(g.iter().map(|&x| f64::from(x)));
    let m4 = g.iter().map(|&x| f64::from(x).powi(4)).sum::<f64>() / n;
    eprintln!("{what}: mean {mean:.2e}, variance {var:.5}, fourth moment {m4:.4}");
    assert!(mean.abs() < 5.0 / n.sqrt(), "{what}: mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(),
        "{what}: variance {var}"
    );
    // Var(x⁴) = E x⁸ − (E x⁴)² = 105 − 9.
    assert!(
        (m4 - 3.0).abs() < 5.0 * (96.0 / n).sqrt(),
        "{what}: E x⁴ = {m4}"
    );
    assert!(
        g.iter().all(|x| x.is_finite()),
        "{what}: a draw is not finite"
    );
}

/// Checks that a fraction `p` of `n` Bernoulli(ν) trials is within five standard errors of ν.
fn assert_proportion(what: &str, p: f64, nu: f64, n: usize) {
    let bound = 5.0 * (nu * (1.0 - nu) / n as f64).sqrt();
    eprintln!("{what}: proportion {p:.5} for ν = {nu:.3} (bound ±{bound:.1e})");
    assert!(
        (p - nu).abs() < bound,
        "{what}: proportion {p} for ν = {nu:.3}"
    );
}

#[test]
fn rust_draws_have_the_right_moments() {
    let (lo, hi, step) = STEPS[0];
    let blocks: Vec<[u32; 4]> = (0..DRAWS as u32)
        .map(|i| element_block(lo, hi, Stream::Noise, step, i))
        .collect();
    let n = DRAWS as f64;
    // Every word of the block is uniform: mean ½, variance 1/12, Var((u − ½)²) = 1/180.
    for word in 0..4 {
        let (mean, var) = moments(blocks.iter().map(|w| f64::from(unit_f32(w[word]))));
        eprintln!("word {word}: uniform mean {mean:.5}, variance {var:.6}");
        assert!(
            (mean - 0.5).abs() < 5.0 * (1.0 / 12.0 / n).sqrt(),
            "word {word}: mean {mean}"
        );
        assert!(
            (var - 1.0 / 12.0).abs() < 5.0 * (1.0 / 180.0 / n).sqrt(),
            "word {word}: variance {var}"
        );
    }
    assert!(blocks.iter().all(|w| {
        let u = unit_open_f32(w[0]);
        u > 0.0 && u <= 1.0 && unit_f32(w[1]) < 1.0
    }));
    let g: Vec<f32> = blocks.iter().map(|w| gaussian_f32(w[0], w[1])).collect();
    assert_standard_normal("CPU gaussians", &g);
    let nu = 0.3;
    let masked = blocks.iter().filter(|w| unit_f32(w[0]) < nu).count();
    assert_proportion("CPU mask", masked as f64 / n, f64::from(nu), DRAWS);
}

#[test]
fn wgsl_draws_have_the_right_moments() {
    let s = step_params(STEPS[0]);
    let (g, out) = directions_graph(DRAWS);
    let Some((gauss, _)) = run_both(g, &[], out, s) else {
        return;
    };
    assert_standard_normal("GPU gaussians", &gauss);

    let nu = 0.3;
    let (g, out) = corrupt_graph(DRAWS, Noise::Mask { nu });
    let Some((masked, _)) = run_both(g, &[(0, vec![1.0; DRAWS])], out, s) else {
        return;
    };
    let zeros = masked.iter().filter(|&&v| v == 0.0).count();
    assert_proportion(
        "GPU mask",
        zeros as f64 / DRAWS as f64,
        f64::from(nu),
        DRAWS,
    );
}

#[test]
fn draws_depend_on_seed_step_and_stream() {
    let n = 10_000u32;
    let base = |lo, hi, stream, step| -> Vec<[u32; 4]> {
        (0..n)
            .map(|i| element_block(lo, hi, stream, step, i))
            .collect()
    };
    let a = base(1, 2, Stream::Noise, 3);
    for (what, b) in [
        ("seed_lo", base(5, 2, Stream::Noise, 3)),
        ("seed_hi", base(1, 3, Stream::Noise, 3)),
        ("stream", base(1, 2, Stream::Sampler, 3)),
        ("step", base(1, 2, Stream::Noise, 4)),
    ] {
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert_eq!(same, 0, "changing the {what} left {same} blocks unchanged");
    }
    // And on the GPU: two steps of the same op draw different directions.
    let (g, out) = directions_graph(n as usize);
    let Some((s3, _)) = run_both(g.clone(), &[], out, step_params((1, 2, 3))) else {
        return;
    };
    let Some((s4, _)) = run_both(g, &[], out, step_params((1, 2, 4))) else {
        return;
    };
    let same = s3.iter().zip(&s4).filter(|(x, y)| x == y).count();
    assert!(same < 10, "{same} of {n} draws repeat across steps");
}
