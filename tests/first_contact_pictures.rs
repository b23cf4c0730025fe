//! Issue 13, class 8 (what a new user hits): the pictures and the checkpoints a new user opens
//! first. Grids label their rows and scale small images up; a denoising run shows the corrupted
//! input as a third row; the VAE loss plot shows its terms; a tied checkpoint carries
//! transposed `decoder.N.weight` copies (checked on load); the spec JSON names the leaky-ReLU
//! slope. CPU device throughout.
#![cfg(feature = "cli")]

mod common;

use common::cli::hourglass;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hourglass::data::npy::{read_npy, write_npy};
use hourglass::io::checkpoint;
use hourglass::viz::{BACKGROUND, GAP, LOSS_PLOT_SIZE, MIN_TILE, PAD, TERM_PANEL_HEIGHT};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn ok(args: &[&str]) -> String {
    let out = hourglass(args);
    assert!(
        out.status.success(),
        "hourglass {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one `error:` line of a command that must exit 2.
fn refused(args: &[&str]) -> String {
    let out = hourglass(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hourglass-fc-pictures-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `rows × cols` values in [0, 1), written as `.npy`.
fn fixture(dir: &Path, rows: usize, cols: usize) -> PathBuf {
    let path = dir.join(format!("x{cols}.npy"));
    write_npy(&path, rows, cols, &common::random(rows * cols, 0.0, 1.0, 7)).expect("fixture");
    path
}

/// Trains a small run on `data` with `extra` flags and returns its folder.
fn train(dir: &Path, name: &str, data: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    out
}

/// A PNG's width, height, colour type and pixels.
fn decode(path: &Path) -> (usize, usize, png::ColorType, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("fits")];
    let frame = reader.next_frame(&mut pixels).expect("decodes");
    pixels.truncate(frame.buffer_size());
    (
        frame.width as usize,
        frame.height as usize,
        frame.color_type,
        pixels,
    )
}

/// Dark (text) pixels of a grey figure left of `left`, the first tile column's edge, inside
/// the margins: the row labels.
fn label_pixels(w: usize, h: usize, px: &[u8], left: usize) -> usize {
    (PAD..h - PAD)
        .flat_map(|y| (PAD..left - PAD).map(move |x| (x, y)))
        .filter(|&(x, y)| px[y * w + x] < 100)
        .count()
}

#[test]
fn reconstructions_label_their_rows_scale_tiles_and_show_the_corruption() {
    let dir = scratch("recon");
    let data = fixture(&dir, 40, 64);
    let plain = train(&dir, "plain", &data, &["--encoder", "64,6"]);
    let noisy = train(
        &dir,
        "noisy",
        &data,
        &[
            "--encoder",
            "64,6",
            "--variant",
            "denoising",
            "--noise",
            "mask:0.5",
        ],
    );
    let (w2, h2, color, px) = decode(&plain.join("reconstructions.png"));
    assert_eq!(color, png::ColorType::Grayscale);
    // 8×8 images drawn at 56×56 (×7): two rows (input, reconstruction) of 16 tiles.
    let tile = 8 * MIN_TILE.div_ceil(8);
    assert_eq!(tile, 56);
    assert_eq!(
        h2,
        2 * tile + GAP + 2 * PAD,
        "two rows of {tile}-pixel tiles"
    );
    let grid_w = 16 * tile + 15 * GAP;
    assert!(
        w2 > grid_w + 2 * PAD + 60,
        "a label column beside 16 tiles: {w2}"
    );
    // The tiles end at the right margin, after the label column (background just before).
    let left = w2 - PAD - grid_w;
    let y = PAD + tile / 2;
    assert!((left - PAD..left).all(|x| px[y * w2 + x] == BACKGROUND));
    let drawn = (PAD..PAD + tile)
        .filter(|&y| px[y * w2 + left] != BACKGROUND)
        .count();
    assert!(drawn > tile / 2, "the first tile starts at x = {left}");
    let dark = label_pixels(w2, h2, &px, left);
    assert!(
        dark > 100,
        "label text left of the tiles: {dark} dark pixels"
    );

    let (w3, h3, _, px3) = decode(&noisy.join("reconstructions.png"));
    assert_eq!(
        w3, w2,
        "same columns and labels ('corrupted' is shorter than 'reconstruction')"
    );
    assert_eq!(h3, h2 + tile + GAP, "a third row: the corrupted inputs");
    // Masking noise at ν = 0.5 zeroes about half the pixels of the middle row's tiles.
    let left3 = w3 - PAD - grid_w;
    assert!(label_pixels(w3, h3, &px3, left3) > dark, "three labels");
    let middle_top = PAD + tile + GAP;
    let black = (middle_top..middle_top + tile)
        .flat_map(|y| (left3..left3 + grid_w).map(move |x| (x, y)))
        .filter(|&(x, y)| px3[y * w3 + x] == 0)
        .count();
    let area = 16 * tile * tile;
    assert!(
        (area * 3 / 10..area * 7 / 10).contains(&black),
        "{black} of {area} pixels masked in the corrupted row"
    );
}

#[test]
fn reconstructions_npy_stacks_inputs_corrupted_and_reconstructions() {
    let dir = scratch("npy");
    let data = fixture(&dir, 24, 10);
    let input = read_npy(&data).unwrap();
    let plain = train(&dir, "plain", &data, &["--encoder", "10,3"]);
    let noisy = train(
        &dir,
        "noisy",
        &data,
        &[
            "--encoder",
            "10,3",
            "--variant",
            "denoising",
            "--noise",
            "mask:0.5",
        ],
    );
    let two = read_npy(&plain.join("reconstructions.npy")).unwrap();
    let three = read_npy(&noisy.join("reconstructions.npy")).unwrap();
    assert_eq!(
        (two.rows, two.cols),
        (32, 10),
        "16 inputs, then 16 reconstructions"
    );
    assert_eq!(
        (three.rows, three.cols),
        (48, 10),
        "inputs, corrupted inputs, reconstructions"
    );
    assert_eq!(
        &three.values[..160],
        &input.values[..160],
        "the inputs come first, unchanged"
    );
    let corrupted = &three.values[160..320];
    let zeroed = corrupted
        .iter()
        .zip(&input.values[..160])
        .filter(|&(c, x)| *c == 0.0 && *x != 0.0)
        .count();
    assert!((40..120).contains(&zeroed), "{zeroed} of 160 values masked");
    assert!(
        corrupted
            .iter()
            .zip(&input.values[..160])
            .all(|(c, x)| *c == 0.0 || c == x),
        "masking only zeroes values"
    );
}

#[test]
fn the_vae_loss_plot_shows_each_term_in_its_own_panel() {
    let dir = scratch("loss");
    let data = fixture(&dir, 40, 64);
    let plain = train(&dir, "plain", &data, &["--encoder", "64,6"]);
    let vae = train(
        &dir,
        "vae",
        &data,
        &[
            "--encoder",
            "64,8,3",
            "--variant",
            "vae",
            "--val-split",
            "0.25",
        ],
    );
    let (w, h, _, _) = decode(&plain.join("loss.png"));
    assert_eq!(
        (w as u32, h as u32),
        LOSS_PLOT_SIZE,
        "a single-term loss: one panel"
    );
    let (w, h, color, px) = decode(&vae.join("loss.png"));
    assert_eq!(color, png::ColorType::Rgb);
    assert_eq!(
        (w as u32, h as u32),
        (LOSS_PLOT_SIZE.0, LOSS_PLOT_SIZE.1 + 2 * TERM_PANEL_HEIGHT),
        "total, reconstruction and KL panels"
    );
    let (top, term) = (LOSS_PLOT_SIZE.1 as usize, TERM_PANEL_HEIGHT as usize);
    for (name, rows) in [
        ("total", 0..top),
        ("reconstruction", top..top + term),
        ("kl", top + term..top + 2 * term),
    ] {
        for (curve, rgb) in [("train", [31, 119, 180]), ("validation", [255, 127, 14])] {
            let n = px[3 * rows.start * w..3 * rows.end * w]
                .chunks(3)
                .filter(|p| *p == rgb)
                .count();
            assert!(n > 30, "the {name} panel's {curve} curve: {n} pixels");
        }
    }
}

/// The tensors of a safetensors file: name → (shape, f32 values), and its metadata.
fn tensors(
    path: &Path,
) -> (
    HashMap<String, (Vec<usize>, Vec<f32>)>,
    HashMap<String, String>,
) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let map = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, (v.shape().to_vec(), values))
        })
        .collect();
    (map, meta.metadata().clone().unwrap_or_default())
}

/// Writes `tensors` and `metadata` as a safetensors file.
fn write(
    path: &Path,
    tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (shape, v))| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(v)).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn a_tied_checkpoint_carries_checked_transposed_decoder_weights() {
    let dir = scratch("tied");
    let data = fixture(&dir, 40, 64);
    let run = train(&dir, "tied", &data, &["--encoder", "64,12,5", "--tied"]);
    let model = run.join("model.safetensors");
    let (t, meta) = tensors(&model);
    let mut names: Vec<&str> = t.keys().map(String::as_str).collect();
    names.sort();
    // Every nn.Sequential entry a strict load_state_dict needs, weights included.
    assert_eq!(
        names,
        [
            "decoder.0.bias",
            "decoder.0.weight",
            "decoder.2.bias",
            "decoder.2.weight",
            "encoder.0.bias",
            "encoder.0.weight",
            "encoder.2.bias",
            "encoder.2.weight",
        ]
    );
    for (dec, enc) in [
        ("decoder.0.weight", "encoder.2.weight"),
        ("decoder.2.weight", "encoder.0.weight"),
    ] {
        let ((ds, dv), (es, ev)) = (&t[dec], &t[enc]);
        assert_eq!(ds, &vec![es[1], es[0]], "{dec} is [out, in]");
        for o in 0..ds[0] {
            for i in 0..ds[1] {
                assert_eq!(dv[o * ds[1] + i], ev[i * es[1] + o], "{dec}[{o}, {i}]");
            }
        }
    }
    // The checkpoint loads and the copies agree.
    let recon = dir.join("r.npy");
    ok(&[
        "reconstruct",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&recon),
        "--device",
        "cpu",
    ]);

    // An edited copy is refused, naming the tensor, and nothing is written.
    let mut edited = t.clone();
    edited.get_mut("decoder.0.weight").unwrap().1[7] += 0.5;
    let bad = dir.join("edited.safetensors");
    write(&bad, &edited, meta.clone());
    let out = dir.join("r2.npy");
    let err = refused(&[
        "reconstruct",
        "--model",
        s(&bad),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert!(err.contains("edited.safetensors"), "{err}");
    assert!(
        err.contains("'decoder.0.weight' is not the transpose of 'encoder.2.weight'"),
        "{err}"
    );
    assert!(!out.exists());
    // A copy of the wrong shape too.
    let mut reshaped = t.clone();
    reshaped.get_mut("decoder.2.weight").unwrap().0 = vec![12, 64];
    write(&bad, &reshaped, meta.clone());
    let err = refused(&[
        "encode",
        "--model",
        s(&bad),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("'decoder.2.weight'") && err.contains("[64, 12]"),
        "{err}"
    );

    // A checkpoint written before the copies existed (no decoder weights) still loads.
    let mut old = t.clone();
    old.remove("decoder.0.weight");
    old.remove("decoder.2.weight");
    write(&bad, &old, meta);
    let (spec, params) = checkpoint::load(&bad).expect("an old tied checkpoint loads");
    assert!(spec.tied);
    assert_eq!(
        params.get("encoder.0.weight").unwrap(),
        t["encoder.0.weight"].1.as_slice()
    );
}

#[test]
fn the_spec_json_records_the_leaky_relu_slope() {
    let dir = scratch("slope");
    let data = fixture(&dir, 40, 64);
    let run = train(
        &dir,
        "leaky",
        &data,
        &["--encoder", "64,12,5", "--activation", "leaky_relu"],
    );
    let model = run.join("model.safetensors");
    let (t, meta) = tensors(&model);
    let json: serde_json::Value = serde_json::from_str(&meta["hourglass.spec"]).unwrap();
    assert_eq!(json["leaky_relu_slope"], serde_json::json!(0.01), "{json}");
    assert_eq!(json["activation"], "leaky_relu");
    let (spec, _) = checkpoint::load(&model).unwrap();

    // Without the key (an older checkpoint) the default slope is meant: it loads, same spec.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("leaky_relu_slope");
    let mut m = meta.clone();
    m.insert("hourglass.spec".into(), old.to_string());
    let path = dir.join("old.safetensors");
    write(&path, &t, m);
    assert_eq!(checkpoint::load(&path).unwrap().0, spec);

    // A slope this build does not compute is refused, naming the file and the key.
    let mut other = json.clone();
    other["leaky_relu_slope"] = serde_json::json!(0.2);
    let mut m = meta.clone();
    m.insert("hourglass.spec".into(), other.to_string());
    let path = dir.join("slope.safetensors");
    write(&path, &t, m);
    let out = dir.join("r.npy");
    let err = refused(&[
        "reconstruct",
        "--model",
        s(&path),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("slope.safetensors") && err.contains("leaky_relu_slope is 0.2"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn tangents_traverse_and_sample_caption_their_tiles() {
    let dir = scratch("captions");
    let data = fixture(&dir, 40, 64);
    let vae = train(
        &dir,
        "vae",
        &data,
        &["--encoder", "64,8,3", "--variant", "vae"],
    );
    let model = vae.join("model.safetensors");
    let png = dir.join("walk.png");
    let text = ok(&[
        "traverse",
        "--model",
        s(&model),
        "--dim",
        "0,2",
        "--steps",
        "5",
        "--png",
        s(&png),
        "--device",
        "cpu",
    ]);
    assert!(text.contains("wrote"), "{text}");
    let (w, h, _, px) = decode(&png);
    let tile = 56;
    // Two labelled rows of 5 captioned tiles under a title: taller than the bare tiles by
    // the title and two caption bands, wider by the label column.
    assert!(w > 5 * tile + 4 * GAP + 2 * PAD, "{w}");
    assert!(h > 2 * tile + GAP + 2 * PAD + 2 * 10, "{h}");
    assert!(h < 3 * tile + 2 * GAP + 2 * PAD + 60, "{h}");
    let dark = px.iter().filter(|&&p| p < 60).count();
    assert!(dark > 200, "title, labels and captions are drawn: {dark}");

    // A plain run's tangents: each row captioned σ, labelled with its row number.
    let plain = train(
        &dir,
        "plain",
        &data,
        &["--encoder", "64,6", "--code-activation", "sigmoid"],
    );
    let tpng = dir.join("t.png");
    let text = ok(&[
        "tangents",
        "--model",
        s(&plain.join("model.safetensors")),
        "--data",
        s(&data),
        "--rows",
        "0,3",
        "--k",
        "2",
        "--png",
        s(&tpng),
        "--device",
        "cpu",
    ]);
    assert!(text.contains("row 3: singular values"), "{text}");
    let (tw, th, _, _) = decode(&tpng);
    assert!(
        tw > 3 * tile + 2 * GAP + 2 * PAD + 30,
        "input + 2 tangents and a label column: {tw}"
    );
    assert!(
        th > 2 * tile + GAP + 2 * PAD + 20,
        "two captioned rows: {th}"
    );
}
