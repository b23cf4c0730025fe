//! The pictures a run writes decode as PNG with the sizes the layout promises.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

use hourglass::data::Dataset;
use hourglass::viz::{
    GAP, LOSS_PLOT_SIZE, reconstruction_grid, render_loss_plot, tile_grid, write_loss_plot,
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
fn reconstruction_grid_is_two_rows_of_sixteen_28_pixel_tiles() {
    // Originals white, reconstructions a ramp from black to white (clamped beyond 1).
    let originals = Dataset::new(20, 784, vec![1.0; 20 * 784]).unwrap();
    let ramp: Vec<f32> = (0..784).map(|i| i as f32 / 700.0).collect();
    let recon = Dataset::new(20, 784, ramp.repeat(20)).unwrap();
    let path = temp("recon.png");
    reconstruction_grid(&originals, &recon, 16, 16)
        .unwrap()
        .write_png(&path)
        .unwrap();
    let (w, h, color, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    let side = 28;
    assert_eq!(
        (w, h),
        (16 * side + 17 * GAP as u32, 2 * side + 3 * GAP as u32)
    );
    assert_eq!(color, png::ColorType::Grayscale);
    let at = |x: usize, y: usize| px[y * w as usize + x];
    assert_eq!(at(GAP, GAP), 255, "an original's first pixel");
    let second_row = 2 * GAP + side as usize;
    assert_eq!(at(GAP, second_row), 0, "a reconstruction's first pixel");
    assert_eq!(at(GAP + 27, second_row + 27), 255, "clamped to white");
}

#[test]
fn sample_grid_is_square_for_a_square_count() {
    let tiles: Vec<Vec<f32>> = (0..64).map(|k| vec![k as f32 / 63.0; 784]).collect();
    let refs: Vec<&[f32]> = tiles.iter().map(Vec::as_slice).collect();
    let path = temp("samples.png");
    tile_grid(&refs, 28, 8).write_png(&path).unwrap();
    let (w, h, _, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!((w, h), (8 * 28 + 9 * 2, 8 * 28 + 9 * 2));
    // The last tile (bottom right) is white, the first black.
    assert_eq!(px[2 * w as usize + 2], 0);
    assert_eq!(px[(h as usize - 3) * w as usize + w as usize - 3], 255);
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
    write_loss_plot(&path, &train, &val).unwrap();
    let (w, h, color, px) = decode(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!((w, h), LOSS_PLOT_SIZE);
    assert_eq!(color, png::ColorType::Rgb);
    let count = |rgb: [u8; 3]| px.chunks(3).filter(|p| *p == rgb).count();
    assert!(count([31, 119, 180]) > 200, "the training curve is drawn");
    assert!(count([255, 127, 14]) > 200, "the validation curve is drawn");
    assert!(count([0, 0, 0]) > 100, "axes and text are drawn");
    // No epochs yet (a run of 0 steps), or a single one: still a valid picture.
    for (t, v) in [(vec![], vec![]), (vec![(1.0, 5.0)], vec![])] {
        let img = render_loss_plot(&t, &v).unwrap();
        assert_eq!((img.width, img.height), LOSS_PLOT_SIZE);
    }
}
