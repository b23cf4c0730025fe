//! Where training runs: a GPU through wgpu, or the CPU reference.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuOptions, list_adapters_on};

/// How the note of an `Auto` that found no hardware adapter begins (a front end may reword the
/// rest in its own terms).
pub const NO_HARDWARE_ADAPTER: &str = "no hardware GPU adapter found";

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU path.
    #[default]
    Auto,
    /// A GPU adapter (software ones such as lavapipe included); an error if there is none.
    Gpu,
    /// The CPU reference executor.
    Cpu,
}

impl DeviceChoice {
    /// Parses `auto`, `gpu` or `cpu`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => Err(Error::Config(format!(
                "unknown device '{other}' (expected auto, gpu or cpu)"
            ))),
        }
    }
}

/// Where graphs run: the CPU reference executor, or a GPU context (shared: cloning a
/// `Device::Gpu` shares its device, queue and compiled pipelines).
///
/// ```
/// use hourglass::{Device, DeviceChoice};
///
/// // A hardware GPU if there is one, else the CPU (with a note saying so).
/// let (device, note) = Device::open(DeviceChoice::Auto)?;
/// if let Some(note) = note {
///     eprintln!("note: {note}");
/// }
/// println!("training on {}", device.describe());
/// # Ok::<(), hourglass::Error>(())
/// ```
#[derive(Clone)]
pub enum Device {
    /// The CPU reference executor.
    Cpu,
    /// A GPU context, shareable between trainers.
    Gpu(Arc<GpuContext>),
}

impl Device {
    /// Opens the device `choice` names for training. Returns a note for the user when `auto`
    /// had to fall back or chose something they may not expect.
    pub fn open(choice: DeviceChoice) -> Result<(Device, Option<String>)> {
        Device::open_for(choice, "training")
    }

    /// [`Device::open`] for work other than training: `doing` words the note ("encoding",
    /// "evaluating": "no hardware GPU adapter found; encoding on the CPU").
    pub fn open_for(choice: DeviceChoice, doing: &str) -> Result<(Device, Option<String>)> {
        Device::open_with(choice, &GpuOptions::default(), doing)
    }

    /// [`Device::open_for`] with the GPU configured by `options` (backends, adapter, cache
    /// folder, ...). With `Auto` and an explicit [`GpuOptions::adapter`], that adapter is
    /// opened whatever its type.
    pub fn open_with(
        choice: DeviceChoice,
        options: &GpuOptions,
        doing: &str,
    ) -> Result<(Device, Option<String>)> {
        match choice {
            DeviceChoice::Cpu => Ok((Device::Cpu, None)),
            DeviceChoice::Gpu => Ok((Device::Gpu(GpuContext::with_options(options)?), None)),
            DeviceChoice::Auto if options.adapter.is_some() => {
                Ok((Device::Gpu(GpuContext::with_options(options)?), None))
            }
            DeviceChoice::Auto => {
                // A software rasterizer such as lavapipe runs WGSL correctly but far slower
                // than the native CPU path, so `auto` only takes hardware adapters.
                let hardware = list_adapters_on(options.backends)
                    .into_iter()
                    .find(|a| a.is_hardware());
                let with = |index| GpuOptions {
                    adapter: Some(index),
                    ..options.clone()
                };
                match hardware {
                    Some(a) => match GpuContext::with_options(&with(a.index)) {
                        Ok(ctx) => Ok((Device::Gpu(ctx), None)),
                        Err(e) => Ok((
                            Device::Cpu,
                            Some(format!("{e}; {doing} on the CPU instead")),
                        )),
                    },
                    None => Ok((
                        Device::Cpu,
                        Some(format!(
                            "{NO_HARDWARE_ADAPTER}; {doing} on the CPU (DeviceChoice::Gpu uses \
                             a software adapter such as lavapipe if present)"
                        )),
                    )),
                }
            }
        }
    }

    /// A one-line description for logs.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("CPU (reference executor: {})", crate::cpu::describe()),
            Device::Gpu(ctx) => format!(
                "GPU: {} ({}, {})",
                ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type
            ),
        }
    }
}
