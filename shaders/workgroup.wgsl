// Workgroup-wide sum for kernels of 256 threads, prepended to the kernels that reduce one row
// (or one unit) per workgroup. Call it from uniform control flow only (every thread of the
// workgroup, the same number of times): it holds barriers. It returns the sum to every thread
// and leaves the scratch free for the next call. The tree adds in a fixed order, so results
// do not depend on scheduling.

var<workgroup> wg_partial: array<f32, 256>;

fn workgroup_sum(li: u32, v: f32) -> f32 {
    wg_partial[li] = v;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (li < w) { wg_partial[li] += wg_partial[li + w]; }
        workgroupBarrier();
    }
    let total = wg_partial[0];
    workgroupBarrier();
    return total;
}

// The row (or unit) a workgroup owns when rows are folded into a 2-D grid past 65,535.
fn workgroup_row(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.y * groups.x + wg.x;
}
