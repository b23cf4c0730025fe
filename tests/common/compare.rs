//! Elementwise comparisons of parameter vectors shared by the data-parallel tests (in-process
//! ranks and mpirun), included by `#[path]` so tests/distributed.rs needs none of tests/common's
//! GPU helpers.

/// The worst `|a − b| / (atol + rtol·|b|)` over the elements, and where.
pub fn worst_scaled(a: &[f32], b: &[f32], atol: f64, rtol: f64) -> (f64, usize) {
    let mut worst = (0.0f64, 0);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let e = f64::from(x - y).abs() / (atol + rtol * f64::from(y).abs());
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

/// Whether `a` and `b` hold the same bits.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
