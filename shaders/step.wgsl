// The per-step values, mirrored by `StepParams` in src/graph/mod.rs (44 bytes). The executor
// writes one per step into a ring of 256-byte slots and binds the slot with a dynamic offset,
// so several steps can be recorded into one submission.
struct Step {
    step: u32,
    batch_start: u32,
    lr: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    seed_lo: u32,
    seed_hi: u32,
    row_base: u32,
    rows_global: u32,
    // Gradient accumulation (grad_accumulate.wgsl): the micro-step's weight, and its flags
    // (ACCUMULATE_STEP, _FIRST, _LAST of src/graph/mod.rs, given to the kernel as overrides).
    accumulate_weight: f32,
    accumulate_flags: u32,
}

// Flat element index of a 1-D kernel dispatched as a 2-D grid of 256-wide workgroups
// (grids are folded into y when they exceed the 65,535-workgroup limit of one dimension).
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}
