//! Pictures of a run: figures of image-shaped rows (labelled inputs above reconstructions,
//! samples, interpolations, tangents, traversals; one [`Figure`] mechanism for all) and the
//! loss-per-epoch plot, written as PNG. Only built with the
//! `cli` feature, which brings the `png` and `plotters` crates.

mod arrows;
mod figure;
mod grid;
mod plot;
mod scatter;

use std::path::Path;

pub use arrows::{FIELD_PLOT_SIZE, render_field, write_field};
pub use figure::{BACKGROUND, Figure, GAP, Layout, MIN_TILE, PAD, Tile, short_number, upscale};
pub use grid::{image_side, reconstruction_grid, tile_rows};
pub use plot::{
    LOSS_PLOT_SIZE, LossCurves, MEASURES, TERM_PANEL_HEIGHT, loss_plot_size, render_loss_plot,
    write_loss_plot,
};
pub use scatter::{PALETTE, SCATTER_SIZE, render_scatter, write_scatter};

use crate::error::{Error, Result};
use crate::io::write_atomic;

/// An 8-bit image, rows top to bottom, `channels` bytes per pixel (1: grey, 3: RGB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// `width × height × channels` bytes.
    pub pixels: Vec<u8>,
}

impl Image {
    /// The image as PNG bytes.
    pub fn encode_png(&self) -> Result<Vec<u8>> {
        let color = match self.channels {
            1 => png::ColorType::Grayscale,
            3 => png::ColorType::Rgb,
            n => return Err(Error::Config(format!("cannot encode {n} channels as PNG"))),
        };
        let fail = |e: png::EncodingError| Error::Config(format!("encoding a PNG: {e}"));
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&self.pixels).map_err(fail)?;
        writer.finish().map_err(fail)?;
        Ok(out)
    }

    /// Writes the image as a PNG file, atomically.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.encode_png()?)
    }
}
