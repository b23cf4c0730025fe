//! Tile grids: rows whose width is a square (784 = 28²) drawn as grey images side by side.

use super::Image;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Pixels of background between tiles and around the grid.
pub const GAP: usize = 2;

/// The grey of the background between tiles, apart from both black and white pixels.
const BACKGROUND: u8 = 128;

/// The side of the square grey image a row of `features` values is (784 → 28), if it is one:
/// a perfect square of at least 8×8.
pub fn image_side(features: usize) -> Option<usize> {
    let side = (features as f64).sqrt().round() as usize;
    (side >= 8 && side * side == features).then_some(side)
}

/// `tiles` (each `side²` values, row-major) laid out `columns` to a row, separated and framed
/// by [`GAP`] pixels of grey: `columns·side + (columns+1)·GAP` wide and
/// `rows·side + (rows+1)·GAP` high for `rows = ⌈tiles / columns⌉`. Values clamp to [0, 1]
/// and map to grey 0..255 (NaN to 0).
pub fn tile_grid(tiles: &[&[f32]], side: usize, columns: usize) -> Image {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let width = columns * side + (columns + 1) * GAP;
    let height = rows * side + (rows + 1) * GAP;
    let mut pixels = vec![BACKGROUND; width * height];
    for (k, tile) in tiles.iter().enumerate() {
        let (top, left) = (
            GAP + (k / columns) * (side + GAP),
            GAP + (k % columns) * (side + GAP),
        );
        for (y, line) in tile.chunks(side).take(side).enumerate() {
            let start = (top + y) * width + left;
            for (dst, &v) in pixels[start..start + side].iter_mut().zip(line) {
                *dst = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Image {
        width: width as u32,
        height: height as u32,
        channels: 1,
        pixels,
    }
}

/// The first `count` rows of `originals` and `reconstructions` as tile rows `columns` wide: a
/// row of originals above the row of their reconstructions, repeated (16 rows of 28×28 in 16
/// columns make a 2×16 grid of 482×62 pixels).
pub fn reconstruction_grid(
    originals: &Dataset,
    reconstructions: &Dataset,
    count: usize,
    columns: usize,
) -> Result<Image> {
    let side = image_side(originals.cols).ok_or_else(|| {
        Error::Config(format!(
            "{} features are not a square image (e.g. 784 = 28×28)",
            originals.cols
        ))
    })?;
    if reconstructions.cols != originals.cols || reconstructions.rows < originals.rows {
        return Err(Error::Config(
            "the reconstructions do not match the originals' shape".into(),
        ));
    }
    let count = count.min(originals.rows);
    let columns = columns.clamp(1, count.max(1));
    let mut tiles: Vec<&[f32]> = Vec::with_capacity(2 * count.next_multiple_of(columns));
    let blank = vec![0.0; originals.cols];
    for start in (0..count).step_by(columns) {
        for source in [originals, reconstructions] {
            for i in start..start + columns {
                tiles.push(if i < count { source.row(i) } else { &blank });
            }
        }
    }
    Ok(tile_grid(&tiles, side, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_images_only() {
        assert_eq!(image_side(784), Some(28));
        assert_eq!(image_side(64), Some(8));
        assert_eq!(image_side(785), None);
        assert_eq!(image_side(16), None, "4×4 is too small to be a picture");
        assert_eq!(image_side(0), None);
    }

    #[test]
    fn tiles_land_in_place_with_clamped_grey() {
        let a = [0.0, 1.0, 0.5, 2.0].repeat(16); // 8×8, row-major
        let b = [-1.0f32; 64];
        let img = tile_grid(&[&a, &b, &a], 8, 2);
        // 2 columns and 2 rows of 8×8 tiles with 2-pixel gaps.
        assert_eq!((img.width, img.height), (2 * 8 + 3 * 2, 2 * 8 + 3 * 2));
        let w = img.width as usize;
        let at = |x: usize, y: usize| img.pixels[y * w + x];
        assert_eq!(at(0, 0), BACKGROUND);
        assert_eq!([at(2, 2), at(3, 2), at(4, 2), at(5, 2)], [0, 255, 128, 255]);
        assert_eq!(at(12, 2), 0, "second tile clamps −1 to black");
        assert_eq!(at(2, 12), 0, "third tile starts the second row");
        assert_eq!(at(12, 12), BACKGROUND, "an empty slot stays background");
    }

    #[test]
    fn reconstruction_grid_pairs_rows() {
        let x = Dataset::new(3, 64, vec![1.0; 192]).unwrap();
        let y = Dataset::new(3, 64, vec![0.0; 192]).unwrap();
        let img = reconstruction_grid(&x, &y, 16, 16).unwrap();
        assert_eq!((img.width, img.height), (3 * 8 + 4 * 2, 2 * 8 + 3 * 2));
        let w = img.width as usize;
        assert_eq!(img.pixels[2 * w + 2], 255, "originals on top");
        assert_eq!(img.pixels[12 * w + 2], 0, "reconstructions below");
        let odd = Dataset::new(1, 30, vec![0.0; 30]).unwrap();
        let e = reconstruction_grid(&odd, &odd, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a square image"), "{e}");
    }
}
