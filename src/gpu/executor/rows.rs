//! How the per-row kernels (reconstruction loss, Jacobian norm, contractive rows, sampler)
//! spread their rows over 256-thread workgroups, so that neither a batch of one nor rows of a
//! few dozen elements leave a large GPU idle: short rows share a workgroup (each a segment of
//! 32 to 256 threads), long rows of a small batch are split over several workgroups whose
//! partial sums `row_sum` (shaders/row_sum.wgsl) adds afterwards in a fixed order (the conv
//! bias gradient, `channel_sum`, splits its channels the same way). No float
//! atomics: results depend only on the shape, never on scheduling. The layout is a uniform
//! mirrored by `RowLayout` in shaders/rows.wgsl.

use super::Plan;
use super::Resource;
use super::plan::{grid_1d, grid_rows};
use crate::gpu::autotune::MIN_WORKGROUPS;
use crate::gpu::kernels::Kernel;
use crate::graph::Tensor;

/// Threads of a per-row kernel's workgroup (their `@workgroup_size`).
pub(crate) const ROW_THREADS: usize = 256;

/// The fewest threads a row gets: one subgroup (warp) of most GPUs.
const MIN_SEGMENT: usize = 32;

/// The elements a split workgroup covers, about: a row gets at most ⌈len / MIN_CHUNK⌉ pieces
/// (about four elements a thread, so a piece is worth its partial's write), which spreads it
/// evenly, so a piece can be a little shorter (25,088 in 25 pieces: 1004).
const MIN_CHUNK: usize = 4 * ROW_THREADS;

/// The fewest bytes a row must move to be worth splitting. A split costs one more dispatch
/// (`row_sum`, 5 µs of launch in `gpu::roofline`), while one SM streams 256 KiB at its 1/132
/// share of an H200's 4.8 TB/s (36 GB/s) in about 7 µs; smaller rows stay whole.
const SPLIT_MIN_BYTES: usize = 256 * 1024;

/// Mirror of `RowLayout` in shaders/rows.wgsl: each workgroup holds `ROW_THREADS / seg` rows
/// of `seg` threads (a power of two), or, with `splits > 1` (then `seg` is `ROW_THREADS`), one
/// `chunk`-element piece of one row, whose sum goes to `partials[part_off + row · splits +
/// split]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RowLayout {
    /// Threads per row.
    pub seg: u32,
    /// Workgroups per row.
    pub splits: u32,
    /// Elements of a row each split covers.
    pub chunk: u32,
    /// Where the partial sums start in the scratch buffer.
    pub part_off: u32,
}

impl RowLayout {
    /// The layout of `rows` rows of `len` elements, each element moving `bytes` bytes (read
    /// and written): rows of fewer than `ROW_THREADS` elements packed (as many to a workgroup
    /// as fit in segments of at least `MIN_SEGMENT` threads, while the grid keeps
    /// `MIN_WORKGROUPS`), rows moving at least `SPLIT_MIN_BYTES` of a batch under
    /// `MIN_WORKGROUPS` split until the grid has that many workgroups (at most
    /// ⌈len / `MIN_CHUNK`⌉ pieces a row, of equal length), else one workgroup a row.
    pub fn new(rows: usize, len: usize, bytes: usize) -> RowLayout {
        let rows = rows.max(1);
        let len = len.max(1);
        let want = len.next_power_of_two().clamp(MIN_SEGMENT, ROW_THREADS);
        let fit = ROW_THREADS / want;
        let room = (rows / MIN_WORKGROUPS).clamp(1, fit);
        // The largest power of two no larger than `room`.
        let pack = 1usize << room.ilog2();
        let splits = if pack > 1 || rows >= MIN_WORKGROUPS || len * bytes < SPLIT_MIN_BYTES {
            1
        } else {
            MIN_WORKGROUPS
                .div_ceil(rows)
                .min(len.div_ceil(MIN_CHUNK))
                .max(1)
        };
        RowLayout {
            seg: (ROW_THREADS / pack) as u32,
            splits: splits as u32,
            chunk: len.div_ceil(splits) as u32,
            part_off: 0,
        }
    }

    /// Rows per workgroup.
    pub fn pack(&self) -> usize {
        ROW_THREADS / self.seg as usize
    }

    /// Workgroups for `rows` rows.
    pub fn workgroups(&self, rows: usize) -> usize {
        rows.max(1).div_ceil(self.pack()) * self.splits as usize
    }

    /// The grid for `rows` rows, folded 2-D as `grid_rows` folds.
    pub(in crate::gpu) fn grid(&self, rows: usize) -> [u32; 3] {
        grid_rows(self.workgroups(rows))
    }

    /// The uniform's bytes.
    pub(in crate::gpu) fn bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
}

/// Mirror of `RowSumDims` in shaders/row_sum.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct RowSumDims {
    rows: u32,
    splits: u32,
    part_off: u32,
    out_off: u32,
    scale: f32,
    /// 1: add to `out` instead of overwriting it.
    accumulate: u32,
    _pad: [u32; 2],
}

/// The layout of `rows` rows of `len` elements of `bytes` (`RowLayout::new`) and what its
/// kernel binds for partial sums: a scratch of `rows · splits` floats when rows are split,
/// else nothing.
pub(in crate::gpu) fn layout(
    rows: usize,
    len: usize,
    bytes: usize,
    scratch: &mut dyn FnMut(usize) -> Resource,
) -> (RowLayout, Resource) {
    let layout = RowLayout::new(rows, len, bytes);
    let partials = if layout.splits > 1 {
        scratch(rows * layout.splits as usize)
    } else {
        Resource::Unused
    };
    (layout, partials)
}

/// A uniform of `words` followed by `layout` (which must start at a multiple of 16 bytes:
/// WGSL aligns a struct member of a uniform so).
pub(in crate::gpu) fn with_layout(mut words: Vec<u8>, layout: &RowLayout) -> Vec<u8> {
    debug_assert_eq!(words.len() % 16, 0);
    words.extend_from_slice(layout.bytes());
    words
}

/// After a split kernel, `out[r] (+)= scale · Σ_s partials[r · splits + s]` for the `rows`
/// rows, adding when `accumulate` (nothing when rows are not split).
pub(in crate::gpu) fn row_sum(
    layout: &RowLayout,
    rows: usize,
    partials: Resource,
    out: Tensor,
    scale: f32,
    accumulate: bool,
) -> Vec<Plan> {
    if layout.splits == 1 {
        return Vec::new();
    }
    let dims = RowSumDims {
        rows: rows as u32,
        splits: layout.splits,
        part_off: layout.part_off,
        out_off: out.offset as u32,
        scale,
        accumulate: u32::from(accumulate),
        _pad: [0; 2],
    };
    vec![Plan {
        kernel: Kernel::RowSum,
        constants: vec![],
        resources: vec![
            partials,
            Resource::Buffer(out.buf),
            Resource::Uniform(bytemuck::bytes_of(&dims).to_vec()),
        ],
        groups: grid_1d(rows),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_pack_short_rows_and_split_long_ones() {
        // A full batch of long rows: one workgroup a row, as before.
        let l = RowLayout::new(256, 784, 12);
        assert_eq!((l.seg, l.splits, l.workgroups(256)), (256, 1, 256));
        // mnist_ae's loss at batch 1: 784 elements are too few to split, and so is any row
        // moving less than SPLIT_MIN_BYTES.
        assert_eq!(RowLayout::new(1, 784, 12).workgroups(1), 1);
        assert_eq!(RowLayout::new(1, SPLIT_MIN_BYTES / 4 - 1, 4).splits, 1);
        assert_eq!(RowLayout::new(1, SPLIT_MIN_BYTES / 4, 4).splits, 64);
        assert_eq!(RowLayout::new(1, 25_088, 8).splits, 1);
        // A long row at batch 1 is split into ⌈len / MIN_CHUNK⌉ even pieces.
        let l = RowLayout::new(1, 25_088, 12);
        assert_eq!((l.seg, l.splits, l.chunk), (256, 25, 1004));
        assert!(l.chunk as usize * l.splits as usize >= 25_088);
        // ... but never past MIN_WORKGROUPS workgroups in all.
        let l = RowLayout::new(2, 1 << 20, 4);
        assert_eq!(l.workgroups(2), MIN_WORKGROUPS);
        // Short rows share workgroups while the grid keeps MIN_WORKGROUPS of them.
        let l = RowLayout::new(256, 32, 16);
        assert_eq!((l.seg, l.splits, l.workgroups(256)), (128, 1, 128));
        let l = RowLayout::new(4096, 7, 12);
        assert_eq!((l.seg, l.pack(), l.workgroups(4096)), (32, 8, 512));
        // Short rows of a small batch: neither packed nor split.
        let l = RowLayout::new(7, 33, 12);
        assert_eq!((l.seg, l.splits), (256, 1));
        for (rows, len) in [
            (1, 1),
            (7, 33),
            (257, 7),
            (33, 257),
            (1, 30_000),
            (66_000, 2),
        ] {
            let l = RowLayout::new(rows, len, 12);
            assert!(
                l.seg.is_power_of_two() && l.seg as usize <= ROW_THREADS,
                "{l:?}"
            );
            assert!(l.splits == 1 || l.seg as usize == ROW_THREADS, "{l:?}");
            assert!(l.chunk as usize * l.splits as usize >= len, "{l:?}");
        }
    }
}
