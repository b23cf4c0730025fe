//! Vector-field plots: an arrow at each grid point over the data points, for the denoising
//! field r(x) − x of `hourglass field`. Drawn with `plotters` on equal axes, so arrow
//! directions are true; lengths are scaled by one factor, given in the caption.

use std::path::Path;

use plotters::prelude::*;

use super::Image;
use super::scatter::{FAMILY, fail, padded, register_fonts};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Column `j` of a 2-column data set.
fn column(d: &Dataset, j: usize) -> impl Iterator<Item = f32> + '_ {
    d.values.iter().skip(j).step_by(2).copied()
}

/// Width and height of a field plot in pixels.
pub const FIELD_PLOT_SIZE: (u32, u32) = (760, 800);

/// Draws `vectors[i]` as an arrow from `points` row `i`, over the rows of `data` as dots, both
/// `n × 2`; [`FIELD_PLOT_SIZE`] pixels, RGB. The axes have equal scales. Arrows are scaled by
/// one factor so that the longest is 0.9 of the typical spacing between points
/// (span / √points), and `title` is followed by that factor in the caption.
///
/// ```
/// use hourglass::Dataset;
/// use hourglass::viz::render_field;
///
/// let grid = Dataset::new(4, 2, vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])?;
/// let toward_centre = [[0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]];
/// let data = Dataset::new(1, 2, vec![0.5, 0.5])?;
/// let img = render_field(&grid, &toward_centre, &data, "toward the middle")?;
/// assert_eq!((img.width, img.height, img.channels), (760, 800, 3));
/// # Ok::<(), hourglass::Error>(())
/// ```
pub fn render_field(
    points: &Dataset,
    vectors: &[[f32; 2]],
    data: &Dataset,
    title: &str,
) -> Result<Image> {
    if points.cols != 2 || data.cols != 2 || vectors.len() != points.rows {
        return Err(Error::Config(format!(
            "a field plot needs n × 2 points with n vectors and 2-D data, got {} × {} points, \
             {} vectors and {} columns of data",
            points.rows,
            points.cols,
            vectors.len(),
            data.cols
        )));
    }
    register_fonts()?;
    let (x0, x1) = padded(column(points, 0).chain(column(data, 0)));
    let (y0, y1) = padded(column(points, 1).chain(column(data, 1)));
    let longest = vectors
        .iter()
        .map(|v| v[0].hypot(v[1]))
        .filter(|l| l.is_finite())
        .fold(0.0f32, f32::max);
    let cell = (x1 - x0).max(y1 - y0) / (points.rows.max(1) as f32).sqrt();
    let factor = if longest > 0.0 {
        0.9 * cell / longest
    } else {
        1.0
    };

    let (width, height) = FIELD_PLOT_SIZE;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    let fail = fail("field plot");
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let area = root
            .titled(&format!("{title} (arrows ×{factor:.3})"), (FAMILY, 20))
            .map_err(|e| fail(e.to_string()))?;
        // Equal pixels per unit on both axes, so that directions on screen are directions in
        // the data: widen the range of the axis with room to spare.
        let (margin, x_labels, y_labels) = (16u32, 44u32, 60u32);
        let (aw, ah) = area.dim_in_pixel();
        let pw = aw.saturating_sub(2 * margin + y_labels).max(1) as f32;
        let ph = ah.saturating_sub(2 * margin + x_labels).max(1) as f32;
        let per_unit = (pw / (x1 - x0)).min(ph / (y1 - y0));
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let (hx, hy) = (pw / per_unit / 2.0, ph / per_unit / 2.0);
        let (x0, x1, y0, y1) = (cx - hx, cx + hx, cy - hy, cy + hy);
        let mut chart = ChartBuilder::on(&area)
            .margin(margin)
            .x_label_area_size(x_labels)
            .y_label_area_size(y_labels)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(205, 205, 205))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        let dot = RGBColor(31, 119, 180).mix(0.5).filled();
        chart
            .draw_series(
                data.values
                    .chunks_exact(2)
                    .filter(|p| p[0].is_finite() && p[1].is_finite())
                    .map(|p| Circle::new((p[0], p[1]), 2, dot)),
            )
            .map_err(|e| fail(e.to_string()))?;
        // Pixels per data unit, for heads of a fixed angle and pixel size.
        let (pw, ph) = chart.plotting_area().dim_in_pixel();
        let (sx, sy) = (pw as f32 / (x1 - x0), ph as f32 / (y1 - y0));
        let red = RGBColor(200, 30, 30);
        let mut paths = Vec::with_capacity(points.rows * 2);
        for (p, v) in points.values.chunks_exact(2).zip(vectors) {
            let (dx, dy) = (v[0] * factor, v[1] * factor);
            if !(dx.is_finite() && dy.is_finite()) {
                continue;
            }
            let tip = (p[0] + dx, p[1] + dy);
            paths.push(PathElement::new(
                vec![(p[0], p[1]), tip],
                red.stroke_width(1),
            ));
            let (ux, uy) = (dx * sx, dy * sy);
            let len = ux.hypot(uy);
            if len < 2.0 {
                continue;
            }
            let head = (0.35 * len).clamp(2.0, 7.0);
            let (bx, by) = (-ux / len * head, -uy / len * head);
            let (c, s) = (0.45f32.cos(), 0.45f32.sin());
            for sign in [1.0f32, -1.0] {
                let (hx, hy) = (c * bx - sign * s * by, sign * s * bx + c * by);
                paths.push(PathElement::new(
                    vec![tip, (tip.0 + hx / sx, tip.1 + hy / sy)],
                    red.stroke_width(1),
                ));
            }
        }
        chart.draw_series(paths).map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(Image {
        width,
        height,
        channels: 3,
        pixels,
    })
}

/// Renders [`render_field`] and writes it as a PNG file, atomically.
pub fn write_field(
    path: &Path,
    points: &Dataset,
    vectors: &[[f32; 2]],
    data: &Dataset,
    title: &str,
) -> Result<()> {
    render_field(points, vectors, data, title)?.write_png(path)
}
