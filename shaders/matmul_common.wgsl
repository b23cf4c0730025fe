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

