// Reconstruction loss fused with the output activation and its own backward pass, from logits z
// and clean targets x, one workgroup per batch row:
//   LOSS 1 (Bernoulli cross-entropy, sigmoid output): l = softplus(z) − x·z,  dl/dz = σ(z) − x
//   LOSS 0, ACT 3 (MSE after a sigmoid):  y = σ(z), l = (y − x)²,  dl/dz = 2(y − x)·y(1 − y)
//   LOSS 0, ACT 0 (MSE, identity output):            l = (z − x)², dl/dz = 2(z − x)
// softplus is max(z, 0) + log(1 + exp(−|z|)), which never overflows (never log(sigmoid)).
// Logits row r is compared with target row r mod target_rows (a VAE decodes L samples of each
// input: logits are [L·B, D], targets [B, D]).
// Writes grad = dl/dz / rows and row_loss[row] = Σ_j l.
// Bindings: 0 logits, 1 target (read), 2 grad, 3 row_loss (read_write), 4 Dims.
// Dispatch: one 256-thread workgroup per row, rows folded into a 2-D grid.

override LOSS: u32 = 0u;

struct Dims { rows: u32, cols: u32, z_off: u32, x_off: u32, g_off: u32, l_off: u32, target_rows: u32, _p0: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> clean: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row = wg.y * groups.x + wg.x;
    if (row >= d.rows) { return; }
    let inv_batch = 1.0 / f32(d.rows);
    let t = row % d.target_rows;
    var s = 0.0;
    for (var j = li; j < d.cols; j += 256u) {
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
    partial[li] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (li < w) { partial[li] += partial[li + w]; }
        workgroupBarrier();
    }
    if (li == 0u) { row_loss[d.l_off + row] = partial[0]; }
}
