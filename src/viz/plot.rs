//! The loss plot: training and validation loss per epoch, and each term of a loss with
//! several in a panel of its own, drawn with `plotters` into an RGB buffer. Text is rendered by `ab_glyph` from DejaVu Sans compiled into the binary (the
//! `dejavu` crate), so no system font library (fontconfig, freetype) is needed.

use std::path::Path;

use plotters::prelude::*;

use super::Image;
use super::scatter::{FAMILY, register_fonts};
use crate::error::{Error, Result};

/// Panels of values measured beside the loss rather than terms of it (a PSD model's code, in
/// `metrics.jsonl`): drawn last, and not titled as terms.
pub const MEASURES: [&str; 2] = ["zero_fraction", "relative_prediction_error"];

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

/// The curves of one loss panel: the total loss (`loss`) or one of its terms
/// (`reconstruction`, `kl`, `sparsity`, `contractive`...), per epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossCurves {
    /// What the panel shows.
    pub name: String,
    /// `(epoch, value)` of the training curve.
    pub train: Vec<(f64, f64)>,
    /// `(epoch, value)` of the validation curve (empty without validation data).
    pub val: Vec<(f64, f64)>,
}

/// Height of each panel below the first, one per term of a loss with several.
pub const TERM_PANEL_HEIGHT: u32 = 260;

/// The loss plot's size for `panels` panels: [`LOSS_PLOT_SIZE`] for one, and
/// [`TERM_PANEL_HEIGHT`] more for each further one.
pub fn loss_plot_size(panels: usize) -> (u32, u32) {
    let extra = u32::try_from(panels.saturating_sub(1)).unwrap_or(u32::MAX);
    (
        LOSS_PLOT_SIZE.0,
        LOSS_PLOT_SIZE
            .1
            .saturating_add(extra.saturating_mul(TERM_PANEL_HEIGHT)),
    )
}

/// Draws each of `panels` (the total loss first, then each term of a loss with several) as
/// training and (possibly empty) validation lines with a marker per epoch, on axes labelled
/// with integer epochs, one panel above the other, each with its own scale (a KL term of 5
/// beside a reconstruction of 300 stays visible).
pub fn render_loss_plot(panels: &[LossCurves]) -> Result<Image> {
    register_fonts()?;
    if panels.len() > 16 {
        return Err(Error::Config(format!(
            "drawing the loss plot: {} panels are too many (at most 16)",
            panels.len()
        )));
    }
    let (width, height) = loss_plot_size(panels.len().max(1));
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    let fail = |e: String| Error::Config(format!("drawing the loss plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let mut rest = root.clone();
        for (k, panel) in panels.iter().enumerate() {
            let (area, below) = if k + 1 < panels.len() {
                let h = if k == 0 {
                    LOSS_PLOT_SIZE.1
                } else {
                    TERM_PANEL_HEIGHT
                };
                rest.split_vertically(h)
            } else {
                (rest.clone(), rest.clone())
            };
            draw_panel(&area, panel, k == 0).map_err(fail)?;
            rest = below;
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

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &LossCurves,
    first: bool,
) -> std::result::Result<(), String> {
    let (train, val) = (&panel.train, &panel.val);
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
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
    let caption = if panel.name == "loss" {
        "loss per epoch".to_string()
    } else if MEASURES.contains(&panel.name.as_str()) {
        format!("{} per epoch (not part of the loss)", panel.name)
    } else {
        format!("{} term per epoch", panel.name)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, if first { 22 } else { 18 }))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
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
        .y_desc(panel.name.as_str())
        .x_label_formatter(&whole)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(e)?;
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
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
    }
    if !train.is_empty() || !val.is_empty() {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Renders the loss plot and writes it as a PNG file, atomically.
pub fn write_loss_plot(path: &Path, panels: &[LossCurves]) -> Result<()> {
    render_loss_plot(panels)?.write_png(path)
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
        let total = LossCurves {
            name: "loss".into(),
            train: vec![(1.0, 300.0), (2.0, 250.0)],
            val: vec![(1.0, 310.0)],
        };
        let img = render_loss_plot(std::slice::from_ref(&total)).unwrap();
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

    #[test]
    fn each_term_gets_a_panel_with_its_own_curve() {
        let curve = |name: &str, v: f64| LossCurves {
            name: name.into(),
            train: vec![(1.0, v), (2.0, v * 0.8), (3.0, v * 0.7)],
            val: vec![],
        };
        let panels = [
            curve("loss", 305.0),
            curve("reconstruction", 300.0),
            curve("kl", 5.0),
        ];
        let img = render_loss_plot(&panels).unwrap();
        assert_eq!((img.width, img.height), (800, 500 + 2 * TERM_PANEL_HEIGHT));
        assert_eq!(loss_plot_size(3), (img.width, img.height));
        // The training blue is drawn in every panel's band of rows.
        let w = img.width as usize;
        let blue_rows = |from: usize, to: usize| {
            (from..to)
                .filter(|&y| {
                    img.pixels[3 * y * w..3 * (y + 1) * w]
                        .chunks(3)
                        .any(|p| p == [31, 119, 180])
                })
                .count()
        };
        assert!(blue_rows(0, 500) > 20);
        assert!(blue_rows(500, 760) > 20, "the reconstruction panel");
        assert!(blue_rows(760, 1020) > 20, "the KL panel, on its own scale");
    }
}
