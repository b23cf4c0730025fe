// The sums that finish the conv ops, both in a fixed order (results do not depend on
// scheduling):
//   weight_grad_sum: dw[i] (+)= Σ_s partial[s·len + i], the K chunks of conv2d.wgsl mode 2.
//     Dispatch: grid_1d(len) workgroups of 256 threads, one element per thread.
//   channel_sum: out[c] (+)= Σ_rows Σ_p x[row, c·P + p], a conv bias gradient.
//     Dispatch: one workgroup of 256 threads per channel (folded past 65,535 as
//     workgroup_row), each thread summing a strided share, then a tree in workgroup memory.
// Bindings: 0 the partials or x (read), 1 dw or out (read_write), 2 ReduceDims.

// Prepended: workgroup.wgsl.

override ACCUMULATE: bool = false;

struct ReduceDims {
    // weight_grad_sum: len, splits, 0, 0; channel_sum: rows, cols, channels, positions.
    a: u32, b: u32, c: u32, e: u32,
    in_off: u32, out_off: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> d: ReduceDims;

fn store(i: u32, v: f32) {
    if (ACCUMULATE) { dst[d.out_off + i] = dst[d.out_off + i] + v; } else { dst[d.out_off + i] = v; }
}

@compute @workgroup_size(256, 1, 1)
fn weight_grad_sum(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    let len = d.a;
    if (i >= len) { return; }
    var s = 0.0;
    for (var k = 0u; k < d.b; k++) {
        s += src[d.in_off + k * len + i];
    }
    store(i, s);
}

@compute @workgroup_size(256, 1, 1)
fn channel_sum(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let c = workgroup_row(wg, groups);
    let rows = d.a;
    let cols = d.b;
    let channels = d.c;
    let positions = d.e;
    var s = 0.0;
    if (c < channels) {
        for (var e = li; e < rows * positions; e += 256u) {
            let row = e / positions;
            s += src[d.in_off + row * cols + c * positions + (e - row * positions)];
        }
    }
    let total = workgroup_sum(li, s);
    if (li == 0u && c < channels) { store(c, total); }
}
