//! `hourglass bench`: the benchmark workloads on the GPU and the CPU, side by side in one run.

use clap::Args;
use hourglass::bench::{BenchResult, SGEMM_CEILING_SIZE, SgemmProbe, Workload, run};
use hourglass::graph::Precision;
use hourglass::limits::Interval;
use hourglass::train::{Device, DeviceChoice};
use hourglass::{Error, Result};

use crate::Ui;

pub const EXAMPLES: &str = "Examples:
  hourglass bench --workload all --device both
  hourglass bench --workload mnist_ae --device gpu --seconds 10 --json
  hourglass bench --workload mnist_ae,cae --device cpu --batch 1024 --seconds 10
  hourglass bench --workload cae --device cpu --profile   # where the CPU step goes, per op
  hourglass bench --workload mnist_ae --device gpu --profile --target h200   # + roofline per dispatch";

#[derive(Args)]
pub struct BenchArgs {
    /// mnist_ae, vae, cae, large_ae, conv_ae or all (comma-separated lists work too).
    #[arg(long, default_value = "all")]
    workload: String,
    /// gpu, cpu or both (then the GPU/CPU ratio is reported).
    #[arg(long, default_value = "both")]
    device: String,
    /// f32, or mixed: f16 cooperative-matrix products with f32 accumulation and dynamic loss
    /// scaling, where the GPU has them (elsewhere the run falls back to f32 and says so).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Examples per step for every workload, instead of each workload's own batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Seconds of timed training per workload and device.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    seconds: f64,
    /// Stop after this many timed steps even if time is left (smoke runs).
    #[arg(long, default_value_t = 1_000_000)]
    max_steps: u64,
    /// One JSON object per workload and device instead of a table.
    #[arg(long)]
    json: bool,
    /// Also time every op of the CPU executor's step and print where the step goes (the JSON
    /// lines get an `ops` array): fastest and mean milliseconds per op.
    #[arg(long)]
    profile: bool,
    /// Also estimate each workload's step on this GPU (h200) with a roofline model; with
    /// --profile, per dispatch.
    #[arg(long, value_name = "GPU")]
    target: Option<String>,
    #[command(flatten)]
    gpu: crate::gpu_options::GpuArgs,
}

pub fn run_bench(args: BenchArgs, ui: Ui) -> Result<()> {
    hourglass::limits::check_float("--seconds", args.seconds, Interval::POSITIVE)?;
    let workloads: Vec<Workload> = if args.workload == "all" {
        Workload::all()
    } else {
        args.workload
            .split(',')
            .map(|w| Workload::named(w.trim()))
            .collect::<Result<_>>()?
    };
    let workloads: Vec<Workload> = match args.batch {
        None => workloads,
        Some(b) => workloads
            .into_iter()
            .map(|w| w.with_batch(b))
            .collect::<Result<_>>()?,
    };
    let precision = Precision::parse(&args.precision)
        .map_err(|e| Error::Config(format!("--precision: {e}")))?;
    let choices = match args.device.as_str() {
        "gpu" => vec![DeviceChoice::Gpu],
        "cpu" => vec![DeviceChoice::Cpu],
        "both" => vec![DeviceChoice::Gpu, DeviceChoice::Cpu],
        other => {
            return Err(Error::Config(format!(
                "unknown --device '{other}' (expected gpu, cpu or both)"
            )));
        }
    };
    let target = args
        .target
        .as_deref()
        .map(crate::estimate::target)
        .transpose()?;
    let options = args.gpu.options()?;
    let devices: Vec<Device> = choices
        .into_iter()
        .map(|c| Device::open_with(c, &options, "benchmarking").map(|(d, _)| d))
        .collect::<Result<_>>()?;
    // The CPU's GEMM ceiling through the executor's own matrix product, measured just before
    // and just after each CPU workload (the operands stay allocated between measurements); each
    // CPU row is compared with the better of its two. Each measurement takes a quarter of
    // --seconds, at most 1 s and at least one 2048³ product (~0.1 s), so a 0.5 s smoke run
    // spends well under a second on it in all.
    let sgemm_seconds = (args.seconds / 4.0).min(1.0);
    let mut sgemm: Option<(SgemmProbe, f64)> = None;
    if !args.json {
        outln!(
            "{:<9} {:<4} {:>6} {:>12} {:>10} {:>9} {:>9} {:>8} {:>10} {:>9} {:>10}  adapter",
            "workload",
            "dev",
            "batch",
            "samples/s",
            "ms/step",
            "TFLOP/s",
            "sgemm GF",
            "of sgemm",
            "alloc MiB",
            "first s",
            "loss"
        );
    }
    for w in &workloads {
        if let Some(t) = &target {
            crate::estimate::print(w, precision, t, args.profile, args.json);
        }
        let mut results: Vec<BenchResult> = Vec::new();
        for d in &devices {
            let cpu = matches!(d, Device::Cpu);
            if cpu && sgemm.is_none() {
                let mut probe = SgemmProbe::new();
                let g = probe.measure(sgemm_seconds);
                sgemm = Some((probe, g));
            }
            let mut r = run(
                w,
                d,
                args.seconds,
                2,
                args.max_steps,
                precision,
                args.profile,
            )?;
            if r.precision != precision.name() {
                ui.note(&format!(
                    "{} on {}: no f16 cooperative matrices (tensor cores), so --precision {} \
                     fell back to f32",
                    w.name,
                    r.adapter,
                    precision.name()
                ));
            }
            if let (true, Some((probe, before))) = (cpu, sgemm.as_mut()) {
                let after = probe.measure(sgemm_seconds);
                r = r.with_sgemm_ceiling(before.max(after));
                *before = after;
            }
            if args.json {
                outln!("{}", serde_json::to_string(&r).expect("results serialize"));
            } else {
                outln!(
                    "{:<9} {:<4} {:>6} {:>12.0} {:>10.3} {:>9.3} {:>9} {:>8} {:>10.1} {:>9.2} {:>10.4}  {}",
                    r.workload,
                    r.device,
                    r.batch,
                    r.samples_per_s,
                    r.ms_per_step,
                    r.tflops,
                    r.cpu_sgemm_gflops
                        .map_or("-".to_string(), |g| format!("{g:.1}")),
                    r.fraction_of_sgemm
                        .map_or("-".to_string(), |f| format!("{:.1}%", 100.0 * f)),
                    r.allocated_bytes as f64 / (1 << 20) as f64,
                    r.first_step_s,
                    r.final_loss,
                    r.adapter
                );
                print_profile(&r);
            }
            results.push(r);
        }
        if let [gpu, cpu] = results.as_slice() {
            let ratio = gpu.samples_per_s / cpu.samples_per_s;
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"workload": w.name, "gpu_over_cpu": ratio})
                );
            } else {
                outln!("{:<9} GPU/CPU samples/s ratio: {ratio:.2}", w.name);
            }
        }
    }
    if let (false, Some((probe, _))) = (args.json, &sgemm) {
        let n = SGEMM_CEILING_SIZE;
        outln!(
            "CPU sgemm ceiling ({n}x{n}x{n} f32 through the CPU executor's gemm path): \
             best {:.1} GFLOP/s, worst measurement {:.1}, {} measurements",
            probe.best_gflops,
            probe.worst_gflops,
            probe.measurements
        );
    }
    Ok(())
}

/// The per-op table of a profiled CPU row: where the step's time goes.
fn print_profile(r: &BenchResult) {
    if r.ops.is_empty() {
        return;
    }
    let total: f64 = r.ops.iter().map(|o| o.mean_ms).sum();
    outln!(
        "  {} per-op profile ({} steps; share of the ops' mean total {total:.3} ms):",
        r.workload,
        r.steps
    );
    outln!(
        "  {:>4} {:>9} {:>9} {:>6}  op",
        "#",
        "min ms",
        "mean ms",
        "share"
    );
    for o in &r.ops {
        outln!(
            "  {:>4} {:>9.3} {:>9.3} {:>5.1}%  {}",
            o.index,
            o.min_ms,
            o.mean_ms,
            100.0 * o.mean_ms / total,
            o.op
        );
    }
}
