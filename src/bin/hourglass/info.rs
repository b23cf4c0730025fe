//! `hourglass info`: what wgpu sees, each adapter's limits, and what `--device auto` picks.

use clap::Args;
use hourglass::gpu::{Backend, GpuContext, GpuOptions, list_adapters_on};

use crate::gpu_options::GpuArgs;

const MIB: u64 = 1 << 20;

/// `hourglass info [--backend B]`.
#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: InfoArgs) -> hourglass::Result<()> {
    let options = args.gpu.options()?;
    let features = if cfg!(hourglass_openblas) {
        "cli, openblas"
    } else {
        "cli"
    };
    outln!(
        "hourglass {} (features: {features}); wgpu backends compiled in: {:?}",
        env!("CARGO_PKG_VERSION"),
        wgpu::Instance::enabled_backend_features()
    );
    outln!(
        "CPU: the reference executor, always available (--device cpu): {}",
        hourglass::cpu::describe()
    );
    let adapters = list_adapters_on(options.backends);
    let searched = match options.backends {
        Backend::Auto => "Vulkan, Metal, DX12".to_string(),
        b => format!("{b:?}"),
    };
    outln!(
        "GPU backends searched: {searched} (--backend {})",
        options.backends.name()
    );
    if adapters.is_empty() {
        outln!(
            "GPU: no adapters found ({searched}). Install a driver, or Mesa's software Vulkan \
             (apt-get install mesa-vulkan-drivers) or OpenGL (libegl-mesa0, --backend gl)"
        );
    }
    // `auto` takes the first hardware adapter; software ones (lavapipe) only with --device gpu.
    let auto = adapters
        .iter()
        .find(|a| a.device_type != "Cpu" && a.device_type != "Other")
        .map(|a| a.index);
    for a in &adapters {
        let mark = if auto == Some(a.index) {
            "  <- --device auto"
        } else if a.index == 0 {
            "  <- --device gpu"
        } else {
            ""
        };
        outln!("[{}] {}{mark}", a.index, a.name);
        outln!(
            "    backend {}, type {}, driver {}",
            a.backend,
            a.device_type,
            if a.driver.is_empty() { "?" } else { &a.driver }
        );
        outln!(
            "    features: {}",
            if a.features.is_empty() {
                "none of note".to_string()
            } else {
                a.features.join(", ")
            }
        );
        outln!(
            "    mixed precision: {}",
            if a.f16_matrix_units {
                "f16 cooperative matrices (tensor cores)"
            } else {
                "no f16 cooperative matrices: --precision mixed falls back to f32"
            }
        );
        // The limits the device is created with (all the adapter offers).
        // Opened to read its limits only: no cache folder, so nothing is written.
        let open = GpuOptions {
            adapter: Some(a.index),
            cache_dir: None,
            ..options.clone()
        };
        match GpuContext::with_options(&open) {
            Ok(ctx) => {
                let l = &ctx.limits;
                outln!(
                    "    buffers: max {} MiB, storage binding {} MiB, uniform binding {} KiB, \
                     {} storage buffers per stage, {} bind groups",
                    l.max_buffer_size / MIB,
                    l.max_storage_buffer_binding_size / MIB,
                    l.max_uniform_buffer_binding_size >> 10,
                    l.max_storage_buffers_per_shader_stage,
                    l.max_bind_groups
                );
                outln!(
                    "    compute: workgroup ≤ {}×{}×{} and {} invocations, {} KiB shared, \
                     {} workgroups per dimension",
                    l.max_compute_workgroup_size_x,
                    l.max_compute_workgroup_size_y,
                    l.max_compute_workgroup_size_z,
                    l.max_compute_invocations_per_workgroup,
                    l.max_compute_workgroup_storage_size >> 10,
                    l.max_compute_workgroups_per_dimension
                );
            }
            Err(e) => outln!("    cannot open a device: {e}"),
        }
    }
    if auto.is_none() {
        outln!(
            "--device auto trains on the CPU (no hardware adapter){}",
            if adapters.is_empty() {
                ""
            } else {
                "; --device gpu uses adapter [0]"
            }
        );
    }
    Ok(())
}
