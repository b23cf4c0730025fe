// Whether an f32 is finite, from its exponent bits: WGSL has no isinf/isnan, and compilers may
// assume floats are finite and fold comparisons such as x != x away.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
