//! Probing the GPU on a machine without a display. Mesa's Vulkan loader runs an implicit
//! device-selection layer (`VK_LAYER_MESA_device_select`) in every process that creates a Vulkan
//! instance; it asks the Wayland and X11 servers which GPU drives the screen, and without a
//! session libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
//! each time an instance is made (two to four times per command) — an "error" that is not one.
//! With no display there is no screen to choose a GPU for, so the CLI turns the layer off for
//! its own process (the layer's documented `NODEVICE_SELECT=1`) before wgpu starts. The library
//! itself reads no environment variables: this is the command line's choice for its process.

use std::ffi::OsString;

/// True when this process has no display to ask (no `WAYLAND_DISPLAY`, no `DISPLAY`) and the
/// user has not configured the layer (`NODEVICE_SELECT`, `MESA_VK_DEVICE_SELECT`).
fn skip_device_select(var: impl Fn(&str) -> Option<OsString>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    !set("WAYLAND_DISPLAY")
        && !set("DISPLAY")
        && var("NODEVICE_SELECT").is_none()
        && var("MESA_VK_DEVICE_SELECT").is_none()
}

/// Turns off Mesa's display probing in this process when there is no display. Called first
/// thing in `main`, while the process has one thread.
pub fn probe_without_display() {
    if skip_device_select(|name| std::env::var_os(name)) {
        // SAFETY: called at the start of `main`, before any other thread exists (nothing else
        // can read or write the environment concurrently).
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_is_skipped_only_without_a_display_or_a_choice_of_the_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert!(skip_device_select(env(&[])));
        assert!(skip_device_select(env(&[("DISPLAY", "")])));
        assert!(!skip_device_select(env(&[("DISPLAY", ":0")])));
        assert!(!skip_device_select(env(&[(
            "WAYLAND_DISPLAY",
            "wayland-0"
        )])));
        assert!(!skip_device_select(env(&[(
            "MESA_VK_DEVICE_SELECT",
            "1002:"
        )])));
        assert!(!skip_device_select(env(&[("NODEVICE_SELECT", "0")])));
    }
}
