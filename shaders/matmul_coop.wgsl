enable f16;
enable wgpu_cooperative_matrix;
// Tiled matmul on f16 cooperative matrices (tensor cores), accumulating in f32: the same
// C[M,N] = op(A)[M,K] · op(B)[K,N], bindings and epilogues as matmul.wgsl (see there).
// Appended: activation.wgsl, matmul_common.wgsl (this file comes first: the `enable`
// directives must open the module).
//
// Mixed precision only (HALF = true; the executor picks this kernel only then, on adapters
// with EXPERIMENTAL_COOPERATIVE_MATRIX + SHADER_F16 and 32-wide subgroups). load_a / load_b
// scale gradient operands by S, zero and flag anything beyond f16's range, and f16() rounds the
// rest, so the tensor cores see the f16 operands that the f32-ALU kernels emulate
// with round_half; products accumulate in f32, and unscale() divides by S again (or poisons the
// tile) before finish(). Under HALF = false nothing would catch an operand beyond f16's range.
//
// Dispatch: (ceil(N/64), ceil(M/64), 1) workgroups of 128 threads; workgroup_id.x is the tile's
// column, .y its row. Each subgroup of 32 (s = li / 32) owns a 32×32 quadrant of the 64×64
// output tile — rows (s / 2)·32.., columns (s % 2)·32.. — as 2×2 named 16×16 f32 accumulators.
// Per k-step of 32, all threads stage op(A)'s 64×32 and op(B)'s 32×64 slabs into workgroup
// memory as f16 (16 elements each per thread); each subgroup then does 2 × 4 coopMultiplyAdd.
// The epilogue goes through a 64×64 f32 tile in workgroup memory, because finish() is
// per-element and bounds-checked, so M, N and K need not be multiples of 16 or 64.
// Workgroup memory: 2 × 4 KiB slabs + 16 KiB output tile.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 32u;
const THREADS: u32 = 128u;

// Slab element e is staged by thread e % 128, and its layout follows the operand's contiguous
// global dimension (see stage_slabs): op(A) is [BM][BK] (k contiguous) or, under TRANS_A,
// [BK][BM] (m contiguous); op(B) is [BK][BN] or, under TRANS_B, [BN][BK]. Consecutive threads
// thus read consecutive global addresses and write consecutive workgroup addresses.
var<workgroup> slab_a: array<f16, BM * BK>;
var<workgroup> slab_b: array<f16, BK * BN>;
// [BM][BN], row-major.
var<workgroup> tile_c: array<f32, BM * BN>;

// matmul_common's stage_tiles (for the f32-ALU kernels) names these, so the module needs them
// to validate; nothing here uses them, and specializing the pipeline drops them with it.
var<workgroup> tile_a: array<vec4<f32>, 1>;
var<workgroup> tile_b: array<vec4<f32>, 1>;

fn stage_slabs(li: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = 0u; i < 16u; i++) {
        let e = li + i * 128u;
        var am: u32;
        var ak: u32;
        if (TRANS_A) { am = e % BM; ak = e / BM; } else { ak = e % BK; am = e / BK; }
        slab_a[e] = f16(load_a(row0 + am, k0 + ak));
        var bn: u32;
        var bk: u32;
        if (TRANS_B) { bk = e % BK; bn = e / BK; } else { bn = e % BN; bk = e / BN; }
        slab_b[e] = f16(load_b(k0 + bk, col0 + bn));
    }
}

// The 16×16 fragment of op(A) at slab rows m.., k-columns k.. (fragment element (r, c) =
// op(A)[m + r, k + c]). coopLoad reads (r, c) from ptr[c·stride + r], coopLoadT from
// ptr[r·stride + c]. Under TRANS_A the slab holds (m, k) at k·BM + m, so with ptr at k·BM + m,
// (r, c) lies at ptr[c·BM + r]: coopLoad, stride BM. Otherwise it holds (m, k) at m·BK + k,
// so with ptr at m·BK + k, (r, c) lies at ptr[r·BK + c]: coopLoadT, stride BK.
// Indices and strides are `let`s: naga 30 panics on unnamed ones (../shared/gpu/README.md).
fn frag_a(m: u32, k: u32) -> coop_mat16x16<f16, A> {
    if (TRANS_A) {
        let o = k * BM + m;
        let st = BM;
        return coopLoad<coop_mat16x16<f16, A>>(&slab_a[o], st);
    }
    let o = m * BK + k;
    let st = BK;
    return coopLoadT<coop_mat16x16<f16, A>>(&slab_a[o], st);
}

// The 16×16 fragment of op(B) at k-rows k.., slab columns n.. (fragment element (r, c) =
// op(B)[k + r, n + c]). Under TRANS_B the slab holds (k, n) at n·BK + k, so with ptr at
// n·BK + k, (r, c) lies at ptr[c·BK + r]: coopLoad, stride BK. Otherwise it holds (k, n) at
// k·BN + n, so (r, c) lies at ptr[r·BN + c]: coopLoadT, stride BN.
fn frag_b(k: u32, n: u32) -> coop_mat16x16<f16, B> {
    if (TRANS_B) {
        let o = n * BK + k;
        let st = BK;
        return coopLoad<coop_mat16x16<f16, B>>(&slab_b[o], st);
    }
    let o = k * BN + n;
    let st = BN;
    return coopLoadT<coop_mat16x16<f16, B>>(&slab_b[o], st);
}

@compute @workgroup_size(128, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    // With 32-wide subgroups and a 1-D workgroup, li / 32 is the subgroup, so every
    // cooperative operation below sees subgroup-uniform pointers and strides.
    let sg = li / 32u;
    let qm = (sg / 2u) * 32u;
    let qn = (sg % 2u) * 32u;
    var acc00 = coop_mat16x16<f32, C>();
    var acc01 = coop_mat16x16<f32, C>();
    var acc10 = coop_mat16x16<f32, C>();
    var acc11 = coop_mat16x16<f32, C>();

    overflow_begin(li);
    for (var k0 = 0u; k0 < d.k; k0 += BK) {
        stage_slabs(li, row0, col0, k0);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a0 = frag_a(qm, kk);
            let a1 = frag_a(qm + 16u, kk);
            let b0 = frag_b(kk, qn);
            let b1 = frag_b(kk, qn + 16u);
            acc00 = coopMultiplyAdd(a0, b0, acc00);
            acc01 = coopMultiplyAdd(a0, b1, acc01);
            acc10 = coopMultiplyAdd(a1, b0, acc10);
            acc11 = coopMultiplyAdd(a1, b1, acc11);
        }
        workgroupBarrier();
    }
    let poisoned = overflow_end();

    // Accumulator ij covers tile rows qm + 16i.., columns qn + 16j..; its (r, c) goes to
    // tile_c[(qm + 16i + r)·BN + qn + 16j + c] = ptr[r·BN + c]: coopStoreT, stride BN.
    let st = BN;
    let o00 = qm * BN + qn;
    let o01 = o00 + 16u;
    let o10 = o00 + 16u * BN;
    let o11 = o10 + 16u;
    coopStoreT(acc00, &tile_c[o00], st);
    coopStoreT(acc01, &tile_c[o01], st);
    coopStoreT(acc10, &tile_c[o10], st);
    coopStoreT(acc11, &tile_c[o11], st);
    workgroupBarrier();

    // Consecutive threads take consecutive columns so the stores to C coalesce.
    for (var i = 0u; i < 32u; i++) {
        let e = li + i * 128u;
        finish(row0 + e / BN, col0 + e % BN, unscale(tile_c[e], poisoned));
    }
}
