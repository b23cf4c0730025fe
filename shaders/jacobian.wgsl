// The Jacobian (contractive) penalty, twins of src/cpu/regularizers.rs. Tangents r have K·B
// rows, row k·B + b belonging to example b; ACT is the activation of the layer in question.
//
// directions     out[i] = 1 if (i / cols) / B == i % cols else 0            (EXACT: basis e_k)
//                out[i] = gaussian(element_block(STREAM_PROJECTION, global_element(i, cols, B)))  (stochastic)
//   Bindings: 0 out (read_write), 1 DirDims, 2 Step (dynamic).
//   Dispatch: ceil(len/256) workgroups of 256, folded 2-D (flat_index).
// tangent_scale  out[i] = r[i] · act'(y[i mod (B·n)])
//   Bindings: 0 r, 1 y (read), 2 out (read_write), 3 TangentDims.  Dispatch: as directions.
// curvature      out[i] = (Σ_k qa[k·B·n + i] · r[k·B·n + i]) · act''(y[i])   for i < B·n
//   Bindings: 0 qa, 1 r, 2 y (read), 3 out (read_write), 4 CurvDims.  Dispatch: ceil(B·n/256).
// jacobian_norm  rows[b] = scale · Σ_k Σ_i r[k·B+b, i]²,  grad = grad_scale · r
//                (grad_scale = 2·scale/B, computed on the host as the CPU twin does)
//   Bindings: 0 r (read), 1 rows, 2 grad (read_write), 3 NormDims, 4 partials (read_write).
//   Dispatch: examples spread over 256-thread workgroups as `lay` says (shaders/rows.wgsl):
//   each example's segment walks the K·d elements of its K rows with consecutive threads on
//   consecutive columns; a split example's partial sums are added by row_sum.wgsl.
// Contractive penalty in closed form for a sigmoid code h = σ(W x + c), s = h(1 − h),
// g = 2λ/B (grad_scale):
//   contractive_units  (1st dispatch, one workgroup per unit j)
//     scratch[j] = ‖W_j‖²,  scratch[c + j] = Σ_b s_bj²,  dw[j, :] = g · scratch[c + j] · W_j
//     (dw is overwritten: the layer's own weight gradient runs after and adds)
//   contractive_rows   (2nd dispatch, examples laid out as `lay` says, reads scratch[0..c])
//     rows[b] = λ Σ_j s_bj² ‖W_j‖²,  dz[b, j] += g · s · ‖W_j‖² · s · (1 − 2h)
//   Bindings (both): 0 h, 1 w (read), 2 rows, 3 dz, 4 dw, 5 scratch (read_write), 6 CcfDims,
//   7 partials (read_write; contractive_rows's split sums, added by row_sum.wgsl).
// Entry points bind different globals at the same binding numbers; each uses only its own.

override EXACT: bool = false;

// act'' through the output y = act(x); zero for the piecewise-linear activations.
fn activation_second_derivative_from_output(y: f32) -> f32 {
    switch ACT {
        case 3u: { return y * (1.0 - y) * (1.0 - 2.0 * y); }
        case 4u: { return -2.0 * y * (1.0 - y * y); }
        default: { return 0.0; }
    }
}

// ---- directions ----

struct DirDims { len: u32, cols: u32, batch: u32, out_off: u32 }

@group(0) @binding(0) var<storage, read_write> dir_out: array<f32>;
@group(0) @binding(1) var<uniform> dir_d: DirDims;
@group(0) @binding(2) var<uniform> s: Step;

@compute @workgroup_size(256)
fn directions(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= dir_d.len) { return; }
    var v: f32;
    if (EXACT) {
        let row = i / dir_d.cols;
        let col = i - row * dir_d.cols;
        v = select(0.0, 1.0, row / dir_d.batch == col);
    } else {
        let w = element_block(STREAM_PROJECTION, global_element(i, dir_d.cols, dir_d.batch));
        v = gaussian(w.x, w.y);
    }
    dir_out[dir_d.out_off + i] = v;
}

// ---- tangent_scale ----

struct TangentDims { len: u32, y_len: u32, r_off: u32, y_off: u32, out_off: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read> ts_r: array<f32>;
@group(0) @binding(1) var<storage, read> ts_y: array<f32>;
@group(0) @binding(2) var<storage, read_write> ts_out: array<f32>;
@group(0) @binding(3) var<uniform> ts_d: TangentDims;

@compute @workgroup_size(256)
fn tangent_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= ts_d.len) { return; }
    let y = ts_y[ts_d.y_off + i % ts_d.y_len];
    ts_out[ts_d.out_off + i] = ts_r[ts_d.r_off + i] * activation_grad_from_output(y);
}

// ---- curvature ----

struct CurvDims { n: u32, k: u32, qa_off: u32, r_off: u32, y_off: u32, out_off: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> cv_qa: array<f32>;
@group(0) @binding(1) var<storage, read> cv_r: array<f32>;
@group(0) @binding(2) var<storage, read> cv_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> cv_out: array<f32>;
@group(0) @binding(4) var<uniform> cv_d: CurvDims;

@compute @workgroup_size(256)
fn curvature(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= cv_d.n) { return; }
    var sum = 0.0;
    for (var k = 0u; k < cv_d.k; k++) {
        let e = k * cv_d.n + i;
        sum += cv_qa[cv_d.qa_off + e] * cv_r[cv_d.r_off + e];
    }
    cv_out[cv_d.out_off + i] = sum * activation_second_derivative_from_output(cv_y[cv_d.y_off + i]);
}

// ---- jacobian_norm ----

struct NormDims {
    batch: u32, cols: u32, k: u32, r_off: u32,
    rows_off: u32, grad_off: u32, scale: f32, grad_scale: f32,
    lay: RowLayout,
}

@group(0) @binding(0) var<storage, read> jn_r: array<f32>;
@group(0) @binding(1) var<storage, read_write> jn_rows: array<f32>;
@group(0) @binding(2) var<storage, read_write> jn_grad: array<f32>;
@group(0) @binding(3) var<uniform> jn_d: NormDims;
@group(0) @binding(4) var<storage, read_write> jn_partials: array<f32>;

@compute @workgroup_size(256)
fn jacobian_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let cols = jn_d.cols;
    let at = row_slot(jn_d.lay, wg, groups, li, jn_d.k * cols);
    if (row_group_first(jn_d.lay, wg, groups) >= jn_d.batch) { return; }
    let b = at.row;
    var acc = 0.0;
    if (b < jn_d.batch) {
        for (var e = at.begin + at.lane; e < at.end; e += jn_d.lay.seg) {
            let k = e / cols;
            let i = (k * jn_d.batch + b) * cols + (e - k * cols);
            let v = jn_r[jn_d.r_off + i];
            acc += v * v;
            jn_grad[jn_d.grad_off + i] = jn_d.grad_scale * v;
        }
    }
    let total = segment_sum(li, jn_d.lay.seg, acc);
    if (at.lane == 0u && b < jn_d.batch) {
        if (jn_d.lay.splits == 1u) {
            jn_rows[jn_d.rows_off + b] = jn_d.scale * total;
        } else {
            jn_partials[jn_d.lay.part_off + b * jn_d.lay.splits + at.split] = total;
        }
    }
}

// ---- contractive_units, contractive_rows ----

struct CcfDims {
    batch: u32, units: u32, inputs: u32, h_off: u32,
    w_off: u32, rows_off: u32, dz_off: u32, dw_off: u32,
    scratch_off: u32, lambda: f32, grad_scale: f32, _p0: u32,
    lay: RowLayout,
}

@group(0) @binding(0) var<storage, read> cc_h: array<f32>;
@group(0) @binding(1) var<storage, read> cc_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> cc_rows: array<f32>;
@group(0) @binding(3) var<storage, read_write> cc_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> cc_dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> cc_scratch: array<f32>;
@group(0) @binding(6) var<uniform> cc_d: CcfDims;
@group(0) @binding(7) var<storage, read_write> cc_partials: array<f32>;

@compute @workgroup_size(256)
fn contractive_units(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let j = workgroup_row(wg, groups);
    if (j >= cc_d.units) { return; }
    let w0 = cc_d.w_off + j * cc_d.inputs;
    var nrm = 0.0;
    for (var i = li; i < cc_d.inputs; i += 256u) {
        let v = cc_w[w0 + i];
        nrm += v * v;
    }
    var s2 = 0.0;
    for (var b = li; b < cc_d.batch; b += 256u) {
        let y = cc_h[cc_d.h_off + b * cc_d.units + j];
        let sj = y * (1.0 - y);
        s2 += sj * sj;
    }
    let norm_total = workgroup_sum(li, nrm);
    let s2_total = workgroup_sum(li, s2);
    if (li == 0u) {
        cc_scratch[cc_d.scratch_off + j] = norm_total;
        cc_scratch[cc_d.scratch_off + cc_d.units + j] = s2_total;
    }
    let c = cc_d.grad_scale * s2_total;
    let g0 = cc_d.dw_off + j * cc_d.inputs;
    for (var i = li; i < cc_d.inputs; i += 256u) {
        cc_dw[g0 + i] = c * cc_w[w0 + i];
    }
}

@compute @workgroup_size(256)
fn contractive_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let at = row_slot(cc_d.lay, wg, groups, li, cc_d.units);
    if (row_group_first(cc_d.lay, wg, groups) >= cc_d.batch) { return; }
    let b = at.row;
    var p = 0.0;
    if (b < cc_d.batch) {
        for (var j = at.begin + at.lane; j < at.end; j += cc_d.lay.seg) {
            let e = b * cc_d.units + j;
            let y = cc_h[cc_d.h_off + e];
            let sj = y * (1.0 - y);
            let nrm = cc_scratch[cc_d.scratch_off + j];
            p += sj * sj * nrm;
            let o = cc_d.dz_off + e;
            cc_dz[o] = cc_dz[o] + cc_d.grad_scale * sj * nrm * sj * (1.0 - 2.0 * y);
        }
    }
    let total = segment_sum(li, cc_d.lay.seg, p);
    if (at.lane == 0u && b < cc_d.batch) {
        if (cc_d.lay.splits == 1u) {
            cc_rows[cc_d.rows_off + b] = cc_d.lambda * total;
        } else {
            cc_partials[cc_d.lay.part_off + b * cc_d.lay.splits + at.split] = total;
        }
    }
}
