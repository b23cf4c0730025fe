// The part of the tiled matmuls shared by matmul.wgsl (64×64 tiles) and matmul_large.wgsl
// (128×128 tiles): specialization constants, bindings, bounds-checked operand loads and the
// fused epilogue. See matmul.wgsl for the math and the epilogues.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;

struct Dims {
    m: u32, n: u32, k: u32,
    a_off: u32, b_off: u32, c_off: u32, aux_off: u32,
    lda: u32, ldb: u32,
    _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;

fn load_a(m: u32, k: u32) -> f32 {
    if (m >= d.m || k >= d.k) { return 0.0; }
    if (TRANS_A) { return a[d.a_off + k * d.lda + m]; }
    return a[d.a_off + m * d.lda + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    if (k >= d.k || n >= d.n) { return 0.0; }
    if (TRANS_B) { return b[d.b_off + n * d.ldb + k]; }
    return b[d.b_off + k * d.ldb + n];
}

fn finish(row: u32, col: u32, acc: f32) {
    if (row >= d.m || col >= d.n) { return; }
    let o = d.c_off + row * d.n + col;
    switch EPILOGUE {
        case 1u: { c[o] = activate(acc + aux[d.aux_off + col]); }
        case 2u: { c[o] = acc * activation_grad_from_output(aux[d.aux_off + row * d.n + col]); }
        case 3u: { c[o] = c[o] + acc; }
        case 4u: { c[o] = (c[o] + acc) * activation_grad_from_output(aux[d.aux_off + row * d.n + col]); }
        default: { c[o] = acc; }
    }
}

fn finish_row(row: u32, col: u32, acc: vec4<f32>) {
    finish(row, col, acc.x);
    finish(row, col + 1u, acc.y);
    finish(row, col + 2u, acc.z);
    finish(row, col + 3u, acc.w);
}

// Stages the k-step at k0 of op(A) (rows row0..row0+BM) and op(B) (columns col0..col0+BN) into
// tile_a and tile_b, which the kernel file declares with BM, BN and BK (BM·BK = BN·BK = 1024:
// four elements per thread of 256). Consecutive threads walk each operand's contiguous
// dimension so global loads coalesce; a vec4 of a tile holds four consecutive rows (A) or
// columns (B).
fn stage_tiles(li: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = 0u; i < 4u; i++) {
        let e = li + i * 256u;
        var am: u32;
        var ak: u32;
        if (TRANS_A) { am = e % BM; ak = e / BM; } else { ak = e % BK; am = e / BK; }
        tile_a[ak * (BM / 4u) + am / 4u][am % 4u] = load_a(row0 + am, k0 + ak);
        var bn: u32;
        var bk: u32;
        if (TRANS_B) { bk = e % BK; bn = e / BK; } else { bn = e % BN; bk = e / BN; }
        tile_b[bk * (BN / 4u) + bn / 4u][bn % 4u] = load_b(k0 + bk, col0 + bn);
    }
}
