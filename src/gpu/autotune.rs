//! The tile of each matrix product, chosen per device by measurement: the first time a device
//! meets a product shape, it times the 32×32 and 64×64 kernels (and the 128×128 one when the
//! product has at least one such tile each way) and remembers the fastest, in memory and in a
//! file beside the pipeline cache, so later runs start without measuring.
//!
//! [`GpuOptions::matmul_tile`] forces a tile; [`GpuOptions::autotune`] `Off` turns measuring
//! off (a shape then takes the tile [`MatmulShape::heuristic`] names: 128×128 when that still
//! gives [`FILL_WORKGROUPS`] workgroups, 64×64 when that gives [`MIN_WORKGROUPS`], else
//! 32×32), and `On` turns it on for software adapters, which are not tuned by default. The
//! file is kept only when [`GpuOptions::cache_dir`] names a folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use wgpu::util::DeviceExt;

use crate::gpu::executor::flag;
use crate::gpu::kernels::{Constants, Kernel, KernelCache};
use crate::gpu::options::{Autotune, GpuOptions};

/// Workgroups that fill a large GPU: about two per SM of an NVIDIA H200 (132 SMs). A product
/// takes 128×128 tiles only when it has at least this many of them.
pub const FILL_WORKGROUPS: usize = 256;

/// Fewer 64×64 workgroups than this leave most SMs of a large GPU (132 on an H200) idle: such a
/// product takes the 32×32 kernel (64 threads a workgroup, four times as many workgroups for
/// the same threads in all), which spreads it over the device at the price of more reads per
/// FLOP. mnist_ae's 256×512 products at batch 256 have 32 workgroups of 64×64 and 128 of 32×32.
pub const MIN_WORKGROUPS: usize = 128;

/// What decides a product's best tile: its sizes, transposes and precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulShape {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// The inner size.
    pub k: usize,
    /// The left operand is read transposed.
    pub trans_a: bool,
    /// The right operand is read transposed.
    pub trans_b: bool,
    /// Mixed precision (operands rounded to f16).
    pub half: bool,
}

impl MatmulShape {
    /// The tiles worth timing: 128×128 only with at least one full tile each way.
    fn candidates(&self) -> &'static [usize] {
        if self.m >= 128 && self.n >= 128 {
            &[32, 64, 128]
        } else {
            &[32, 64]
        }
    }

    /// The choice without measuring: 128×128 tiles once there are enough of them to fill a
    /// large GPU ([`FILL_WORKGROUPS`]), else 64×64 while those still give [`MIN_WORKGROUPS`],
    /// else 32×32, whose more numerous workgroups keep small products (mnist_ae at batch 256,
    /// any product at batch 1) spread over the device.
    pub fn heuristic(&self) -> usize {
        let tiles = |t: usize| self.m.div_ceil(t) * self.n.div_ceil(t);
        if tiles(128) >= FILL_WORKGROUPS {
            128
        } else if tiles(64) >= MIN_WORKGROUPS {
            64
        } else {
            32
        }
    }

    fn line(&self, tile: usize) -> String {
        format!(
            "{} {} {} {} {} {} {tile}",
            self.m, self.n, self.k, self.trans_a as u8, self.trans_b as u8, self.half as u8
        )
    }

    fn parse(line: &str) -> Option<(Self, usize)> {
        let v: Vec<usize> = line
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        let [m, n, k, ta, tb, half, tile] = v[..] else {
            return None;
        };
        let shape = MatmulShape {
            m,
            n,
            k,
            trans_a: ta == 1,
            trans_b: tb == 1,
            half: half == 1,
        };
        shape.candidates().contains(&tile).then_some((shape, tile))
    }
}

/// The tiles chosen so far on one device, and where they are kept.
pub(crate) struct TileTable {
    choices: HashMap<MatmulShape, usize>,
    /// The file, when there is a cache folder.
    path: Option<PathBuf>,
    /// Measure unknown shapes (else use the heuristic).
    measure: bool,
    /// A tile every product takes ([`GpuOptions::matmul_tile`]).
    forced: Option<usize>,
    /// Shapes measured by this process, for tests and the bench.
    pub(crate) measured: usize,
}

impl TileTable {
    /// The table of the adapter `info` describes, read from its file in
    /// [`GpuOptions::cache_dir`] if there is one.
    pub(crate) fn open(info: &wgpu::AdapterInfo, options: &GpuOptions) -> Self {
        let forced = options.matmul_tile.filter(|t| [32, 64, 128].contains(t));
        let measure = match options.autotune {
            Autotune::Off => false,
            Autotune::On => true,
            Autotune::Auto => info.device_type != wgpu::DeviceType::Cpu,
        };
        let path = options.cache_dir.as_ref().map(|d| d.join(file_name(info)));
        let choices = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| text.lines().filter_map(MatmulShape::parse).collect())
            .unwrap_or_default();
        TileTable {
            choices,
            path,
            measure,
            forced,
            measured: 0,
        }
    }

    /// The tile of `shape`, measured now on `device` if it is new and worth measuring.
    pub(crate) fn tile(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &KernelCache,
        shape: MatmulShape,
    ) -> usize {
        if let Some(t) = self.forced {
            return t;
        }
        if let Some(&t) = self.choices.get(&shape) {
            return t;
        }
        if !self.measure {
            return shape.heuristic();
        }
        let mut timed = Vec::new();
        for &tile in shape.candidates() {
            match time_product(device, queue, kernels, shape, tile) {
                Some(t) => timed.push((t, tile)),
                None => return shape.heuristic(),
            }
        }
        let tile = timed
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(shape.heuristic(), |&(_, tile)| tile);
        self.choices.insert(shape, tile);
        self.measured += 1;
        self.persist();
        tile
    }

    /// Writes the table back; failing to only costs the next run its measurements.
    fn persist(&self) {
        let Some(path) = &self.path else { return };
        let mut lines: Vec<String> = self.choices.iter().map(|(s, t)| s.line(*t)).collect();
        lines.sort();
        let text = format!(
            "# m n k trans_a trans_b half tile: the faster matmul tile of each product shape\n{}\n",
            lines.join("\n")
        );
        if let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = crate::io::write_atomic(path, text.as_bytes());
        }
    }
}

/// `<adapter>-<driver>.tiles`, with anything but letters, digits, `.` and `-` made `_`.
fn file_name(info: &wgpu::AdapterInfo) -> String {
    let raw = format!(
        "{}-{:?}-{}-{}",
        info.name, info.backend, info.driver, info.driver_info
    );
    let safe: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.tiles")
}

/// Seconds per product of `shape` with `tile`-sized tiles: the best of three timed
/// submissions of enough back-to-back products to take a few milliseconds, after one that
/// compiles and warms up. `None` if the device reported an error.
fn time_product(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    kernels: &KernelCache,
    s: MatmulShape,
    tile: usize,
) -> Option<f64> {
    let kernel = match tile {
        128 => Kernel::MatmulLarge,
        32 => Kernel::MatmulSmall,
        _ => Kernel::Matmul,
    };
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let storage = |label, len: usize| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len as u64 * 4).max(16),
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (a, b, c) = (
        storage("autotune a", s.m * s.k),
        storage("autotune b", s.k * s.n),
        storage("autotune c", s.m * s.n),
    );
    let aux = storage("autotune aux", 1);
    let scale = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("autotune loss scale"),
        contents: bytemuck::cast_slice(&[1.0f32; 4]),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let (lda, ldb) = (
        if s.trans_a { s.m } else { s.k },
        if s.trans_b { s.k } else { s.n },
    );
    let dims: [u32; 12] = [
        s.m as u32, s.n as u32, s.k as u32, 0, 0, 0, 0, lda as u32, ldb as u32, 0, 0, 0,
    ];
    let dims = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("autotune dims"),
        contents: bytemuck::cast_slice(&dims),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let constants: Constants = vec![
        ("TRANS_A", flag(s.trans_a)),
        ("TRANS_B", flag(s.trans_b)),
        ("EPILOGUE", 0.0),
        ("ACT", 0.0),
        ("HALF", flag(s.half)),
        ("SCALE_A", 0.0),
        ("SCALE_B", 0.0),
    ];
    let pipeline = kernels.pipeline(device, kernel, &constants);
    let layout = kernels.bind_group_layout(device, kernel);
    let entries: Vec<wgpu::BindGroupEntry> = [&a, &b, &c, &aux, &dims, &scale]
        .iter()
        .enumerate()
        .map(|(i, buf)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: buf.as_entire_binding(),
        })
        .collect();
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("autotune"),
        layout: &layout,
        entries: &entries,
    });
    let groups = [s.n.div_ceil(tile) as u32, s.m.div_ceil(tile) as u32];
    let run = |reps: usize| -> Option<f64> {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            for _ in 0..reps {
                pass.dispatch_workgroups(groups[0], groups[1], 1);
            }
        }
        let start = Instant::now();
        queue.submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely()).ok()?;
        Some(start.elapsed().as_secs_f64() / reps as f64)
    };
    let once = run(1);
    let best = once.and_then(|t| {
        let reps = ((0.005 / t.max(1e-7)) as usize).clamp(1, 64);
        (0..3).filter_map(|_| run(reps)).reduce(f64::min)
    });
    let failed =
        pollster::block_on(oom.pop()).is_some() | pollster::block_on(scope.pop()).is_some();
    if failed { None } else { best }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(m: usize, n: usize) -> MatmulShape {
        MatmulShape {
            m,
            n,
            k: 64,
            trans_a: false,
            trans_b: false,
            half: false,
        }
    }

    #[test]
    fn the_heuristic_steps_down_to_32_tiles_when_64_tiles_underfill() {
        // 2048² has 256 tiles of 128: the large kernel.
        assert_eq!(shape(2048, 2048).heuristic(), 128);
        // 1024 × 512: 32 tiles of 128 but 128 of 64.
        assert_eq!(shape(1024, 512).heuristic(), 64);
        // mnist_ae's 256 × 512 at batch 256: 32 tiles of 64, 128 of 32.
        assert_eq!(shape(256, 512).heuristic(), 32);
        assert_eq!(shape(512, 256).heuristic(), 32);
        // Batch 1 and a product just under the threshold.
        assert_eq!(shape(1, 784).heuristic(), 32);
        assert_eq!(shape(64 * 8, 64 * 16 - 64).heuristic(), 32);
        assert_eq!(shape(64 * 8, 64 * 16).heuristic(), 64);
        // Every choice is one the table may hold (and so one the executor compiles).
        for (m, n) in [(1, 1), (7, 33), (257, 300), (4096, 4096)] {
            let s = shape(m, n);
            assert!([32, 64, 128].contains(&s.heuristic()), "{s:?}");
        }
    }
}
