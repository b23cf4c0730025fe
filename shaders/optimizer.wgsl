// Fused optimizer updates over a whole parameter arena, PyTorch's formulations:
//   adam: g += wd·p (Adam) or p *= 1 − lr·wd (AdamW, DECOUPLED); m = β1 m + (1−β1) g;
//         v = β2 v + (1−β2) g²; p −= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + ε)
//   sgd:  g += wd·p; v = μ v + g; p −= lr · v
// lr and the bias corrections bc = 1 − βᵗ come from the step ring (computed on the host in f64).
// With GUARD, the step's Σ g² (norm.wgsl) decides first: not finite → the step is skipped and
// nothing changes; else g is scaled by min(1, max_norm / (‖g‖ + 1e-6)) when max_norm > 0.
// Bindings: 0 params, 1 grads (read), 2 m / velocity, 3 v (adam only), 4 Hyper, 5 Step (dynamic),
//           6 norm_sq (read; unused without GUARD).
// Dispatch: ceil(len/256) workgroups of 256, folded into a 2-D grid.

override DECOUPLED: bool = false;
override GUARD: bool = false;

struct Hyper { len: u32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, momentum: f32, max_norm: f32, norm_off: u32 }

@group(0) @binding(0) var<storage, read_write> params: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> h: Hyper;
@group(0) @binding(5) var<uniform> s: Step;
@group(0) @binding(6) var<storage, read> norm_sq: array<f32>;

// The factor this step's gradient is scaled by; negative when the step must be skipped.
fn gradient_scale() -> f32 {
    if (!GUARD) { return 1.0; }
    let n = norm_sq[h.norm_off];
    if (!is_finite(n)) { return -1.0; }
    if (h.max_norm > 0.0) { return min(1.0, h.max_norm / (sqrt(n) + 1e-6)); }
    return 1.0;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= h.len) { return; }
    let scale = gradient_scale();
    if (scale < 0.0) { return; }
    var p = params[i];
    var g = grads[i] * scale;
    if (DECOUPLED) {
        p = p * (1.0 - s.lr * h.weight_decay);
    } else {
        g = g + h.weight_decay * p;
    }
    let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
    let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / sqrt(s.bias_correction2) + h.eps;
    params[i] = p - (s.lr / s.bias_correction1) * mi / denom;
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= h.len) { return; }
    let scale = gradient_scale();
    if (scale < 0.0) { return; }
    let g = scale * grads[i] + h.weight_decay * params[i];
    let vi = h.momentum * m[i] + g;
    m[i] = vi;
    params[i] = params[i] - s.lr * vi;
}
