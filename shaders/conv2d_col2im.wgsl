// The second half of a conv input gradient (a transposed convolution): folds the columns
// dcols [taps, B·P] of conv2d.wgsl mode 3 back onto the images and applies the epilogue,
//   dx[b, c, ih, iw] = epilogue(Σ dcols[(c·k + ki)·k + kj, b·P + oh·out_w + ow])
// over the taps (ki, kj) and output positions (oh, ow) with oh·stride − pad + ki = ih and
// ow·stride − pad + kj = iw. A gather: each thread owns one element of dx, so no atomics, and
// the sum runs in tap order (the CPU twin's col2im adds in the same order).
// EPILOGUE as conv2d.wgsl, the bias per input channel.
// Bindings: 0 dcols (read), 1 dx (read_write), 2 aux (read), 3 ConvDims (a_off: dcols,
// c_off: dx, aux_off: aux). Dispatch: grid_1d(B·in_len), 256 threads, one element each.

// Prepended: activation.wgsl, conv2d_dims.wgsl.

override EPILOGUE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dcols: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<uniform> d: ConvDims;

@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    let hw = d.in_h * d.in_w;
    let in_len = d.in_c * hw;
    if (i >= d.batch * in_len) { return; }
    let b = i / in_len;
    let c = (i - b * in_len) / hw;
    let q = i - b * in_len - c * hw;
    let ih = q / d.in_w;
    let iw = q - ih * d.in_w;
    let positions = d.out_h * d.out_w;
    let n = b * positions;
    var acc = 0.0;
    for (var ki = 0u; ki < d.kernel; ki++) {
        let th = i32(ih + d.pad) - i32(ki);
        let oh = u32(th) / d.stride;
        if (th < 0 || oh * d.stride != u32(th) || oh >= d.out_h) { continue; }
        for (var kj = 0u; kj < d.kernel; kj++) {
            let tw = i32(iw + d.pad) - i32(kj);
            let ow = u32(tw) / d.stride;
            if (tw < 0 || ow * d.stride != u32(tw) || ow >= d.out_w) { continue; }
            let t = (c * d.kernel + ki) * d.kernel + kj;
            acc += dcols[d.a_off + t * d.n + n + oh * d.out_w + ow];
        }
    }
    let o = d.c_off + i;
    switch EPILOGUE {
        case 1u: { dx[o] = activate(acc + aux[d.aux_off + c]); }
        case 2u: { dx[o] = acc * activation_grad_from_output(aux[d.aux_off + i]); }
        case 3u: { dx[o] = dx[o] + acc; }
        case 4u: { dx[o] = (dx[o] + acc) * activation_grad_from_output(aux[d.aux_off + i]); }
        default: { dx[o] = acc; }
    }
}
