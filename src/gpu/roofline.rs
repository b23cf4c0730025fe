//! What a GPU step will cost on a named target before one can be timed: every dispatch of a
//! training graph (the executor's own plan, `executor::dispatch_plan`), its kernel and
//! specialization, workgroups × threads, FLOPs and bytes, and a roofline estimate: a fixed
//! launch cost plus the larger of compute time at the target's peak and traffic time at its
//! bandwidth, both scaled by the dispatch's [`occupancy`]: a dispatch of fewer workgroups than
//! the target has SMs leaves the others idle and reaches that fraction of either peak.
//! Dispatches that launch fewer workgroups than the target has SMs, or move more bytes than
//! they compute FLOPs, are flagged.
//!
//! The model is deliberately simple and uncalibrated: FLOPs are 2·m·n·k for a product and a few
//! per element elsewhere; bytes are every element the op reads once plus every element it
//! writes (its views' sizes, f32), as if caches held nothing between dispatches; an op of
//! several dispatches is charged to its first, the rest cost their launch. The first measured
//! run on the target calibrates it (BENCHMARKS.md).

use serde::Serialize;

use crate::gpu::autotune::MatmulShape;
use crate::gpu::kernels::{Constants, Kernel};
use crate::graph::{Graph, Op};

/// A GPU to estimate for.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// Its name (`h200`).
    pub name: &'static str,
    /// Streaming multiprocessors (compute units).
    pub sms: u32,
    /// Peak f32 FLOP/s (no tensor cores).
    pub f32_flops: f64,
    /// Peak f16 FLOP/s on tensor cores (cooperative matrices), f32 accumulation.
    pub f16_flops: f64,
    /// Memory bandwidth, bytes/s.
    pub bytes_per_s: f64,
    /// Cost of one dispatch (launch and barrier), seconds, until measured.
    pub launch_s: f64,
}

impl Target {
    /// NVIDIA H200 SXM: 132 SMs, 67 TFLOP/s f32, ~990 TFLOP/s dense f16 on tensor cores,
    /// 4.8 TB/s HBM3e, and 5 µs per dispatch until a loan measures it.
    pub const H200: Target = Target {
        name: "h200",
        sms: 132,
        f32_flops: 67e12,
        f16_flops: 990e12,
        bytes_per_s: 4.8e12,
        launch_s: 5e-6,
    };

    /// The target named `name` (`h200`), or `None`.
    pub fn named(name: &str) -> Option<Target> {
        match name.trim().to_ascii_lowercase().as_str() {
            "h200" => Some(Target::H200),
            _ => None,
        }
    }
}

impl Kernel {
    /// Invocations per workgroup (the entry point's `@workgroup_size`; tests/translation.rs
    /// checks each against the WGSL).
    pub fn threads(self) -> u32 {
        match self {
            Kernel::MatmulSmall | Kernel::Conv2dSmall => 64,
            Kernel::MatmulCoop => 128,
            Kernel::LossScale => 1,
            _ => 256,
        }
    }
}

/// One dispatch's estimate.
#[derive(Clone, Debug, Serialize)]
pub struct DispatchEstimate {
    /// The op's index in the graph.
    pub op: usize,
    /// The kernel, e.g. `Matmul`.
    pub kernel: String,
    /// Its specialization, `NAME=value` pairs.
    pub specialization: String,
    /// Workgroups launched (all three dimensions).
    pub workgroups: u64,
    /// Invocations per workgroup.
    pub threads: u32,
    /// Floating-point operations charged to it.
    pub flops: f64,
    /// Bytes read.
    pub bytes_read: f64,
    /// Bytes written.
    pub bytes_written: f64,
    /// The fraction of the peaks it reaches ([`occupancy`]).
    pub occupancy: f64,
    /// Estimated seconds: launch + max(compute, traffic) / occupancy.
    pub seconds: f64,
    /// Fewer workgroups than the target has SMs.
    pub underfilled: bool,
    /// More bytes moved than FLOPs computed.
    pub memory_bound: bool,
}

/// A step's estimate on a target.
#[derive(Clone, Debug, Serialize)]
pub struct StepEstimate {
    /// The target's name.
    pub target: &'static str,
    /// Every dispatch of one step, in order.
    pub dispatches: Vec<DispatchEstimate>,
    /// Their sum, seconds.
    pub step_s: f64,
}

/// The fraction of `target`'s peaks a dispatch of `workgroups` workgroups reaches:
/// min(1, workgroups / SMs). A workgroup runs on one SM, so fewer workgroups than SMs leave the
/// rest idle (one SM alone cannot draw the whole memory bandwidth either, so traffic is scaled
/// too). It ignores threads per workgroup and tails (133 workgroups on 132 SMs take two waves):
/// a lower bound on the cost of underfilling, uncalibrated until a loan measures it.
pub fn occupancy(workgroups: u64, target: &Target) -> f64 {
    (workgroups as f64 / f64::from(target.sms.max(1))).min(1.0)
}

/// `(flops, bytes read, bytes written)` of one op.
fn op_cost(op: &Op) -> (f64, f64, f64) {
    let elems = |ts: Vec<crate::graph::Tensor>| ts.iter().map(|t| t.len() as f64).sum::<f64>();
    let (read, written) = match *op {
        // A gather reads the batch's rows of the data set, not all of it.
        Op::Gather { order, out, .. } => (out.len() as f64 + order.len() as f64, out.len() as f64),
        _ => (elems(op.inputs()), elems(op.outputs())),
    };
    let flops = match *op {
        Op::Matmul { a, c, trans_a, .. } => {
            let (m, k) = a.shape(trans_a);
            2.0 * m as f64 * c.cols as f64 * k as f64 + 4.0 * c.len() as f64
        }
        // The three conv products are each one multiply-accumulate per (output position,
        // input channel, tap); the epilogue as for a matmul.
        Op::Conv2d { shape, .. }
        | Op::Conv2dInputGrad { shape, .. }
        | Op::Conv2dWeightGrad { shape, .. } => 2.0 * shape.macs() as f64 + 4.0 * written,
        // A handful of FLOPs per element for the element-wise kernels and reductions.
        _ => 4.0 * read.max(written),
    };
    (flops, 4.0 * read, 4.0 * written)
}

fn specialization(c: &Constants) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The estimate of one step of `graph` on `target`, whose tensor cores take the
/// mixed-precision products (a graph with loss-scaled products) and whose products take the
/// untuned tile rule.
pub fn estimate(graph: &Graph, target: &Target) -> StepEstimate {
    let plan = crate::gpu::executor::dispatch_plan(graph, true, |s: MatmulShape| s.heuristic());
    let mut charged = vec![false; graph.ops.len()];
    let dispatches: Vec<DispatchEstimate> = plan
        .into_iter()
        .map(|(op, kernel, constants, groups)| {
            let (flops, read, written) = if std::mem::replace(&mut charged[op], true) {
                (0.0, 0.0, 0.0)
            } else {
                op_cost(&graph.ops[op])
            };
            let peak = if kernel == Kernel::MatmulCoop {
                target.f16_flops
            } else {
                target.f32_flops
            };
            let workgroups = groups.iter().map(|&g| u64::from(g)).product::<u64>();
            let busy = occupancy(workgroups, target);
            let seconds = target.launch_s
                + (flops / (peak * busy)).max((read + written) / (target.bytes_per_s * busy));
            DispatchEstimate {
                op,
                kernel: format!("{kernel:?}"),
                specialization: specialization(&constants),
                workgroups,
                threads: kernel.threads(),
                flops,
                bytes_read: read,
                bytes_written: written,
                occupancy: busy,
                seconds,
                underfilled: workgroups < u64::from(target.sms),
                memory_bound: read + written > flops,
            }
        })
        .collect();
    let step_s = dispatches.iter().map(|d| d.seconds).sum();
    StepEstimate {
        target: target.name,
        dispatches,
        step_s,
    }
}

/// The estimate of one training step of workload `w` (its batch, Adam, no clipping) in
/// `precision` on `target`.
pub fn estimate_workload(
    w: &crate::bench::Workload,
    precision: crate::graph::Precision,
    target: &Target,
) -> StepEstimate {
    let tg = crate::graph::build::build_training_graph_with_tail(
        &w.spec,
        w.batch,
        None,
        w.batch,
        &crate::optim::OptimizerConfig::adam(1e-3),
        None,
        precision,
    );
    estimate(&tg.graph, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Epilogue;

    #[test]
    fn a_large_product_is_compute_bound_and_a_tiny_one_is_all_launch() {
        let mut g = Graph::default();
        let a = g.matrix("a", 4096, 4096);
        let b = g.matrix("b", 4096, 4096);
        let c = g.matrix("c", 4096, 4096);
        let (x, y, z) = (
            g.matrix("x", 1, 8),
            g.matrix("y", 8, 1),
            g.matrix("z", 1, 1),
        );
        for (a, b, c) in [(a, b, c), (x, y, z)] {
            g.push(Op::Matmul {
                a,
                b,
                c,
                trans_a: false,
                trans_b: false,
                epilogue: Epilogue::Store,
                gradient: None,
                loss_scale: None,
            });
        }
        let e = estimate(&g, &Target::H200);
        assert_eq!(e.dispatches.len(), 2);
        let big = &e.dispatches[0];
        let compute = 2.0 * 4096f64.powi(3) / 67e12;
        assert!(
            (big.seconds - 5e-6 - compute).abs() < 0.05 * compute,
            "{big:?}"
        );
        assert!(!big.underfilled && !big.memory_bound);
        assert_eq!(
            (big.kernel.as_str(), big.workgroups),
            ("MatmulLarge", 32 * 32)
        );
        assert_eq!(big.occupancy, 1.0);
        let tiny = &e.dispatches[1];
        assert!(tiny.underfilled && tiny.memory_bound, "{tiny:?}");
        // One 32×32 workgroup: 1/132 of the device, its traffic 132 times slower.
        assert_eq!((tiny.kernel.as_str(), tiny.workgroups), ("MatmulSmall", 1));
        assert!((tiny.occupancy - 1.0 / 132.0).abs() < 1e-12);
        let traffic = (tiny.bytes_read + tiny.bytes_written) / 4.8e12 * 132.0;
        assert!((tiny.seconds - 5e-6 - traffic).abs() < 1e-12, "{tiny:?}");
        assert!((e.step_s - big.seconds - tiny.seconds).abs() < 1e-12);
        assert!(Target::named("H200").is_some() && Target::named("a100").is_none());
    }

    #[test]
    fn an_underfilled_dispatch_is_charged_its_idle_sms() {
        // 64 × 4096 · 4096 × 4096: 64 workgroups of 64×64 for 132 SMs.
        let mut g = Graph::default();
        let a = g.matrix("a", 64, 4096);
        let b = g.matrix("b", 4096, 4096);
        let c = g.matrix("c", 64, 4096);
        g.push(Op::Matmul {
            a,
            b,
            c,
            trans_a: false,
            trans_b: false,
            epilogue: Epilogue::Store,
            gradient: None,
            loss_scale: None,
        });
        assert_eq!(occupancy(64, &Target::H200), 64.0 / 132.0);
        assert_eq!(occupancy(132, &Target::H200), 1.0);
        assert_eq!(occupancy(10_000, &Target::H200), 1.0);
        let e = estimate(&g, &Target::H200);
        let d = &e.dispatches[0];
        // The heuristic gives it 32×32 tiles: 2 × 128 = 256 workgroups, the device full.
        assert_eq!((d.kernel.as_str(), d.workgroups), ("MatmulSmall", 256));
        assert_eq!(d.occupancy, 1.0);
        let full = 5e-6 + (d.flops / 67e12).max((d.bytes_read + d.bytes_written) / 4.8e12);
        assert!((d.seconds - full).abs() < 1e-12, "{d:?}");
        // With 64×64 tiles it would have had 64 workgroups and reached 64/132 of the peaks.
        let plan = crate::gpu::executor::dispatch_plan(&g, true, |_| 64);
        let groups: u64 = plan[0].3.iter().map(|&g| u64::from(g)).product();
        assert_eq!(groups, 64);
    }

    #[test]
    fn a_convolution_is_charged_its_multiply_accumulates() {
        let shape = crate::graph::conv::ConvShape::new(256, 32, 14, 14, 64, 3, 2, 1).unwrap();
        let mut g = Graph::default();
        let x = g.matrix("x", 256, shape.in_len());
        let w = g.matrix("w", 64, 32 * 9);
        let y = g.matrix("y", 256, shape.out_len());
        g.push(Op::Conv2d {
            x,
            w,
            y,
            shape,
            epilogue: Epilogue::Store,
        });
        let e = estimate(&g, &Target::H200);
        let flops: f64 = e.dispatches.iter().map(|d| d.flops).sum();
        let macs = (256 * 64 * 7 * 7 * 32 * 9) as f64;
        assert_eq!(shape.macs() as f64, macs);
        assert!(
            (flops - 2.0 * macs - 4.0 * y.len() as f64).abs() < 1.0,
            "{flops}"
        );
    }
}
