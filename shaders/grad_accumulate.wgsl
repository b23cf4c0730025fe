// Gradient accumulation over the micro-steps of one optimizer step (Op::GradAccumulate; CPU
// twin cpu::kernels::grad_accumulate): with ACCUMULATE_STEP in the step's accumulate_flags,
// sum = w·grads on the first micro-step (ACCUMULATE_FIRST), acc + w·grads after it, with
// w = accumulate_weight; the sum goes into grads on the last micro-step (ACCUMULATE_LAST),
// where the optimizer reads it, and into acc on the others. Without ACCUMULATE_STEP: nothing.
// Bindings: 0 grads, 1 acc (both read and written), 2 Dims, 3 Step.
// Dispatch: ceil(len/256) workgroups of 256, folded into a 2-D grid (see flat_index).

// The flag bits: src/graph/mod.rs's ACCUMULATE_*, which the executor always gives (the
// defaults of 0 only let the module compile alone: ACCUMULATE_STEP 0 does nothing).
override ACCUMULATE_STEP: u32 = 0u;
override ACCUMULATE_FIRST: u32 = 0u;
override ACCUMULATE_LAST: u32 = 0u;

struct Dims { len: u32, grads_off: u32, acc_off: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read_write> grads: array<f32>;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;
@group(0) @binding(3) var<uniform> s: Step;

@compute @workgroup_size(256)
fn grad_accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let flags = s.accumulate_flags;
    if (i >= d.len || (flags & ACCUMULATE_STEP) == 0u) { return; }
    let g = d.grads_off + i;
    let a = d.acc_off + i;
    let x = s.accumulate_weight * grads[g];
    var sum = x;
    if ((flags & ACCUMULATE_FIRST) == 0u) {
        sum = acc[a] + x;
    }
    if ((flags & ACCUMULATE_LAST) != 0u) {
        grads[g] = sum;
    } else {
        acc[a] = sum;
    }
}
