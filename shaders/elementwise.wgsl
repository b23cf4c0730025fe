// Element-wise kernels: y = act(x) (entry `forward`), dx = dy · act'(y) (`backward`) and
// out += x (`add_into`, gradients of a value used twice).
// Bindings: 0 input (x or dy), 1 y (read, backward only), 2 output (y, dx or out), 3 Dims.
// Dispatch: ceil(len/256) workgroups of 256, folded into a 2-D grid (see flat_index).

struct Dims { len: u32, in_off: u32, y_off: u32, out_off: u32 }

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= d.len) { return; }
    output[d.out_off + i] = activate(input[d.in_off + i]);
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= d.len) { return; }
    output[d.out_off + i] = input[d.in_off + i] * activation_grad_from_output(y[d.y_off + i]);
}

@compute @workgroup_size(256)
fn add_into(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= d.len) { return; }
    let o = d.out_off + i;
    output[o] = output[o] + input[d.in_off + i];
}
