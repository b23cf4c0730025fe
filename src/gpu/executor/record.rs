//! Recording and submitting steps: the step ring, each op's dispatches once per step in one
//! compute pass, and the copies that frame them.

use std::ops::Range;

use super::{BufferCopy, GpuExecutor, MAX_STEPS_PER_SUBMIT, STEP_SLOT};
use crate::error::{Error, Result};
use crate::graph::{Segment, StepParams};

impl GpuExecutor {
    /// Records `ops` once per step into one compute pass and submits it. Nothing is read back.
    pub fn run(&mut self, ops: Range<usize>, steps: &[StepParams]) -> Result<()> {
        self.run_segments(&[Segment { ops, steps }])
    }

    /// Records each segment's ops once per step of it, the segments in order, into one compute
    /// pass and submits it: one submission, nothing read back. At most
    /// [`MAX_STEPS_PER_SUBMIT`] steps over all segments (errors as for [`GpuExecutor::run`]).
    pub fn run_segments(&mut self, segments: &[Segment<'_>]) -> Result<()> {
        let capture = self.ctx.capture();
        let encoder = self.record(segments, None)?;
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()
    }

    /// Runs `ops` for `steps` in one submission, framed by buffer copies recorded into the same
    /// command buffer: `copy_in` (application buffer → one of this graph's views) before the
    /// first step, `copy_out` (a view → application buffer) after the last. Nothing is read
    /// back and nothing waits: later work on the queue sees the results. Byte offsets must be
    /// multiples of 4; an error, and nothing run, when a copy does not fit its buffer or its
    /// view.
    pub fn run_with_copies(
        &mut self,
        copy_in: Option<BufferCopy<'_>>,
        ops: Range<usize>,
        steps: &[StepParams],
        copy_out: Option<BufferCopy<'_>>,
    ) -> Result<()> {
        for c in copy_in.iter().chain(&copy_out) {
            self.check_extent(c.tensor)?;
            let bytes = c.tensor.len() as u64 * 4;
            if c.offset % wgpu::COPY_BUFFER_ALIGNMENT != 0 || c.offset + bytes > c.buffer.size() {
                return Err(Error::Config(format!(
                    "a copy of {bytes} bytes at byte offset {} does not fit a buffer of {} bytes \
                     (offsets must be multiples of 4)",
                    c.offset,
                    c.buffer.size()
                )));
            }
        }
        let capture = self.ctx.capture();
        let mut encoder = self.record(&[Segment { ops, steps }], copy_in.as_ref())?;
        if let Some(c) = copy_out {
            encoder.copy_buffer_to_buffer(
                &self.buffers[c.tensor.buf],
                c.tensor.offset as u64 * 4,
                c.buffer,
                c.offset,
                c.tensor.len() as u64 * 4,
            );
        }
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()
    }

    /// Writes the step ring and records each segment's ops for each of its steps into a new
    /// encoder, after `copy_in` when given. An error, and nothing recorded, for more than
    /// [`MAX_STEPS_PER_SUBMIT`] steps in all or ops that are not a range of the graph's ops.
    pub(super) fn record(
        &self,
        segments: &[Segment<'_>],
        copy_in: Option<&BufferCopy<'_>>,
    ) -> Result<wgpu::CommandEncoder> {
        let total: usize = segments.iter().map(|s| s.steps.len()).sum();
        if total > MAX_STEPS_PER_SUBMIT {
            return Err(Error::Config(format!(
                "{total} steps in one submission; at most {MAX_STEPS_PER_SUBMIT} (split them)"
            )));
        }
        self.graph.check_segments(segments)?;
        let steps = segments.iter().flat_map(|s| s.steps);
        let mut ring = vec![0u8; STEP_SLOT as usize * total.max(1)];
        for (k, s) in steps.enumerate() {
            let at = k * STEP_SLOT as usize;
            ring[at..at + std::mem::size_of::<StepParams>()].copy_from_slice(bytemuck::bytes_of(s));
        }
        self.ctx.queue.write_buffer(&self.step_ring, 0, &ring);
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("steps"),
            });
        if let Some(c) = copy_in {
            encoder.copy_buffer_to_buffer(
                c.buffer,
                c.offset,
                &self.buffers[c.tensor.buf],
                c.tensor.offset as u64 * 4,
                c.tensor.len() as u64 * 4,
            );
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("steps"),
                timestamp_writes: None,
            });
            // The ring slot of each step, counted over all segments.
            let mut slot = 0u64;
            for Segment { ops, steps } in segments {
                let dispatches = if ops.is_empty() {
                    &self.dispatches[..0]
                } else {
                    &self.dispatches[self.op_start[ops.start]..self.op_start[ops.end]]
                };
                for _ in steps.iter() {
                    let offset = [(slot * STEP_SLOT) as u32];
                    slot += 1;
                    for d in dispatches {
                        pass.set_pipeline(&d.pipeline);
                        let offsets: &[u32] = if d.uses_step { &offset } else { &[] };
                        pass.set_bind_group(0, &d.bind_group, offsets);
                        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                    }
                }
            }
        }
        Ok(encoder)
    }

    /// Waits until the device has finished all submitted work (for timing).
    pub fn finish(&self) -> Result<()> {
        let capture = self.ctx.capture();
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        capture.finish()
    }
}
