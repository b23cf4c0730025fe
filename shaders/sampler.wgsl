// The reparameterized sampler of a VAE and its backward pass, twins of
// `regularizers::sample` / `sample_grad`. μ and log σ² are [B, c]; ε and z are [L·B, c], row
// l·B + b being sample l of example b; n = B·c.
//
// sample       ε[i] = gaussian(element_block(STREAM_SAMPLER, global_element(i, c, B))),  z[i] = μ[i mod n] + exp(½ lv[i mod n]) · ε[i]
//              kl[b] = (−½β) · Σ_j (1 + lv_bj − μ_bj² − exp(lv_bj))
//   Bindings: 0 mu, 1 logvar (read), 2 eps, 3 z, 4 kl (read_write), 5 SampleDims, 6 Step (dynamic).
//   Dispatch: examples spread over 256-thread workgroups as `lay` says (shaders/rows.wgsl):
//   each example's segment (or split) draws its share of the example's L·c elements; every
//   split reduces the example's KL row (c elements), split 0 writes it.
// sample_grad  σ = exp(½ lv),  dμ[i] = Σ_l dz[l·n + i] + (β/B) μ[i],
//              dlv[i] = Σ_l dz[l·n + i] · ε[l·n + i] · ½σ + (β/B) · ½ (σ² − 1)
//   Bindings: 0 dz, 1 eps, 2 mu, 3 logvar (read), 4 dmu, 5 dlogvar (read_write), 6 GradDims.
//   Dispatch: ceil(n/256) workgroups of 256, folded 2-D (flat_index).
// −½β and β/B are computed on the host in f32, as the CPU twins compute them.
// Entry points bind different globals at the same binding numbers; each uses only its own.

// ---- sample ----

struct SampleDims {
    batch: u32, units: u32, samples: u32, mu_off: u32,
    lv_off: u32, eps_off: u32, z_off: u32, kl_off: u32,
    kl_scale: f32, _p0: u32, _p1: u32, _p2: u32,
    lay: RowLayout,
}

@group(0) @binding(0) var<storage, read> sm_mu: array<f32>;
@group(0) @binding(1) var<storage, read> sm_lv: array<f32>;
@group(0) @binding(2) var<storage, read_write> sm_eps: array<f32>;
@group(0) @binding(3) var<storage, read_write> sm_z: array<f32>;
@group(0) @binding(4) var<storage, read_write> sm_kl: array<f32>;
@group(0) @binding(5) var<uniform> sm_d: SampleDims;
@group(0) @binding(6) var<uniform> s: Step;

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let units = sm_d.units;
    let seg = sm_d.lay.seg;
    let at = row_slot(sm_d.lay, wg, groups, li, sm_d.samples * units);
    if (row_group_first(sm_d.lay, wg, groups) >= sm_d.batch) { return; }
    let b = at.row;
    var kl = 0.0;
    if (b < sm_d.batch) {
        for (var e = at.begin + at.lane; e < at.end; e += seg) {
            let l = e / units;
            let j = e - l * units;
            let i = (l * sm_d.batch + b) * units + j;
            let m = b * units + j;
            let w = element_block(STREAM_SAMPLER, global_element(i, units, sm_d.batch));
            let eps = gaussian(w.x, w.y);
            sm_eps[sm_d.eps_off + i] = eps;
            sm_z[sm_d.z_off + i] = sm_mu[sm_d.mu_off + m] + exp(0.5 * sm_lv[sm_d.lv_off + m]) * eps;
        }
        for (var j = at.lane; j < units; j += seg) {
            let mu = sm_mu[sm_d.mu_off + b * units + j];
            let lv = sm_lv[sm_d.lv_off + b * units + j];
            kl += 1.0 + lv - mu * mu - exp(lv);
        }
    }
    let total = segment_sum(li, seg, kl);
    if (at.lane == 0u && at.split == 0u && b < sm_d.batch) {
        sm_kl[sm_d.kl_off + b] = sm_d.kl_scale * total;
    }
}

// ---- sample_grad ----

struct GradDims {
    n: u32, samples: u32, dz_off: u32, eps_off: u32,
    mu_off: u32, lv_off: u32, dmu_off: u32, dlv_off: u32,
    kl: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> sg_dz: array<f32>;
@group(0) @binding(1) var<storage, read> sg_eps: array<f32>;
@group(0) @binding(2) var<storage, read> sg_mu: array<f32>;
@group(0) @binding(3) var<storage, read> sg_lv: array<f32>;
@group(0) @binding(4) var<storage, read_write> sg_dmu: array<f32>;
@group(0) @binding(5) var<storage, read_write> sg_dlv: array<f32>;
@group(0) @binding(6) var<uniform> sg_d: GradDims;

@compute @workgroup_size(256)
fn sample_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= sg_d.n) { return; }
    let sigma = exp(0.5 * sg_lv[sg_d.lv_off + i]);
    var gm = 0.0;
    var gl = 0.0;
    for (var l = 0u; l < sg_d.samples; l++) {
        let e = l * sg_d.n + i;
        let g = sg_dz[sg_d.dz_off + e];
        gm += g;
        gl += g * sg_eps[sg_d.eps_off + e] * 0.5 * sigma;
    }
    sg_dmu[sg_d.dmu_off + i] = gm + sg_d.kl * sg_mu[sg_d.mu_off + i];
    sg_dlv[sg_d.dlv_off + i] = gl + sg_d.kl * 0.5 * (sigma * sigma - 1.0);
}
