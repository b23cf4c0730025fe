enable f16;
enable wgpu_cooperative_matrix;
// Placeholder while the cooperative-matrix kernel is written.
@compute @workgroup_size(128, 1, 1)
fn main(@builtin(local_invocation_index) li: u32) {
    overflow_begin(li);
    let poisoned = overflow_end();
    finish(0u, 0u, unscale(load_a(0u, 0u) + load_b(0u, 0u), poisoned));
}
