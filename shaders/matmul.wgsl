// Tiled matmul with a fused epilogue: C[M,N] = op(A)[M,K] · op(B)[K,N], then per element
//   EPILOGUE 0: c = acc
//   EPILOGUE 1: c = act(acc + aux[col])                 (dense layer forward, aux = bias)
//   EPILOGUE 2: c = acc · act'(aux[row, col])           (backward through the previous layer's
//                                                         activation, aux = its output)
//   EPILOGUE 3: c = c + acc                              (accumulate: tied weights)
//   EPILOGUE 4: c = (c + acc) · act'(aux[row, col])      (second product into one layer's
//                                                         input gradient: VAE μ and log σ²)
// op(A) = A or Aᵀ (TRANS_A), op(B) = B or Bᵀ (TRANS_B); the three dense-layer forms are
// X·Wᵀ (forward), dZ·W (input gradient) and dZᵀ·X (weight gradient).
//
// Bindings: 0 A (read), 1 B (read), 2 C (read_write), 3 aux (read), 4 Dims (uniform).
// Dispatch: (ceil(N/BN), ceil(M/BM), 1) workgroups of (BN/4)×(BM/4) threads; each thread owns a
// 4×4 block of C held in four vec4 registers (not an indexed array: see
// ../shared/gpu/README.md). Tiles: BM×BK of op(A) and BK×BN of op(B) per k-step, staged in
// workgroup memory. The tile size comes from the prepended matmul_tile64.wgsl (64×64) or
// matmul_tile32.wgsl (32×32); matmul_large.wgsl is the 128×128 variant.

// Prepended: matmul_common.wgsl, one of matmul_tile64.wgsl / matmul_tile32.wgsl.

// [BK][BM/4] and [BK][BN/4]: one vec4 holds four consecutive rows (A) or columns (B).
var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>;

@compute @workgroup_size(BN / 4u, BM / 4u, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    overflow_begin(li);
    for (var k0 = 0u; k0 < d.k; k0 += BK) {
        stage_tiles(li, row0, col0, k0);
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

    let poisoned = overflow_end();
    let r = row0 + lid.y * 4u;
    let cc = col0 + lid.x * 4u;
    finish_row(r, cc, acc0, poisoned);
    finish_row(r + 1u, cc, acc1, poisoned);
    finish_row(r + 2u, cc, acc2, poisoned);
    finish_row(r + 3u, cc, acc3, poisoned);
}
