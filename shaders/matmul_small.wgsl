// Tiled matmul for small products, 32×32 tiles: the same math, bindings and epilogues as
// matmul.wgsl (see there). A product too small to give a large GPU many 64×64 tiles (mnist_ae's
// 256×512 layer makes 32) gets four times as many workgroups here, each thread still owning a
// 4×4 block of C; the executor picks it per device by timing (src/gpu/autotune.rs).
// Dispatch: (ceil(N/32), ceil(M/32), 1) workgroups of 8×8 threads. Per k-step of 16, a 32×16
// slab of op(A) and a 16×32 slab of op(B) are staged as vec4s of four consecutive rows (A) or
// columns (B), eight elements per thread.
// Prepended: matmul_common.wgsl.

const BM: u32 = 32u;
const BN: u32 = 32u;
const BK: u32 = 16u;
const THREADS: u32 = 64u;

// [BK][BM/4] and [BK][BN/4].
var<workgroup> tile_a: array<vec4<f32>, 128>;
var<workgroup> tile_b: array<vec4<f32>, 128>;

@compute @workgroup_size(8, 8, 1)
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
            let av = tile_a[kk * 8u + lid.y];
            let bv = tile_b[kk * 8u + lid.x];
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
