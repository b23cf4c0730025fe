//! How an application configures the GPU side: which wgpu backends to search, which adapter to
//! open, whether mixed precision may use cooperative matrices, how the matmul tile is chosen,
//! and where (if anywhere) Hourglass may keep files between runs. The library reads no
//! environment variable; the `hourglass` command line maps its flags (and its environment
//! variables) onto these options.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A wgpu backend to search for adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Vulkan, Metal and DX12 (wgpu's primary backends): what a hardware GPU offers.
    #[default]
    Auto,
    /// Vulkan only (Linux, Windows, Android; Mesa's lavapipe in software).
    Vulkan,
    /// OpenGL 4.5 / OpenGL ES 3.1+ compute through EGL (Mesa's llvmpipe in software). A
    /// second driver stack: naga translates the kernels to GLSL instead of SPIR-V.
    Gl,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
}

impl Backend {
    /// Every backend, in the order the help text lists them.
    pub const ALL: [Backend; 5] = [
        Backend::Auto,
        Backend::Vulkan,
        Backend::Gl,
        Backend::Metal,
        Backend::Dx12,
    ];

    /// Parses `auto`, `vulkan`, `gl`, `metal` or `dx12` (case-insensitive; `gles`, `opengl`
    /// and `d3d12`, wgpu's own spellings, too).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "primary" => Ok(Backend::Auto),
            "vulkan" | "vk" => Ok(Backend::Vulkan),
            "gl" | "gles" | "opengl" => Ok(Backend::Gl),
            "metal" | "mtl" => Ok(Backend::Metal),
            "dx12" | "d3d12" => Ok(Backend::Dx12),
            other => Err(Error::Config(format!(
                "unknown backend '{other}' (expected auto, vulkan, gl, metal or dx12)"
            ))),
        }
    }

    /// The name [`Backend::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Vulkan => "vulkan",
            Backend::Gl => "gl",
            Backend::Metal => "metal",
            Backend::Dx12 => "dx12",
        }
    }

    /// The wgpu backends searched.
    pub fn wgpu(self) -> wgpu::Backends {
        match self {
            Backend::Auto => wgpu::Backends::PRIMARY,
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Gl => wgpu::Backends::GL,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
        }
    }

    /// The backend of an adapter wgpu opened (`Auto` for one this enum has no name for).
    pub fn of(b: wgpu::Backend) -> Self {
        match b {
            wgpu::Backend::Vulkan => Backend::Vulkan,
            wgpu::Backend::Gl => Backend::Gl,
            wgpu::Backend::Metal => Backend::Metal,
            wgpu::Backend::Dx12 => Backend::Dx12,
            _ => Backend::Auto,
        }
    }
}

/// How the tile of each matrix product is chosen (see `gpu::autotune`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Autotune {
    /// Measure on hardware adapters, use the heuristic on software ones (lavapipe, llvmpipe).
    #[default]
    Auto,
    /// Measure on every adapter.
    On,
    /// Never measure: the tile of [`MatmulShape::heuristic`](crate::gpu::autotune::MatmulShape::heuristic)
    /// (128×128 on large products, 32×32 on those too small to fill a big GPU, else 64×64).
    Off,
}

/// Everything [`GpuContext::with_options`](crate::gpu::GpuContext::with_options) needs to know.
/// `GpuOptions::default()` searches Vulkan, Metal and DX12, opens the preferred adapter, uses
/// cooperative matrices where they exist, tunes the matmul tile on hardware adapters, and
/// writes **no file anywhere**.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// The wgpu backends searched for adapters.
    pub backends: Backend,
    /// An index into [`list_adapters`](crate::gpu::list_adapters) (of the same `backend`);
    /// `None` opens the preferred one (hardware first, software last).
    pub adapter: Option<usize>,
    /// Let mixed precision use f16 cooperative matrices (tensor cores) where the adapter
    /// offers them; `false` measures or trains without them.
    pub cooperative_matrix: bool,
    /// A tile (32, 64 or 128) every matrix product takes, instead of choosing per shape.
    pub matmul_tile: Option<usize>,
    /// Whether a new product shape is timed to choose its tile.
    pub autotune: Autotune,
    /// A folder Hourglass may keep files in between runs: the driver's compiled pipelines
    /// (where the backend has a pipeline cache) and the measured matmul tiles, each named
    /// after the adapter and driver. `None`: nothing is written and nothing read.
    pub cache_dir: Option<PathBuf>,
    /// Keep the driver's compiled pipelines in `cache_dir` (when it is given and the backend
    /// has a pipeline cache; only Vulkan does). `false` keeps only the tiles there.
    pub pipeline_cache: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: Backend::Auto,
            adapter: None,
            cooperative_matrix: true,
            matmul_tile: None,
            autotune: Autotune::Auto,
            cache_dir: None,
            pipeline_cache: true,
        }
    }
}

impl GpuOptions {
    /// Checks the options a caller filled in: a tile must be 32, 64 or 128.
    pub fn validate(&self) -> Result<()> {
        match self.matmul_tile {
            Some(t) if ![32, 64, 128].contains(&t) => Err(Error::Config(format!(
                "matmul tile {t} does not exist (expected 32, 64 or 128)"
            ))),
            _ => Ok(()),
        }
    }

    /// These options with `backends`.
    pub fn with_backends(mut self, backends: Backend) -> Self {
        self.backends = backends;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_by_their_names_and_bad_ones_say_what_exists() {
        for b in Backend::ALL {
            assert_eq!(Backend::parse(b.name()).unwrap(), b);
        }
        assert_eq!(Backend::parse("GLES").unwrap(), Backend::Gl);
        let e = Backend::parse("cuda").unwrap_err().to_string();
        assert!(e.contains("'cuda'") && e.contains("vulkan, gl"), "{e}");
        assert!(!e.contains("--"), "library errors name no flag: {e}");
    }

    #[test]
    fn the_default_writes_nothing_and_bad_tiles_are_refused() {
        let o = GpuOptions::default();
        assert_eq!(o.cache_dir, None);
        assert!(o.validate().is_ok());
        let bad = GpuOptions {
            matmul_tile: Some(48),
            ..o
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("48") && !e.contains("--"), "{e}");
    }
}
