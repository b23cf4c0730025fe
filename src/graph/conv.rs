//! The geometry of a 2-D convolution, shared by the graph, both executors and the layers that
//! emit conv ops: PyTorch's `nn.Conv2d(in_c, out_c, kernel, stride, padding=pad)` on a batch of
//! `in_c × in_h × in_w` images stored one per row, channel-major (`x.flatten(1)` of NCHW).
//! Square kernels and strides, zero padding on every side, no dilation, no groups.

use crate::error::{Error, Result};
use crate::graph::{Epilogue, Tensor};

/// One convolution's sizes. Build it with [`ConvShape::new`], which derives the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Images in the batch (rows of the activation matrices).
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Output height: `(in_h + 2·pad − kernel) / stride + 1`.
    pub out_h: usize,
    /// Output width: `(in_w + 2·pad − kernel) / stride + 1`.
    pub out_w: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvShape {
    /// The shape of `Conv2d(in_c, out_c, kernel, stride, pad)` on `batch` images of
    /// `in_h × in_w`. A size of 0, or an input that the kernel does not fit even padded
    /// (output smaller than 1×1), is a configuration error.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        in_c: usize,
        in_h: usize,
        in_w: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<ConvShape> {
        let sizes = [
            ("batch", batch),
            ("input channels", in_c),
            ("input height", in_h),
            ("input width", in_w),
            ("output channels", out_c),
            ("kernel", kernel),
            ("stride", stride),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!(
                "a convolution's {name} must be at least 1"
            )));
        }
        let padded = |len: usize| pad.checked_mul(2).and_then(|p| p.checked_add(len));
        let (Some(ph), Some(pw)) = (padded(in_h), padded(in_w)) else {
            return Err(too_large());
        };
        let out = |len: usize| len.checked_sub(kernel).map(|room| room / stride + 1);
        match (out(ph), out(pw)) {
            (Some(out_h), Some(out_w)) => Ok(ConvShape {
                batch,
                in_c,
                in_h,
                in_w,
                out_c,
                out_h,
                out_w,
                kernel,
                stride,
                pad,
            })
            .and_then(|s: ConvShape| {
                // Every size the executors compute from the shape fits a usize.
                let sizes: [&[usize]; 4] = [
                    &[s.batch, s.in_c, s.in_h, s.in_w],
                    &[s.batch, s.out_c, s.out_h, s.out_w],
                    &[s.out_c, s.in_c, s.kernel, s.kernel],
                    &[
                        s.batch, s.out_c, s.out_h, s.out_w, s.in_c, s.kernel, s.kernel,
                    ],
                ];
                let fits = |d: &[usize]| crate::limits::checked_product(d).is_some();
                if sizes.iter().all(|d| fits(d)) {
                    Ok(s)
                } else {
                    Err(too_large())
                }
            }),
            _ => Err(Error::Config(format!(
                "a {kernel}×{kernel} kernel with padding {pad} does not fit a {in_h}×{in_w} \
                 feature map (the output would be smaller than 1×1)"
            ))),
        }
    }

    /// The `output_padding` (height, width) of the `ConvTranspose2d` that maps this shape's
    /// output back to its input size: `in − ((out − 1)·stride − 2·pad + kernel)`. Always in
    /// `[0, stride)` for a shape made by [`ConvShape::new`].
    pub fn output_padding(&self) -> (usize, usize) {
        // The remainder of (in + 2·pad − kernel) / stride, the rows the forward pass drops.
        let rest =
            |len: usize, out: usize| len + 2 * self.pad - self.kernel - (out - 1) * self.stride;
        (rest(self.in_h, self.out_h), rest(self.in_w, self.out_w))
    }

    /// The same convolution on `batch` images.
    pub fn with_batch(self, batch: usize) -> ConvShape {
        ConvShape { batch, ..self }
    }

    /// Elements of one input image (one row of `x`).
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    /// Elements of one output image (one row of `y`).
    pub fn out_len(&self) -> usize {
        self.out_c * self.out_h * self.out_w
    }

    /// Columns of the weight matrix: one output channel's `in_c × kernel × kernel` taps.
    pub fn taps(&self) -> usize {
        self.in_c * self.kernel * self.kernel
    }

    /// Elements of the weight matrix `[out_c, in_c·kernel²]`.
    pub fn weight_len(&self) -> usize {
        self.out_c * self.taps()
    }

    /// Multiply-accumulates of one forward pass over the whole batch.
    pub fn macs(&self) -> usize {
        self.batch * self.out_c * self.out_h * self.out_w * self.taps()
    }

    /// Output positions of one channel of one image.
    pub fn out_positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Input positions of one channel of one image.
    pub fn in_positions(&self) -> usize {
        self.in_h * self.in_w
    }
}

fn too_large() -> Error {
    Error::Config("a convolution's sizes are too large to address".into())
}

/// Checks that `t` is a `[rows, cols]` view, naming `what` otherwise.
fn expect(what: &str, t: Tensor, rows: usize, cols: usize) -> Result<(), String> {
    if t.rows == rows && t.cols == cols {
        Ok(())
    } else {
        Err(format!(
            "{what} is {}×{} but the convolution needs {rows}×{cols}",
            t.rows, t.cols
        ))
    }
}

/// Checks a conv op's epilogue against its result `[rows, channels·positions]`: a bias has one
/// value per channel, an activation output the result's shape.
fn expect_epilogue(
    epilogue: &Epilogue,
    rows: usize,
    channels: usize,
    cols: usize,
) -> Result<(), String> {
    match *epilogue {
        Epilogue::Store | Epilogue::Accumulate => Ok(()),
        Epilogue::BiasAct { bias, .. } => expect("the per-channel bias", bias, 1, channels),
        Epilogue::ActGrad { y, .. } | Epilogue::AccumulateActGrad { y, .. } => {
            expect("the activation output", y, rows, cols)
        }
    }
}

/// Shape checks of [`crate::graph::Op::Conv2d`]: `x [B, in_len]`, `w [out_c, taps]`,
/// `y [B, out_len]`.
pub fn check_conv2d(
    shape: &ConvShape,
    x: Tensor,
    w: Tensor,
    y: Tensor,
    epilogue: &Epilogue,
) -> Result<(), String> {
    let s = shape;
    expect("the input", x, s.batch, s.in_len())?;
    expect("the weight", w, s.out_c, s.taps())?;
    expect("the output", y, s.batch, s.out_len())?;
    expect_epilogue(epilogue, s.batch, s.out_c, s.out_len())
}

/// Shape checks of [`crate::graph::Op::Conv2dInputGrad`]: `dy [B, out_len]`,
/// `w [out_c, taps]`, `dx [B, in_len]`.
pub fn check_input_grad(
    shape: &ConvShape,
    dy: Tensor,
    w: Tensor,
    dx: Tensor,
    epilogue: &Epilogue,
) -> Result<(), String> {
    let s = shape;
    expect("the output gradient", dy, s.batch, s.out_len())?;
    expect("the weight", w, s.out_c, s.taps())?;
    expect("the input gradient", dx, s.batch, s.in_len())?;
    expect_epilogue(epilogue, s.batch, s.in_c, s.in_len())
}

/// Shape checks of [`crate::graph::Op::Conv2dWeightGrad`]: `x [B, in_len]`,
/// `dy [B, out_len]`, `dw [out_c, taps]`.
pub fn check_weight_grad(
    shape: &ConvShape,
    x: Tensor,
    dy: Tensor,
    dw: Tensor,
) -> Result<(), String> {
    let s = shape;
    expect("the input", x, s.batch, s.in_len())?;
    expect("the output gradient", dy, s.batch, s.out_len())?;
    expect("the weight gradient", dw, s.out_c, s.taps())
}

/// Shape checks of [`crate::graph::Op::ChannelSum`]: `x.cols` a multiple of `channels`,
/// `out [1, channels]`.
pub fn check_channel_sum(x: Tensor, out: Tensor, channels: usize) -> Result<(), String> {
    if channels == 0 || !x.cols.is_multiple_of(channels) {
        return Err(format!(
            "{} columns do not split into {channels} channels",
            x.cols
        ));
    }
    expect("the channel sums", out, 1, channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        // 28 → 14 → 7 with k3 s2 p1, as in conv_ae.
        let a = ConvShape::new(2, 1, 28, 28, 32, 3, 2, 1).unwrap();
        assert_eq!((a.out_h, a.out_w), (14, 14));
        assert_eq!(a.output_padding(), (1, 1));
        let b = ConvShape::new(2, 32, 14, 14, 64, 3, 2, 1).unwrap();
        assert_eq!((b.out_h, b.out_w, b.output_padding()), (7, 7, (1, 1)));
        // 7 → 4 → back to 7 needs no output padding.
        let c = ConvShape::new(1, 64, 7, 5, 8, 3, 2, 1).unwrap();
        assert_eq!((c.out_h, c.out_w, c.output_padding()), (4, 3, (0, 0)));
        assert_eq!(a.macs(), 2 * 32 * 14 * 14 * 9);
        assert_eq!(b.weight_len(), 64 * 32 * 9);
        // Kernel larger than the map, rescued by padding: 2×2 input, 5×5 kernel, pad 2.
        let d = ConvShape::new(1, 3, 2, 2, 4, 5, 1, 2).unwrap();
        assert_eq!((d.out_h, d.out_w, d.output_padding()), (2, 2, (0, 0)));
    }

    #[test]
    fn impossible_shapes_are_config_errors() {
        assert!(ConvShape::new(1, 1, 2, 2, 1, 5, 1, 0).is_err());
        assert!(ConvShape::new(1, 0, 8, 8, 1, 3, 1, 1).is_err());
        assert!(ConvShape::new(1, 1, 8, 8, 1, 3, 0, 1).is_err());
        assert!(ConvShape::new(1, 1, 8, 8, 0, 3, 1, 1).is_err());
        let e = ConvShape::new(1, 1, 3, 3, 1, 5, 1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("5×5") && e.contains("3×3"), "{e}");
    }
}
