// The part of the tiled matmuls shared by matmul.wgsl (64×64 or 32×32 tiles), matmul_large.wgsl
// (128×128 tiles) and matmul_coop.wgsl (f16 cooperative matrices): specialization constants,
// bindings, bounds-checked operand loads, mixed-precision operand preparation and the fused
// epilogue. See matmul.wgsl for the math and the epilogues.
//
// Mixed precision (HALF): operands are rounded to f16 and products accumulate in f32. An
// operand that carries a loss gradient (SCALE_A / SCALE_B) is first multiplied by the dynamic
// loss scale S (binding 5, element 0) so small gradients do not flush to zero in f16, and the
// result is divided by S again before the epilogue, so every buffer holds unscaled f32 values.
// An operand beyond f16's range (or NaN) makes the workgroup's whole output tile NaN: the step's
// gradient is then not finite, the optimizer skips it, and the loss-scale update halves S.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;
override HALF: bool = false;
override SCALE_A: bool = false;
override SCALE_B: bool = false;

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
@group(0) @binding(5) var<storage, read> loss_scale: array<f32>;

const F16_MAX: f32 = 65504.0;

// This thread staged an operand that does not fit in f16 (mixed precision only).
var<private> operand_overflow: bool = false;
// Some thread of the workgroup did: the tile's output is poisoned.
var<workgroup> tile_overflow: atomic<u32>;

// An operand as mixed precision feeds it to the product: scaled when it is a gradient, and
// 0 (with the overflow noted) when it does not fit in f16. Not yet rounded.
fn prepare(x: f32, scaled: bool) -> f32 {
    var v = x;
    if (scaled) { v = x * loss_scale[0]; }
    if (!(abs(v) <= F16_MAX)) {
        operand_overflow = true;
        return 0.0;
    }
    return v;
}

// Rounds to the nearest f16 and back: the f32 kernels' stand-in for f16 operands.
fn round_half(x: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;
}

// Call once at the start of a kernel, before its first barrier (mixed precision only).
fn overflow_begin(li: u32) {
    if (HALF && li == 0u) { atomicStore(&tile_overflow, 0u); }
}

// Call once after the last k-step, in uniform control flow: true when any operand element of
// this workgroup's tile overflowed f16.
fn overflow_end() -> bool {
    if (!HALF) { return false; }
    if (operand_overflow) { atomicStore(&tile_overflow, 1u); }
    workgroupBarrier();
    return atomicLoad(&tile_overflow) != 0u;
}

// The accumulator as the epilogue sees it: unscaled, or NaN for a poisoned tile.
fn unscale(acc: f32, poisoned: bool) -> f32 {
    if (!HALF) { return acc; }
    if (poisoned) { return bitcast<f32>(0x7fc00000u); }
    if (SCALE_A || SCALE_B) { return acc / loss_scale[0]; }
    return acc;
}

// Element (m, k) of op(A), 0 outside it; prepared for mixed precision under HALF (unrounded).
fn load_a(m: u32, k: u32) -> f32 {
    if (m >= d.m || k >= d.k) { return 0.0; }
    var x: f32;
    if (TRANS_A) { x = a[d.a_off + k * d.lda + m]; } else { x = a[d.a_off + m * d.lda + k]; }
    if (HALF) { return prepare(x, SCALE_A); }
    return x;
}

// Element (k, n) of op(B), as load_a.
fn load_b(k: u32, n: u32) -> f32 {
    if (k >= d.k || n >= d.n) { return 0.0; }
    var x: f32;
    if (TRANS_B) { x = b[d.b_off + n * d.ldb + k]; } else { x = b[d.b_off + k * d.ldb + n]; }
    if (HALF) { return prepare(x, SCALE_B); }
    return x;
}

// load_a / load_b rounded to f16 under HALF: what the f32-ALU kernels stage.
fn load_a_rounded(m: u32, k: u32) -> f32 {
    if (HALF) { return round_half(load_a(m, k)); }
    return load_a(m, k);
}

fn load_b_rounded(k: u32, n: u32) -> f32 {
    if (HALF) { return round_half(load_b(k, n)); }
    return load_b(k, n);
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

fn finish_row(row: u32, col: u32, acc: vec4<f32>, poisoned: bool) {
    finish(row, col, unscale(acc.x, poisoned));
    finish(row, col + 1u, unscale(acc.y, poisoned));
    finish(row, col + 2u, unscale(acc.z, poisoned));
    finish(row, col + 3u, unscale(acc.w, poisoned));
}

// Stages the k-step at k0 of op(A) (rows row0..row0+BM) and op(B) (columns col0..col0+BN) into
// tile_a and tile_b, which the kernel file declares with BM, BN, BK and its THREADS
// (BM·BK = BN·BK, a multiple of THREADS). Consecutive threads walk each operand's contiguous
// dimension so global loads coalesce; a vec4 of a tile holds four consecutive rows (A) or
// columns (B).
fn stage_tiles(li: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = 0u; i < BM * BK / THREADS; i++) {
        let e = li + i * THREADS;
        var am: u32;
        var ak: u32;
        if (TRANS_A) { am = e % BM; ak = e / BM; } else { ak = e % BK; am = e / BK; }
        tile_a[ak * (BM / 4u) + am / 4u][am % 4u] = load_a_rounded(row0 + am, k0 + ak);
        var bn: u32;
        var bk: u32;
        if (TRANS_B) { bk = e % BK; bn = e / BK; } else { bn = e % BN; bk = e / BN; }
        tile_b[bk * (BN / 4u) + bn / 4u][bn % 4u] = load_b_rounded(k0 + bk, col0 + bn);
    }
}
