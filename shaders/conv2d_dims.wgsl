// The sizes every conv kernel reads (mirrored by `ConvDims` in src/gpu/conv.rs): the geometry
// of the convolution (batch = the images of this dispatch), the GEMM's M, N and K, the K chunk
// and the stride between chunk results (weight gradient), the column blocks per grid row, and
// the offsets of the views bound at 0 (a), 1 (b), 2 (c) and 3 (aux).
struct ConvDims {
    batch: u32, in_c: u32, in_h: u32, in_w: u32,
    out_c: u32, out_h: u32, out_w: u32, kernel: u32,
    stride: u32, pad: u32, m: u32, n: u32,
    k: u32, k_split: u32, groups_x: u32, split_stride: u32,
    a_off: u32, b_off: u32, c_off: u32, aux_off: u32,
}
