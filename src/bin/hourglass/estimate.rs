//! `hourglass bench --target h200`: a roofline estimate of each workload's training step on a
//! named GPU (`hourglass::gpu::roofline`), beside the measured rows; with `--profile`, every
//! dispatch of the step with its workgroups, threads, FLOPs, bytes and flags.

use hourglass::bench::Workload;
use hourglass::gpu::roofline::{Target, estimate_workload};
use hourglass::graph::Precision;
use hourglass::{Error, Result};

/// The target `--target` names.
pub fn target(name: &str) -> Result<Target> {
    Target::named(name).ok_or_else(|| {
        Error::Config(format!(
            "--target {name}: unknown GPU (the targets are: h200)"
        ))
    })
}

/// Prints the estimate of `w` on `target` (one JSON object with `json`).
pub fn print(w: &Workload, precision: Precision, target: &Target, profile: bool, json: bool) {
    let e = estimate_workload(w, precision, target);
    let samples_per_s = w.batch as f64 / e.step_s;
    if json {
        let mut v = serde_json::json!({
            "workload": w.name,
            "target": e.target,
            "precision": precision.name(),
            "batch": w.batch,
            "estimated_ms_per_step": 1e3 * e.step_s,
            "estimated_samples_per_s": samples_per_s,
            "dispatches": e.dispatches.len(),
        });
        if profile {
            v["per_dispatch"] = serde_json::to_value(&e.dispatches).unwrap_or_default();
        }
        outln!("{v}");
        return;
    }
    let launch = e.dispatches.len() as f64 * target.launch_s;
    outln!(
        "{:<9} {} estimate: {:.3} ms/step ({:.0} samples/s), {} dispatches ({:.3} ms of it launches), \
         {} underfilled, {} memory-bound",
        w.name,
        e.target,
        1e3 * e.step_s,
        samples_per_s,
        e.dispatches.len(),
        1e3 * launch,
        e.dispatches.iter().filter(|d| d.underfilled).count(),
        e.dispatches.iter().filter(|d| d.memory_bound).count(),
    );
    if !profile {
        return;
    }
    outln!(
        "  {:>3} {:<18} {:>8} {:>4} {:>10} {:>10} {:>8}  flags  specialization",
        "op",
        "kernel",
        "groups",
        "thr",
        "MFLOP",
        "KiB",
        "µs"
    );
    for d in &e.dispatches {
        let flags = match (d.underfilled, d.memory_bound) {
            (true, true) => "U M",
            (true, false) => "U  ",
            (false, true) => "  M",
            (false, false) => "   ",
        };
        outln!(
            "  {:>3} {:<18} {:>8} {:>4} {:>10.3} {:>10.1} {:>8.2}  {flags}    {}",
            d.op,
            d.kernel,
            d.workgroups,
            d.threads,
            d.flops / 1e6,
            (d.bytes_read + d.bytes_written) / 1024.0,
            1e6 * d.seconds,
            d.specialization
        );
    }
    outln!(
        "  (U: fewer workgroups than the target's {} SMs; M: more bytes than FLOPs)",
        target.sms
    );
}
