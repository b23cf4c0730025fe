//! The pictures a run writes decode as PNG with the sizes the layout promises.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

use hourglass::data::Dataset;
use hourglass::viz::{
    GAP, LOSS_PLOT_SIZE, LossCurves, PAD, Tile, reconstruction_grid, render_loss_plot, tile_rows,
    upscale, write_loss_plot,
};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hourglass-viz-{}-{name}", std::process::id()))
}

/// Decodes a PNG file: (width, height, colour type, pixels).
fn decode(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
    let bytes = std::fs::read(path).expect("the PNG was written");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("fits in memory")];
    let frame = reader.next_frame(&mut pixels).expect("decodes");
    pixels.truncate(frame.buffer_size());
    (frame.width, frame.height, frame.color_type, pixels)
}

#[test]
fn reconstruction_grid_is_two_labelled_rows_of_sixteen_scaled_tiles() {
    // Originals white, reconstructions a ramp from black to white (clamped beyond 1).
    let originals = Dataset::new(20, 784, vec![1.0; 20 * 784]).unwrap();
    let ramp: Vec<f32> = (0..784).map(|i| i as f32 / 700.0).collect();
    let recon = Dataset::new(20, 784, ramp.repeat(20)).unwrap();
    let path = temp("recon.png");
    reconstruction_grid(&originals, None, &recon, 16, 16)
        .unwrap()
        .write_png(&path)
        .unwrap();
    let (w, h, color, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(color, png::ColorType::Grayscale);
    // 28-pixel images drawn twice as large: 56-pixel tiles, 16 across, 2 rows, plus margins,
    // gaps and a label column.
    let tile = 28 * upscale(28) as u32;
    assert_eq!(tile, 56);
    let grid_w = 16 * tile + 15 * GAP as u32;
    assert!(w > grid_w + 2 * PAD as u32 + 40, "room for the labels: {w}");
    assert_eq!(h, 2 * tile + GAP as u32 + 2 * PAD as u32);
    let at = |x: usize, y: usize| px[y * w as usize + x];
    // The tiles are right-aligned after the label column: find the first white pixel of row 1.
    let top = PAD + 1;
    let left = (0..w as usize)
        .find(|&x| at(x, top) == 255)
        .expect("a white tile");
    assert_eq!(
        left,
        w as usize - PAD - grid_w as usize,
        "tiles end at the right margin"
    );
    let second = top + 56 + GAP - 1;
    assert_eq!(at(left, second), 0, "a reconstruction's first pixel");
    assert_eq!(at(left + 55, second + 54), 255, "clamped to white");
    // Label text (dark pixels) left of both rows.
    for row_top in [PAD, PAD + 56 + GAP] {
        let dark = (row_top..row_top + 56)
            .flat_map(|y| (0..left - 2).map(move |x| (x, y)))
            .filter(|&(x, y)| at(x, y) < 100)
            .count();
        assert!(
            dark > 30,
            "label pixels beside the row at {row_top}: {dark}"
        );
    }
}

#[test]
fn sample_grid_is_square_for_a_square_count() {
    let tiles: Vec<Vec<f32>> = (0..64).map(|k| vec![k as f32 / 63.0; 784]).collect();
    let path = temp("samples.png");
    let figure = tile_rows(tiles.iter().map(|t| Tile::from(t.as_slice())), 784, 8).unwrap();
    figure.render().unwrap().write_png(&path).unwrap();
    let (w, h, _, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    let side = 8 * 56 + 7 * GAP as u32 + 2 * PAD as u32;
    assert_eq!((w, h), (side, side));
    // The last tile (bottom right) is white, the first black.
    assert_eq!(px[PAD * w as usize + PAD], 0);
    assert_eq!(
        px[(h as usize - PAD - 1) * w as usize + w as usize - PAD - 1],
        255
    );
}

#[test]
fn loss_plot_renders_with_and_without_curves() {
    let path = temp("loss.png");
    let train: Vec<(f64, f64)> = (1..=12)
        .map(|e| (e as f64, 300.0 / e as f64 + 200.0))
        .collect();
    let val: Vec<(f64, f64)> = (1..=12)
        .map(|e| (e as f64, 320.0 / e as f64 + 205.0))
        .collect();
    let total = LossCurves {
        name: "loss".into(),
        train,
        val,
    };
    write_loss_plot(&path, std::slice::from_ref(&total)).unwrap();
    let (w, h, color, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!((w, h), LOSS_PLOT_SIZE);
    assert_eq!(color, png::ColorType::Rgb);
    let count = |rgb: [u8; 3]| px.chunks(3).filter(|p| *p == rgb).count();
    assert!(count([31, 119, 180]) > 200, "the training curve is drawn");
    assert!(count([255, 127, 14]) > 200, "the validation curve is drawn");
    assert!(count([0, 0, 0]) > 100, "axes and text are drawn");
    // No epochs yet (a run of 0 steps), or a single one: still a valid picture.
    for train in [vec![], vec![(1.0, 5.0)]] {
        let panel = LossCurves {
            name: "loss".into(),
            train,
            val: vec![],
        };
        let img = render_loss_plot(&[panel]).unwrap();
        assert_eq!((img.width, img.height), LOSS_PLOT_SIZE);
    }
}
