//! Helpers shared by the integration tests: the GPU context, seeded random fills and the
//! comparison that prints where two results disagree.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use hourglass::gpu::GpuContext;
use hourglass::rng::{Sequence, Stream};

/// The GPU every test in this binary shares. Fails the test when no adapter exists: in CI
/// (`CI` set) always; elsewhere unless `HOURGLASS_SKIP_GPU_TESTS=1` is set, which then skips.
pub fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CTX.get_or_init(|| GpuContext::new(None).map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx.clone()),
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
