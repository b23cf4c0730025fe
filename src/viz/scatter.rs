//! Scatter plots of 2-D codes, coloured by label with a legend of class names: what a model
//! with a 2-number code makes of a data set (`hourglass encode --png`). Drawn with `plotters`,
//! text in the compiled-in DejaVu Sans.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::Image;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Width and height of a scatter plot in pixels.
pub const SCATTER_SIZE: (u32, u32) = (900, 700);

/// Width of the legend panel on the right when there are labels.
const LEGEND_WIDTH: u32 = 170;

/// The font family of every text in these plots, registered once per process.
pub(super) const FAMILY: &str = "sans-serif";

/// Ten distinct colours (matplotlib's `tab10`), one per label modulo 10.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Registers DejaVu Sans as [`FAMILY`] (the same font the loss plot uses).
pub(super) fn register_fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Config("the embedded plot font did not load".into()))
    }
}

/// The range of `values` (finite ones) with a 5% margin; ±1 around a single value, 0..1 for none.
pub(super) fn padded(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    }
}

pub(super) fn fail(what: &'static str) -> impl Fn(String) -> Error {
    move |e| Error::Config(format!("drawing the {what}: {e}"))
}

/// The colour of `label`.
fn color(label: u32) -> RGBColor {
    let (r, g, b) = PALETTE[label as usize % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Draws the rows of the `n × 2` data set `codes` as dots, [`SCATTER_SIZE`] pixels, RGB.
/// With `labels` (one per row) each dot takes its label's colour and a legend on the right
/// names the labels present: `class_names[label]` when there is one, else the number.
/// Non-finite rows are left out.
///
/// ```
/// use hourglass::Dataset;
/// use hourglass::viz::render_scatter;
///
/// let codes = Dataset::new(4, 2, vec![0.0, 0.0, 1.0, 0.5, -1.0, 2.0, 0.3, 0.3])?;
/// let img = render_scatter(&codes, Some(&[0, 1, 1, 0]), &["even", "odd"], "codes")?;
/// assert_eq!((img.width, img.height, img.channels), (900, 700, 3));
/// # Ok::<(), hourglass::Error>(())
/// ```
pub fn render_scatter(
    codes: &Dataset,
    labels: Option<&[u32]>,
    class_names: &[&str],
    title: &str,
) -> Result<Image> {
    if codes.cols != 2 {
        return Err(Error::Config(format!(
            "a scatter plot needs 2-D codes, got {} values per row",
            codes.cols
        )));
    }
    if let Some(l) = labels
        && l.len() != codes.rows
    {
        return Err(Error::Config(format!(
            "{} labels for {} codes",
            l.len(),
            codes.rows
        )));
    }
    register_fonts()?;
    let (width, height) = SCATTER_SIZE;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    let fail = fail("scatter plot");
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let (plot, legend) = if labels.is_some() {
            let (p, l) = root.split_horizontally(width - LEGEND_WIDTH);
            (p, Some(l))
        } else {
            (root.clone(), None)
        };
        let (x0, x1) = padded(codes.values.iter().step_by(2).copied());
        let (y0, y1) = padded(codes.values.iter().skip(1).step_by(2).copied());
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(200, 200, 200))
            .x_desc("code 0")
            .y_desc("code 1")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        let radius = if codes.rows > 2000 { 2 } else { 3 };
        let dots = (0..codes.rows).filter_map(|i| {
            let p = codes.row(i);
            let c = labels.map_or(color(0), |l| color(l[i]));
            (p[0].is_finite() && p[1].is_finite())
                .then(|| Circle::new((p[0], p[1]), radius, c.mix(0.7).filled()))
        });
        chart.draw_series(dots).map_err(|e| fail(e.to_string()))?;
        if let (Some(area), Some(labels)) = (legend, labels) {
            let present: BTreeSet<u32> = labels.iter().copied().collect();
            let shown = 24;
            area.draw(&Text::new("label", (8, 40), (FAMILY, 16)))
                .map_err(|e| fail(e.to_string()))?;
            for (k, &label) in present.iter().take(shown).enumerate() {
                let y = 70 + 24 * k as i32;
                let name = class_names
                    .get(label as usize)
                    .map_or_else(|| label.to_string(), |n| (*n).to_string());
                area.draw(&Circle::new((16, y), 5, color(label).filled()))
                    .map_err(|e| fail(e.to_string()))?;
                area.draw(&Text::new(name, (28, y - 8), (FAMILY, 14)))
                    .map_err(|e| fail(e.to_string()))?;
            }
            if present.len() > shown {
                let y = 70 + 24 * shown as i32;
                let more = format!("… {} more", present.len() - shown);
                area.draw(&Text::new(more, (8, y - 8), (FAMILY, 14)))
                    .map_err(|e| fail(e.to_string()))?;
            }
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

/// Renders [`render_scatter`] and writes it as a PNG file, atomically.
pub fn write_scatter(
    path: &Path,
    codes: &Dataset,
    labels: Option<&[u32]>,
    class_names: &[&str],
    title: &str,
) -> Result<()> {
    render_scatter(codes, labels, class_names, title)?.write_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_dots_take_their_colours() {
        let codes = Dataset::new(3, 2, vec![0.0, 0.0, 1.0, 1.0, 0.5, 0.2]).unwrap();
        let img = render_scatter(&codes, Some(&[0, 3, 3]), &["a", "b", "c", "d"], "t").unwrap();
        let has = |c: (u8, u8, u8)| img.pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(
            has(PALETTE[0]) && has(PALETTE[3]),
            "dots and legend in colour"
        );
        assert!(!has(PALETTE[1]), "no dot of an absent label");
        let e = render_scatter(&codes, Some(&[0]), &[], "t").unwrap_err();
        assert!(e.to_string().contains("1 labels for 3 codes"), "{e}");
        let e = render_scatter(&Dataset::new(1, 3, vec![0.0; 3]).unwrap(), None, &[], "t");
        assert!(e.unwrap_err().to_string().contains("2-D codes"));
    }
}
