//! Moving data between the host and the executor's buffers: writes, and read-backs through
//! staging buffers.

use std::ops::Range;

use super::GpuExecutor;
use crate::error::{Error, Result};
use crate::graph::{BufId, DType, StepParams, Tensor};

impl GpuExecutor {
    /// The device buffer behind `buf`, for applications that read results on the GPU.
    pub fn buffer(&self, buf: BufId) -> &wgpu::Buffer {
        &self.buffers[buf]
    }

    /// Overwrites the start of a buffer with floats. An error (reported by the device later)
    /// is returned by the next call that runs or reads.
    pub fn write(&self, buf: BufId, data: &[f32]) {
        debug_assert_eq!(self.graph.buffers[buf].dtype, DType::F32);
        let capture = self.ctx.capture();
        self.ctx
            .queue
            .write_buffer(&self.buffers[buf], 0, bytemuck::cast_slice(data));
        capture.record();
    }

    /// Overwrites the start of a buffer with indices (errors as for [`GpuExecutor::write`]).
    pub fn write_u32(&self, buf: BufId, data: &[u32]) {
        debug_assert_eq!(self.graph.buffers[buf].dtype, DType::U32);
        let capture = self.ctx.capture();
        self.ctx
            .queue
            .write_buffer(&self.buffers[buf], 0, bytemuck::cast_slice(data));
        capture.record();
    }

    /// Runs `ops` for `steps` and reads `read` back after the last step, in one submission.
    pub fn run_and_read(
        &mut self,
        ops: Range<usize>,
        steps: &[StepParams],
        read: Tensor,
    ) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self.record(ops, steps, None)?;
        self.copy_to_staging(&mut encoder, read.buf);
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()?;
        self.map_staging(read)
    }

    /// Reads a view back to the host (waits for all submitted work).
    pub fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read"),
            });
        self.copy_to_staging(&mut encoder, t.buf);
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()?;
        self.map_staging(t)
    }

    /// Reads a whole buffer back.
    pub fn read_buffer(&mut self, buf: BufId) -> Result<Vec<f32>> {
        let len = self.graph.buffers[buf].len;
        self.read(Tensor {
            buf,
            offset: 0,
            rows: 1,
            cols: len,
        })
    }

    fn copy_to_staging(&mut self, encoder: &mut wgpu::CommandEncoder, buf: BufId) {
        let size = self.buffers[buf].size();
        let device = &self.ctx.device;
        let staging = self.staging.entry(buf).or_insert_with(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        encoder.copy_buffer_to_buffer(&self.buffers[buf], 0, staging, 0, size);
    }

    fn map_staging(&self, t: Tensor) -> Result<Vec<f32>> {
        let capture = self.ctx.capture();
        let out = self.map_staging_inner(t);
        // The device's error, when there is one, says more than the failed mapping.
        capture.finish()?;
        out
    }

    fn map_staging_inner(&self, t: Tensor) -> Result<Vec<f32>> {
        let staging = &self.staging[&t.buf];
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.ctx.check()?;
        rx.recv()
            .map_err(|_| Error::Gpu("the read-back was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a buffer for reading: {e}")))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            all[t.offset..t.end()].to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}
