// Input corruption for denoising autoencoders, the twin of `regularizers::corrupt`. With
// w = element_block(STREAM_NOISE, global_element(i, cols, rows)) for element i of the
// [rows, cols] view (the element's index in the whole batch under data parallelism):
//   NOISE 0 (mask ν):        out = 0 if unit(w0) < ν, else x
//   NOISE 1 (gaussian σ):    out = x + σ · gaussian(w0, w1)
//   NOISE 2 (salt-pepper ν): out = (w1 >> 31) as 0 or 1 if unit(w0) < ν, else x
// ν or σ is `d.param`.
// Bindings: 0 x (read), 1 out (read_write), 2 Dims, 3 Step (dynamic).
// Dispatch: ceil(len/256) workgroups of 256, folded into a 2-D grid (see flat_index).

override NOISE: u32 = 0u;

struct Dims { len: u32, x_off: u32, out_off: u32, param: f32, cols: u32, rows: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;
@group(0) @binding(3) var<uniform> s: Step;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= d.len) { return; }
    let w = element_block(STREAM_NOISE, global_element(i, d.cols, d.rows));
    let v = x[d.x_off + i];
    var o = v;
    switch NOISE {
        case 1u: { o = v + d.param * gaussian(w.x, w.y); }
        case 2u: {
            if (unit_f32(w.x) < d.param) { o = f32(w.y >> 31u); }
        }
        default: {
            if (unit_f32(w.x) < d.param) { o = 0.0; }
        }
    }
    out[d.out_off + i] = o;
}
