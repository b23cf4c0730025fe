// Philox 4x32-10, the twin of src/rng.rs, prepended (after step.wgsl) to every kernel that draws
// random numbers. A draw is a pure function of (seed, step, stream, element index):
//   element_block(stream, i) = philox4x32([i, s.step, stream, 0], [s.seed_lo, s.seed_hi])
// so the GPU and the CPU reference produce the same words whatever the dispatch shape.
// Round: (hi0, lo0) = M0·c0, (hi1, lo1) = M1·c2, c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0],
// then the key is bumped by the Weyl constants (W0, W1) before each of rounds 1..9.
// WGSL has no 32x32 -> 64-bit multiply: mulhilo builds the high word from 16-bit halves.
//   unit(w)      = (w >> 8) / 2^24 in [0, 1)       (exact in f32)
//   unit_open(w) = ((w >> 8) + 1) / 2^24 in (0, 1] (safe for log)
//   gaussian     = sqrt(-2 ln unit_open(w0)) · cos(6.2831855 · unit(w1))  (Box–Muller, cos half;
//                  ln by log_unit, accurate near 1 where the builtin may not be)
// The kernel that includes this file binds `s: Step` (a dynamic-offset uniform) itself.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// Streams, the third counter word (`rng::Stream`).
const STREAM_NOISE: u32 = 3u;
const STREAM_SAMPLER: u32 = 4u;
const STREAM_PROJECTION: u32 = 5u;

// (high, low) words of the 64-bit product a·b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xFFFFu;
    let ah = a >> 16u;
    let bl = b & 0xFFFFu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    // Carry out of the low word: at most 3 · (2^16 − 1) + 2^16, no overflow.
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = mulhilo(PHILOX_M0, c.x);
    let p1 = mulhilo(PHILOX_M1, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = philox_round(counter, key);
    var k = key;
    for (var round = 1u; round < 10u; round++) {
        k += vec2<u32>(PHILOX_W0, PHILOX_W1);
        c = philox_round(c, k);
    }
    return c;
}

// The block for element `index` of `stream` at this step, keyed by the run's seed.
fn element_block(stream: u32, index: u32) -> vec4<u32> {
    return philox4x32(vec4<u32>(index, s.step, stream, 0u), vec2<u32>(s.seed_lo, s.seed_hi));
}

// The counter index of element i of a [K·batch, cols] view whose row k·batch + b is example b
// of this process's share of the step's batch (twin of `rng::global_element`): the index the
// element has in the whole global batch of s.rows_global rows, this share starting at row
// s.row_base; i itself when s.rows_global is 0 (one process).
fn global_element(i: u32, cols: u32, batch: u32) -> u32 {
    if (s.rows_global == 0u || cols == 0u || batch == 0u) { return i; }
    let row = i / cols;
    let col = i - row * cols;
    let k = row / batch;
    let b = row - k * batch;
    return (k * s.rows_global + s.row_base + b) * cols + col;
}

fn unit_f32(w: u32) -> f32 {
    return f32(w >> 8u) * (1.0 / 16777216.0);
}

fn unit_open_f32(w: u32) -> f32 {
    return f32((w >> 8u) + 1u) * (1.0 / 16777216.0);
}

// ln(u) for u in (0, 1], to a few ulp of the result everywhere. The builtin log may only be
// accurate to an absolute 2^-21 near 1 (what Vulkan requires; lavapipe's is off by ~4e-8 there),
// where ln(u) is as small as -6e-8: Box–Muller values from u1 near 1 would then differ from the
// CPU's by up to 1e-4. Here u = m · 2^e with m in (√½, √2], and
// ln(m) = 2 atanh(s) = 2s (1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9), s = (m − 1)/(m + 1), |s| ≤ 0.172;
// the first term left out is below 2e-9 relative. Never positive for u ≤ 1.
fn log_unit(u: f32) -> f32 {
    let bits = bitcast<u32>(u);
    var e = f32(i32(bits >> 23u) - 127);
    var m = bitcast<f32>((bits & 0x007FFFFFu) | 0x3F800000u);
    if (m > 1.4142135) {
        m = 0.5 * m;
        e = e + 1.0;
    }
    let sm = (m - 1.0) / (m + 1.0);
    let z = sm * sm;
    let p = 1.0 + z * (1.0 / 3.0 + z * (0.2 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
    return e * 0.6931472 + 2.0 * sm * p;
}

fn gaussian(w0: u32, w1: u32) -> f32 {
    let u1 = unit_open_f32(w0);
    let u2 = unit_f32(w1);
    return sqrt(-2.0 * log_unit(u1)) * cos(6.2831855 * u2);
}
