//! Float flags are finite before a command sees them: clap parses them through these, so
//! `--threshold nan` or `--jitter inf` is refused with the flag's name, exit 2.

use hourglass::limits::{Interval, check_float};

/// Any finite f32 (`--threshold`).
pub fn finite_f32(s: &str) -> Result<f32, String> {
    parse(s, Interval::FINITE).map(|x| x as f32)
}

/// A finite f32 ≥ 0 (`--jitter`).
pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    parse(s, Interval::NON_NEGATIVE).map(|x| x as f32)
}

/// A finite f32 > 0 (`--range`).
pub fn positive_f32(s: &str) -> Result<f32, String> {
    parse(s, Interval::POSITIVE).map(|x| x as f32)
}

fn parse(s: &str, range: Interval) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    // An f32 flag that overflows f32 is as unusable as an infinite one.
    let x = if x.is_finite() && (x as f32).is_infinite() {
        f64::INFINITY
    } else {
        x
    };
    check_float("it", x, range).map_err(|e| {
        e.to_string()
            .trim_start_matches("invalid configuration: ")
            .to_string()
    })
}
