//! The reconstruction figure: rows whose width is a square (784 = 28²) drawn as grey images,
//! a labelled row of inputs above the row of their reconstructions (and, for a denoising model,
//! the corrupted inputs between them), repeated for every `columns` examples.

use super::Image;
use super::figure::{Figure, Tile};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The side of the square grey image a row of `features` values is (784 → 28), if it is one:
/// a perfect square of at least 8×8.
pub fn image_side(features: usize) -> Option<usize> {
    let side = (features as f64).sqrt().round() as usize;
    (side >= 8 && side * side == features).then_some(side)
}

/// The side of the square image of `features` values, or an error saying they are not one.
fn side_of(features: usize) -> Result<usize> {
    image_side(features).ok_or_else(|| {
        Error::Config(format!(
            "{features} features are not a square image (e.g. 784 = 28×28)"
        ))
    })
}

/// `tiles` of `features` values each, `columns` to an unlabelled row: the figure of samples
/// and interpolations.
pub fn tile_rows<'a>(
    tiles: impl IntoIterator<Item = Tile<'a>>,
    features: usize,
    columns: usize,
) -> Result<Figure<'a>> {
    let mut figure = Figure::new(side_of(features)?);
    let tiles: Vec<Tile<'a>> = tiles.into_iter().collect();
    for row in tiles.chunks(columns.max(1)) {
        figure.row(None, row.iter().cloned());
    }
    Ok(figure)
}

/// The first `count` rows of `originals` and `reconstructions`, `columns` to a row: a row
/// labelled "input" above the row labelled "reconstruction", with the row labelled "corrupted"
/// between them when `corrupted` (the inputs the model saw) is given; repeated for every
/// `columns` examples.
pub fn reconstruction_grid(
    originals: &Dataset,
    corrupted: Option<&Dataset>,
    reconstructions: &Dataset,
    count: usize,
    columns: usize,
) -> Result<Image> {
    let side = side_of(originals.cols)?;
    let count = count.min(originals.rows);
    let shapes_match = |d: &Dataset| d.cols == originals.cols && d.rows >= count;
    if !shapes_match(reconstructions) || !corrupted.is_none_or(shapes_match) {
        return Err(Error::Config(
            "the reconstructions do not match the originals' shape".into(),
        ));
    }
    let columns = columns.clamp(1, count.max(1));
    let mut figure = Figure::new(side);
    let sources = [
        ("input", Some(originals)),
        ("corrupted", corrupted),
        ("reconstruction", Some(reconstructions)),
    ];
    for start in (0..count).step_by(columns) {
        for (label, source) in sources {
            if let Some(source) = source {
                let end = (start + columns).min(count);
                figure.row(Some(label.into()), (start..end).map(|i| source.row(i)));
            }
        }
    }
    figure.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::figure::BACKGROUND;

    #[test]
    fn square_images_only() {
        assert_eq!(image_side(784), Some(28));
        assert_eq!(image_side(64), Some(8));
        assert_eq!(image_side(785), None);
        assert_eq!(image_side(16), None, "4×4 is too small to be a picture");
        assert_eq!(image_side(0), None);
    }

    #[test]
    fn reconstruction_grid_stacks_labelled_rows() {
        let x = Dataset::new(3, 64, vec![1.0; 192]).unwrap();
        let noisy = Dataset::new(3, 64, vec![0.5; 192]).unwrap();
        let y = Dataset::new(3, 64, vec![0.0; 192]).unwrap();
        let two = reconstruction_grid(&x, None, &y, 16, 16).unwrap();
        let three = reconstruction_grid(&x, Some(&noisy), &y, 16, 16).unwrap();
        assert_eq!(two.width, three.width);
        // One more row of 56-pixel (8 × 7) tiles and a gap.
        assert_eq!(three.height - two.height, 56 + 4);
        let odd = Dataset::new(1, 30, vec![0.0; 30]).unwrap();
        let e = reconstruction_grid(&odd, None, &odd, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a square image"), "{e}");
        let short = Dataset::new(1, 64, vec![0.0; 64]).unwrap();
        let e = reconstruction_grid(&x, Some(&short), &y, 3, 3).unwrap_err();
        assert!(e.to_string().contains("shape"), "{e}");
        assert!(two.pixels.contains(&BACKGROUND));
    }
}
