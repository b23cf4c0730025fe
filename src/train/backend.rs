//! One interface over the two executors, so the trainer is written once.

use std::ops::Range;

use crate::cpu::CpuExecutor;
use crate::error::Result;
use crate::gpu::{GpuExecutor, PendingRead};
use crate::graph::{BufId, Graph, Segment, StepParams, Tensor};
use crate::train::Device;

/// Values read back by [`Backend::run_and_copy`]: on the CPU the values themselves, on a GPU
/// a copy that may still be in flight.
pub enum Pending {
    /// Read already.
    Ready(Vec<f32>),
    /// Submitted with its segment; mapped by [`Pending::wait`].
    Gpu(PendingRead),
}

impl Pending {
    /// Whether the values are there without waiting (the CPU's).
    pub fn is_ready(&self) -> bool {
        matches!(self, Pending::Ready(_))
    }

    /// The values: on a GPU, once the submission that copied them has finished.
    pub fn wait(self) -> Result<Vec<f32>> {
        match self {
            Pending::Ready(v) => Ok(v),
            Pending::Gpu(p) => p.wait(),
        }
    }
}

/// A graph loaded on a device.
pub enum Backend {
    /// On the host.
    Cpu(Box<CpuExecutor<f32>>),
    /// On a GPU.
    Gpu(Box<GpuExecutor>),
}

impl Backend {
    /// Allocates `graph` on `device`.
    pub fn new(device: &Device, graph: Graph) -> Result<Self> {
        crate::limits::check_graph(&graph, device, "the model's graph")?;
        Ok(match device {
            Device::Cpu => Backend::Cpu(Box::new(CpuExecutor::new(graph)?)),
            Device::Gpu(ctx) => Backend::Gpu(Box::new(GpuExecutor::new(ctx.clone(), graph)?)),
        })
    }

    /// Starts the CPU executor's per-op profile; `false` (nothing done) on a GPU.
    pub fn profile(&mut self) -> bool {
        match self {
            Backend::Cpu(e) => {
                e.profile();
                true
            }
            Backend::Gpu(_) => false,
        }
    }

    /// The CPU executor's per-op profile (see [`CpuExecutor::op_times`]); empty on a GPU.
    pub fn op_times(&self) -> Vec<crate::cpu::OpTime> {
        match self {
            Backend::Cpu(e) => e.op_times(),
            Backend::Gpu(_) => Vec::new(),
        }
    }

    /// Overwrites the start of a float buffer of the trainer's own graph. Callers pass
    /// buffers of that graph and data checked against its layout, so an error here is a bug
    /// of the crate's, not of the caller's input.
    pub fn write(&mut self, buf: BufId, data: &[f32]) {
        match self {
            Backend::Cpu(e) => e.write(buf, data),
            Backend::Gpu(e) => e.write(buf, data),
        }
        .expect("the trainer writes its own graph's float buffers")
    }

    /// Overwrites the start of an index buffer (as [`Backend::write`]).
    pub fn write_u32(&mut self, buf: BufId, data: &[u32]) {
        match self {
            Backend::Cpu(e) => e.write_u32(buf, data),
            Backend::Gpu(e) => e.write_u32(buf, data),
        }
        .expect("the trainer writes its own graph's index buffers")
    }

    /// Runs `ops` for each step.
    pub fn run(&mut self, ops: Range<usize>, steps: &[StepParams]) -> Result<()> {
        match self {
            Backend::Cpu(e) => e.run(ops, steps),
            Backend::Gpu(e) => e.run(ops, steps),
        }
    }

    /// Runs each segment's ops for each of its steps, in order (one submission on the GPU).
    pub fn run_segments(&mut self, segments: &[Segment<'_>]) -> Result<()> {
        match self {
            Backend::Cpu(e) => e.run_segments(segments),
            Backend::Gpu(e) => e.run_segments(segments),
        }
    }

    /// As [`Backend::run_segments`], then reads `t` (one submission on the GPU).
    pub fn run_segments_and_read(
        &mut self,
        segments: &[Segment<'_>],
        t: Tensor,
    ) -> Result<Vec<f32>> {
        match self {
            Backend::Cpu(e) => {
                e.run_segments(segments)?;
                Ok(e.view(t)?.to_vec())
            }
            Backend::Gpu(e) => e.run_segments_and_read(segments, t),
        }
    }

    /// Runs `ops` for each step, then reads `t` (one submission on the GPU).
    pub fn run_and_read(
        &mut self,
        ops: Range<usize>,
        steps: &[StepParams],
        t: Tensor,
    ) -> Result<Vec<f32>> {
        self.run_segments_and_read(&[Segment { ops, steps }], t)
    }

    /// Runs `ops` for each step (nothing when `ops` is empty), then reads the element ranges
    /// `ranges` of `t`'s buffer, relative to `t`'s start, one after another. On the CPU the
    /// values are read before this returns; on a GPU the ops and the copies are one
    /// submission, waited for by [`Pending::wait`], so more may be submitted first. An error
    /// when a range runs past `t`.
    pub fn run_and_copy(
        &mut self,
        ops: Range<usize>,
        steps: &[StepParams],
        t: Tensor,
        ranges: &[Range<usize>],
    ) -> Result<Pending> {
        if let Some(r) = ranges.iter().find(|r| r.start > r.end || r.end > t.len()) {
            return Err(crate::error::Error::Config(format!(
                "elements {}..{} are not a range of a view of {}",
                r.start,
                r.end,
                t.len()
            )));
        }
        match self {
            Backend::Cpu(e) => {
                if !ops.is_empty() {
                    e.run(ops, steps)?;
                }
                let view = e.view(t)?;
                Ok(Pending::Ready(
                    ranges
                        .iter()
                        .flat_map(|r| &view[r.clone()])
                        .copied()
                        .collect(),
                ))
            }
            Backend::Gpu(e) => {
                let absolute: Vec<Range<usize>> = ranges
                    .iter()
                    .map(|r| t.offset + r.start..t.offset + r.end)
                    .collect();
                let empty = ops.is_empty();
                let one = [Segment { ops, steps }];
                let segments = if empty { &one[..0] } else { &one[..] };
                Ok(Pending::Gpu(e.submit_and_copy(segments, t.buf, &absolute)?))
            }
        }
    }

    /// Waits until the device has run all that was submitted (nothing on the CPU).
    pub fn finish(&self) -> Result<()> {
        match self {
            Backend::Cpu(_) => Ok(()),
            Backend::Gpu(e) => e.finish(),
        }
    }

    /// Reads a view of an index buffer back.
    pub fn read_u32(&mut self, t: Tensor) -> Result<Vec<u32>> {
        match self {
            Backend::Cpu(e) => Ok(e.view_u32(t)?.to_vec()),
            Backend::Gpu(e) => e.read_u32(t),
        }
    }

    /// Reads a view back.
    pub fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        match self {
            Backend::Cpu(e) => Ok(e.view(t)?.to_vec()),
            Backend::Gpu(e) => e.read(t),
        }
    }
}
