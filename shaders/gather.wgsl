// Mini-batch gather from the resident data set: out[i, j] = data[order[batch_start + i], j].
// batch_start comes from the step ring, so successive steps in one submission take successive
// batches of the epoch's order.
// Bindings: 0 data (read), 1 order (read, u32), 2 out (read_write), 3 Dims, 4 Step (dynamic).
// Dispatch: ceil(rows·cols/256) workgroups of 256, folded into a 2-D grid.

struct Dims { rows: u32, cols: u32, data_off: u32, out_off: u32 }

@group(0) @binding(0) var<storage, read> data: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;
@group(0) @binding(4) var<uniform> s: Step;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= d.rows * d.cols) { return; }
    let row = i / d.cols;
    let col = i - row * d.cols;
    let src = order[s.batch_start + row];
    out[d.out_off + i] = data[d.data_off + src * d.cols + col];
}
