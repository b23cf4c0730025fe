// Tiled matmul for large products, 128×128 tiles: the same math, bindings and epilogues as
// matmul.wgsl (see there), chosen by the executor when M and N are both at least 128.
// Dispatch: (ceil(N/128), ceil(M/128), 1) workgroups of 16×16 threads. Each thread owns four
// 4×4 blocks of C — rows 4·ty + {0..3} and 64 + 4·ty + {0..3}, the same for columns with tx —
// held in sixteen named vec4 registers (an indexed array would spill: ../shared/gpu/README.md).
// Per k-step of 8, a 128×8 slab of op(A) and an 8×128 slab of op(B) are staged in workgroup
// memory as vec4s of four consecutive rows (A) or columns (B); each thread then does 64 FMAs
// per 4 vec4 reads from workgroup memory.
// Prepended: matmul_common.wgsl.

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;
const THREADS: u32 = 256u;

// [BK][BM/4] and [BK][BN/4].
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    var q00_0 = vec4<f32>(0.0);
    var q00_1 = vec4<f32>(0.0);
    var q00_2 = vec4<f32>(0.0);
    var q00_3 = vec4<f32>(0.0);
    var q01_0 = vec4<f32>(0.0);
    var q01_1 = vec4<f32>(0.0);
    var q01_2 = vec4<f32>(0.0);
    var q01_3 = vec4<f32>(0.0);
    var q10_0 = vec4<f32>(0.0);
    var q10_1 = vec4<f32>(0.0);
    var q10_2 = vec4<f32>(0.0);
    var q10_3 = vec4<f32>(0.0);
    var q11_0 = vec4<f32>(0.0);
    var q11_1 = vec4<f32>(0.0);
    var q11_2 = vec4<f32>(0.0);
    var q11_3 = vec4<f32>(0.0);

    overflow_begin(li);
    for (var k0 = 0u; k0 < d.k; k0 += BK) {
        stage_tiles(li, row0, col0, k0);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = tile_a[kk * 32u + lid.y];
            let a1 = tile_a[kk * 32u + 16u + lid.y];
            let b0 = tile_b[kk * 32u + lid.x];
            let b1 = tile_b[kk * 32u + 16u + lid.x];
            q00_0 += a0.x * b0;
            q00_1 += a0.y * b0;
            q00_2 += a0.z * b0;
            q00_3 += a0.w * b0;
            q01_0 += a0.x * b1;
            q01_1 += a0.y * b1;
            q01_2 += a0.z * b1;
            q01_3 += a0.w * b1;
            q10_0 += a1.x * b0;
            q10_1 += a1.y * b0;
            q10_2 += a1.z * b0;
            q10_3 += a1.w * b0;
            q11_0 += a1.x * b1;
            q11_1 += a1.y * b1;
            q11_2 += a1.z * b1;
            q11_3 += a1.w * b1;
        }
        workgroupBarrier();
    }

    let poisoned = overflow_end();
    let r0 = row0 + lid.y * 4u;
    let r1 = row0 + 64u + lid.y * 4u;
    let c0 = col0 + lid.x * 4u;
    let c1 = col0 + 64u + lid.x * 4u;
    finish_row(r0 + 0u, c0, q00_0, poisoned);
    finish_row(r0 + 1u, c0, q00_1, poisoned);
    finish_row(r0 + 2u, c0, q00_2, poisoned);
    finish_row(r0 + 3u, c0, q00_3, poisoned);
    finish_row(r0 + 0u, c1, q01_0, poisoned);
    finish_row(r0 + 1u, c1, q01_1, poisoned);
    finish_row(r0 + 2u, c1, q01_2, poisoned);
    finish_row(r0 + 3u, c1, q01_3, poisoned);
    finish_row(r1 + 0u, c0, q10_0, poisoned);
    finish_row(r1 + 1u, c0, q10_1, poisoned);
    finish_row(r1 + 2u, c0, q10_2, poisoned);
    finish_row(r1 + 3u, c0, q10_3, poisoned);
    finish_row(r1 + 0u, c1, q11_0, poisoned);
    finish_row(r1 + 1u, c1, q11_1, poisoned);
    finish_row(r1 + 2u, c1, q11_2, poisoned);
    finish_row(r1 + 3u, c1, q11_3, poisoned);
}
