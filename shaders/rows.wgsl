// How a per-row kernel's 256-thread workgroups cover its rows, mirrored by `RowLayout` in
// src/gpu/executor/rows.rs (which chooses it): each workgroup holds 256 / seg rows of seg
// threads (seg a power of two), or, with splits > 1 (then seg is 256), one chunk of `chunk`
// elements of one row, whose sum goes to partials[part_off + row · splits + split] for
// shaders/row_sum.wgsl to add in a fixed order. Prepended after workgroup.wgsl.

struct RowLayout { seg: u32, splits: u32, chunk: u32, part_off: u32 }

// The workgroup's first row, from its id and the layout alone: uniform (WGSL's uniformity
// analysis can see it), so a kernel may return early on it before its barriers, and only on it.
fn row_group_first(lay: RowLayout, wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (workgroup_row(wg, groups) / lay.splits) * (256u / lay.seg);
}

// What one thread of a per-row kernel works on: its row, its lane in the row's segment, the
// row's split and the element range [begin, end) of that split.
struct RowSlot { row: u32, lane: u32, split: u32, begin: u32, end: u32 }

fn row_slot(lay: RowLayout, wg: vec3<u32>, groups: vec3<u32>, li: u32, len: u32) -> RowSlot {
    let g = workgroup_row(wg, groups);
    let group = g / lay.splits;
    let split = g - group * lay.splits;
    let first = group * (256u / lay.seg);
    let begin = min(split * lay.chunk, len);
    let end = min(begin + lay.chunk, len);
    return RowSlot(first + li / lay.seg, li & (lay.seg - 1u), split, begin, end);
}

// The sum of v over each segment of seg threads (seg a power of two dividing 256), returned to
// every thread of the segment. The tree adds in a fixed order; with seg = 256 it adds exactly
// as workgroup_sum does. Call it from uniform control flow only: it holds barriers.
fn segment_sum(li: u32, seg: u32, v: f32) -> f32 {
    wg_partial[li] = v;
    workgroupBarrier();
    for (var w = seg >> 1u; w > 0u; w >>= 1u) {
        if ((li & (seg - 1u)) < w) { wg_partial[li] += wg_partial[li + w]; }
        workgroupBarrier();
    }
    let total = wg_partial[li & ~(seg - 1u)];
    workgroupBarrier();
    return total;
}
