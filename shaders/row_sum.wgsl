// The second dispatch of a per-row kernel whose rows were split over several workgroups
// (shaders/rows.wgsl): out[out_off + r] = scale · Σ_s partials[part_off + r · splits + s], the
// splits added in order, so the result depends only on the shape.
// Bindings: 0 partials (read), 1 out (read_write), 2 RowSumDims (mirror in
// src/gpu/executor/rows.rs). Dispatch: ceil(rows / 256) workgroups of 256, folded 2-D.

struct RowSumDims { rows: u32, splits: u32, part_off: u32, out_off: u32, scale: f32, accumulate: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> d: RowSumDims;

@compute @workgroup_size(256)
fn row_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = gid.y * groups.x * 256u + gid.x;
    if (r >= d.rows) { return; }
    var s = 0.0;
    for (var k = 0u; k < d.splits; k++) {
        s += partials[d.part_off + r * d.splits + k];
    }
    if (d.accumulate == 1u) {
        out[d.out_off + r] = out[d.out_off + r] + d.scale * s;
    } else {
        out[d.out_off + r] = d.scale * s;
    }
}
