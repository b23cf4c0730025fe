// Reconstruction loss fused with the output activation and its own backward pass, from logits z
// and clean targets x, rows laid out over workgroups as shaders/rows.wgsl says:
//   LOSS 1 (Bernoulli cross-entropy, sigmoid output): l = softplus(z) − x·z,  dl/dz = σ(z) − x
//   LOSS 0, ACT 3 (MSE after a sigmoid):  y = σ(z), l = (y − x)²,  dl/dz = 2(y − x)·y(1 − y)
//   LOSS 0, ACT 0 (MSE, identity output):            l = (z − x)², dl/dz = 2(z − x)
// softplus is max(z, 0) + log(1 + exp(−|z|)), which never overflows (never log(sigmoid)).
// Logits row r is compared with target row r mod target_rows (a VAE decodes L samples of each
// input: logits are [L·B, D], targets [B, D]).
// Writes grad = dl/dz / rows and row_loss[row] = Σ_j l.
// Bindings: 0 logits, 1 target (read), 2 grad, 3 row_loss (read_write), 4 Dims, 5 partials
// (read_write; the executor's scratch when rows are split).
// Dispatch: rows spread over 256-thread workgroups as `lay` says (shaders/rows.wgsl): several
// short rows to a workgroup, or a long row of a small batch over several, whose partial sums
// shaders/row_sum.wgsl adds into row_loss.

override LOSS: u32 = 0u;

struct Dims {
    rows: u32, cols: u32, z_off: u32, x_off: u32, g_off: u32, l_off: u32, target_rows: u32, _p0: u32,
    lay: RowLayout,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> clean: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let at = row_slot(d.lay, wg, groups, li, d.cols);
    if (row_group_first(d.lay, wg, groups) >= d.rows) { return; }
    let row = at.row;
    let inv_batch = 1.0 / f32(d.rows);
    let t = row % d.target_rows;
    var s = 0.0;
    if (row < d.rows) {
        for (var j = at.begin + at.lane; j < at.end; j += d.lay.seg) {
            let z = logits[d.z_off + row * d.cols + j];
            let x = clean[d.x_off + t * d.cols + j];
            var l: f32;
            var g: f32;
            if (LOSS == 1u) {
                l = max(z, 0.0) - x * z + log(1.0 + exp(-abs(z)));
                g = sigmoid(z) - x;
            } else if (ACT == 3u) {
                let y = sigmoid(z);
                let e = y - x;
                l = e * e;
                g = 2.0 * e * y * (1.0 - y);
            } else {
                let e = z - x;
                l = e * e;
                g = 2.0 * e;
            }
            grad[d.g_off + row * d.cols + j] = g * inv_batch;
            s += l;
        }
    }
    let total = segment_sum(li, d.lay.seg, s);
    if (at.lane == 0u && row < d.rows) {
        if (d.lay.splits == 1u) {
            row_loss[d.l_off + row] = total;
        } else {
            partials[d.lay.part_off + row * d.lay.splits + at.split] = total;
        }
    }
}
