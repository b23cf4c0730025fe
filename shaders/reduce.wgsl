// Column sums: out[j] (+)= Σ_i x[i, j], the bias gradient of a dense layer.
// Bindings: 0 x (read), 1 out (read_write), 2 Dims.
// Dispatch: (ceil(cols/64), 1, 1) workgroups of 64×4 threads: each of the 4 thread rows sums
// a strided quarter of the rows of one column (reads coalesce along the row), then the four
// partial sums are added in workgroup memory.

override ACCUMULATE: bool = false;

struct Dims { rows: u32, cols: u32, x_off: u32, out_off: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(64, 4, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wg.x * 64u + lid.x;
    var s = 0.0;
    if (col < d.cols) {
        for (var r = lid.y; r < d.rows; r += 4u) {
            s += x[d.x_off + r * d.cols + col];
        }
    }
    partial[lid.y * 64u + lid.x] = s;
    workgroupBarrier();
    if (lid.y == 0u && col < d.cols) {
        let total = partial[lid.x] + partial[64u + lid.x] + partial[128u + lid.x] + partial[192u + lid.x];
        if (ACCUMULATE) {
            out[d.out_off + col] = out[d.out_off + col] + total;
        } else {
            out[d.out_off + col] = total;
        }
    }
}
