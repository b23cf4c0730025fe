// The gradient's sum of squares, in two dispatches, and the step's health:
//   sum_squares:       partials[w] = Σ g² over block w of 2048 gradients (workgroup w, 256
//                      threads, eight strided elements each; blocks folded into a 2-D grid)
//   sum_squares_final: norm_sq = Σ_w partials[w] (one workgroup); when it is not finite the
//                      step is counted in health[0] and, for the first such, health[1] = step.
// The optimizer reads norm_sq to skip a non-finite step and to clip (optimizer.wgsl).
// Bindings: 0 grads (read), 1 partials (read_write), 2 norm_sq (read_write),
//           3 health (read_write, u32), 4 Dims, 5 Step (dynamic).

struct Dims { len: u32, blocks: u32, grads_off: u32, partials_off: u32, norm_off: u32, health_off: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm_sq: array<f32>;
@group(0) @binding(3) var<storage, read_write> health: array<u32>;
@group(0) @binding(4) var<uniform> d: Dims;
@group(0) @binding(5) var<uniform> s: Step;

@compute @workgroup_size(256)
fn sum_squares(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let block = workgroup_row(wg, groups);
    if (block >= d.blocks) { return; }
    let start = block * 2048u;
    var acc = 0.0;
    for (var k = 0u; k < 8u; k++) {
        let i = start + k * 256u + li;
        if (i < d.len) {
            let g = grads[d.grads_off + i];
            acc += g * g;
        }
    }
    let total = workgroup_sum(li, acc);
    if (li == 0u) { partials[d.partials_off + block] = total; }
}

@compute @workgroup_size(256)
fn sum_squares_final(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var w = li; w < d.blocks; w += 256u) {
        acc += partials[d.partials_off + w];
    }
    let total = workgroup_sum(li, acc);
    if (li == 0u) {
        norm_sq[d.norm_off] = total;
        if (!is_finite(total)) {
            if (health[d.health_off] == 0u) { health[d.health_off + 1u] = s.step; }
            health[d.health_off] = health[d.health_off] + 1u;
        }
    }
}
