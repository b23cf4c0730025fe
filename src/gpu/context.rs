//! The GPU context: one adapter, its device and queue, the kernels compiled for it, and the
//! errors the device reports asynchronously.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kernels::KernelCache;

/// What `info` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Position in enumeration order (what `--adapter` takes).
    pub index: usize,
    /// Driver-reported name.
    pub name: String,
    /// Vulkan, Metal, Dx12, ...
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, Cpu, ...
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Optional features relevant to Hourglass that the adapter offers.
    pub features: Vec<&'static str>,
    /// Largest storage-buffer binding, bytes.
    pub max_storage_binding: u64,
    /// Largest buffer, bytes.
    pub max_buffer: u64,
}

fn instance() -> wgpu::Instance {
    // GL is left out: it has no compute on many drivers and would only ever be a worse choice.
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    })
}

/// Preference order when picking an adapter: real GPUs first, software devices last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::PRIMARY));
    list.sort_by_key(|a| rank(a.get_info().device_type));
    list
}

fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let f = a.features();
    let named = [
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroup"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            "cooperative-matrix",
        ),
        (wgpu::Features::PIPELINE_CACHE, "pipeline-cache"),
    ];
    let limits = a.limits();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        features: named
            .iter()
            .filter(|(flag, _)| f.contains(*flag))
            .map(|(_, n)| *n)
            .collect(),
        max_storage_binding: u64::from(limits.max_storage_buffer_binding_size),
        max_buffer: limits.max_buffer_size,
    }
}

/// Every adapter wgpu can see, in the order `auto` prefers them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters()
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

/// A device and queue on one adapter, with its kernel cache. Shared by every executor that runs
/// on it (`Arc`), so pipelines are compiled once per process.
pub struct GpuContext {
    /// The adapter's description.
    pub adapter: AdapterSummary,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    pub(crate) kernels: KernelCache,
    fault: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the preferred adapter (`index` = None) or the one at `index` in [`list_adapters`].
    pub fn new(index: Option<usize>) -> Result<Arc<Self>> {
        let list = adapters();
        let adapter = match index {
            Some(i) => list.into_iter().nth(i).ok_or_else(|| {
                Error::NoAdapter(format!(
                    "adapter {i} does not exist; `hourglass info` lists the adapters"
                ))
            })?,
            None => list.into_iter().next().ok_or_else(|| {
                Error::NoAdapter(
                    "wgpu found no Vulkan, Metal or DX12 adapter. Install a GPU driver, or \
                     Mesa's software Vulkan (`apt-get install mesa-vulkan-drivers`), or use \
                     --device cpu"
                        .into(),
                )
            })?,
        };
        let summary = summarize(index.unwrap_or(0), &adapter);
        // Ask for everything the adapter offers: data sets and large models need big buffers.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hourglass"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::NoAdapter(format!("{}: {e}", summary.name)))?;

        let fault = Arc::new(Mutex::new(None));
        let sink = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let sink = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| format!("device lost: {msg}"));
            }
        });
        Ok(Arc::new(GpuContext {
            adapter: summary,
            device,
            queue,
            limits,
            kernels: KernelCache::default(),
            fault,
        }))
    }

    /// GPU buffers alive on this device (all executors, staging and uniforms included), from
    /// wgpu's internal counters: flat over a long run, or something leaks.
    pub fn live_buffers(&self) -> isize {
        self.device.get_internal_counters().hal.buffers.read()
    }

    /// Returns (and clears) the first error the device reported since the last check.
    pub fn check(&self) -> Result<()> {
        let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(msg) => Err(Error::Gpu(msg)),
            None => Ok(()),
        }
    }
}
