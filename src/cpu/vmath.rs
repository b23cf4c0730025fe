//! Element-wise math written for the compiler's vectorizer, and [`widest!`](crate::widest),
//! which compiles a loop for the widest vectors the CPU has.
//!
//! `exp` and `ln` for f32 are straight-line arithmetic, so a loop that calls them vectorizes;
//! the libm calls they replace are scalar function calls, which made the fused BCE loss 7% of
//! an mnist_ae step. Both are within 2 ulp of the correctly rounded result over their whole
//! range (tested below against f64).

/// Defines `fn $name<T: Real>(args) -> R` that runs the `#[inline(always)]` function `$body`
/// compiled for AVX-512F or AVX2 where the CPU has them ([`widest_available`]), else as built:
/// the crate is built for the baseline x86-64 (SSE2) so that it runs anywhere, and the
/// element-wise kernels (losses, epilogues, Adam) run 2–4× faster on wider vectors (the BCE
/// loss over an mnist_ae batch: 1.28 ms in SSE2, 0.61 in AVX2, 0.34 in AVX-512, one core).
/// Only the vector width changes, never a result: every operation used is correctly rounded
/// in each instruction set, and Rust fuses no `a * b + c` into an FMA unless asked.
///
/// `$body` must be `#[inline(always)]` and call only `#[inline(always)]` functions or plain
/// arithmetic in its loops: a call the compiler does not inline runs in the baseline version.
#[macro_export]
#[doc(hidden)]
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$T:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$meta])*
        $vis fn $name<$T: $crate::cpu::kernels::Real>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<$T: $crate::cpu::kernels::Real>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2<$T: $crate::cpu::kernels::Real>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match $crate::cpu::vmath::widest_available() {
                    // SAFETY: the CPU was just found to have AVX-512F.
                    $crate::cpu::vmath::Width::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: the CPU was just found to have AVX2.
                    $crate::cpu::vmath::Width::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::cpu::vmath::Width::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}

/// The vector instruction sets [`widest!`](crate::widest) kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// AVX-512F.
    Avx512,
    /// AVX2.
    Avx2,
    /// What the crate is built for (SSE2 on x86-64).
    Baseline,
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Width::Avx512 => "AVX-512",
            Width::Avx2 => "AVX2",
            Width::Baseline => "baseline",
        })
    }
}

/// The instruction set [`widest!`](crate::widest) kernels run in on this CPU (std caches the
/// detection).
pub fn widest_available() -> Width {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Width::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Width::Avx2;
        }
    }
    Width::Baseline
}

const LN2_HI: f32 = 0.693_145_75; // ln 2 rounded to 16 significant bits: n · LN2_HI is exact.
const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN2_HI.
/// fdlibm's split of ln 2 for logf.
const LN_2_HI: f32 = 6.931_381_2e-1;
const LN_2_LO: f32 = 9.058_001e-6;
/// 1.5 · 2²³: adding and subtracting it rounds an f32 of magnitude < 2²² to an integer.
const ROUND: f32 = 12_582_912.0;

/// eˣ. Overflows to +∞ above 88.72, is 0 below −87.33 (where eˣ would be subnormal), NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let clamped = x.clamp(-87.33, 88.72);
    // x = n·ln 2 + r, |r| ≤ ln 2 / 2.
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Taylor to r⁷: the next term is below 2⁻²⁴ of the result on |r| ≤ 0.347.
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // The integer n sits in the low bits of `shifted` (whose ulp is 1): read it there rather
    // than through a float-to-int conversion, which does not vectorize.
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    // 2ⁿ in two halves: n reaches 128 near the top of the range, past the largest exponent.
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = p * pow2(n / 2) * pow2(n - n / 2);
    if x > 88.72 {
        f32::INFINITY
    } else if x < -87.33 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// ln x for x > 0 (normal numbers; subnormals are taken as the smallest normal), −∞ at 0, NaN
/// below 0 and for NaN, +∞ at +∞.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.max(f32::MIN_POSITIVE).to_bits();
    // x = 2^e · m with m in [√½, √2).
    let mut e = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1.0;
    }
    // fdlibm's logf: ln(1 + f) = f − f²/2 + s(f²/2 + R(s²)), s = f/(2 + f), with its minimax
    // R (|s| ≤ 0.172); the form keeps the rounding of s out of the leading terms.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let (z, hfsq) = (s * s, 0.5 * f * f);
    let w = z * z;
    let r = z * (0.666_666_6 + w * 0.284_987_87) + w * (0.400_009_72 + w * 0.242_790_79);
    let y = e * LN_2_HI - ((hfsq - (s * (hfsq + r) + e * LN_2_LO)) - f);
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between `got` and the f64 value rounded to f32.
    fn ulps(got: f32, want: f64) -> u32 {
        let w = want as f32;
        if got == w {
            return 0;
        }
        (got.to_bits() as i64 - w.to_bits() as i64).unsigned_abs() as u32
    }

    /// Every 97th f32 bit pattern between `lo` and `hi` (same sign), about a million points.
    fn sweep(lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        (lo.to_bits()..hi.to_bits()).step_by(97).map(f32::from_bits)
    }

    #[test]
    fn exp_within_two_ulp() {
        let worst = sweep(0.0, 88.7)
            .chain(sweep(-0.0, -87.3))
            .map(|x| ulps(exp(x), f64::from(x).exp()))
            .max();
        assert!(worst <= Some(2), "worst {worst:?} ulp");
    }

    #[test]
    fn ln_within_two_ulp() {
        let worst = sweep(f32::MIN_POSITIVE, f32::MAX)
            .map(|x| ulps(ln(x), f64::from(x).ln()))
            .max();
        assert!(worst <= Some(2), "worst {worst:?} ulp");
    }

    #[test]
    fn edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f32::NAN).is_nan());
    }
}
