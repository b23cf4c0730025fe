//! The command line's GPU configuration: `--backend` and `--adapter` (on every command), and the
//! environment variables the CLI keeps as its own conventions, mapped onto the library's typed
//! [`GpuOptions`]. The library reads none of these; this room is the only place they are read.
//!
//! | source | option |
//! | --- | --- |
//! | `--backend auto\|vulkan\|gl\|metal\|dx12`, else `WGPU_BACKEND` (wgpu's convention) | `backends` |
//! | `--adapter N` (an index `hourglass info --backend B` prints) | `adapter` |
//! | `HOURGLASS_COOPERATIVE_MATRIX=0` | `cooperative_matrix: false` |
//! | `HOURGLASS_MATMUL_TILE=32\|64\|128` | `matmul_tile` |
//! | `HOURGLASS_AUTOTUNE=0\|1` | `autotune: Off \| On` |
//! | `$XDG_CACHE_HOME/hourglass` (when absolute), else `~/.cache/hourglass` | `cache_dir` |
//! | `HOURGLASS_PIPELINE_CACHE=0` | `pipeline_cache: false` |

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use hourglass::gpu::{Autotune, Backend, GpuOptions};
use hourglass::{Error, Result};
use serde::{Deserialize, Serialize};

/// `--backend` and `--adapter`, shared by every command (flattened into `--device`'s group).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuArgs {
    /// The wgpu backend to search for GPU adapters: auto (Vulkan, Metal and DX12), vulkan, gl
    /// (OpenGL / GLES compute through EGL, e.g. Mesa's llvmpipe), metal or dx12. Default:
    /// $WGPU_BACKEND if set, else auto.
    #[arg(long, value_name = "auto|vulkan|gl|metal|dx12")]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backend: Option<String>,
    /// The GPU adapter to use, by its index in `hourglass info` (of the same --backend).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub adapter: Option<usize>,
}

impl GpuArgs {
    /// The library's options from these flags and this process's environment.
    pub fn options(&self) -> Result<GpuOptions> {
        options_from(self, |name| std::env::var_os(name))
    }
}

/// [`GpuArgs::options`] with the environment given as a lookup (tests pass their own).
fn options_from(args: &GpuArgs, var: impl Fn(&str) -> Option<OsString>) -> Result<GpuOptions> {
    let text = |name: &str| var(name).map(|v| v.to_string_lossy().trim().to_string());
    let backends = match (&args.backend, text("WGPU_BACKEND")) {
        (Some(b), _) => Backend::parse(b).map_err(|e| flag_error("--backend", e))?,
        (None, Some(v)) if !v.is_empty() => {
            Backend::parse(&v).map_err(|e| flag_error(&format!("WGPU_BACKEND={v}"), e))?
        }
        _ => Backend::Auto,
    };
    let matmul_tile = match text("HOURGLASS_MATMUL_TILE") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(t) if [32, 64, 128].contains(&t) => Some(t),
            _ => {
                return Err(Error::Config(format!(
                    "HOURGLASS_MATMUL_TILE={v}: the tile is 32, 64 or 128"
                )));
            }
        },
    };
    let autotune = match text("HOURGLASS_AUTOTUNE").as_deref() {
        None => Autotune::Auto,
        Some("0") => Autotune::Off,
        Some("1") => Autotune::On,
        Some(v) => {
            return Err(Error::Config(format!(
                "HOURGLASS_AUTOTUNE={v}: 0 turns tile measurements off, 1 on"
            )));
        }
    };
    let cache_dir = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("hourglass"));
    Ok(GpuOptions {
        backends,
        adapter: args.adapter,
        cooperative_matrix: text("HOURGLASS_COOPERATIVE_MATRIX").as_deref() != Some("0"),
        matmul_tile,
        autotune,
        cache_dir,
        pipeline_cache: text("HOURGLASS_PIPELINE_CACHE").as_deref() != Some("0"),
    })
}

/// A library error about a value, reported with the flag (or variable) that gave it.
pub fn flag_error(flag: &str, e: Error) -> Error {
    match e {
        Error::Config(msg) => Error::Config(format!("{flag}: {msg}")),
        other => other,
    }
}

/// A note of [`hourglass::Device::open_with`] in the command line's terms: the library's
/// `DeviceChoice::Gpu` is `--device gpu` here.
pub fn reword_note(note: &str) -> String {
    note.replace("DeviceChoice::Gpu", "--device gpu")
}

/// Writes the backend and adapter a run used into its resolved flags (for `config.toml`, so
/// the run is repeated and resumed on the same adapter); nothing on the CPU.
pub fn record_device(args: &mut GpuArgs, device: &hourglass::Device) {
    if let hourglass::Device::Gpu(ctx) = device {
        args.backend = Some(ctx.backend().name().to_string());
        args.adapter = Some(ctx.adapter.index);
    }
}

/// The closing comment of `config.toml`: what the run trained on, in words.
pub fn device_comment(device: &hourglass::Device) -> String {
    format!("# Trained on {}.\n", device.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn flags_and_variables_map_onto_the_options() {
        let none = GpuArgs::default();
        let o = options_from(&none, env(&[])).unwrap();
        assert_eq!(o.backends, Backend::Auto);
        assert_eq!(
            o.cache_dir, None,
            "no HOME, no XDG_CACHE_HOME: nowhere to write"
        );
        let o = options_from(
            &none,
            env(&[
                ("WGPU_BACKEND", "gl"),
                ("HOME", "/home/u"),
                ("HOURGLASS_MATMUL_TILE", "32"),
                ("HOURGLASS_AUTOTUNE", "0"),
                ("HOURGLASS_COOPERATIVE_MATRIX", "0"),
                ("HOURGLASS_PIPELINE_CACHE", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(o.backends, Backend::Gl);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/home/u/.cache/hourglass")));
        assert_eq!(o.matmul_tile, Some(32));
        assert_eq!(o.autotune, Autotune::Off);
        assert!(!o.cooperative_matrix && !o.pipeline_cache);
        // The flag wins over the variable; a relative XDG_CACHE_HOME is ignored.
        let flag = GpuArgs {
            backend: Some("vulkan".into()),
            adapter: Some(1),
        };
        let o = options_from(
            &flag,
            env(&[
                ("WGPU_BACKEND", "gl"),
                ("XDG_CACHE_HOME", "rel"),
                ("HOME", "/h"),
            ]),
        )
        .unwrap();
        assert_eq!((o.backends, o.adapter), (Backend::Vulkan, Some(1)));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/h/.cache/hourglass")));
        let o = options_from(&none, env(&[("XDG_CACHE_HOME", "/x")])).unwrap();
        assert_eq!(o.cache_dir, Some(PathBuf::from("/x/hourglass")));
    }

    #[test]
    fn bad_values_name_their_flag_or_variable() {
        let bad = GpuArgs {
            backend: Some("cuda".into()),
            adapter: None,
        };
        let e = options_from(&bad, env(&[])).unwrap_err().to_string();
        assert!(e.contains("--backend: unknown backend 'cuda'"), "{e}");
        let e = options_from(&GpuArgs::default(), env(&[("WGPU_BACKEND", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("WGPU_BACKEND=x"), "{e}");
        for (k, v) in [
            ("HOURGLASS_MATMUL_TILE", "48"),
            ("HOURGLASS_AUTOTUNE", "yes"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(k, v)]));
            let e = options_from(&GpuArgs::default(), env(pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("{k}={v}")), "{e}");
        }
    }
}
