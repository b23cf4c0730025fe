//! `hourglass bench`: the benchmark workloads on the GPU and the CPU, side by side in one run.

use clap::Args;
use hourglass::bench::{BenchResult, Workload, run};
use hourglass::train::{Device, DeviceChoice};
use hourglass::{Error, Result};

use crate::Ui;

pub const EXAMPLES: &str = "Examples:
  hourglass bench --workload all --device both
  hourglass bench --workload mnist_ae --device gpu --seconds 10 --json";

#[derive(Args)]
pub struct BenchArgs {
    /// mnist_ae, vae, cae, large_ae or all (comma-separated lists work too).
    #[arg(long, default_value = "all")]
    workload: String,
    /// gpu, cpu or both (then the GPU/CPU ratio is reported).
    #[arg(long, default_value = "both")]
    device: String,
    /// f32, or mixed (f16 cooperative-matrix matmuls; not built yet: runs f32 and says so).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Seconds of timed training per workload and device.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Stop after this many timed steps even if time is left (smoke runs).
    #[arg(long, default_value_t = 1_000_000)]
    max_steps: u64,
    /// One JSON object per workload and device instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run_bench(args: BenchArgs, ui: Ui) -> Result<()> {
    let workloads: Vec<Workload> = if args.workload == "all" {
        Workload::all()
    } else {
        args.workload
            .split(',')
            .map(|w| Workload::named(w.trim()))
            .collect::<Result<_>>()?
    };
    match args.precision.as_str() {
        "f32" => {}
        "mixed" => ui.note(
            "mixed precision (f16 cooperative matrices) is not implemented yet; measuring the f32 path",
        ),
        other => {
            return Err(Error::Config(format!(
                "unknown precision '{other}' (expected f32 or mixed)"
            )));
        }
    }
    let choices = match args.device.as_str() {
        "gpu" => vec![DeviceChoice::Gpu],
        "cpu" => vec![DeviceChoice::Cpu],
        "both" => vec![DeviceChoice::Gpu, DeviceChoice::Cpu],
        other => {
            return Err(Error::Config(format!(
                "unknown device '{other}' (expected gpu, cpu or both)"
            )));
        }
    };
    let devices: Vec<Device> = choices
        .into_iter()
        .map(|c| Device::open(c).map(|(d, _)| d))
        .collect::<Result<_>>()?;
    if !args.json {
        println!(
            "{:<9} {:<4} {:>6} {:>12} {:>10} {:>9} {:>10} {:>9} {:>10}  adapter",
            "workload",
            "dev",
            "batch",
            "samples/s",
            "ms/step",
            "TFLOP/s",
            "alloc MiB",
            "first s",
            "loss"
        );
    }
    for w in &workloads {
        let mut results: Vec<BenchResult> = Vec::new();
        for d in &devices {
            let r = run(w, d, args.seconds, 2, args.max_steps)?;
            if args.json {
                println!("{}", serde_json::to_string(&r).expect("results serialize"));
            } else {
                println!(
                    "{:<9} {:<4} {:>6} {:>12.0} {:>10.3} {:>9.3} {:>10.1} {:>9.2} {:>10.4}  {}",
                    r.workload,
                    r.device,
                    r.batch,
                    r.samples_per_s,
                    r.ms_per_step,
                    r.tflops,
                    r.allocated_bytes as f64 / (1 << 20) as f64,
                    r.first_step_s,
                    r.final_loss,
                    r.adapter
                );
            }
            results.push(r);
        }
        if let [gpu, cpu] = results.as_slice() {
            let ratio = gpu.samples_per_s / cpu.samples_per_s;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"workload": w.name, "gpu_over_cpu": ratio})
                );
            } else {
                println!("{:<9} GPU/CPU samples/s ratio: {ratio:.2}", w.name);
            }
        }
    }
    Ok(())
}
