//! The convolution ops by their definition, in f64 with direct loops: the oracle the conv twins
//! ([`super::conv`]) and the WGSL kernels are tested against. Slow; not used by any executor.

use crate::graph::ConvShape;

/// The input index read by output `(oh, ow)` at tap `(ki, kj)`, `None` in the padding.
fn source(s: &ConvShape, oh: usize, ow: usize, ki: usize, kj: usize) -> Option<(usize, usize)> {
    let ih = (oh * s.stride + ki).checked_sub(s.pad)?;
    let iw = (ow * s.stride + kj).checked_sub(s.pad)?;
    (ih < s.in_h && iw < s.in_w).then_some((ih, iw))
}

/// Calls `f(x index, y index, w index)` for every multiply-accumulate
/// of the convolution.
fn each_mac(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let k = s.kernel;
    for b in 0..s.batch {
        for o in 0..s.out_c {
            for oh in 0..s.out_h {
                for ow in 0..s.out_w {
                    let yi = b * s.out_len() + (o * s.out_h + oh) * s.out_w + ow;
                    for c in 0..s.in_c {
                        for ki in 0..k {
                            for kj in 0..k {
                                if let Some((ih, iw)) = source(s, oh, ow, ki, kj) {
                                    let xi = b * s.in_len() + (c * s.in_h + ih) * s.in_w + iw;
                                    let wi = ((o * s.in_c + c) * k + ki) * k + kj;
                                    f(xi, yi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y[b, o, oh, ow] = Σ_{c, ki, kj} w[o, c, ki, kj] · x[b, c, oh·s − pad + ki, ow·s − pad + kj]`.
pub fn conv2d(s: &ConvShape, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; s.batch * s.out_len()];
    each_mac(s, |xi, yi, wi| y[yi] += w[wi] * x[xi]);
    y
}

/// The adjoint of [`conv2d`] in `x`: `dx[xi] = Σ w[wi] · dy[yi]` over the same index triples.
pub fn conv2d_input_grad(s: &ConvShape, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.batch * s.in_len()];
    each_mac(s, |xi, yi, wi| dx[xi] += w[wi] * dy[yi]);
    dx
}

/// The gradient of `⟨dy, conv2d(x, w)⟩` in `w`: `dw[wi] = Σ x[xi] · dy[yi]`.
pub fn conv2d_weight_grad(s: &ConvShape, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; s.weight_len()];
    each_mac(s, |xi, yi, wi| dw[wi] += x[xi] * dy[yi]);
    dw
}

/// `out[c] = Σ_rows Σ_p x[row, c·P + p]`.
pub fn channel_sum(x: &[f64], cols: usize, channels: usize) -> Vec<f64> {
    let positions = cols / channels;
    let mut out = vec![0.0; channels];
    for row in x.chunks(cols) {
        for (c, o) in out.iter_mut().enumerate() {
            *o += row[c * positions..(c + 1) * positions].iter().sum::<f64>();
        }
    }
    out
}
