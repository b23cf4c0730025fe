// Predictive sparse decomposition (src/graph/psd.rs), twins of src/cpu/psd.rs.
//
// psd_gain        f[i] = u[i] · g[i % c]
//   Bindings: 0 u, 1 g (read), 2 f (read_write), 3 GainDims. Dispatch: one thread per element.
// psd_gain_grad   da = df · g · (1 − u²),  dg[j] = Σ_b df[b, j] · u[b, j]
//   Bindings: 0 df, 1 u, 2 g (read), 3 da, 4 dg (read_write), 5 GainGradDims.
//   Dispatch: one thread per code unit j, rows summed in order.
// psd_lipschitz   power iteration on G = DᵀD from v_j = 1 + fract(0.618034 j); σ is the last
//                 Rayleigh quotient; step = [1/L, λ/L, σ, L] with L = 2(min(margin σ, tr G) + γ)
//   Bindings: 0 gram (read), 1 scratch [2c], 2 step (read_write), 3 LipDims.
//   Dispatch: one workgroup of 256 threads (the iterations synchronise through the scratch).
// psd_shrink      h = shrink(y − (2/L)(q − p + γ(y − f)), λ/L), shrink(v, t) = sign(v) max(|v| − t, 0)
//   Bindings: 0 y, 1 q, 2 p, 3 f, 4 step (read), 5 h (read_write), 6 ShrinkDims.
//   Dispatch: one thread per element.
// psd_momentum    y = h + β (h − h_prev)
//   Bindings: 0 h, 1 h_prev (read), 2 y (read_write), 3 MomentumDims.
// psd_terms       per example b: rows[0,b] = λ Σ|h|, rows[1,b] = γ Σ(h − f)², rows[2,b] = #zeros,
//                 rows[3,b] = Σ(h − f)², rows[4,b] = Σh²;  df = coef · (h − f), coef = −2γ/B
//   Bindings: 0 h, 1 f (read), 2 rows, 3 df (read_write), 4 TermsDims.
//   Dispatch: one thread per example, units summed in order.
// psd_renorm      every column of d [rows, cols] scaled to unit L2 norm, in place
//   Bindings: 0 d (read_write), 1 RenormDims. Dispatch: one thread per column.
// Entry points bind different globals at the same binding numbers; each uses only its own.

// ---- psd_gain ----

struct GainDims { len: u32, units: u32, u_off: u32, g_off: u32, f_off: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read> gn_u: array<f32>;
@group(0) @binding(1) var<storage, read> gn_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> gn_f: array<f32>;
@group(0) @binding(3) var<uniform> gn_d: GainDims;

@compute @workgroup_size(256)
fn psd_gain(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= gn_d.len) { return; }
    gn_f[gn_d.f_off + i] = gn_u[gn_d.u_off + i] * gn_g[gn_d.g_off + i % gn_d.units];
}

// ---- psd_gain_grad ----

struct GainGradDims {
    rows: u32, units: u32, df_off: u32, u_off: u32,
    g_off: u32, da_off: u32, dg_off: u32, _p0: u32,
}

@group(0) @binding(0) var<storage, read> gg_df: array<f32>;
@group(0) @binding(1) var<storage, read> gg_u: array<f32>;
@group(0) @binding(2) var<storage, read> gg_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> gg_da: array<f32>;
@group(0) @binding(4) var<storage, read_write> gg_dg: array<f32>;
@group(0) @binding(5) var<uniform> gg_d: GainGradDims;

@compute @workgroup_size(256)
fn psd_gain_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let j = flat_index(gid, groups);
    if (j >= gg_d.units) { return; }
    let g = gg_g[gg_d.g_off + j];
    var acc = 0.0;
    for (var b = 0u; b < gg_d.rows; b += 1u) {
        let i = b * gg_d.units + j;
        let df = gg_df[gg_d.df_off + i];
        let u = gg_u[gg_d.u_off + i];
        gg_da[gg_d.da_off + i] = df * g * (1.0 - u * u);
        acc += df * u;
    }
    gg_dg[gg_d.dg_off + j] = acc;
}

// ---- psd_lipschitz ----

struct LipDims {
    units: u32, gram_off: u32, scratch_off: u32, step_off: u32,
    iterations: u32, lambda: f32, gamma: f32, margin: f32,
}

@group(0) @binding(0) var<storage, read> lp_gram: array<f32>;
@group(0) @binding(1) var<storage, read_write> lp_scratch: array<f32>;
@group(0) @binding(2) var<storage, read_write> lp_step: array<f32>;
@group(0) @binding(3) var<uniform> lp_d: LipDims;

@compute @workgroup_size(256)
fn psd_lipschitz(@builtin(local_invocation_index) li: u32) {
    let c = lp_d.units;
    let v0 = lp_d.scratch_off;
    let u0 = lp_d.scratch_off + c;
    for (var j = li; j < c; j += 256u) {
        let x = f32(j) * 0.618034;
        lp_scratch[v0 + j] = 1.0 + (x - floor(x));
    }
    // ‖D‖_F² = trace(G), an upper bound on ‖D‖₂², summed in order by thread 0 as on the CPU.
    var trace = 0.0;
    if (li == 0u) {
        for (var j = 0u; j < c; j += 1u) { trace += lp_gram[lp_d.gram_off + j * c + j]; }
    }
    storageBarrier();
    var rq = 0.0;
    for (var it = 0u; it < lp_d.iterations; it += 1u) {
        var puu = 0.0;
        var pvu = 0.0;
        var pvv = 0.0;
        for (var j = li; j < c; j += 256u) {
            let row = lp_d.gram_off + j * c;
            var acc = 0.0;
            for (var k = 0u; k < c; k += 1u) {
                acc += lp_gram[row + k] * lp_scratch[v0 + k];
            }
            lp_scratch[u0 + j] = acc;
            let vj = lp_scratch[v0 + j];
            puu += acc * acc;
            pvu += vj * acc;
            pvv += vj * vj;
        }
        let uu = workgroup_sum(li, puu);
        let vu = workgroup_sum(li, pvu);
        let vv = workgroup_sum(li, pvv);
        storageBarrier();
        rq = select(0.0, vu / vv, vv > 0.0);
        if (uu > 0.0) {
            let inv = 1.0 / sqrt(uu);
            for (var j = li; j < c; j += 256u) {
                lp_scratch[v0 + j] = lp_scratch[u0 + j] * inv;
            }
        }
        storageBarrier();
    }
    if (li == 0u) {
        let used = min(lp_d.margin * rq, trace);
        let l = 2.0 * (used + lp_d.gamma);
        let inv = select(0.0, 1.0 / l, l > 0.0);
        lp_step[lp_d.step_off] = inv;
        lp_step[lp_d.step_off + 1u] = lp_d.lambda * inv;
        lp_step[lp_d.step_off + 2u] = rq;
        lp_step[lp_d.step_off + 3u] = l;
    }
}

// ---- psd_shrink ----

struct ShrinkDims {
    len: u32, y_off: u32, q_off: u32, p_off: u32,
    f_off: u32, step_off: u32, h_off: u32, gamma: f32,
}

@group(0) @binding(0) var<storage, read> sh_y: array<f32>;
@group(0) @binding(1) var<storage, read> sh_q: array<f32>;
@group(0) @binding(2) var<storage, read> sh_p: array<f32>;
@group(0) @binding(3) var<storage, read> sh_f: array<f32>;
@group(0) @binding(4) var<storage, read> sh_step: array<f32>;
@group(0) @binding(5) var<storage, read_write> sh_h: array<f32>;
@group(0) @binding(6) var<uniform> sh_d: ShrinkDims;

@compute @workgroup_size(256)
fn psd_shrink(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= sh_d.len) { return; }
    let inv_l = sh_step[sh_d.step_off];
    let t = sh_step[sh_d.step_off + 1u];
    let two_inv_l = 2.0 * inv_l;
    let y = sh_y[sh_d.y_off + i];
    let grad = sh_q[sh_d.q_off + i] - sh_p[sh_d.p_off + i] + sh_d.gamma * (y - sh_f[sh_d.f_off + i]);
    let v = y - two_inv_l * grad;
    let a = abs(v);
    var h = 0.0;
    if (a > t) {
        h = select(t - a, a - t, v > 0.0);
    }
    sh_h[sh_d.h_off + i] = h;
}

// ---- psd_momentum ----

struct MomentumDims { len: u32, h_off: u32, hp_off: u32, y_off: u32, beta: f32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read> mo_h: array<f32>;
@group(0) @binding(1) var<storage, read> mo_hp: array<f32>;
@group(0) @binding(2) var<storage, read_write> mo_y: array<f32>;
@group(0) @binding(3) var<uniform> mo_d: MomentumDims;

@compute @workgroup_size(256)
fn psd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= mo_d.len) { return; }
    let h = mo_h[mo_d.h_off + i];
    mo_y[mo_d.y_off + i] = h + mo_d.beta * (h - mo_hp[mo_d.hp_off + i]);
}

// ---- psd_terms ----

struct TermsDims {
    batch: u32, units: u32, h_off: u32, f_off: u32,
    rows_off: u32, df_off: u32, lambda: f32, gamma: f32,
    coef: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> te_h: array<f32>;
@group(0) @binding(1) var<storage, read> te_f: array<f32>;
@group(0) @binding(2) var<storage, read_write> te_rows: array<f32>;
@group(0) @binding(3) var<storage, read_write> te_df: array<f32>;
@group(0) @binding(4) var<uniform> te_d: TermsDims;

@compute @workgroup_size(256)
fn psd_terms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let b = flat_index(gid, groups);
    let n = te_d.batch;
    if (b >= n) { return; }
    var l1 = 0.0;
    var pred = 0.0;
    var zeros = 0.0;
    var sq = 0.0;
    for (var j = 0u; j < te_d.units; j += 1u) {
        let i = b * te_d.units + j;
        let h = te_h[te_d.h_off + i];
        let e = h - te_f[te_d.f_off + i];
        l1 += abs(h);
        pred += e * e;
        sq += h * h;
        if (h == 0.0) { zeros += 1.0; }
        te_df[te_d.df_off + i] = te_d.coef * e;
    }
    let r = te_d.rows_off;
    te_rows[r + b] = te_d.lambda * l1;
    te_rows[r + n + b] = te_d.gamma * pred;
    te_rows[r + 2u * n + b] = zeros;
    te_rows[r + 3u * n + b] = pred;
    te_rows[r + 4u * n + b] = sq;
}

// ---- psd_renorm ----

struct RenormDims { rows: u32, cols: u32, off: u32, _p0: u32 }

@group(0) @binding(0) var<storage, read_write> rn_d: array<f32>;
@group(0) @binding(1) var<uniform> rn_dims: RenormDims;

@compute @workgroup_size(256)
fn psd_renorm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let j = flat_index(gid, groups);
    let cols = rn_dims.cols;
    if (j >= cols) { return; }
    var s = 0.0;
    for (var i = 0u; i < rn_dims.rows; i += 1u) {
        let x = rn_d[rn_dims.off + i * cols + j];
        s += x * x;
    }
    if (s > 0.0) {
        let inv = 1.0 / sqrt(s);
        for (var i = 0u; i < rn_dims.rows; i += 1u) {
            let at = rn_dims.off + i * cols + j;
            rn_d[at] = rn_d[at] * inv;
        }
    }
}
