//! The CPU twins of the conv kernels (shaders/conv2d*.wgsl), by im2col and the executor's GEMM.
//!
//! For one image, `cols [taps, P]` (taps = in_c·k², P = out_h·out_w) holds in column `p` the
//! input values under the kernel at output position `p` (0 where it hangs over the padding).
//! Then, per image:
//! - forward: `y [out_c, P] = w [out_c, taps] · cols`, then the epilogue per output channel;
//! - input gradient: `dcols = wᵀ · dy [out_c, P]`, scattered back onto the image (col2im,
//!   the adjoint of im2col), then the epilogue per input channel;
//! - weight gradient: `dw += dy [out_c, P] · colsᵀ`.
//!
//! A product with P columns is small (conv_ae's second layer has P = 49), and a GEMM that short
//! runs at a third of the machine's speed, so images go through the products in chunks of
//! [`chunk`] side by side: `cols [taps, n·P]` for n images, and the `[out_c, P]` blocks of dy or y
//! gathered into (scattered from) one `[out_c, n·P]` matrix, a copy that costs 1/taps of the
//! product.
//!
//! The batch is cut into one slice of images per thread; each runs single-threaded products on
//! its own scratch (allocated once by the executor, [`ConvScratch`]) and the weight gradient
//! sums the threads' partial gradients in a fixed order.

use rayon::prelude::*;

use super::kernels::{CpuEpilogue, Real, act_grad, activate};
use crate::graph::ConvShape;

/// Columns a chunk of images should give the products (at least one image).
const CHUNK_COLUMNS: usize = 192;

/// Images that go through the products together: enough for [`CHUNK_COLUMNS`] columns.
pub fn chunk(s: &ConvShape) -> usize {
    CHUNK_COLUMNS
        .div_ceil(s.out_positions())
        .clamp(1, s.batch.max(1))
}

/// Per-thread scratch for the conv twins: per worker, the `cols` matrix and the gathered
/// `[out_c, n·P]` matrix of one chunk and a partial weight gradient, grown to the largest conv
/// op of a graph once and reused every step.
#[derive(Debug)]
pub struct ConvScratch<T> {
    workers: Vec<Worker<T>>,
}

impl<T> Default for ConvScratch<T> {
    fn default() -> Self {
        ConvScratch {
            workers: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Worker<T> {
    cols: Vec<T>,
    gathered: Vec<T>,
    dw: Vec<T>,
    /// The op's [`tap_map`].
    map: Vec<u32>,
}

impl<T: Real> ConvScratch<T> {
    /// Scratch for `shapes` on `threads` workers.
    pub fn new<'a>(shapes: impl IntoIterator<Item = &'a ConvShape>, threads: usize) -> Self {
        let mut s = ConvScratch::default();
        for shape in shapes {
            s.reserve(shape, threads);
        }
        s
    }

    /// Grows the scratch to hold `shape` on `threads` workers (nothing when it already does).
    pub fn reserve(&mut self, shape: &ConvShape, threads: usize) {
        let workers = threads.clamp(1, shape.batch.max(1));
        if self.workers.len() < workers {
            self.workers.resize_with(workers, || Worker {
                cols: Vec::new(),
                gathered: Vec::new(),
                dw: Vec::new(),
                map: Vec::new(),
            });
        }
        let columns = chunk(shape) * shape.out_positions();
        let grow = |v: &mut Vec<T>, len: usize| {
            if v.len() < len {
                v.resize(len, T::zero());
            }
        };
        for w in &mut self.workers {
            grow(&mut w.cols, shape.taps() * columns);
            grow(&mut w.gathered, shape.out_c * columns);
            grow(&mut w.dw, shape.weight_len());
            w.map
                .reserve(shape.kernel * shape.kernel * shape.out_positions());
        }
    }

    /// The workers `shape` runs on, each with the shape's [`tap_map`] (growing the scratch
    /// when a caller skipped `reserve`).
    fn workers(&mut self, shape: &ConvShape) -> &mut [Worker<T>] {
        self.reserve(shape, rayon::current_num_threads());
        let n = rayon::current_num_threads().clamp(1, shape.batch.max(1));
        for w in &mut self.workers[..n] {
            tap_map(shape, &mut w.map);
        }
        &mut self.workers[..n]
    }
}

/// Images `[start, end)` of worker `i` of `n` over a batch of `batch`.
fn slice(batch: usize, n: usize, i: usize) -> std::ops::Range<usize> {
    (batch * i / n)..(batch * (i + 1) / n)
}

/// The chunks of [`chunk`] images of worker `i`'s slice: (first image, images).
fn chunks(s: &ConvShape, n: usize, i: usize) -> impl Iterator<Item = (usize, usize)> {
    let r = slice(s.batch, n, i);
    let c = chunk(s);
    r.clone().step_by(c).map(move |b| (b, c.min(r.end - b)))
}

/// Marks a (tap, position) pair of [`tap_map`] that reads the padding.
const PADDING: u32 = u32::MAX;

/// For every tap `r = ki·k + kj` and output position `p = oh·out_w + ow`, where in one input
/// channel that tap reads: `map[r·P + p] = ih·in_w + iw` with `ih = oh·stride − pad + ki` and
/// `iw = ow·stride − pad + kj`, or [`PADDING`] outside the image. The same for every channel
/// and image, so im2col and col2im become one gather (scatter) per channel and tap.
pub fn tap_map(s: &ConvShape, map: &mut Vec<u32>) {
    map.clear();
    for ki in 0..s.kernel {
        for kj in 0..s.kernel {
            for oh in 0..s.out_h {
                let ih = (oh * s.stride + ki).wrapping_sub(s.pad);
                for ow in 0..s.out_w {
                    let iw = (ow * s.stride + kj).wrapping_sub(s.pad);
                    map.push(if ih < s.in_h && iw < s.in_w {
                        (ih * s.in_w + iw) as u32
                    } else {
                        PADDING
                    });
                }
            }
        }
    }
}

/// `cols[(c·k + ki)·k + kj, oh·out_w + ow] = x[c, oh·s − pad + ki, ow·s − pad + kj]` (0 outside),
/// for one image `x`, through the [`tap_map`] `map`; `cols` rows are `ld` apart (their first P
/// columns are written).
pub fn im2col<T: Real>(s: &ConvShape, map: &[u32], x: &[T], cols: &mut [T], ld: usize) {
    let (kk, p) = (s.kernel * s.kernel, s.out_positions());
    for (c, image) in x.chunks_exact(s.in_positions()).enumerate() {
        for (r, taps) in map.chunks_exact(p).enumerate() {
            let row = &mut cols[(c * kk + r) * ld..][..p];
            for (v, &i) in row.iter_mut().zip(taps) {
                *v = image.get(i as usize).copied().unwrap_or(T::zero());
            }
        }
    }
}

/// The adjoint of [`im2col`]: `x[c, ih, iw] += Σ cols` over every (tap, position) that reads it.
pub fn col2im<T: Real>(s: &ConvShape, map: &[u32], cols: &[T], ld: usize, x: &mut [T]) {
    let (kk, p) = (s.kernel * s.kernel, s.out_positions());
    for (c, image) in x.chunks_exact_mut(s.in_positions()).enumerate() {
        for (r, taps) in map.chunks_exact(p).enumerate() {
            let row = &cols[(c * kk + r) * ld..][..p];
            for (&d, &i) in row.iter().zip(taps) {
                if let Some(v) = image.get_mut(i as usize) {
                    *v = *v + d;
                }
            }
        }
    }
}

/// Copies the `[rows, P]` blocks of images `first..first + n` of `src` (rows of `len`) side by
/// side into `dst [rows, n·P]`.
fn gather<T: Real>(src: &[T], len: usize, (first, n): (usize, usize), p: usize, dst: &mut [T]) {
    let rows = len / p;
    for j in 0..n {
        let image = &src[(first + j) * len..(first + j + 1) * len];
        for r in 0..rows {
            dst[r * n * p + j * p..][..p].copy_from_slice(&image[r * p..(r + 1) * p]);
        }
    }
}

/// The `[out_c, n·P]` matrix of the chunk's dy blocks side by side: dy's own row for a chunk
/// of one image, else a copy in `scratch`.
fn gathered<'a, T: Real>(
    dy: &'a [T],
    s: &ConvShape,
    (first, n): (usize, usize),
    scratch: &'a mut [T],
) -> &'a [T] {
    if n == 1 {
        return &dy[first * s.out_len()..(first + 1) * s.out_len()];
    }
    let dst = &mut scratch[..s.out_len() * n];
    gather(dy, s.out_len(), (first, n), s.out_positions(), dst);
    dst
}

/// A pointer that may cross threads; each worker writes only its own images.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: workers write disjoint ranges (their own images), see the callers.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Row `b` of length `len`.
    ///
    /// # Safety
    /// The row lies inside the allocation and no one else touches it meanwhile.
    unsafe fn row<'a>(self, b: usize, len: usize) -> &'a mut [T] {
        // SAFETY: forwarded from the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(b * len), len) }
    }
}

/// `c[m×n] (+)= op(a)[m×k] · op(b)[k×n]` on this thread, all operands dense row-major with the
/// given stored row strides.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Real>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    a_ld: usize,
    trans_a: bool,
    b: &[T],
    b_ld: usize,
    trans_b: bool,
    c: &mut [T],
    accumulate: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m * n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::zero());
        }
        return;
    }
    // SAFETY: the asserts above keep every element of op(a) (m×k), op(b) (k×n) and c (m×n)
    // inside their slices for these dense strides; `c` is a unique borrow.
    unsafe {
        T::tile_product(
            (m, n, k),
            (a.as_ptr(), a_ld, trans_a),
            (b.as_ptr(), b_ld, trans_b),
            (c.as_mut_ptr(), n),
            accumulate,
        );
    }
}

/// Finishes one image of a conv result, `v [channels, positions]` holding the product (added
/// to the old value already for the accumulating epilogues): bias + activation per channel, or
/// the activation gradient from `y`'s matching image.
fn finish<T: Real>(epilogue: &CpuEpilogue<T>, image: usize, channels: usize, v: &mut [T]) {
    let positions = v.len() / channels.max(1);
    match *epilogue {
        CpuEpilogue::Store | CpuEpilogue::Accumulate => {}
        CpuEpilogue::BiasAct(bias, act) => {
            for (c, part) in v.chunks_mut(positions).enumerate() {
                let b = bias[c];
                for x in part.iter_mut() {
                    *x = activate(act, *x + b);
                }
            }
        }
        CpuEpilogue::ActGrad(y, act) | CpuEpilogue::AccumulateActGrad(y, act) => {
            act_grad(act, &y[image * v.len()..(image + 1) * v.len()], v)
        }
    }
}

fn accumulates<T>(epilogue: &CpuEpilogue<T>) -> bool {
    matches!(
        epilogue,
        CpuEpilogue::Accumulate | CpuEpilogue::AccumulateActGrad(..)
    )
}

/// `y = epilogue(conv2d(x, w))` over the batch (see [`crate::graph::Op::Conv2d`]).
pub fn conv2d<T: Real>(
    s: &ConvShape,
    x: &[T],
    w: &[T],
    y: &mut [T],
    epilogue: CpuEpilogue<T>,
    scratch: &mut ConvScratch<T>,
) {
    assert_eq!(x.len(), s.batch * s.in_len(), "x is [batch, in_len]");
    assert_eq!(w.len(), s.weight_len(), "w is [out_c, taps]");
    assert_eq!(y.len(), s.batch * s.out_len(), "y is [batch, out_len]");
    let accumulate = accumulates(&epilogue);
    let (p, taps) = (s.out_positions(), s.taps());
    let workers = scratch.workers(s);
    let n = workers.len();
    let out = Shared(y.as_mut_ptr());
    workers.par_iter_mut().enumerate().for_each(|(i, wk)| {
        for (first, images) in chunks(s, n, i) {
            let ld = images * p;
            for j in 0..images {
                let b = first + j;
                let xb = &x[b * s.in_len()..(b + 1) * s.in_len()];
                im2col(s, &wk.map, xb, &mut wk.cols[j * p..], ld);
            }
            if images == 1 {
                // One image: the product lands in y directly.
                // SAFETY: image `first`'s row lies inside y (length asserted) and only this
                // worker handles it.
                let yb = unsafe { out.row(first, s.out_len()) };
                gemm(
                    (s.out_c, p, taps),
                    w,
                    taps,
                    false,
                    &wk.cols,
                    p,
                    false,
                    yb,
                    accumulate,
                );
                finish(&epilogue, first, s.out_c, yb);
                continue;
            }
            let product = &mut wk.gathered[..s.out_c * ld];
            gemm(
                (s.out_c, ld, taps),
                w,
                taps,
                false,
                &wk.cols,
                ld,
                false,
                product,
                false,
            );
            for j in 0..images {
                let b = first + j;
                // SAFETY: as above, for image b.
                let yb = unsafe { out.row(b, s.out_len()) };
                for (o, part) in yb.chunks_mut(p).enumerate() {
                    let from = &product[o * ld + j * p..][..p];
                    if accumulate {
                        part.iter_mut().zip(from).for_each(|(v, &a)| *v = *v + a);
                    } else {
                        part.copy_from_slice(from);
                    }
                }
                finish(&epilogue, b, s.out_c, yb);
            }
        }
    });
}

/// `dx = epilogue(conv2d_input_grad(dy, w))` over the batch, the transposed convolution (see
/// [`crate::graph::Op::Conv2dInputGrad`]).
pub fn conv2d_input_grad<T: Real>(
    s: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    epilogue: CpuEpilogue<T>,
    scratch: &mut ConvScratch<T>,
) {
    assert_eq!(dy.len(), s.batch * s.out_len(), "dy is [batch, out_len]");
    assert_eq!(w.len(), s.weight_len(), "w is [out_c, taps]");
    assert_eq!(dx.len(), s.batch * s.in_len(), "dx is [batch, in_len]");
    let accumulate = accumulates(&epilogue);
    let (p, taps) = (s.out_positions(), s.taps());
    let workers = scratch.workers(s);
    let n = workers.len();
    let out = Shared(dx.as_mut_ptr());
    workers.par_iter_mut().enumerate().for_each(|(i, wk)| {
        for chunk in chunks(s, n, i) {
            let (first, images) = chunk;
            let ld = images * p;
            let dys = gathered(dy, s, chunk, &mut wk.gathered);
            let dcols = &mut wk.cols[..taps * ld];
            gemm(
                (taps, ld, s.out_c),
                w,
                taps,
                true,
                dys,
                ld,
                false,
                dcols,
                false,
            );
            for j in 0..images {
                let b = first + j;
                // SAFETY: image b's row lies inside dx (length asserted), handled by this
                // worker only.
                let dxb = unsafe { out.row(b, s.in_len()) };
                if !accumulate {
                    dxb.fill(T::zero());
                }
                col2im(s, &wk.map, &dcols[j * p..], ld, dxb);
                finish(&epilogue, b, s.in_c, dxb);
            }
        }
    });
}

/// `dw (+)= Σ_b dy_b · im2col(x_b)ᵀ` (see [`crate::graph::Op::Conv2dWeightGrad`]).
pub fn conv2d_weight_grad<T: Real>(
    s: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    accumulate: bool,
    scratch: &mut ConvScratch<T>,
) {
    assert_eq!(x.len(), s.batch * s.in_len(), "x is [batch, in_len]");
    assert_eq!(dy.len(), s.batch * s.out_len(), "dy is [batch, out_len]");
    assert_eq!(dw.len(), s.weight_len(), "dw is [out_c, taps]");
    let (p, taps, len) = (s.out_positions(), s.taps(), s.weight_len());
    let workers = scratch.workers(s);
    let n = workers.len();
    workers.par_iter_mut().enumerate().for_each(|(i, wk)| {
        let part = &mut wk.dw[..len];
        part.fill(T::zero());
        for chunk in chunks(s, n, i) {
            let (first, images) = chunk;
            let ld = images * p;
            for j in 0..images {
                let b = first + j;
                let xb = &x[b * s.in_len()..(b + 1) * s.in_len()];
                im2col(s, &wk.map, xb, &mut wk.cols[j * p..], ld);
            }
            let dys = gathered(dy, s, chunk, &mut wk.gathered);
            gemm(
                (s.out_c, taps, ld),
                dys,
                ld,
                false,
                &wk.cols,
                ld,
                true,
                part,
                true,
            );
        }
    });
    if !accumulate {
        dw.fill(T::zero());
    }
    for wk in workers.iter() {
        for (d, &v) in dw.iter_mut().zip(&wk.dw[..len]) {
            *d = *d + v;
        }
    }
}

/// `out[c] (+)= Σ_rows Σ_positions x[row, c·P + p]`, `P = row length / channels` (see
/// [`crate::graph::Op::ChannelSum`]).
pub fn channel_sum<T: Real>(
    x: &[T],
    cols: usize,
    channels: usize,
    out: &mut [T],
    accumulate: bool,
) {
    assert_eq!(out.len(), channels, "one sum per channel");
    let positions = cols / channels.max(1);
    if !accumulate {
        out.fill(T::zero());
    }
    if positions == 0 {
        return;
    }
    for row in x.chunks(cols) {
        for (o, part) in out.iter_mut().zip(row.chunks(positions)) {
            *o = *o + part.iter().fold(T::zero(), |a, &v| a + v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv_reference as reference;
    use crate::model::Activation;
    use crate::rng::{Sequence, Stream};

    fn random(n: usize, seed: u32) -> Vec<f64> {
        let mut rng = Sequence::new(7, Stream::Init, seed);
        (0..n).map(|_| f64::from(rng.uniform(-1.0, 1.0))).collect()
    }

    /// Worst `|got − want| / (atol + rtol·|want|)`; fails above 1, naming the element.
    fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let (i, worst) = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs() / (atol + rtol * w.abs()))
            .enumerate()
            .fold((0, 0.0), |a, (i, e)| if e > a.1 { (i, e) } else { a });
        assert!(
            worst <= 1.0,
            "{what}: element {i}: got {} want {} ({worst:.2} × tolerance)",
            got[i],
            want[i]
        );
    }

    fn shapes() -> Vec<ConvShape> {
        let s = |b, c, h, w, o, k, st, p| ConvShape::new(b, c, h, w, o, k, st, p).unwrap();
        vec![
            s(1, 1, 7, 5, 3, 3, 1, 1),
            s(3, 3, 7, 7, 2, 3, 2, 1),
            s(2, 3, 5, 6, 4, 5, 2, 2),
            s(2, 2, 6, 5, 3, 1, 1, 0),
            s(1, 1, 2, 3, 2, 5, 1, 2), // map smaller than the kernel
            s(5, 2, 9, 8, 3, 3, 2, 0),
            s(33, 1, 4, 4, 2, 3, 2, 1),
        ]
    }

    fn check<T: Real>(atol: f64, rtol: f64) {
        let of = |v: &[f64]| v.iter().map(|&x| T::of(x)).collect::<Vec<T>>();
        let back = |v: &[T]| v.iter().map(|&x| Real::to_f64(x)).collect::<Vec<f64>>();
        for (n, s) in shapes().into_iter().enumerate() {
            let n = n as u32 * 10;
            let (x, w, dy) = (
                random(s.batch * s.in_len(), n),
                random(s.weight_len(), n + 1),
                random(s.batch * s.out_len(), n + 2),
            );
            let mut scratch = ConvScratch::default();
            let mut y = vec![T::zero(); dy.len()];
            conv2d(
                &s,
                &of(&x),
                &of(&w),
                &mut y,
                CpuEpilogue::Store,
                &mut scratch,
            );
            close(
                &format!("{s:?} forward"),
                &back(&y),
                &reference::conv2d(&s, &x, &w),
                atol,
                rtol,
            );
            let mut dx = vec![T::zero(); x.len()];
            let ep = CpuEpilogue::Store;
            conv2d_input_grad(&s, &of(&dy), &of(&w), &mut dx, ep, &mut scratch);
            let want = reference::conv2d_input_grad(&s, &dy, &w);
            close(&format!("{s:?} input grad"), &back(&dx), &want, atol, rtol);
            let mut dw = of(&random(w.len(), n + 3));
            let old = back(&dw);
            conv2d_weight_grad(&s, &of(&x), &of(&dy), &mut dw, true, &mut scratch);
            let want: Vec<f64> = reference::conv2d_weight_grad(&s, &x, &dy)
                .iter()
                .zip(&old)
                .map(|(g, o)| g + o)
                .collect();
            close(&format!("{s:?} weight grad"), &back(&dw), &want, atol, rtol);
        }
    }

    #[test]
    fn twins_match_the_definition_in_f64_and_f32() {
        check::<f64>(1e-12, 1e-12);
        check::<f32>(1e-5, 1e-5);
    }

    #[test]
    fn epilogues_act_per_channel() {
        let s = ConvShape::new(2, 3, 5, 4, 2, 3, 2, 1).unwrap();
        let (x, w, dy) = (
            random(s.batch * s.in_len(), 1),
            random(s.weight_len(), 2),
            random(s.batch * s.out_len(), 3),
        );
        let mut scratch = ConvScratch::default();
        let plain = reference::conv2d(&s, &x, &w);
        // Forward: bias per output channel, then tanh.
        let bias = random(s.out_c, 4);
        let mut y = vec![0.0; plain.len()];
        let ep = CpuEpilogue::BiasAct(&bias, Activation::Tanh);
        conv2d(&s, &x, &w, &mut y, ep, &mut scratch);
        let p = s.out_positions();
        let want: Vec<f64> = (0..plain.len())
            .map(|i| (plain[i] + bias[(i / p) % s.out_c]).tanh())
            .collect();
        close("bias + tanh", &y, &want, 1e-12, 1e-12);
        // Input gradient: (old + acc) · sigmoid'(act).
        let plain = reference::conv2d_input_grad(&s, &dy, &w);
        let act: Vec<f64> = random(plain.len(), 5)
            .iter()
            .map(|v| 0.5 + 0.4 * v)
            .collect();
        let old = random(plain.len(), 6);
        let mut dx = old.clone();
        let ep = CpuEpilogue::AccumulateActGrad(&act, Activation::Sigmoid);
        conv2d_input_grad(&s, &dy, &w, &mut dx, ep, &mut scratch);
        let want: Vec<f64> = (0..plain.len())
            .map(|i| (old[i] + plain[i]) * act[i] * (1.0 - act[i]))
            .collect();
        close("accumulate · sigmoid'", &dx, &want, 1e-12, 1e-12);
        // Input gradient with a per-input-channel bias (a transposed conv's forward pass).
        let bias = random(s.in_c, 7);
        let ep = CpuEpilogue::BiasAct(&bias, Activation::Relu);
        conv2d_input_grad(&s, &dy, &w, &mut dx, ep, &mut scratch);
        let q = s.in_positions();
        let want: Vec<f64> = (0..plain.len())
            .map(|i| (plain[i] + bias[(i / q) % s.in_c]).max(0.0))
            .collect();
        close("transposed bias + relu", &dx, &want, 1e-12, 1e-12);
    }

    #[test]
    fn channel_sums() {
        let x = random(3 * 4 * 5, 9);
        let mut out = vec![1.0; 4];
        channel_sum(&x, 20, 4, &mut out, true);
        let want: Vec<f64> = reference::channel_sum(&x, 20, 4)
            .iter()
            .map(|v| v + 1.0)
            .collect();
        close("channel sum", &out, &want, 1e-12, 1e-12);
    }
}
