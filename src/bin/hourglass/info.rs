//! `hourglass info`: what wgpu sees, and what `--device auto` would pick.

use hourglass::gpu::list_adapters;

pub fn run() -> hourglass::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        println!("no GPU adapters found (Vulkan, Metal, DX12); training runs on the CPU");
    }
    let auto = adapters
        .iter()
        .find(|a| a.device_type != "Cpu" && a.device_type != "Other")
        .map(|a| a.index);
    for a in &adapters {
        println!(
            "[{}] {}{}\n    backend {}, type {}, driver {}\n    features: {}\n    max buffer {} MiB, max storage binding {} MiB",
            a.index,
            a.name,
            if auto == Some(a.index) {
                "  (auto picks this one)"
            } else {
                ""
            },
            a.backend,
            a.device_type,
            if a.driver.is_empty() { "?" } else { &a.driver },
            if a.features.is_empty() {
                "none of note".to_string()
            } else {
                a.features.join(", ")
            },
            a.max_buffer >> 20,
            a.max_storage_binding >> 20,
        );
    }
    if auto.is_none() {
        println!(
            "--device auto trains on the CPU (no hardware adapter); --device gpu uses adapter [0]"
        );
    }
    Ok(())
}
