// The convolution products as implicit GEMMs (no im2col buffer: the operand loads gather from
// the images directly), with the matmul's fused epilogues applied per channel.
//
//   MODE 0, forward        y = conv2d(x, w):      M = out_c, N = B·P,  K = taps
//        A(o, t) = w[o, t]                         B(t, n) = im2col(x)[t, n]
//   MODE 2, weight grad    dw = Σ_b dy·im2colᵀ:   M = out_c, N = taps, K = B·P (split in
//        A(o, (b, p)) = dy[b, o, p]                 chunks of k_split, one per wg.z)
//        B((b, p), t) = im2col(x_b)[t, p]
//   MODE 3, input grad     dcols = wᵀ · dy:        M = taps,  N = B·P,  K = out_c
//        A(t, o) = w[o, t]                         B(o, n) = dy[b, o, p]
//     into a scratch [taps, B·P] that conv2d_col2im.wgsl folds back onto the images.
//
// with P = out_h·out_w output positions, taps = in_c·k² (t = (c·k + ki)·k + kj), n = b·P + p,
// and images stored one per row, channel-major (see src/graph/conv.rs).
//
// No division in the loads: an element of im2col(x) at (tap, position) is
// x[pos.base + tap.delta] when (pos.h + tap.ki, pos.w + tap.kj) lies inside the image, with
//   position (b, oh, ow): base = b·in_len + h·in_w + w, h = oh·stride − pad, w = ow·stride − pad
//   tap (c, ki, kj):      delta = c·in_h·in_w + ki·in_w + kj
// The workgroup decomposes its BN columns once (positions in modes 0 and 3, taps in mode 2)
// into col_table, and each k-step's BK values of k (taps in mode 0, positions in mode 2) into
// k_table; the staging loads then only add and compare.
//
// EPILOGUE (as matmul.wgsl, bias per channel = per GEMM row): 0 store, 1 act(acc + bias[row]),
// 2 acc · act'(aux), 3 accumulate, 4 (c + acc) · act'(aux). Mode 2 with several K chunks
// stores each chunk's partial product at out[split·M·N + i] (a scratch buffer) and
// conv2d_reduce.wgsl sums them in a fixed order; mode 3 always stores.
//
// Bindings: 0 A operand (w, or dy in mode 2), 1 B operand (x, or dy in mode 3), 2 the result,
// 3 aux (bias or activation output), 4 ConvDims.
// Dispatch: (column blocks, ceil(M/BM), z) workgroups of (BN/4)×(BM/4) threads, each owning a
// 4×4 block of the result in four vec4 registers; z folds column blocks past groups_x (modes
// 0 and 3) or is the K chunk (mode 2). Tile sizes come from the prepended matmul_tile64.wgsl
// or matmul_tile32.wgsl.

// Prepended: activation.wgsl, conv2d_dims.wgsl, one of matmul_tile64.wgsl / matmul_tile32.wgsl.

override MODE: u32 = 0u;
override EPILOGUE: u32 = 0u;

@group(0) @binding(0) var<storage, read> lhs: array<f32>;
@group(0) @binding(1) var<storage, read> rhs: array<f32>;
@group(0) @binding(2) var<storage, read_write> res: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<uniform> d: ConvDims;

// [BK][BM/4] and [BK][BN/4]: one vec4 holds four consecutive rows (A) or columns (B).
var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>;
// Decomposed columns and k values: positions (base, h, w, dy offset b·out_c·P + p) or taps
// (delta, ki, kj, 0).
var<workgroup> col_table: array<vec4<i32>, BN>;
var<workgroup> k_table: array<vec4<i32>, BK>;

fn position(n: u32) -> vec4<i32> {
    let positions = d.out_h * d.out_w;
    let b = n / positions;
    let p = n - b * positions;
    let oh = p / d.out_w;
    let h = i32(oh * d.stride) - i32(d.pad);
    let w = i32((p - oh * d.out_w) * d.stride) - i32(d.pad);
    let base = i32(b * d.in_c * d.in_h * d.in_w) + h * i32(d.in_w) + w;
    return vec4<i32>(base, h, w, i32(b * d.out_c * positions + p));
}

fn tap(t: u32) -> vec4<i32> {
    let kk = d.kernel * d.kernel;
    let c = t / kk;
    let r = t - c * kk;
    let ki = r / d.kernel;
    let kj = r - ki * d.kernel;
    return vec4<i32>(i32(c * d.in_h * d.in_w + ki * d.in_w + kj), i32(ki), i32(kj), 0);
}

// im2col(x)[tap, position], 0 in the padding.
fn im2col(pos: vec4<i32>, tp: vec4<i32>) -> f32 {
    let h = pos.y + tp.y;
    let w = pos.z + tp.z;
    if (h < 0 || w < 0 || h >= i32(d.in_h) || w >= i32(d.in_w)) { return 0.0; }
    return rhs[d.b_off + u32(pos.x + tp.x)];
}

// Element (m, k0 + ak) of A, 0 outside [0, M) × [0, k_end).
fn load_a(m: u32, k0: u32, ak: u32, k_end: u32) -> f32 {
    let k = k0 + ak;
    if (m >= d.m || k >= k_end) { return 0.0; }
    switch MODE {
        case 3u: { return lhs[d.a_off + k * d.m + m]; }
        case 2u: { return lhs[d.a_off + u32(k_table[ak].w) + m * d.out_h * d.out_w]; }
        default: { return lhs[d.a_off + m * d.k + k]; }
    }
}

// Element (k0 + bk, col0 + bn) of B, 0 outside [0, k_end) × [0, N).
fn load_b(k0: u32, bk: u32, col0: u32, bn: u32, k_end: u32) -> f32 {
    let k = k0 + bk;
    if (k >= k_end || col0 + bn >= d.n) { return 0.0; }
    switch MODE {
        case 3u: { return rhs[d.b_off + u32(col_table[bn].w) + k * d.out_h * d.out_w]; }
        case 2u: { return im2col(k_table[bk], col_table[bn]); }
        default: { return im2col(col_table[bn], k_table[bk]); }
    }
}

// Stages the k-step at k0 (consecutive threads walk each operand's contiguous dimension: k for
// A except in mode 3, where w is read transposed; the column for B, except in mode 2 where the
// image positions run along k).
fn stage_tiles(li: u32, row0: u32, col0: u32, k0: u32, k_end: u32) {
    for (var i = 0u; i < BM * BK / THREADS; i++) {
        let e = li + i * THREADS;
        var ak: u32;
        var am: u32;
        if (MODE == 3u) { am = e % BM; ak = e / BM; } else { ak = e % BK; am = e / BK; }
        tile_a[ak * (BM / 4u) + am / 4u][am % 4u] = load_a(row0 + am, k0, ak, k_end);
        var bn: u32;
        var bk: u32;
        if (MODE == 2u) { bk = e % BK; bn = e / BK; } else { bn = e % BN; bk = e / BN; }
        tile_b[bk * (BN / 4u) + bn / 4u][bn % 4u] = load_b(k0, bk, col0, bn, k_end);
    }
}

// Where result element (row, col) of the GEMM lives, relative to the result's view.
fn result_index(row: u32, col: u32) -> u32 {
    switch MODE {
        case 2u, 3u: { return row * d.n + col; }
        default: {
            let positions = d.out_h * d.out_w;
            let b = col / positions;
            return (b * d.out_c + row) * positions + (col - b * positions);
        }
    }
}

fn finish(row: u32, col: u32, split: u32, acc: f32) {
    if (row >= d.m || col >= d.n) { return; }
    let i = result_index(row, col);
    let o = d.c_off + split * d.split_stride + i;
    switch EPILOGUE {
        case 1u: { res[o] = activate(acc + aux[d.aux_off + row]); }
        case 2u: { res[o] = acc * activation_grad_from_output(aux[d.aux_off + i]); }
        case 3u: { res[o] = res[o] + acc; }
        case 4u: { res[o] = (res[o] + acc) * activation_grad_from_output(aux[d.aux_off + i]); }
        default: { res[o] = acc; }
    }
}

fn finish_row(row: u32, col: u32, split: u32, acc: vec4<f32>) {
    finish(row, col, split, acc.x);
    finish(row, col + 1u, split, acc.y);
    finish(row, col + 2u, split, acc.z);
    finish(row, col + 3u, split, acc.w);
}

@compute @workgroup_size(BN / 4u, BM / 4u, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    var split = 0u;
    var block = wg.x + wg.z * d.groups_x;
    if (MODE == 2u) {
        split = wg.z;
        block = wg.x;
    }
    let row0 = wg.y * BM;
    let col0 = block * BN;
    let k_begin = split * d.k_split;
    let k_end = min(d.k, k_begin + d.k_split);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var j = li; j < BN; j += THREADS) {
        if (MODE == 2u) { col_table[j] = tap(col0 + j); } else { col_table[j] = position(col0 + j); }
    }
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        if (MODE != 3u && li < BK) {
            if (MODE == 2u) { k_table[li] = position(k0 + li); } else { k_table[li] = tap(k0 + li); }
        }
        workgroupBarrier();
        stage_tiles(li, row0, col0, k0, k_end);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let av = tile_a[kk * (BM / 4u) + lid.y];
            let bv = tile_b[kk * (BN / 4u) + lid.x];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let r = row0 + lid.y * 4u;
    let cc = col0 + lid.x * 4u;
    finish_row(r, cc, split, acc0);
    finish_row(r + 1u, cc, split, acc1);
    finish_row(r + 2u, cc, split, acc2);
    finish_row(r + 3u, cc, split, acc3);
}
