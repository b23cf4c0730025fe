//! The GPU context: one adapter, its device and queue, the kernels compiled for it, and the
//! errors the device reports asynchronously.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::autotune::{MatmulShape, TileTable};
use crate::gpu::kernels::{DiskCache, KernelCache};
use crate::gpu::options::{Backend, GpuOptions};

/// What `info` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Position in enumeration order (what `--adapter` takes); 0 for a device handed over with
    /// [`GpuContext::from_wgpu`].
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
    /// Mixed precision runs on f16 cooperative matrices (tensor cores) here; without them it
    /// falls back to f32 (see [`GpuContext::has_f16_matrix_units`]).
    pub f16_matrix_units: bool,
}

impl AdapterSummary {
    /// A hardware GPU: not a software rasterizer such as lavapipe or llvmpipe (type `Cpu`) and
    /// not an unknown kind (`Other`).
    pub fn is_hardware(&self) -> bool {
        self.device_type != "Cpu" && self.device_type != "Other"
    }
}

/// An instance searching `backends` only. Built without wgpu's `from_env` (which reads
/// `WGPU_BACKEND` and friends): the library reads no environment variable, the command line
/// maps `WGPU_BACKEND` onto [`GpuOptions::backends`] itself. GL is searched only when asked
/// for: it has no compute on many drivers and is a worse choice wherever Vulkan exists.
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
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

fn adapters(backends: Backend) -> Vec<wgpu::Adapter> {
    let b = backends.wgpu();
    let mut list = pollster::block_on(instance(b).enumerate_adapters(b));
    list.sort_by_key(|a| rank(a.get_info().device_type));
    list
}

/// Optional features relevant to Hourglass, with the names `info` prints.
const NAMED_FEATURES: [(wgpu::Features, &str); 5] = [
    (wgpu::Features::SHADER_F16, "shader-f16"),
    (wgpu::Features::SUBGROUP, "subgroup"),
    (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
    (
        wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
        "cooperative-matrix",
    ),
    (wgpu::Features::PIPELINE_CACHE, "pipeline-cache"),
];

/// The features the cooperative-matrix matmul needs.
const F16_MATRIX_FEATURES: wgpu::Features =
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX.union(wgpu::Features::SHADER_F16);

/// Whether shaders/matmul_coop.wgsl can be written for `backend`: naga translates cooperative
/// matrices to SPIR-V (Vulkan) and MSL (Metal) only; its HLSL (DX12) and GLSL (GL) writers
/// have no such types (tests/translation.rs checks both halves of this). Elsewhere mixed
/// precision falls back to f32 products.
pub fn cooperative_matrix_translates_to(backend: wgpu::Backend) -> bool {
    matches!(backend, wgpu::Backend::Vulkan | wgpu::Backend::Metal)
}

/// Bytes of workgroup memory shaders/matmul_coop.wgsl declares (its f16 tiles of A and B and
/// its f32 staging tile): more than wgpu's downlevel 16,352, so the kernel runs only where the
/// device allows it (tests/translation.rs measures the kernel against this number).
pub const COOP_WORKGROUP_BYTES: u32 = 24_580;

/// Whether a device with `features` and `limits` on the adapter `info` describes may run
/// shaders/matmul_coop.wgsl: the device's own features say whether it may use cooperative
/// matrices; the shapes it offers cannot be asked of a device, only of its adapter.
pub(crate) fn f16_matrix_units(
    features: &wgpu::Features,
    limits: &wgpu::Limits,
    info: &wgpu::AdapterInfo,
) -> bool {
    features.contains(F16_MATRIX_FEATURES)
        && limits.max_compute_workgroup_storage_size >= COOP_WORKGROUP_BYTES
        && cooperative_matrix_translates_to(info.backend)
        && info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
}

/// Whether `adapter` can run shaders/matmul_coop.wgsl: 16×16×16 f16 cooperative matrices with
/// f32 accumulators, and subgroups of exactly 32 (the kernel gives each of its four subgroups
/// a quarter of the tile). `allowed` false ([`GpuOptions::cooperative_matrix`]) says no, to
/// measure without them.
fn offers_f16_matrix_units(adapter: &wgpu::Adapter, allowed: bool) -> bool {
    if !allowed {
        return false;
    }
    f16_matrix_units(&adapter.features(), &adapter.limits(), &adapter.get_info())
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
}

fn summarize(index: usize, a: &wgpu::Adapter, cooperative_matrix: bool) -> AdapterSummary {
    describe(
        index,
        &a.get_info(),
        a.features(),
        &a.limits(),
        offers_f16_matrix_units(a, cooperative_matrix),
    )
}

/// The summary of an adapter (or an application's device) from what wgpu reports of it.
fn describe(
    index: usize,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: &wgpu::Limits,
    f16_matrix_units: bool,
) -> AdapterSummary {
    AdapterSummary {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        features: NAMED_FEATURES
            .iter()
            .filter(|(flag, _)| features.contains(*flag))
            .map(|(_, n)| *n)
            .collect(),
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_buffer: limits.max_buffer_size,
        f16_matrix_units,
    }
}

/// Every Vulkan, Metal and DX12 adapter wgpu can see, in the order `auto` prefers them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    list_adapters_on(Backend::Auto)
}

/// Every adapter of `backends`, in the order `auto` prefers them (indices are what
/// [`GpuOptions::adapter`] takes with the same `backends`).
pub fn list_adapters_on(backends: Backend) -> Vec<AdapterSummary> {
    adapters(backends)
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a, true))
        .collect()
}

/// A device and queue on one adapter, with its kernel cache. Shared by every executor that runs
/// on it (`Arc`), so pipelines are compiled once per process.
///
/// Two ways to get one:
///
/// - [`GpuContext::new`] opens an adapter and creates a device of its own, with the adapter's
///   full limits.
/// - [`GpuContext::from_wgpu`] takes a `wgpu::Device` and `wgpu::Queue` an application already
///   owns, so Hourglass trains and encodes on the same device the application renders or
///   computes with, and results such as codes can stay there
///   ([`Autoencoder::encode_to_device`](crate::infer::Autoencoder::encode_to_device)).
///
/// # Device errors
///
/// wgpu reports most errors asynchronously, to the device's uncaptured-error handler (whose
/// default panics) or to error scopes. Hourglass turns every error raised by its own calls into
/// an [`Error::Gpu`] returned by the call that raised it (or, for a buffer write, by the next
/// call on that context):
///
/// - On a device it created ([`GpuContext::new`]), it installs an uncaptured-error handler and a
///   device-lost callback that record the first error.
/// - On an application's device ([`GpuContext::from_wgpu`]), it installs **nothing**: the
///   application's uncaptured-error handler and device-lost callback stay as they were. Each of
///   Hourglass's calls on the device instead runs inside error scopes (validation, out of
///   memory, internal) pushed and popped on the calling thread, so its errors come back to
///   Hourglass and never reach the application's handler, and the application's own errors
///   never reach Hourglass. wgpu reports a lost device only to the device-lost callback, which
///   is the application's: Hourglass notices the loss at its next read-back, which fails.
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
    /// The matmul tile of each product shape met so far (see `gpu::autotune`).
    tiles: Mutex<TileTable>,
    /// The first error not yet returned to a caller.
    fault: Arc<Mutex<Option<String>>>,
    /// True when the application owns the device: errors are caught with error scopes.
    external: bool,
}

/// The error scopes around one of Hourglass's calls on an application's device (none on a
/// device of its own); see [`GpuContext::capture`].
pub(crate) struct Capture<'a> {
    ctx: &'a GpuContext,
    scopes: Vec<wgpu::ErrorScopeGuard>,
}

impl Drop for Capture<'_> {
    /// Scopes must be popped in reverse order (a `Vec` would drop them in order).
    fn drop(&mut self) {
        while let Some(scope) = self.scopes.pop() {
            drop(scope);
        }
    }
}

impl Capture<'_> {
    /// Pops the scopes and records their first error in the context, without returning it
    /// (for calls that cannot fail, such as buffer writes: the next check reports it).
    pub(crate) fn record(mut self) {
        while let Some(scope) = self.scopes.pop() {
            if let Some(e) = pollster::block_on(scope.pop()) {
                self.ctx.record_fault(e.to_string());
            }
        }
    }

    /// Pops the scopes, then returns (and clears) the first error the device reported since
    /// the last check.
    pub(crate) fn finish(self) -> Result<()> {
        let ctx = self.ctx;
        self.record();
        ctx.check()
    }
}

impl GpuContext {
    /// Opens the preferred adapter (`index` = None) or the one at `index` in [`list_adapters`],
    /// with the default [`GpuOptions`] otherwise (no file written).
    pub fn new(index: Option<usize>) -> Result<Arc<Self>> {
        Self::with_options(&GpuOptions {
            adapter: index,
            ..GpuOptions::default()
        })
    }

    /// Opens the adapter `options` choose and creates a device of its own on it.
    pub fn with_options(options: &GpuOptions) -> Result<Arc<Self>> {
        options.validate()?;
        let list = adapters(options.backends);
        let index = options.adapter;
        let searched = match options.backends {
            Backend::Auto => "Vulkan, Metal or DX12".to_string(),
            b => format!("{b:?}"),
        };
        let adapter = match index {
            Some(i) => {
                let n = list.len();
                list.into_iter().nth(i).ok_or_else(|| {
                    Error::NoAdapter(format!(
                        "adapter {i} does not exist: wgpu found {n} {searched} adapter{} \
                         (list_adapters_on lists them)",
                        if n == 1 { "" } else { "s" }
                    ))
                })?
            }
            None => list.into_iter().next().ok_or_else(|| {
                Error::NoAdapter(format!(
                    "wgpu found no {searched} adapter. Install a GPU driver, or Mesa's \
                     software Vulkan (`apt-get install mesa-vulkan-drivers`) or OpenGL \
                     (`libegl-mesa0`), or train on the CPU"
                ))
            })?,
        };
        let mut summary = summarize(index.unwrap_or(0), &adapter, options.cooperative_matrix);
        // An adapter below what the kernels need (a GLES 3.1 phone with 4 storage buffers per
        // stage) is refused here, naming the limit, rather than failing at its first pipeline.
        let short = limits_short_of(&adapter.limits(), &Self::minimum_limits());
        if !short.is_empty() {
            return Err(Error::NoAdapter(format!(
                "{} ({:?}) offers less than Hourglass's kernels need: {}",
                summary.name,
                adapter.get_info().backend,
                short.join(", ")
            )));
        }
        // Ask for everything the adapter offers: data sets and large models need big buffers.
        let limits = adapter.limits();
        // Optional features: a pipeline cache that survives the process (adapters without it
        // compile every run, which is slower to start but otherwise the same), and f16
        // cooperative matrices for mixed precision (without them it falls back to f32).
        let base = adapter.features() & wgpu::Features::PIPELINE_CACHE;
        let request = |with_matrix_units: bool| {
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("hourglass"),
                required_features: if with_matrix_units {
                    base | F16_MATRIX_FEATURES
                } else {
                    base
                },
                required_limits: limits.clone(),
                experimental_features: if with_matrix_units {
                    // SAFETY: wgpu marks cooperative matrices experimental (possible driver or
                    // translation bugs). Only the mixed-precision matmul uses them, and only
                    // when the user asks for mixed precision; its results are checked against
                    // the f32 path by `tests/mixed_precision.rs` wherever the hardware exists.
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            }))
        };
        // Should a driver refuse the experimental features, the device is still opened without
        // them: f32 training must never depend on them.
        let (f16_matrix_units, (device, queue)) =
            match summary.f16_matrix_units.then(|| request(true)) {
                Some(Ok(pair)) => (true, pair),
                _ => (
                    false,
                    request(false)
                        .map_err(|e| Error::NoAdapter(format!("{}: {e}", summary.name)))?,
                ),
            };
        let features = device.features();

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
        let disk = match &options.cache_dir {
            Some(dir)
                if options.pipeline_cache && features.contains(wgpu::Features::PIPELINE_CACHE) =>
            {
                DiskCache::open(&device, &adapter.get_info(), dir)
            }
            _ => None,
        };
        // What the device got, which a refusing driver may make less than the adapter offered.
        summary.f16_matrix_units = f16_matrix_units;
        Ok(Arc::new(GpuContext {
            adapter: summary,
            device,
            queue,
            limits,
            kernels: KernelCache::with_disk(disk),
            tiles: Mutex::new(TileTable::open(&adapter.get_info(), options)),
            fault,
            external: false,
        }))
    }

    /// Wraps a device and queue the application created, so Hourglass runs on them instead of
    /// opening a device of its own. `device` and `queue` are handles (wgpu clones share the
    /// device): pass clones and keep using the originals.
    ///
    /// The adapter's description comes from [`wgpu::Device::adapter_info`], the limits from
    /// [`wgpu::Device::limits`] (the limits the device was created with, which are all that
    /// Hourglass may use). Nothing is installed on the device: see [Device
    /// errors](GpuContext#device-errors) for how errors are caught without touching the
    /// application's uncaptured-error handler or device-lost callback.
    ///
    /// # Requirements
    ///
    /// No optional feature is needed. The device's limits must be at least
    /// [`GpuContext::minimum_limits`] (`wgpu::Limits::default()` is more than enough; an error
    /// names every limit that falls short). Two limits bound sizes rather than being
    /// requirements: `max_storage_buffer_binding_size` and `max_buffer_size` cap the largest
    /// buffer a model needs (the data set kept on the device, the parameter arena, a batch of
    /// activations). A data set larger than them is streamed a window of batches at a time; a
    /// model or batch larger than them is refused with an error that names the buffer. Request
    /// the adapter's own limits (`adapter.limits()`, as [`GpuContext::new`] does) to train large
    /// models.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use hourglass::gpu::GpuContext;
    /// use hourglass::train::Device;
    ///
    /// // The application's own device, created however it likes.
    /// let instance = wgpu::Instance::default();
    /// let adapter = pollster::block_on(
    ///     instance.request_adapter(&wgpu::RequestAdapterOptions::default()),
    /// )?;
    /// let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
    ///     required_limits: wgpu::Limits::default(),
    ///     ..Default::default()
    /// }))?;
    ///
    /// let gpu = Device::Gpu(GpuContext::from_wgpu(device.clone(), queue.clone())?);
    /// // `gpu` now trains and encodes on the application's device (see `Trainer::new`).
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Result<Arc<Self>> {
        Self::from_wgpu_with(device, queue, &GpuOptions::default())
    }

    /// [`GpuContext::from_wgpu`] with `options` for what they say about kernels: the matmul
    /// tile, autotuning, cooperative matrices and the cache folder (the device's own pipeline
    /// cache is the application's business: none is created here). `backends` and `adapter`
    /// are ignored; the application chose them.
    pub fn from_wgpu_with(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: &GpuOptions,
    ) -> Result<Arc<Self>> {
        options.validate()?;
        let info = device.adapter_info();
        let limits = device.limits();
        let short = limits_short_of(&limits, &Self::minimum_limits());
        if !short.is_empty() {
            return Err(Error::Config(format!(
                "the device on {} was created with limits too low for Hourglass: {}; create it \
                 with at least GpuContext::minimum_limits() (wgpu::Limits::default() will do)",
                info.name,
                short.join(", ")
            )));
        }
        let features = device.features();
        let summary = describe(
            0,
            &info,
            features,
            &limits,
            options.cooperative_matrix && f16_matrix_units(&features, &limits, &info),
        );
        Ok(Arc::new(GpuContext {
            adapter: summary,
            device,
            queue,
            limits,
            kernels: KernelCache::default(),
            tiles: Mutex::new(TileTable::open(&info, options)),
            fault: Arc::new(Mutex::new(None)),
            external: true,
        }))
    }

    /// Whether mixed-precision products run on f16 cooperative matrices (tensor cores) here.
    /// Needs `EXPERIMENTAL_COOPERATIVE_MATRIX` and `SHADER_F16`, 16×16×16 f16 matrices with f32
    /// accumulators, and subgroups of 32 (NVIDIA). [`GpuContext::new`] asks for them when the
    /// adapter has them; a device from [`GpuContext::from_wgpu`] has them when the application
    /// created it with those features (and `wgpu::ExperimentalFeatures::enabled()`).
    pub fn has_f16_matrix_units(&self) -> bool {
        self.adapter.f16_matrix_units
    }

    /// The tile (64 or 128) products of `shape` run with on this device, timing both the
    /// first time a shape could use either (see `gpu::autotune`).
    pub fn matmul_tile(&self, shape: MatmulShape) -> usize {
        let mut t = self.tiles.lock().unwrap_or_else(|p| p.into_inner());
        t.tile(&self.device, &self.queue, &self.kernels, shape)
    }

    /// Product shapes this process has timed to choose their tile.
    pub fn tiles_measured(&self) -> usize {
        self.tiles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .measured
    }

    /// The least a device must allow for Hourglass's kernels (see [`GpuContext::from_wgpu`]):
    /// wgpu's `downlevel_defaults` with seven storage buffers per shader stage (WebGPU's and
    /// wgpu's default is eight). The kernels bind up to seven storage buffers (the contractive
    /// rows with their split rows' partials), two uniform buffers (one at a dynamic offset, 256-byte
    /// aligned) in one bind group, and run workgroups of up to 256 invocations (16 × 16 for the
    /// products) within the downlevel 16,352 bytes of workgroup memory (tests/translation.rs;
    /// the cooperative-matrix matmul, which needs more, asks the device), on grids of up to
    /// 65,535 workgroups per dimension.
    pub fn minimum_limits() -> wgpu::Limits {
        wgpu::Limits {
            max_storage_buffers_per_shader_stage: 7,
            ..wgpu::Limits::downlevel_defaults()
        }
    }

    /// Kernel specializations this context compiled that `Kernel::specializations` does not
    /// list, so the translation tests never checked them for Metal, DX12 and GL (empty unless
    /// the executor and the list disagree; tests check it).
    pub fn unlisted_specializations(&self) -> Vec<String> {
        self.kernels.unlisted()
    }

    /// The wgpu backend the device runs on.
    pub fn backend(&self) -> Backend {
        Backend::of(self.device.adapter_info().backend)
    }

    /// True when the device was handed over with [`GpuContext::from_wgpu`].
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// GPU buffers alive on this device (all executors, staging and uniforms included), from
    /// wgpu's internal counters: flat over a long run, or something leaks. On an application's
    /// device the count includes the application's buffers.
    pub fn live_buffers(&self) -> isize {
        self.device.get_internal_counters().hal.buffers.read()
    }

    /// Starts catching the errors of one of Hourglass's calls: on an application's device,
    /// pushes error scopes on this thread; on Hourglass's own device the handler already
    /// catches them. End with [`Capture::finish`] or [`Capture::record`] on the same thread.
    pub(crate) fn capture(&self) -> Capture<'_> {
        let scopes = if self.external {
            [
                wgpu::ErrorFilter::Validation,
                wgpu::ErrorFilter::OutOfMemory,
                wgpu::ErrorFilter::Internal,
            ]
            .into_iter()
            .map(|f| self.device.push_error_scope(f))
            .collect()
        } else {
            Vec::new()
        };
        Capture { ctx: self, scopes }
    }

    fn record_fault(&self, msg: String) {
        let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(msg);
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

/// Every limit of `have` that falls short of `need`, as `name is L, needs N`, by wgpu's own
/// comparison (alignments must be at most, the rest at least); buffer sizes are left out,
/// since they are checked per buffer with the buffer's name.
fn limits_short_of(have: &wgpu::Limits, need: &wgpu::Limits) -> Vec<String> {
    let mut short = Vec::new();
    need.check_limits_with_fail_fn(have, false, |name, needed, allowed| {
        if matches!(name, "max_buffer_size" | "max_storage_buffer_binding_size") {
            return;
        }
        let bound = if name.starts_with("min_") {
            "at most "
        } else {
            ""
        };
        short.push(format!("{name} is {allowed}, needs {bound}{needed}"));
    });
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter with every feature and subgroups of 32 still gets no f16 matrix units where
    /// the cooperative-matrix kernel cannot be translated (DX12, GL): mixed precision then runs
    /// on the f32-tile kernels with `HALF`.
    #[test]
    fn f16_matrix_units_only_where_the_kernel_translates_and_fits() {
        let with = |backend, shared| {
            let mut info = wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, backend);
            info.subgroup_min_size = 32;
            info.subgroup_max_size = 32;
            let limits = wgpu::Limits {
                max_compute_workgroup_storage_size: shared,
                ..wgpu::Limits::default()
            };
            f16_matrix_units(&wgpu::Features::all(), &limits, &info)
        };
        assert!(with(wgpu::Backend::Vulkan, 32 << 10));
        assert!(with(wgpu::Backend::Metal, 32 << 10));
        assert!(!with(wgpu::Backend::Dx12, 32 << 10));
        assert!(!with(wgpu::Backend::Gl, 32 << 10));
        // The downlevel 16 KiB (wgpu's default too) cannot hold the kernel's tiles.
        assert!(!with(wgpu::Backend::Vulkan, 16_352));
        assert!(!with(
            wgpu::Backend::Vulkan,
            wgpu::Limits::default().max_compute_workgroup_storage_size
        ));
    }

    #[test]
    fn the_minimum_limits_fit_the_kernels() {
        let need = GpuContext::minimum_limits();
        // Every kernel's storage bindings, and the defaults most applications request.
        let most = crate::gpu::Kernel::ALL
            .iter()
            .map(|k| {
                k.slots()
                    .iter()
                    .filter(|s| {
                        matches!(
                            s,
                            crate::gpu::kernels::Slot::Read | crate::gpu::kernels::Slot::ReadWrite
                        )
                    })
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert_eq!(need.max_storage_buffers_per_shader_stage as usize, most);
        assert!(limits_short_of(&wgpu::Limits::default(), &need).is_empty());
        let short = limits_short_of(&wgpu::Limits::downlevel_webgl2_defaults(), &need);
        assert!(
            short
                .iter()
                .any(|s| s.starts_with("max_storage_buffers_per_shader_stage")),
            "{short:?}"
        );
    }
}
