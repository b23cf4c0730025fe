//! The loss plot: training and validation loss per epoch, drawn with `plotters` into an RGB
//! buffer. Text is rendered by `ab_glyph` from DejaVu Sans compiled into the binary (the
//! `dejavu` crate), so no system font library (fontconfig, freetype) is needed.

use std::path::Path;

use plotters::prelude::*;

use super::Image;
use super::scatter::{FAMILY, register_fonts};
use crate::error::{Error, Result};

/// Width and height of the loss plot in pixels.
pub const LOSS_PLOT_SIZE: (u32, u32) = (800, 500);

/// The range of `values` with a 5% margin (±1 around a single value; 0..1 for none).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        let pad = (lo.abs() * 0.05).max(1e-3);
        (lo - pad, hi + pad)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    }
}

/// Draws `(epoch, loss)` points of the training and (possibly empty) validation curves as
/// lines with a marker per epoch, on axes labelled with integer epochs.
pub fn render_loss_plot(train: &[(f64, f64)], val: &[(f64, f64)]) -> Result<Image> {
    register_fonts()?;
    let (width, height) = LOSS_PLOT_SIZE;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    let fail = |e: String| Error::Config(format!("drawing the loss plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let all = train.iter().chain(val);
        let (x0, x1) = match (
            all.clone().map(|p| p.0).reduce(f64::min),
            all.clone().map(|p| p.0).reduce(f64::max),
        ) {
            (Some(a), Some(b)) if a < b => (a - 0.02 * (b - a), b + 0.02 * (b - a)),
            (Some(a), _) => (a - 1.0, a + 1.0),
            _ => (0.0, 1.0),
        };
        let (y0, y1) = padded_range(all.map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption("loss per epoch", (FAMILY, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(e.to_string()))?;
        let whole = |x: &f64| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(200, 200, 200))
            .x_desc("epoch")
            .y_desc("loss")
            .x_label_formatter(&whole)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        let series = [
            ("train", train, RGBColor(31, 119, 180)),
            ("validation", val, RGBColor(255, 127, 14)),
        ];
        for (label, points, color) in series {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| fail(e.to_string()))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| fail(e.to_string()))?;
        }
        if !train.is_empty() || !val.is_empty() {
            chart
                .configure_series_labels()
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(Image {
        width,
        height,
        channels: 3,
        pixels,
    })
}

/// Renders the loss plot and writes it as a PNG file, atomically.
pub fn write_loss_plot(path: &Path, train: &[(f64, f64)], val: &[(f64, f64)]) -> Result<()> {
    render_loss_plot(train, val)?.write_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_padded() {
        assert_eq!(padded_range([].into_iter()), (0.0, 1.0));
        let (lo, hi) = padded_range([10.0, 20.0, f64::NAN].into_iter());
        assert!((lo - 9.5).abs() < 1e-12 && (hi - 20.5).abs() < 1e-12);
        let (lo, hi) = padded_range([100.0].into_iter());
        assert!(lo < 100.0 && hi > 100.0);
    }

    #[test]
    fn plot_draws_something_on_white() {
        let img = render_loss_plot(&[(1.0, 300.0), (2.0, 250.0)], &[(1.0, 310.0)]).unwrap();
        assert_eq!((img.width, img.height, img.channels), (800, 500, 3));
        let non_white = img
            .pixels
            .chunks(3)
            .filter(|p| p != &[255, 255, 255])
            .count();
        assert!(non_white > 2000, "only {non_white} drawn pixels");
        // The training curve's blue appears.
        assert!(img.pixels.chunks(3).any(|p| p == [31, 119, 180]));
    }
}
