//! Running steps and copying ranges of a buffer towards the host in the same submission,
//! without waiting: [`GpuExecutor::submit_and_copy`] returns a [`PendingRead`], which the
//! host maps later ([`PendingRead::wait`]), so it can submit the next segment of a step
//! first (the bucketed reduction of `train/overlap.rs`).
//!
//! Only the ranges are copied, each into its own place of a staging buffer taken from a pool
//! the executor keeps: a buffer is made the first time no free one of the size class (the
//! next power of two of the bytes, at least 256) is there, and goes back to the pool when its
//! read is waited for or dropped, so steps that read the same buckets reuse the same buffers.
//! Each read has its own buffer: mapping one waits only for the submission that filled it.
//!
//! The step ring: every submission writes its steps' parameters at the ring's start with
//! `Queue::write_buffer`, which the queue orders after the work submitted before it (WebGPU's
//! queue timeline), so a submission still running keeps the parameters it was given.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::GpuExecutor;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::graph::{BufId, DType, Segment};

/// The staging buffers of reads not in flight, shared by an executor and its reads.
pub(super) type StagingPool = Arc<Mutex<Vec<wgpu::Buffer>>>;

/// A copy of ranges of a float buffer submitted to the device and not yet mapped
/// ([`GpuExecutor::submit_and_copy`]).
pub struct PendingRead {
    ctx: Arc<GpuContext>,
    /// `None` once given back to the pool.
    staging: Option<wgpu::Buffer>,
    floats: usize,
    submission: wgpu::SubmissionIndex,
    pool: StagingPool,
}

/// The size class of a read of `bytes`: the next power of two, at least 256.
fn size_class(bytes: u64) -> u64 {
    bytes.max(256).next_power_of_two()
}

impl PendingRead {
    /// Waits for the submission that made the copy (not for later ones), maps the staging
    /// buffer and returns the ranges' values, one range after another. An error when the
    /// device reported one since the last check, or the mapping fails.
    pub fn wait(mut self) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let out = self.map();
        capture.finish()?;
        out
    }

    fn map(&mut self) -> Result<Vec<f32>> {
        let Some(staging) = &self.staging else {
            return Err(Error::Gpu("the read was given back (a bug)".into()));
        };
        if self.floats == 0 {
            return Ok(Vec::new());
        }
        super::transfer::map_read(
            &self.ctx,
            staging,
            0..self.floats,
            wgpu::PollType::Wait {
                submission_index: Some(self.submission.clone()),
                timeout: None,
            },
        )
    }
}

impl Drop for PendingRead {
    /// Gives the staging buffer back to the pool (later copies into it are queued after this
    /// one's).
    fn drop(&mut self) {
        if let Some(b) = self.staging.take() {
            self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(b);
        }
    }
}

impl GpuExecutor {
    /// Records `segments` as [`GpuExecutor::run_segments`] does, then copies the element
    /// ranges `ranges` of the float buffer `buf` (in this order, one after another) into a
    /// staging buffer, and submits both in one submission; nothing waits. The values come
    /// with [`PendingRead::wait`]; meanwhile more work may be submitted. An error, and nothing
    /// run, when `buf` does not exist or holds indices, a range is reversed or runs past the
    /// buffer's end, or the steps or ops are refused (as [`GpuExecutor::run`]).
    pub fn submit_and_copy(
        &mut self,
        segments: &[Segment<'_>],
        buf: BufId,
        ranges: &[Range<usize>],
    ) -> Result<PendingRead> {
        let len = self.checked(buf, DType::F32)?;
        if let Some(r) = ranges.iter().find(|r| r.start > r.end || r.end > len) {
            return Err(Error::Config(format!(
                "elements {}..{} are not a range of buffer {buf} ('{}') of {len}",
                r.start, r.end, self.graph.buffers[buf].name
            )));
        }
        let floats: usize = ranges.iter().map(Range::len).sum();
        let class = size_class(floats as u64 * 4);
        let ctx = self.ctx.clone();
        let capture = ctx.capture();
        let mut encoder = self.record(segments, None)?;
        let staging = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            match pool.iter().position(|b| b.size() == class) {
                Some(i) => pool.swap_remove(i),
                None => self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("staging ranges"),
                    size: class,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            }
        };
        // f32 offsets and sizes are multiples of wgpu::COPY_BUFFER_ALIGNMENT (4 bytes).
        let mut at = 0u64;
        for r in ranges.iter().filter(|r| !r.is_empty()) {
            let bytes = r.len() as u64 * 4;
            encoder.copy_buffer_to_buffer(
                &self.buffers[buf],
                r.start as u64 * 4,
                &staging,
                at,
                bytes,
            );
            at += bytes;
        }
        let submission = self.ctx.queue.submit([encoder.finish()]);
        let pending = PendingRead {
            ctx: self.ctx.clone(),
            staging: Some(staging),
            floats,
            submission,
            pool: self.pool.clone(),
        };
        capture.finish()?;
        Ok(pending)
    }

    /// Staging buffers of [`GpuExecutor::submit_and_copy`] free in the pool now (none of its
    /// reads in flight): steps that read the same ranges leave the same number.
    pub fn staging_pool_len(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_classes_are_powers_of_two_of_at_least_256_bytes() {
        assert_eq!(super::size_class(0), 256);
        assert_eq!(super::size_class(4), 256);
        assert_eq!(super::size_class(257), 512);
        assert_eq!(super::size_class(1 << 20), 1 << 20);
    }
}
