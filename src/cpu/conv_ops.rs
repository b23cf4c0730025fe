//! How the CPU executor runs the conv ops: their views handed to the twins in [`super::conv`],
//! with the executor's conv scratch.

use super::{CpuExecutor, Storage, conv};
use crate::cpu::kernels::Real;
use crate::graph::{ConvShape, Op};

/// The geometry of a conv op.
pub(super) fn shape(op: &Op) -> Option<ConvShape> {
    match *op {
        Op::Conv2d { shape, .. }
        | Op::Conv2dInputGrad { shape, .. }
        | Op::Conv2dWeightGrad { shape, .. } => Some(shape),
        _ => None,
    }
}

/// A conv op for profiles, e.g. `conv2d 256x1x28x28 -> 32x14x14 k3 s2 p1`.
pub(super) fn label(op: &Op) -> String {
    let name = match op {
        Op::Conv2d { .. } => "conv2d",
        Op::Conv2dInputGrad { .. } => "conv2d input grad",
        _ => "conv2d weight grad",
    };
    match shape(op) {
        Some(s) => format!(
            "{name} {}x{}x{}x{} -> {}x{}x{} k{} s{} p{}",
            s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.out_h, s.out_w, s.kernel, s.stride, s.pad
        ),
        None => op.name(),
    }
}

impl<T: Real> CpuExecutor<T> {
    /// Runs one conv op (any other op: nothing).
    pub(super) fn run_conv(&mut self, op: &Op) {
        match *op {
            Op::Conv2d {
                x,
                w,
                y,
                shape,
                epilogue,
            } => {
                let (mut o, mut scratch) = (self.take(y.buf), std::mem::take(&mut self.conv));
                conv::conv2d(
                    &shape,
                    self.floats(x),
                    self.floats(w),
                    &mut o[y.offset..y.end()],
                    self.epilogue(epilogue),
                    &mut scratch,
                );
                (self.conv, self.bufs[y.buf]) = (scratch, Storage::Float(o));
            }
            Op::Conv2dInputGrad {
                dy,
                w,
                dx,
                shape,
                epilogue,
            } => {
                let (mut o, mut scratch) = (self.take(dx.buf), std::mem::take(&mut self.conv));
                conv::conv2d_input_grad(
                    &shape,
                    self.floats(dy),
                    self.floats(w),
                    &mut o[dx.offset..dx.end()],
                    self.epilogue(epilogue),
                    &mut scratch,
                );
                (self.conv, self.bufs[dx.buf]) = (scratch, Storage::Float(o));
            }
            Op::Conv2dWeightGrad {
                x,
                dy,
                dw,
                shape,
                accumulate,
            } => {
                let (mut o, mut scratch) = (self.take(dw.buf), std::mem::take(&mut self.conv));
                conv::conv2d_weight_grad(
                    &shape,
                    self.floats(x),
                    self.floats(dy),
                    &mut o[dw.offset..dw.end()],
                    accumulate,
                    &mut scratch,
                );
                (self.conv, self.bufs[dw.buf]) = (scratch, Storage::Float(o));
            }
            Op::ChannelSum {
                x,
                out,
                channels,
                accumulate,
            } => {
                let mut o = self.take(out.buf);
                conv::channel_sum(
                    self.floats(x),
                    x.cols,
                    channels,
                    &mut o[out.offset..out.end()],
                    accumulate,
                );
                self.put(out.buf, o);
            }
            _ => {}
        }
    }
}
