//! The WGSL kernels: their sources (embedded at build time), binding layouts and the cache of
//! compiled pipelines, keyed by kernel and specialization constants.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One compute entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `shaders/matmul.wgsl` with `matmul_tile64.wgsl`: 64×64 tiles.
    Matmul,
    /// `shaders/matmul.wgsl` with `matmul_tile32.wgsl`: 32×32 tiles, for products too small to
    /// fill a GPU with 64×64 ones.
    MatmulSmall,
    /// `shaders/matmul_large.wgsl`: 128×128 tiles, for products at least 128 on both sides.
    MatmulLarge,
    /// `shaders/matmul_coop.wgsl`: f16 cooperative matrices (tensor cores) with f32
    /// accumulation, for mixed precision on adapters that offer them.
    MatmulCoop,
    /// `shaders/elementwise.wgsl`, `forward`.
    ActivationForward,
    /// `shaders/elementwise.wgsl`, `backward`.
    ActivationBackward,
    /// `shaders/reduce.wgsl`.
    ColumnSum,
    /// `shaders/loss.wgsl`.
    ReconstructionLoss,
    /// `shaders/optimizer.wgsl`, `adam`.
    Adam,
    /// `shaders/optimizer.wgsl`, `sgd`.
    Sgd,
    /// `shaders/gather.wgsl`.
    Gather,
    /// `shaders/elementwise.wgsl`, `add_into`.
    AddInto,
    /// `shaders/noise.wgsl`.
    Corrupt,
    /// `shaders/jacobian.wgsl`, `directions`.
    Directions,
    /// `shaders/jacobian.wgsl`, `tangent_scale`.
    TangentScale,
    /// `shaders/jacobian.wgsl`, `curvature`.
    Curvature,
    /// `shaders/jacobian.wgsl`, `jacobian_norm`.
    JacobianNorm,
    /// `shaders/jacobian.wgsl`, `contractive_units`: first dispatch of the closed-form
    /// contractive penalty (per-unit norms, weight gradient).
    ContractiveUnits,
    /// `shaders/jacobian.wgsl`, `contractive_rows`: second dispatch (per-example penalty,
    /// code gradient).
    ContractiveRows,
    /// `shaders/sparse.wgsl`, `sparse_l1`.
    SparseL1,
    /// `shaders/sparse.wgsl`, `sparse_kl`.
    SparseKl,
    /// `shaders/sampler.wgsl`, `sample`.
    Sample,
    /// `shaders/sampler.wgsl`, `sample_grad`.
    SampleGrad,
    /// `shaders/norm.wgsl`, `sum_squares`: per-block Σ g².
    SumSquares,
    /// `shaders/norm.wgsl`, `sum_squares_final`: the total and the step's health.
    SumSquaresFinal,
    /// `shaders/grad_accumulate.wgsl`: gradient accumulation over micro-steps.
    GradAccumulate,
    /// `shaders/loss_scale.wgsl`, `check_finite`.
    CheckFinite,
    /// `shaders/loss_scale.wgsl`, `loss_scale`.
    LossScale,
    /// `shaders/conv2d.wgsl` with `matmul_tile64.wgsl`: the conv products as implicit GEMMs in
    /// 64×64 tiles (MODE 0 forward, 2 weight gradient, 3 input-gradient columns).
    Conv2d,
    /// `shaders/conv2d.wgsl` with `matmul_tile32.wgsl`: 32×32 tiles, for products with at most
    /// 32 rows (channels) or too few tiles of 64.
    Conv2dSmall,
    /// `shaders/conv2d_reduce.wgsl`, `weight_grad_sum`: sums the K chunks of a weight gradient.
    ConvWeightGradSum,
    /// `shaders/conv2d_reduce.wgsl`, `channel_sum`: conv bias gradients.
    ChannelSum,
    /// `shaders/conv2d_col2im.wgsl`: folds input-gradient columns back onto the images.
    Col2im,
    /// `shaders/psd.wgsl`, `psd_gain`.
    PsdGain,
    /// `shaders/psd.wgsl`, `psd_gain_grad`.
    PsdGainGrad,
    /// `shaders/psd.wgsl`, `psd_lipschitz`.
    PsdLipschitz,
    /// `shaders/psd.wgsl`, `psd_shrink`.
    PsdShrink,
    /// `shaders/psd.wgsl`, `psd_momentum`.
    PsdMomentum,
    /// `shaders/psd.wgsl`, `psd_terms`.
    PsdTerms,
    /// `shaders/psd.wgsl`, `psd_renorm`.
    PsdRenorm,
    /// `shaders/row_sum.wgsl`: adds the partial sums of the per-row kernels whose rows were
    /// split over several workgroups (`executor::rows`).
    RowSum,
}

/// How a kernel binds a resource, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>` with the op's dimensions, written once at build time.
    Uniform,
    /// `var<uniform> s: Step` bound at a dynamic offset into the step ring.
    Step,
}

macro_rules! wgsl {
    ($($file:literal),+) => {
        concat!($(include_str!(concat!("../../shaders/", $file)), "\n"),+)
    };
}

use Slot::*;

impl Kernel {
    /// Every kernel, for validation tests.
    pub const ALL: [Kernel; 41] = [
        Kernel::Matmul,
        Kernel::MatmulSmall,
        Kernel::MatmulLarge,
        Kernel::MatmulCoop,
        Kernel::ActivationForward,
        Kernel::ActivationBackward,
        Kernel::ColumnSum,
        Kernel::ReconstructionLoss,
        Kernel::Adam,
        Kernel::Sgd,
        Kernel::Gather,
        Kernel::AddInto,
        Kernel::Corrupt,
        Kernel::Directions,
        Kernel::TangentScale,
        Kernel::Curvature,
        Kernel::JacobianNorm,
        Kernel::ContractiveUnits,
        Kernel::ContractiveRows,
        Kernel::SparseL1,
        Kernel::SparseKl,
        Kernel::Sample,
        Kernel::SampleGrad,
        Kernel::SumSquares,
        Kernel::SumSquaresFinal,
        Kernel::GradAccumulate,
        Kernel::CheckFinite,
        Kernel::LossScale,
        Kernel::Conv2d,
        Kernel::Conv2dSmall,
        Kernel::ConvWeightGradSum,
        Kernel::ChannelSum,
        Kernel::Col2im,
        Kernel::PsdGain,
        Kernel::PsdGainGrad,
        Kernel::PsdLipschitz,
        Kernel::PsdShrink,
        Kernel::PsdMomentum,
        Kernel::PsdTerms,
        Kernel::PsdRenorm,
        Kernel::RowSum,
    ];

    /// The WGSL module, with the shared preludes it needs prepended.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Matmul => wgsl!(
                "activation.wgsl",
                "matmul_common.wgsl",
                "matmul_tile64.wgsl",
                "matmul.wgsl"
            ),
            Kernel::MatmulSmall => wgsl!(
                "activation.wgsl",
                "matmul_common.wgsl",
                "matmul_tile32.wgsl",
                "matmul.wgsl"
            ),
            Kernel::MatmulLarge => {
                wgsl!("activation.wgsl", "matmul_common.wgsl", "matmul_large.wgsl")
            }
            // First: its `enable` directives must open the module.
            Kernel::MatmulCoop => {
                wgsl!("matmul_coop.wgsl", "activation.wgsl", "matmul_common.wgsl")
            }
            Kernel::ActivationForward | Kernel::ActivationBackward | Kernel::AddInto => {
                wgsl!("step.wgsl", "activation.wgsl", "elementwise.wgsl")
            }
            Kernel::ColumnSum => wgsl!("reduce.wgsl"),
            Kernel::ReconstructionLoss => {
                wgsl!(
                    "workgroup.wgsl",
                    "rows.wgsl",
                    "activation.wgsl",
                    "loss.wgsl"
                )
            }
            Kernel::RowSum => wgsl!("row_sum.wgsl"),
            Kernel::Adam | Kernel::Sgd => wgsl!("step.wgsl", "finite.wgsl", "optimizer.wgsl"),
            Kernel::Gather => wgsl!("step.wgsl", "gather.wgsl"),
            Kernel::Corrupt => wgsl!("step.wgsl", "rng.wgsl", "noise.wgsl"),
            Kernel::Directions
            | Kernel::TangentScale
            | Kernel::Curvature
            | Kernel::JacobianNorm
            | Kernel::ContractiveUnits
            | Kernel::ContractiveRows => wgsl!(
                "step.wgsl",
                "rng.wgsl",
                "workgroup.wgsl",
                "rows.wgsl",
                "activation.wgsl",
                "jacobian.wgsl"
            ),
            Kernel::SparseL1 | Kernel::SparseKl => wgsl!(
                "step.wgsl",
                "workgroup.wgsl",
                "activation.wgsl",
                "sparse.wgsl"
            ),
            Kernel::Sample | Kernel::SampleGrad => {
                wgsl!(
                    "step.wgsl",
                    "rng.wgsl",
                    "workgroup.wgsl",
                    "rows.wgsl",
                    "sampler.wgsl"
                )
            }
            Kernel::SumSquares | Kernel::SumSquaresFinal => {
                wgsl!("step.wgsl", "workgroup.wgsl", "finite.wgsl", "norm.wgsl")
            }
            Kernel::GradAccumulate => wgsl!("step.wgsl", "grad_accumulate.wgsl"),
            Kernel::CheckFinite | Kernel::LossScale => {
                wgsl!("workgroup.wgsl", "finite.wgsl", "loss_scale.wgsl")
            }
            Kernel::Conv2d => wgsl!(
                "activation.wgsl",
                "conv2d_dims.wgsl",
                "matmul_tile64.wgsl",
                "conv2d.wgsl"
            ),
            Kernel::Conv2dSmall => wgsl!(
                "activation.wgsl",
                "conv2d_dims.wgsl",
                "matmul_tile32.wgsl",
                "conv2d.wgsl"
            ),
            Kernel::Col2im => {
                wgsl!("activation.wgsl", "conv2d_dims.wgsl", "conv2d_col2im.wgsl")
            }
            Kernel::ConvWeightGradSum | Kernel::ChannelSum => {
                wgsl!("workgroup.wgsl", "rows.wgsl", "conv2d_reduce.wgsl")
            }
            Kernel::PsdGain
            | Kernel::PsdGainGrad
            | Kernel::PsdLipschitz
            | Kernel::PsdShrink
            | Kernel::PsdMomentum
            | Kernel::PsdTerms
            | Kernel::PsdRenorm => wgsl!("step.wgsl", "workgroup.wgsl", "psd.wgsl"),
        }
    }

    /// The entry point's name.
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::ActivationForward => "forward",
            Kernel::ActivationBackward => "backward",
            Kernel::Adam => "adam",
            Kernel::Sgd => "sgd",
            Kernel::AddInto => "add_into",
            Kernel::Directions => "directions",
            Kernel::TangentScale => "tangent_scale",
            Kernel::Curvature => "curvature",
            Kernel::JacobianNorm => "jacobian_norm",
            Kernel::ContractiveUnits => "contractive_units",
            Kernel::ContractiveRows => "contractive_rows",
            Kernel::SparseL1 => "sparse_l1",
            Kernel::SparseKl => "sparse_kl",
            Kernel::Sample => "sample",
            Kernel::SampleGrad => "sample_grad",
            Kernel::SumSquares => "sum_squares",
            Kernel::SumSquaresFinal => "sum_squares_final",
            Kernel::GradAccumulate => "grad_accumulate",
            Kernel::CheckFinite => "check_finite",
            Kernel::LossScale => "loss_scale",
            Kernel::ConvWeightGradSum => "weight_grad_sum",
            Kernel::ChannelSum => "channel_sum",
            Kernel::Col2im => "col2im",
            Kernel::PsdGain => "psd_gain",
            Kernel::PsdGainGrad => "psd_gain_grad",
            Kernel::PsdLipschitz => "psd_lipschitz",
            Kernel::PsdShrink => "psd_shrink",
            Kernel::PsdMomentum => "psd_momentum",
            Kernel::PsdTerms => "psd_terms",
            Kernel::PsdRenorm => "psd_renorm",
            Kernel::RowSum => "row_sum",
            Kernel::Matmul
            | Kernel::MatmulSmall
            | Kernel::MatmulLarge
            | Kernel::MatmulCoop
            | Kernel::ColumnSum
            | Kernel::ReconstructionLoss
            | Kernel::Gather
            | Kernel::Corrupt
            | Kernel::Conv2d
            | Kernel::Conv2dSmall => "main",
        }
    }

    /// The bindings of group 0, in order.
    pub fn slots(self) -> &'static [Slot] {
        match self {
            Kernel::Matmul | Kernel::MatmulSmall | Kernel::MatmulLarge | Kernel::MatmulCoop => {
                &[Read, Read, ReadWrite, Read, Uniform, Read]
            }
            Kernel::ActivationForward | Kernel::ActivationBackward | Kernel::AddInto => {
                &[Read, Read, ReadWrite, Uniform]
            }
            Kernel::ColumnSum => &[Read, ReadWrite, Uniform],
            Kernel::ReconstructionLoss => &[Read, Read, ReadWrite, ReadWrite, Uniform, ReadWrite],
            Kernel::RowSum => &[Read, ReadWrite, Uniform],
            Kernel::Adam | Kernel::Sgd => {
                &[ReadWrite, Read, ReadWrite, ReadWrite, Uniform, Step, Read]
            }
            Kernel::SumSquares | Kernel::SumSquaresFinal => {
                &[Read, ReadWrite, ReadWrite, ReadWrite, Uniform, Step]
            }
            Kernel::Gather => &[Read, Read, ReadWrite, Uniform, Step],
            Kernel::Corrupt => &[Read, ReadWrite, Uniform, Step],
            Kernel::Directions => &[ReadWrite, Uniform, Step],
            Kernel::TangentScale => &[Read, Read, ReadWrite, Uniform],
            Kernel::Curvature => &[Read, Read, Read, ReadWrite, Uniform],
            Kernel::JacobianNorm => &[Read, ReadWrite, ReadWrite, Uniform, ReadWrite],
            Kernel::ContractiveUnits | Kernel::ContractiveRows => &[
                Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Uniform, ReadWrite,
            ],
            Kernel::SparseL1 => &[Read, ReadWrite, ReadWrite, Uniform],
            Kernel::SparseKl => &[Read, Read, ReadWrite, ReadWrite, Uniform],
            Kernel::Sample => &[Read, Read, ReadWrite, ReadWrite, ReadWrite, Uniform, Step],
            Kernel::SampleGrad => &[Read, Read, Read, Read, ReadWrite, ReadWrite, Uniform],
            Kernel::GradAccumulate => &[ReadWrite, ReadWrite, Uniform, Step],
            Kernel::CheckFinite | Kernel::LossScale => &[Read, ReadWrite, Read, ReadWrite, Uniform],
            Kernel::Conv2d | Kernel::Conv2dSmall => &[Read, Read, ReadWrite, Read, Uniform],
            Kernel::ConvWeightGradSum | Kernel::ChannelSum => {
                &[Read, ReadWrite, Uniform, ReadWrite]
            }
            Kernel::Col2im => &[Read, ReadWrite, Read, Uniform],
            Kernel::PsdGain | Kernel::PsdMomentum => &[Read, Read, ReadWrite, Uniform],
            Kernel::PsdGainGrad => &[Read, Read, Read, ReadWrite, ReadWrite, Uniform],
            Kernel::PsdLipschitz => &[Read, ReadWrite, ReadWrite, Uniform],
            Kernel::PsdShrink => &[Read, Read, Read, Read, Read, ReadWrite, Uniform],
            Kernel::PsdTerms => &[Read, Read, ReadWrite, ReadWrite, Uniform],
            Kernel::PsdRenorm => &[ReadWrite, Uniform],
        }
    }
}

/// Specialization constants (WGSL `override`s) of one pipeline, by name.
pub type Constants = Vec<(&'static str, f64)>;

/// A pipeline's identity: its kernel and its constants (values by their bits).
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

#[derive(Default)]
struct Compiled {
    /// Modules by source text: the entry points of one shader family share a module.
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>,
}

/// Compiled modules, layouts and pipelines of one device; each is built the first time it is
/// asked for and reused after. With a [`DiskCache`], the driver's compiled pipelines also
/// outlive the process, so later runs skip shader compilation.
#[derive(Default)]
pub struct KernelCache {
    inner: Mutex<Compiled>,
    disk: Option<DiskCache>,
    /// Specializations compiled that `Kernel::specializations` does not list (a bug: the
    /// translation tests never saw them), for tests.
    unlisted: Mutex<Vec<String>>,
}

/// A wgpu pipeline cache kept in a file in the caller's cache folder
/// ([`GpuOptions::cache_dir`](crate::gpu::GpuOptions::cache_dir)), named after the adapter and
/// driver so another driver never reads it.
pub struct DiskCache {
    cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Pipelines were compiled since the file was last written.
    dirty: AtomicBool,
}

impl DiskCache {
    /// Opens the cache file of `info`'s adapter in `dir` on `device`, which must have been
    /// created with `Features::PIPELINE_CACHE`. `None` when the backend has no such cache.
    pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo, dir: &Path) -> Option<Self> {
        let path = dir.join(wgpu::util::pipeline_cache_key(info)?);
        let data = std::fs::read(&path).ok();
        // SAFETY: wgpu checks the data's header (driver, device, version) and, with
        // `fallback`, starts empty on any mismatch or corruption instead of using it.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("hourglass pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(DiskCache {
            cache,
            path,
            dirty: AtomicBool::new(false),
        })
    }

    /// Writes the cache back when pipelines were compiled since it was read. Failing to write
    /// only costs the next run its compile time, so errors are ignored.
    fn persist(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        if let (Some(data), Some(dir)) = (self.cache.get_data(), self.path.parent()) {
            if std::fs::create_dir_all(dir).is_ok() {
                let _ = crate::io::write_atomic(&self.path, &data);
            }
        }
    }
}

impl KernelCache {
    /// A cache that also keeps compiled pipelines on disk when `disk` is given.
    pub fn with_disk(disk: Option<DiskCache>) -> Self {
        KernelCache {
            inner: Mutex::default(),
            disk,
            unlisted: Mutex::default(),
        }
    }

    /// Specializations compiled that [`Kernel::specializations`] does not list.
    pub fn unlisted(&self) -> Vec<String> {
        self.unlisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Saves newly compiled pipelines to the disk cache, if there is one.
    pub fn persist(&self) {
        if let Some(d) = &self.disk {
            d.persist();
        }
    }

    fn layout_entries(kernel: Kernel) -> Vec<wgpu::BindGroupLayoutEntry> {
        kernel
            .slots()
            .iter()
            .enumerate()
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match slot {
                        Read => wgpu::BufferBindingType::Storage { read_only: true },
                        ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                        Uniform | Step => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: *slot == Step,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect()
    }

    /// The bind group layout of `kernel`.
    pub fn bind_group_layout(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
    ) -> wgpu::BindGroupLayout {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::layouts(&mut c, device, kernel).0.clone()
    }

    fn layouts<'a>(
        c: &'a mut Compiled,
        device: &wgpu::Device,
        kernel: Kernel,
    ) -> &'a (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        c.layouts.entry(kernel).or_insert_with(|| {
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry()),
                entries: &Self::layout_entries(kernel),
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry()),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        })
    }

    /// The pipeline of `kernel` specialized with `constants`.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        constants: &Constants,
    ) -> Arc<wgpu::ComputePipeline> {
        let key: PipelineKey = (
            kernel,
            constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        );
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = c.pipelines.get(&key) {
            return p.clone();
        }
        if !kernel.is_listed(constants) {
            let mut u = self.unlisted.lock().unwrap_or_else(|p| p.into_inner());
            u.push(format!("{kernel:?} {constants:?}"));
        }
        let layout = Self::layouts(&mut c, device, kernel).1.clone();
        let module = c.modules.entry(kernel.source()).or_insert_with(|| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.entry()),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            })
        });
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry()),
                layout: Some(&layout),
                module,
                entry_point: Some(kernel.entry()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: self.disk.as_ref().map(|d| &d.cache),
            }),
        );
        if let Some(d) = &self.disk {
            d.dirty.store(true, Ordering::Relaxed);
        }
        c.pipelines.insert(key, pipeline.clone());
        pipeline
    }
}
