//! Figures: every grid picture hourglass draws (reconstructions, samples, interpolations,
//! tangents, latent traversals) is one [`Figure`] — an optional title, rows of square grey tiles
//! with an optional label on the left, and an optional caption under each tile. Small images
//! are scaled up by a whole factor so every tile is at least [`MIN_TILE`] pixels across, and
//! text is drawn in the compiled-in DejaVu Sans (see [`super::scatter`]).
//!
//! Layout (all in pixels): a [`PAD`] margin; the title band; then the rows, each `tile` high
//! plus a caption band when any tile has a caption, [`GAP`] apart; the label column left of the
//! tiles is as wide as the widest label plus [`PAD`]. A column is as wide as its tile or its
//! widest caption.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Image;
use super::scatter::{FAMILY, register_fonts};
use crate::error::{Error, Result};

/// Pixels between tiles, and between rows.
pub const GAP: usize = 4;

/// Pixels of margin around the figure and after the label column.
pub const PAD: usize = 6;

/// Tiles smaller than this are scaled up by the smallest whole factor that reaches it.
pub const MIN_TILE: usize = 56;

/// The grey behind tiles and text: apart from both black and white pixels.
pub const BACKGROUND: u8 = 200;

/// The largest figure drawn, in pixels (a 16384 × 16384 grey image is 256 MiB).
const MAX_PIXELS: usize = 1 << 28;

const TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 14.0;
const CAPTION_SIZE: f64 = 11.0;

/// The whole factor a `side`-pixel image is scaled up by: `⌈MIN_TILE / side⌉`, at least 1.
pub fn upscale(side: usize) -> usize {
    MIN_TILE.div_ceil(side.max(1)).max(1)
}

/// One tile: `side²` values in [0, 1] (clamped; NaN is black), row-major, and its caption.
#[derive(Clone, Debug)]
pub struct Tile<'a> {
    /// The image's values.
    pub values: &'a [f32],
    /// Text under the tile.
    pub caption: Option<String>,
}

impl<'a> From<&'a [f32]> for Tile<'a> {
    fn from(values: &'a [f32]) -> Self {
        Tile {
            values,
            caption: None,
        }
    }
}

/// A row of tiles with an optional label on its left.
#[derive(Clone, Debug)]
struct Row<'a> {
    label: Option<String>,
    tiles: Vec<Tile<'a>>,
}

/// A titled grid of labelled rows of captioned tiles; see the module docs for the layout.
#[derive(Clone, Debug)]
pub struct Figure<'a> {
    side: usize,
    title: Option<String>,
    rows: Vec<Row<'a>>,
}

/// Where a rendered figure put its parts, in pixels of the output image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// The side of a drawn tile (the image side times [`upscale`]).
    pub tile: usize,
    /// Horizontal distance between the left edges of neighbouring tiles.
    pub column_pitch: usize,
    /// Vertical distance between the top edges of neighbouring rows.
    pub row_pitch: usize,
    /// The top-left corner of the first row's first tile.
    pub origin: (usize, usize),
    /// Width of the label column (0 without labels).
    pub label_width: usize,
}

impl Layout {
    /// The top-left pixel of tile `column` of row `row`.
    pub fn tile_at(&self, row: usize, column: usize) -> (usize, usize) {
        (
            self.origin.0 + column * self.column_pitch,
            self.origin.1 + row * self.row_pitch,
        )
    }
}

fn text_size(text: &str, size: f64) -> Result<(usize, usize)> {
    let (w, h) = (FAMILY, size)
        .into_font()
        .box_size(text)
        .map_err(|e| Error::Config(format!("measuring the text '{text}' of a figure: {e:?}")))?;
    Ok((w as usize, h as usize))
}

fn too_big(what: &str) -> Error {
    Error::Config(format!(
        "the figure would be too large to draw ({what}); draw fewer tiles"
    ))
}

impl<'a> Figure<'a> {
    /// An empty figure of `side × side` images.
    pub fn new(side: usize) -> Self {
        Figure {
            side,
            title: None,
            rows: Vec::new(),
        }
    }

    /// Sets the title drawn above the grid.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Appends a row of `tiles`, labelled `label` on the left.
    pub fn row<T: Into<Tile<'a>>>(
        &mut self,
        label: Option<String>,
        tiles: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        self.rows.push(Row {
            label,
            tiles: tiles.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Number of rows so far.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Where [`Figure::render`] puts everything.
    pub fn layout(&self) -> Result<Layout> {
        register_fonts()?;
        let tile = self
            .side
            .checked_mul(upscale(self.side))
            .ok_or_else(|| too_big("tile side"))?;
        let mut caption_width = 0;
        let mut caption_height = 0;
        let mut label_width = 0;
        for row in &self.rows {
            if let Some(label) = &row.label {
                label_width = label_width.max(text_size(label, LABEL_SIZE)?.0 + PAD);
            }
            for caption in row.tiles.iter().filter_map(|t| t.caption.as_deref()) {
                let (w, h) = text_size(caption, CAPTION_SIZE)?;
                caption_width = caption_width.max(w + 4);
                caption_height = caption_height.max(h + 4);
            }
        }
        let title_height = match &self.title {
            Some(t) => text_size(t, TITLE_SIZE)?.1 + PAD,
            None => 0,
        };
        let column = tile.max(caption_width);
        let columns = self.rows.iter().map(|r| r.tiles.len()).max().unwrap_or(0);
        let rows = self.rows.len();
        let span = |n: usize, each: usize| -> Option<usize> {
            n.checked_mul(each)?
                .checked_add(n.saturating_sub(1).checked_mul(GAP)?)
        };
        let grid_w = span(columns, column).ok_or_else(|| too_big("width"))?;
        let grid_h = span(rows, tile + caption_height).ok_or_else(|| too_big("height"))?;
        let title_w = match &self.title {
            Some(t) => text_size(t, TITLE_SIZE)?.0,
            None => 0,
        };
        let width = (label_width + grid_w).max(title_w) + 2 * PAD;
        let height = title_height + grid_h + 2 * PAD;
        if width.checked_mul(height).is_none_or(|n| n > MAX_PIXELS) {
            return Err(too_big(&format!("{width}×{height} pixels")));
        }
        Ok(Layout {
            width,
            height,
            tile,
            column_pitch: column + GAP,
            row_pitch: tile + caption_height + GAP,
            origin: (PAD + label_width + (column - tile) / 2, PAD + title_height),
            label_width,
        })
    }

    /// Draws the figure: grey pixels, one byte each.
    pub fn render(&self) -> Result<Image> {
        let layout = self.layout()?;
        let (width, height) = (layout.width, layout.height);
        let mut rgb = vec![BACKGROUND; width * height * 3];
        let scale = upscale(self.side);
        for (r, row) in self.rows.iter().enumerate() {
            for (c, tile) in row.tiles.iter().enumerate() {
                let (left, top) = layout.tile_at(r, c);
                for y in 0..layout.tile {
                    let line = (top + y) * width;
                    for x in 0..layout.tile {
                        let v = tile
                            .values
                            .get((y / scale) * self.side + x / scale)
                            .copied()
                            .unwrap_or(0.0);
                        let grey = if v.is_nan() {
                            0
                        } else {
                            (v.clamp(0.0, 1.0) * 255.0).round() as u8
                        };
                        let at = 3 * (line + left + x);
                        rgb[at..at + 3].fill(grey);
                    }
                }
            }
        }
        self.draw_text(&layout, &mut rgb)?;
        Ok(Image {
            width: width as u32,
            height: height as u32,
            channels: 1,
            // Everything drawn is grey (black text on grey), so one channel keeps it all.
            pixels: rgb.chunks_exact(3).map(|p| p[0]).collect(),
        })
    }

    fn draw_text(&self, layout: &Layout, rgb: &mut [u8]) -> Result<()> {
        let fail = |e: String| Error::Config(format!("drawing a figure's text: {e}"));
        let root = BitMapBackend::with_buffer(rgb, (layout.width as u32, layout.height as u32))
            .into_drawing_area();
        let style = |size: f64, h: HPos, v: VPos| {
            (FAMILY, size).into_font().color(&BLACK).pos(Pos::new(h, v))
        };
        if let Some(title) = &self.title {
            root.draw_text(
                title,
                &style(TITLE_SIZE, HPos::Center, VPos::Top),
                ((layout.width / 2) as i32, PAD as i32),
            )
            .map_err(|e| fail(e.to_string()))?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let (_, top) = layout.tile_at(r, 0);
            if let Some(label) = &row.label {
                root.draw_text(
                    label,
                    &style(LABEL_SIZE, HPos::Left, VPos::Center),
                    (PAD as i32, (top + layout.tile / 2) as i32),
                )
                .map_err(|e| fail(e.to_string()))?;
            }
            for (c, tile) in row.tiles.iter().enumerate() {
                let Some(caption) = &tile.caption else {
                    continue;
                };
                let (left, top) = layout.tile_at(r, c);
                root.draw_text(
                    caption,
                    &style(CAPTION_SIZE, HPos::Center, VPos::Top),
                    (
                        (left + layout.tile / 2) as i32,
                        (top + layout.tile + 2) as i32,
                    ),
                )
                .map_err(|e| fail(e.to_string()))?;
            }
        }
        root.present().map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}

/// `v` with three significant digits, short enough for a caption: `12.3`, `0.0456`, `1.2e-5`.
pub fn short_number(v: f32) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tiles_scale_up_to_at_least_min_tile() {
        assert_eq!(upscale(8), 7);
        assert_eq!(upscale(28), 2);
        assert_eq!(upscale(64), 1);
        for side in [8, 9, 20, 28, 55, 56, 100] {
            assert!(side * upscale(side) >= MIN_TILE, "{side}");
            assert!(side * (upscale(side) - 1) < MIN_TILE || upscale(side) == 1);
        }
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(12.345), "12.3");
        assert_eq!(short_number(0.045_67), "0.0457");
        assert_eq!(short_number(-3.0), "-3.00");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(1.5e-5), "1.5e-5");
    }

    #[test]
    fn tiles_are_scaled_and_labels_drawn_left_of_them() {
        let white = [1.0f32; 64];
        let black = [0.0f32; 64];
        let mut figure = Figure::new(8);
        figure.row(Some("input".into()), [&white[..], &white[..]]);
        figure.row(Some("reconstruction".into()), [&black[..], &black[..]]);
        let layout = figure.layout().unwrap();
        let img = figure.render().unwrap();
        assert_eq!(
            (img.width as usize, img.height as usize),
            (layout.width, layout.height)
        );
        assert_eq!(layout.tile, 56);
        assert!(layout.label_width > 40, "room for 'reconstruction'");
        let at = |(x, y): (usize, usize)| img.pixels[y * layout.width + x];
        let (x, y) = layout.tile_at(0, 1);
        assert_eq!(at((x, y)), 255);
        assert_eq!(at((x + 55, y + 55)), 255, "the whole scaled tile");
        assert_eq!(at((x + 56, y)), BACKGROUND, "and no more");
        assert_eq!(at(layout.tile_at(1, 0)), 0);
        // Dark text pixels in the label column of each row.
        for row in 0..2 {
            let (_, top) = layout.tile_at(row, 0);
            let dark = (top..top + layout.tile)
                .flat_map(|y| (PAD..PAD + layout.label_width).map(move |x| (x, y)))
                .filter(|&p| at(p) < 100)
                .count();
            assert!(dark > 20, "row {row}: {dark} text pixels");
        }
    }

    #[test]
    fn captions_widen_columns_and_add_a_band() {
        let tile = [0.5f32; 64];
        let mut plain = Figure::new(8);
        plain.row(None, [&tile[..]; 3]);
        let mut captioned = Figure::new(8);
        captioned.row(
            None,
            (0..3).map(|k| Tile {
                values: &tile,
                caption: Some(format!("σ {}", short_number(1000.0 / (k + 1) as f32))),
            }),
        );
        let (p, c) = (plain.layout().unwrap(), captioned.layout().unwrap());
        assert!(c.height > p.height, "a caption band");
        assert_eq!(p.label_width, 0);
        let img = captioned.render().unwrap();
        let (x, y) = c.tile_at(0, 0);
        let band = (y + c.tile..y + c.row_pitch - GAP)
            .flat_map(|yy| (x..x + c.tile).map(move |xx| (xx, yy)))
            .filter(|&(xx, yy)| img.pixels[yy * c.width + xx] < 100)
            .count();
        assert!(band > 10, "caption pixels under the tile: {band}");
    }

    #[test]
    fn a_title_makes_room_above() {
        let tile = [0.5f32; 64];
        let mut f = Figure::new(8);
        f.row(None, [&tile[..]]);
        let untitled = f.layout().unwrap();
        let titled = f
            .clone()
            .title("samples z ~ N(0, I), seed 0")
            .layout()
            .unwrap();
        assert!(titled.origin.1 > untitled.origin.1);
        assert!(
            titled.width > untitled.width,
            "the title is wider than one tile"
        );
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let tile = [0.5f32; 64];
        let mut f = Figure::new(8);
        f.row(None, std::iter::repeat_n(&tile[..], 1 << 20));
        f.row(None, [&tile[..]]);
        let e = f.layout().unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }
}
