//! Matrices that live in a wgpu buffer: what an application hands Hourglass, or gets back from
//! it, without a trip through host memory.

/// A row-major `rows × cols` matrix of `f32` in a wgpu buffer: element (r, c) is the 4 bytes at
/// byte `offset + 4 · (r · cols + c)`, little-endian as WGSL's `f32`. Rows are packed (the row
/// stride is `4 · cols` bytes, no padding), so WGSL sees the matrix as
/// `array<f32>` starting at element `offset / 4`.
///
/// The buffer is a wgpu handle (clones share it): a `DeviceMatrix` returned by Hourglass owns
/// a buffer of its own that nothing else writes, so it stays valid for as long as the
/// application keeps it.
#[derive(Clone, Debug)]
pub struct DeviceMatrix {
    /// The buffer. Hourglass creates its buffers with `STORAGE | COPY_SRC | COPY_DST | VERTEX`
    /// usage; one handed to Hourglass as input needs `COPY_SRC`.
    pub buffer: wgpu::Buffer,
    /// Byte offset of element (0, 0), a multiple of 4 (0 in the buffers Hourglass returns).
    pub offset: u64,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (the contiguous dimension).
    pub cols: usize,
}

impl DeviceMatrix {
    /// Bytes from one row to the next: `4 · cols`.
    pub fn row_stride(&self) -> u64 {
        self.cols as u64 * 4
    }

    /// Bytes the matrix spans: `4 · rows · cols`, starting at `offset`.
    pub fn byte_len(&self) -> u64 {
        self.rows as u64 * self.row_stride()
    }
}
