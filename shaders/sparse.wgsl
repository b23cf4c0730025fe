// Sparsity penalties on a code h = act(a), twins of `regularizers::sparse_l1` / `sparse_kl`.
// ACT is the code's activation; gradients are added to dz = dL/da.
//
// sparse_l1   rows[b] = λ Σ_j |h_bj|,  dz[b, j] += (λ/B) · sign(h_bj) · act'(h_bj)
//   Bindings: 0 h (read), 1 rows, 2 dz (read_write), 3 L1Dims.
//   Dispatch: one 256-thread workgroup per example b, folded 2-D past 65,535 rows.
// sparse_kl   with ρ̂_j = sums_j / B:
//             terms[j] = λ (ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j)))
//             dz[b, j] += λ/B · (−ρ/ρ̂_j + (1−ρ)/(1−ρ̂_j)) · act'(h_bj)
//   Bindings: 0 h, 1 sums (read), 2 terms, 3 dz (read_write), 4 KlDims.
//   Dispatch: ceil(B·c/256) workgroups of 256 (one thread per element of h), folded 2-D; the
//   threads of row 0 also write terms.
// λ/B and 1/B are computed on the host in f32, as the CPU twins compute them.
// Entry points bind different globals at the same binding numbers; each uses only its own.

// ---- sparse_l1 ----

struct L1Dims {
    batch: u32, units: u32, h_off: u32, rows_off: u32,
    dz_off: u32, lambda: f32, grad_scale: f32, _p0: u32,
}

@group(0) @binding(0) var<storage, read> l1_h: array<f32>;
@group(0) @binding(1) var<storage, read_write> l1_rows: array<f32>;
@group(0) @binding(2) var<storage, read_write> l1_dz: array<f32>;
@group(0) @binding(3) var<uniform> l1_d: L1Dims;

@compute @workgroup_size(256)
fn sparse_l1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let b = workgroup_row(wg, groups);
    if (b >= l1_d.batch) { return; }
    var p = 0.0;
    for (var j = li; j < l1_d.units; j += 256u) {
        let at = b * l1_d.units + j;
        let y = l1_h[l1_d.h_off + at];
        p += abs(y);
        let o = l1_d.dz_off + at;
        l1_dz[o] = l1_dz[o] + l1_d.grad_scale * sign(y) * activation_grad_from_output(y);
    }
    let total = workgroup_sum(li, p);
    if (li == 0u) { l1_rows[l1_d.rows_off + b] = l1_d.lambda * total; }
}

// ---- sparse_kl ----

struct KlDims {
    len: u32, units: u32, h_off: u32, sums_off: u32,
    terms_off: u32, dz_off: u32, lambda: f32, rho: f32,
    inv_b: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> kl_h: array<f32>;
@group(0) @binding(1) var<storage, read> kl_sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> kl_terms: array<f32>;
@group(0) @binding(3) var<storage, read_write> kl_dz: array<f32>;
@group(0) @binding(4) var<uniform> kl_d: KlDims;

@compute @workgroup_size(256)
fn sparse_kl(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= kl_d.len) { return; }
    let j = i % kl_d.units;
    let rho = kl_d.rho;
    let p = kl_sums[kl_d.sums_off + j] * kl_d.inv_b;
    if (i < kl_d.units) {
        kl_terms[kl_d.terms_off + j] =
            kl_d.lambda * (rho * log(rho / p) + (1.0 - rho) * log((1.0 - rho) / (1.0 - p)));
    }
    let coef = kl_d.lambda * kl_d.inv_b * (-rho / p + (1.0 - rho) / (1.0 - p));
    let o = kl_d.dz_off + i;
    kl_dz[o] = kl_dz[o] + coef * activation_grad_from_output(kl_h[kl_d.h_off + i]);
}
