// The sums that finish the conv ops, both in a fixed order (results do not depend on
// scheduling):
//   weight_grad_sum: dw[i] (+)= Σ_s partial[s·len + i], the K chunks of conv2d.wgsl mode 2.
//     Dispatch: grid_1d(len) workgroups of 256 threads, one element per thread.
//   channel_sum: out[c] (+)= Σ_rows Σ_p x[row, c·P + p], a conv bias gradient.
//     Dispatch: channels laid out over 256-thread workgroups as `lay` says (rows.wgsl), each
//     thread summing a strided share, then a tree in workgroup memory; a channel split over
//     several workgroups writes its pieces to partials and row_sum.wgsl adds them into out.
// Bindings: 0 the partials or x (read), 1 dw or out (read_write), 2 ReduceDims, 3 partials
// (read_write; channel_sum's split sums).
// Prepended: workgroup.wgsl, rows.wgsl.

override ACCUMULATE: bool = false;

struct ReduceDims {
    // weight_grad_sum: len, splits, 0, 0; channel_sum: rows, cols, channels, positions.
    a: u32, b: u32, c: u32, e: u32,
    in_off: u32, out_off: u32, _p0: u32, _p1: u32,
    // channel_sum's layout; unused by weight_grad_sum.
    lay: RowLayout,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> d: ReduceDims;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

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
    let rows = d.a;
    let cols = d.b;
    let channels = d.c;
    let positions = d.e;
    let at = row_slot(d.lay, wg, groups, li, rows * positions);
    if (row_group_first(d.lay, wg, groups) >= channels) { return; }
    let c = at.row;
    var s = 0.0;
    if (c < channels) {
        for (var e = at.begin + at.lane; e < at.end; e += d.lay.seg) {
            let row = e / positions;
            s += src[d.in_off + row * cols + c * positions + (e - row * positions)];
        }
    }
    let total = segment_sum(li, d.lay.seg, s);
    if (at.lane == 0u && c < channels) {
        if (d.lay.splits == 1u) {
            store(c, total);
        } else {
            partials[d.lay.part_off + c * d.lay.splits + at.split] = total;
        }
    }
}
