//! `hourglass info`: what wgpu sees, each adapter's limits, and what `--device auto` picks;
//! with `--adapter N`, that adapter only (the one `--device gpu --adapter N` opens).

use clap::Args;
use hourglass::gpu::{Backend, GpuContext, GpuOptions, list_adapters_on};

use crate::gpu_options::GpuArgs;

const MIB: u64 = 1 << 20;

/// `hourglass info [--backend B] [--adapter N]`.
#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: InfoArgs) -> hourglass::Result<()> {
    let options = args.gpu.options()?;
    let adapters = list_adapters_on(options.backends);
    let searched = match options.backends {
        Backend::Auto => "Vulkan, Metal, DX12".to_string(),
        b => format!("{b:?}"),
    };
    // Checked before anything is printed: an unknown index is one line and exit 2.
    if let Some(n) = options.adapter
        && n >= adapters.len()
    {
        let (found, indices) = match adapters.len() {
            0 => ("no adapters".to_string(), String::new()),
            1 => ("1 adapter".to_string(), ", index 0".to_string()),
            k => (format!("{k} adapters"), format!(", indices 0 to {}", k - 1)),
        };
        return Err(hourglass::Error::Config(format!(
            "--adapter {n} does not exist: wgpu found {found} on {searched} (--backend \
             {}){indices}; `hourglass info` lists them",
            options.backends.name()
        )));
    }
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
    let auto = adapters.iter().find(|a| a.is_hardware()).map(|a| a.index);
    // With --adapter, that adapter only: --device gpu (and auto) open it whatever its type.
    let shown = adapters
        .iter()
        .filter(|a| options.adapter.is_none_or(|n| a.index == n));
    for a in shown {
        let mark = if let Some(n) = options.adapter {
            format!("  <- --device gpu --adapter {n} (and --device auto --adapter {n})")
        } else if auto == Some(a.index) {
            "  <- --device auto".to_string()
        } else if a.index == 0 {
            "  <- --device gpu".to_string()
        } else {
            String::new()
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
    if auto.is_none() && options.adapter.is_none() {
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
