//! Helpers shared by the integration tests: the GPU context, seeded random fills and the
//! comparison that prints where two results disagree.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod gradcheck;

use std::sync::{Arc, OnceLock};

use hourglass::cpu::CpuExecutor;
use hourglass::gpu::{Backend, GpuContext, GpuExecutor, GpuOptions};
use hourglass::graph::{BufferDesc, DType, Graph, StepParams};
use hourglass::rng::{Sequence, Stream};

/// The backend the GPU tests run on: `HOURGLASS_TEST_BACKEND` (`vulkan`, `gl`, ...; a test-only
/// variable: tests may read the environment, the library may not), else wgpu's primary
/// backends. CI runs the GPU test binaries once with each of the default and `gl`; run the `gl`
/// pass with `-- --test-threads=1`: the tests of a binary share one context ([`gpu`]), and
/// wgpu-hal's GL backend panics ("Could not lock adapter context") when one thread waits more
/// than 6 s for the context another thread holds through a long llvmpipe dispatch.
pub fn test_backend() -> Backend {
    match std::env::var("HOURGLASS_TEST_BACKEND") {
        Ok(v) if !v.is_empty() => {
            Backend::parse(&v).unwrap_or_else(|e| panic!("HOURGLASS_TEST_BACKEND: {e}"))
        }
        _ => Backend::Auto,
    }
}

/// The options of the tests' GPU contexts: [`test_backend`], and no cache folder.
pub fn gpu_options() -> GpuOptions {
    GpuOptions::default().with_backends(test_backend())
}

/// The GPU every test in this binary shares, on [`test_backend`]. Fails the test when no
/// adapter exists: in CI (`CI` set) always; elsewhere unless `HOURGLASS_SKIP_GPU_TESTS=1` is
/// set, which then skips.
pub fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CTX.get_or_init(|| GpuContext::with_options(&gpu_options()).map_err(|e| e.to_string())) {
        Ok(ctx) => {
            let want = test_backend();
            assert!(
                want == Backend::Auto || ctx.backend() == want,
                "HOURGLASS_TEST_BACKEND={want:?} but the context runs on {:?}",
                ctx.backend()
            );
            Some(ctx.clone())
        }
        Err(e) => {
            let skip = std::env::var("HOURGLASS_SKIP_GPU_TESTS").is_ok_and(|v| v == "1")
                && std::env::var("CI").is_err();
            if skip {
                eprintln!("skipping a GPU test: {e}");
                None
            } else {
                panic!("this test needs a GPU adapter (lavapipe will do): {e}");
            }
        }
    }
}

/// `n` floats uniform in [lo, hi), reproducible from `seed`.
pub fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Sequence::new(seed, Stream::Init, 999);
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// max |got − want| / max |want|: the error relative to the result's scale. Prints the worst
/// elements when it exceeds `tol` and returns it.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0.0f64, |m, &w| m.max(f64::from(w).abs()));
    let scale = if scale == 0.0 { 1.0 } else { scale };
    let mut worst: Vec<(f64, usize)> = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| {
            let e = (f64::from(g) - f64::from(w)).abs() / scale;
            (if e.is_nan() { f64::INFINITY } else { e }, i)
        })
        .collect();
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    let err = worst.first().map_or(0.0, |w| w.0);
    if err > tol {
        let lines: Vec<String> = worst
            .iter()
            .take(5)
            .map(|&(e, i)| format!("  [{i}] got {} want {} (rel {e:.2e})", got[i], want[i]))
            .collect();
        panic!(
            "{what}: relative error {err:.3e} > {tol:.0e} (scale {scale:.3e})\n{}",
            lines.join("\n")
        );
    }
    err
}

/// Eigen-decomposition of a symmetric `n×n` matrix by cyclic Jacobi rotations — the tests' own,
/// kept apart from `hourglass::analysis`'s so that checks of the library's tangents do not
/// grade it with itself: eigenvalues in
/// descending order, and eigenvectors as the columns of the row-major `n×n` result.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
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

/// Orthonormal basis (Gram–Schmidt) of the `k` columns of a row-major `n×k` matrix.
pub fn orthonormal_columns(m: &[f64], n: usize, k: usize) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for j in 0..k {
        let mut col: Vec<f64> = (0..n).map(|i| m[i * k + j]).collect();
        for _ in 0..2 {
            for b in &basis {
                let d: f64 = col.iter().zip(b).map(|(x, y)| x * y).sum();
                col.iter_mut().zip(b).for_each(|(x, y)| *x -= d * y);
            }
        }
        let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt();
        basis.push(col.iter().map(|x| x / norm).collect());
    }
    basis
}

/// The largest principal angle (radians) between the spans of two orthonormal bases of equal size.
pub fn largest_principal_angle(u: &[Vec<f64>], v: &[Vec<f64>]) -> f64 {
    let k = u.len();
    // Singular values of UᵀV are the cosines; get them as eigenvalues of (UᵀV)ᵀ(UᵀV).
    let m: Vec<f64> = (0..k)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| u[i].iter().zip(&v[j]).map(|(a, b)| a * b).sum())
        .collect();
    let mtm: Vec<f64> = (0..k)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| (0..k).map(|r| m[r * k + i] * m[r * k + j]).sum())
        .collect();
    let (eig, _) = symmetric_eigen(&mtm, k);
    let smallest_cos = eig.last().copied().unwrap_or(1.0).max(0.0).sqrt().min(1.0);
    smallest_cos.acos()
}

/// Fills every float buffer of `graph` with seeded values in the range `range(buffer)` gives,
/// writes the given index buffers, runs `ops` once on the CPU reference and on the GPU, and
/// compares every float buffer with the tolerance `tol(buffer name)`. Returns the worst error.
pub fn compare_executors(
    what: &str,
    graph: Graph,
    ops: std::ops::Range<usize>,
    range: impl Fn(&BufferDesc) -> (f32, f32),
    indices: &[(usize, Vec<u32>)],
    step: StepParams,
    tol: impl Fn(&str) -> f64,
) -> f64 {
    let Some(ctx) = gpu() else { return 0.0 };
    let mut cpu = CpuExecutor::<f32>::new(graph.clone()).expect("CPU executor");
    let mut dev = GpuExecutor::new(ctx, graph.clone()).expect("GPU executor");
    for (id, desc) in graph.buffers.iter().enumerate() {
        if desc.dtype == DType::F32 {
            let (lo, hi) = range(desc);
            let v = random(desc.len, lo, hi, 1000 + id as u64);
            cpu.write(id, &v).unwrap();
            dev.write(id, &v).expect("a float write");
        }
    }
    for (id, v) in indices {
        cpu.write_u32(*id, v).unwrap();
        dev.write_u32(*id, v).expect("an index write");
    }
    cpu.run(ops.clone(), &[step]).unwrap();
    dev.run(ops, &[step]).expect("GPU run");
    let mut worst = 0.0f64;
    for (id, desc) in graph.buffers.iter().enumerate() {
        if desc.dtype == DType::F32 {
            let got = dev.read_buffer(id).expect("read back");
            let e = assert_close(
                &format!("{what}: buffer '{}'", desc.name),
                &got,
                cpu.read(id).unwrap(),
                tol(&desc.name),
            );
            worst = worst.max(e);
        }
    }
    worst
}
