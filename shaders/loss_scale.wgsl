// Dynamic loss scaling for mixed precision (Op::CheckFinite and Op::LossScale in
// src/graph/mod.rs; CPU twins in src/cpu):
//   check_finite: dst[0] = 1 when every element of src is finite, else 0 — whether a step's
//                 forward pass (its per-example losses) was finite. One workgroup of 256.
//   loss_scale:   after the optimizer, one thread updates dst = [scale, finite steps in a row,
//                 overflow steps, 0] from the step's Σ g² (src) and forward flag (flag):
//                 finite gradient → count, doubling the scale every `interval` steps;
//                 non-finite gradient after a finite forward pass → the scaled gradients
//                 overflowed f16: halve the scale, count the overflow and take the step back
//                 out of the health counters (it was skipped like a fault, but is not one);
//                 non-finite forward pass, or an overflow at the smallest scale (the gradient
//                 itself beyond ~1e12) → a real fault, left counted.
//                 The scale stays a power of two within [lo, hi], so unscaling is exact.
// Bindings: 0 src (read), 1 dst (read_write), 2 flag (read), 3 health (read_write, u32),
//           4 Dims (loss_scale only: 2, 3).
// Prepended: workgroup.wgsl, finite.wgsl.

struct Dims {
    len: u32, src_off: u32, dst_off: u32, flag_off: u32,
    health_off: u32, interval: u32, lo: f32, hi: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> flag: array<f32>;
@group(0) @binding(3) var<storage, read_write> health: array<u32>;
@group(0) @binding(4) var<uniform> d: Dims;

@compute @workgroup_size(256)
fn check_finite(@builtin(local_invocation_index) li: u32) {
    var bad = 0.0;
    for (var i = li; i < d.len; i += 256u) {
        if (!is_finite(src[d.src_off + i])) { bad += 1.0; }
    }
    let total = workgroup_sum(li, bad);
    if (li == 0u) { dst[d.dst_off] = select(0.0, 1.0, total == 0.0); }
}

@compute @workgroup_size(1)
fn loss_scale() {
    let o = d.dst_off;
    let scale = dst[o];
    if (is_finite(src[d.src_off])) {
        let run = u32(dst[o + 1u]) + 1u;
        if (run >= d.interval) {
            dst[o] = min(scale * 2.0, d.hi);
            dst[o + 1u] = 0.0;
        } else {
            dst[o + 1u] = f32(run);
        }
    } else if (flag[d.flag_off] == 1.0 && scale > d.lo) {
        dst[o] = max(scale * 0.5, d.lo);
        dst[o + 1u] = 0.0;
        dst[o + 2u] = dst[o + 2u] + 1.0;
        let h = d.health_off;
        if (health[h] > 0u) {
            health[h] = health[h] - 1u;
            if (health[h] == 0u) { health[h + 1u] = 0u; }
        }
    } else {
        dst[o + 1u] = 0.0;
    }
}
