//! Moving data between the host and the executor's buffers: writes, and read-backs through
//! staging buffers. What a caller passes is checked first, with the CPU executor's messages: a
//! buffer id the graph lacks, a float write or read of an index buffer (and the reverse), data
//! longer than its buffer, a view past its buffer's end.

use std::ops::Range;

use super::GpuExecutor;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::graph::{BufId, DType, Segment, StepParams, Tensor};

impl GpuExecutor {
    /// The description of `buf`, or an error naming what is wrong with the id.
    fn desc(&self, buf: BufId) -> Result<&crate::graph::BufferDesc> {
        self.graph.buffers.get(buf).ok_or_else(|| {
            Error::Config(format!(
                "buffer {buf} does not exist (the graph has {})",
                self.graph.buffers.len()
            ))
        })
    }

    /// The length of `buf`, or an error when it does not exist or does not hold `dtype`.
    pub(super) fn checked(&self, buf: BufId, dtype: DType) -> Result<usize> {
        let desc = self.desc(buf)?;
        if desc.dtype != dtype {
            let holds = match desc.dtype {
                DType::F32 => "floats",
                DType::U32 => "indices",
            };
            return Err(Error::Config(format!(
                "buffer {buf} ('{}') holds {holds}",
                desc.name
            )));
        }
        Ok(desc.len)
    }

    /// An error when `data_len` values do not fit `buf` of `dtype`.
    fn check_write(&self, buf: BufId, dtype: DType, data_len: usize) -> Result<()> {
        let len = self.checked(buf, dtype)?;
        if data_len > len {
            return Err(Error::Config(format!(
                "{data_len} values do not fit buffer {buf} ('{}') of {len}",
                self.graph.buffers[buf].name
            )));
        }
        Ok(())
    }

    /// An error when `t` is not a view of a `dtype` buffer of the graph.
    fn check_view(&self, t: Tensor, dtype: DType) -> Result<()> {
        self.checked(t.buf, dtype)?;
        self.check_extent(t)
    }

    /// An error when `t`'s buffer does not exist or `t` runs past its end (of either dtype).
    pub(super) fn check_extent(&self, t: Tensor) -> Result<()> {
        let desc = self.desc(t.buf)?;
        if t.end() > desc.len {
            return Err(Error::Config(format!(
                "a view of elements {}..{} runs past buffer {} ('{}') of {}",
                t.offset,
                t.end(),
                t.buf,
                desc.name,
                desc.len
            )));
        }
        Ok(())
    }

    /// The device buffer behind `buf`, for applications that read results on the GPU; an
    /// error when the graph has no such buffer.
    pub fn buffer(&self, buf: BufId) -> Result<&wgpu::Buffer> {
        self.desc(buf)?;
        Ok(&self.buffers[buf])
    }

    /// Overwrites the start of a float buffer. An error, and nothing written, when `buf` does
    /// not exist, holds indices, or is shorter than `data`; an error of the device's (reported
    /// later) is returned by the next call that runs or reads.
    pub fn write(&self, buf: BufId, data: &[f32]) -> Result<()> {
        self.check_write(buf, DType::F32, data.len())?;
        self.write_bytes(buf, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Overwrites the start of an index buffer (errors as for [`GpuExecutor::write`]).
    pub fn write_u32(&self, buf: BufId, data: &[u32]) -> Result<()> {
        self.check_write(buf, DType::U32, data.len())?;
        self.write_bytes(buf, bytemuck::cast_slice(data));
        Ok(())
    }

    fn write_bytes(&self, buf: BufId, bytes: &[u8]) {
        let capture = self.ctx.capture();
        self.ctx.queue.write_buffer(&self.buffers[buf], 0, bytes);
        capture.record();
    }

    /// Runs `ops` for `steps` and reads the float view `read` back after the last step, in one
    /// submission. An error, and nothing run, when `read` is not a view of a float buffer of
    /// the graph (as [`GpuExecutor::read`]) or the steps or ops are refused (as
    /// [`GpuExecutor::run`]).
    pub fn run_and_read(
        &mut self,
        ops: Range<usize>,
        steps: &[StepParams],
        read: Tensor,
    ) -> Result<Vec<f32>> {
        self.run_segments_and_read(&[Segment { ops, steps }], read)
    }

    /// As [`GpuExecutor::run_segments`], then reads the float view `read` back after the last
    /// segment, in the same submission (errors as for [`GpuExecutor::run_and_read`]).
    pub fn run_segments_and_read(
        &mut self,
        segments: &[Segment<'_>],
        read: Tensor,
    ) -> Result<Vec<f32>> {
        self.check_view(read, DType::F32)?;
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self.record(segments, None)?;
        self.copy_to_staging(&mut encoder, read.buf);
        self.ctx.queue.submit([encoder.finish()]);
        capture.finish()?;
        self.map_staging(read)
    }

    /// Reads a view of a float buffer back to the host (waits for all submitted work). An
    /// error when its buffer does not exist or holds indices, or the view runs past its end.
    pub fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        self.check_view(t, DType::F32)?;
        self.read_view(t)
    }

    /// Reads a view of an index buffer back (errors as for [`GpuExecutor::read`], with floats
    /// for indices).
    pub fn read_u32(&mut self, t: Tensor) -> Result<Vec<u32>> {
        self.check_view(t, DType::U32)?;
        self.read_view(t)
    }

    /// Reads a checked view back.
    fn read_view<T: bytemuck::Pod>(&mut self, t: Tensor) -> Result<Vec<T>> {
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

    /// Reads a whole float buffer back (errors as for [`GpuExecutor::read`]).
    pub fn read_buffer(&mut self, buf: BufId) -> Result<Vec<f32>> {
        let len = self.desc(buf)?.len;
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

    fn map_staging<T: bytemuck::Pod>(&self, t: Tensor) -> Result<Vec<T>> {
        let capture = self.ctx.capture();
        let out = self.map_staging_inner(t);
        // The device's error, when there is one, says more than the failed mapping.
        capture.finish()?;
        out
    }

    fn map_staging_inner<T: bytemuck::Pod>(&self, t: Tensor) -> Result<Vec<T>> {
        map_read(
            &self.ctx,
            &self.staging[&t.buf],
            t.offset..t.end(),
            wgpu::PollType::wait_indefinitely(),
        )
    }
}

/// Maps the staging buffer `staging` once the device has reached `wait`, returns its elements
/// `elems` as `T`s and unmaps it: on an error too (a mapping still pending is cancelled), so
/// the buffer can take the next copy. Both read-backs use it ([`GpuExecutor::read`]'s
/// whole-buffer staging and the pooled ranges of `pending::PendingRead`).
pub(super) fn map_read<T: bytemuck::Pod>(
    ctx: &GpuContext,
    staging: &wgpu::Buffer,
    elems: Range<usize>,
    wait: wgpu::PollType,
) -> Result<Vec<T>> {
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let out = (|| {
        ctx.device
            .poll(wait)
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        ctx.check()?;
        rx.recv()
            .map_err(|_| Error::Gpu("the read-back was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a buffer for reading: {e}")))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?;
        let all: &[T] = bytemuck::cast_slice(&view);
        all.get(elems.clone())
            .map(<[T]>::to_vec)
            .ok_or_else(|| Error::Gpu(format!("elements {elems:?} past a staging buffer")))
    })();
    staging.unmap();
    out
}
