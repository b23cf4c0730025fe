#![cfg(feature = "cli")]
//! The analysis commands end to end: `encode --binary`, `encode --png`, `neighbors`,
//! `tangents`, `field` and `traverse` write what they promise, with the picture sizes the
//! layouts give, and refuse bad requests with exit status 2.

mod common;

use common::cli::hourglass;

use std::path::{Path, PathBuf};
use std::process::Output;

use hourglass::analysis::hashing::{binarize, pack_bits};
use hourglass::data::npy::{read_npy, write_npy};
use hourglass::io::checkpoint;
use hourglass::model::Variant;
use hourglass::viz::{FIELD_PLOT_SIZE, GAP, MIN_TILE, PAD, SCATTER_SIZE};
use hourglass::{Activation, Autoencoder, Dataset, Device, ModelSpec, Parameters};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hourglass-cli-analysis-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hourglass failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn fails(args: &[&str], needle: &str) {
    let out = hourglass(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes an untrained checkpoint of `spec` (seed 1) and returns its path.
fn model(dir: &Path, name: &str, spec: &ModelSpec) -> PathBuf {
    let path = dir.join(name);
    checkpoint::save(&path, spec, &Parameters::init(spec, 1)).expect("checkpoint");
    path
}

/// `rows × cols` uniform values in [0, 1) as an .npy file.
fn fixture(dir: &Path, name: &str, rows: usize, cols: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    write_npy(
        &path,
        rows,
        cols,
        &common::random(rows * cols, 0.0, 1.0, seed),
    )
    .unwrap();
    path
}

/// Decodes a PNG file: (width, height, colour type).
fn png_size(path: &Path) -> (u32, u32, png::ColorType) {
    let bytes = std::fs::read(path).expect("the PNG was written");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("fits in memory")];
    let frame = reader.next_frame(&mut pixels).expect("decodes");
    (frame.width, frame.height, frame.color_type)
}

/// Checks that a `w × h` figure holds `columns × rows` tiles of `side` pixels scaled up to at
/// least `MIN_TILE`, with room for text (title, labels, captions) but not for another row.
fn assert_grid((w, h): (u32, u32), columns: u32, rows: u32, side: u32) {
    let tile = side * (MIN_TILE as u32).div_ceil(side);
    let (gap, pad) = (GAP as u32, PAD as u32);
    let span = |n: u32| n * tile + (n - 1) * gap + 2 * pad;
    assert!(w >= span(columns), "{w} wide for {columns} tiles of {tile}");
    assert!(h >= span(rows), "{h} high for {rows} rows of {tile}");
    assert!(h < span(rows + 1), "{h} high: more than {rows} rows");
}

#[test]
fn encode_binary_writes_the_packed_bits_of_the_codes() {
    let dir = scratch("binary");
    let spec = ModelSpec::builder()
        .encoder([12, 10])
        .code_activation(Activation::Sigmoid)
        .build()
        .unwrap();
    let ckpt = model(&dir, "m.safetensors", &spec);
    let data = fixture(&dir, "x.npy", 9, 12, 1);
    let out = dir.join("bits.npy");
    let text = ok(&hourglass(&[
        "encode",
        "--model",
        s(&ckpt),
        "--data",
        s(&data),
        "--binary",
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("9 codes of 10 bits"), "{text}");
    assert!(text.contains("packed into 2 bytes"), "{text}");
    // The reader scales |u1 by 1/255; undo it and compare with the library's packing.
    let back = read_npy(&out).unwrap();
    assert_eq!((back.rows, back.cols), (9, 2));
    let bytes: Vec<u8> = back
        .values
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let mut ae = Autoencoder::load(&ckpt, Device::Cpu).unwrap();
    let codes = ae.encode(&read_npy(&data).unwrap()).unwrap();
    assert_eq!(bytes, pack_bits(&binarize(&codes, 0.5)).unwrap().bytes);
    fails(
        &[
            "encode",
            "--model",
            s(&ckpt),
            "--data",
            s(&data),
            "--binary",
        ],
        "--out",
    );
}

#[test]
fn encode_png_scatters_two_number_codes_by_label() {
    let dir = scratch("scatter");
    let spec = ModelSpec::builder().encoder([784, 32, 2]).build().unwrap();
    let ckpt = model(&dir, "m.safetensors", &spec);
    // The bundled set brings its labels and class names.
    let png = dir.join("codes.png");
    let text = ok(&hourglass(&[
        "encode",
        "--model",
        s(&ckpt),
        "--png",
        s(&png),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("10000 codes, coloured by label"), "{text}");
    assert_eq!(
        png_size(&png),
        (SCATTER_SIZE.0, SCATTER_SIZE.1, png::ColorType::Rgb)
    );
    // A file of data with a file of labels (one column .npy), and the codes as well.
    let small = ModelSpec::builder().encoder([6, 2]).build().unwrap();
    let ckpt = model(&dir, "small.safetensors", &small);
    let data = fixture(&dir, "x.npy", 30, 6, 2);
    let labels = dir.join("y.npy");
    let y: Vec<f32> = (0..30).map(|i| (i % 3) as f32).collect();
    write_npy(&labels, 30, 1, &y).unwrap();
    let (png, codes) = (dir.join("small.png"), dir.join("codes.npy"));
    let text = ok(&hourglass(&[
        "encode",
        "--model",
        s(&ckpt),
        "--data",
        s(&data),
        "--labels",
        s(&labels),
        "--png",
        s(&png),
        "--out",
        s(&codes),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("30 codes, coloured by label"), "{text}");
    assert_eq!(png_size(&png).0, SCATTER_SIZE.0);
    assert_eq!(read_npy(&codes).unwrap().cols, 2);
    let short = dir.join("short.npy");
    write_npy(&short, 4, 1, &[0.0; 4]).unwrap();
    fails(
        &[
            "encode",
            "--model",
            s(&ckpt),
            "--data",
            s(&data),
            "--labels",
            s(&short),
            "--png",
            s(&png),
            "--device",
            "cpu",
        ],
        "4 labels for the 30 rows",
    );
    let wide = model(
        &dir,
        "wide.safetensors",
        &ModelSpec::builder().encoder([6, 3]).build().unwrap(),
    );
    fails(
        &[
            "encode",
            "--model",
            s(&wide),
            "--data",
            s(&data),
            "--png",
            s(&png),
        ],
        "code has 3 values",
    );
}

#[test]
fn neighbors_on_the_bundled_set_reports_precision_with_its_labels() {
    let dir = scratch("nn-bundled");
    let spec = ModelSpec::builder()
        .encoder([784, 16])
        .code_activation(Activation::Sigmoid)
        .build()
        .unwrap();
    let ckpt = model(&dir, "m.safetensors", &spec);
    let out = dir.join("nn.npy");
    let text = ok(&hourglass(&[
        "neighbors",
        "--model",
        s(&ckpt),
        "--k",
        "5",
        "--show",
        "2",
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("query 0 [Ankle boot]: "), "{text}");
    assert!(!text.contains("query 2 "), "--show 2 prints two: {text}");
    assert!(text.contains("precision@5: "), "{text}");
    // Leave-one-out over 10 balanced classes of 1,000: 999/9999.
    assert!(text.contains("(random neighbours: 0.0999)"), "{text}");
    let nn = read_npy(&out).unwrap();
    assert_eq!((nn.rows, nn.cols), (10_000, 5));
    assert!(
        nn.row(7).iter().all(|&i| i != 7.0),
        "a query is not its own neighbour"
    );
}

#[test]
fn neighbors_between_files_with_label_files_and_csv_out() {
    let dir = scratch("nn-files");
    let ckpt = model(
        &dir,
        "m.safetensors",
        &ModelSpec::builder().encoder([5, 3]).build().unwrap(),
    );
    // Index rows are copies of the queries plus a small offset: each query's nearest index
    // row by Euclidean distance on linear codes is its own copy, of the same label.
    let q: Vec<f32> = common::random(8 * 5, 0.0, 1.0, 3);
    let mut x: Vec<f32> = q.iter().map(|v| v + 1e-3).collect();
    x.extend(common::random(12 * 5, 0.0, 1.0, 4));
    let (index, query) = (dir.join("index.npy"), dir.join("query.npy"));
    write_npy(&index, 20, 5, &x).unwrap();
    write_npy(&query, 8, 5, &q).unwrap();
    let (il, ql) = (dir.join("il.csv"), dir.join("ql.npy"));
    let labels: Vec<String> = (0..20).map(|i| (i % 4).to_string()).collect();
    std::fs::write(&il, format!("label\n{}\n", labels.join("\n"))).unwrap();
    let qlab: Vec<f32> = (0..8).map(|i| (i % 4) as f32).collect();
    write_npy(&ql, 8, 1, &qlab).unwrap();
    let out = dir.join("nn.csv");
    let base = [
        "neighbors",
        "--model",
        s(&ckpt),
        "--index",
        s(&index),
        "--query",
        s(&query),
        "--index-labels",
        s(&il),
        "--query-labels",
        s(&ql),
        "--device",
        "cpu",
    ];
    let mut args = base.to_vec();
    args.extend(["--metric", "euclidean", "--k", "1", "--out", s(&out)]);
    let text = ok(&hourglass(&args));
    assert!(text.contains("precision@1: 1.0000"), "{text}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "query,n1");
    assert_eq!(
        lines[1..],
        ["0,0", "1,1", "2,2", "3,3", "4,4", "5,5", "6,6", "7,7"]
    );

    let mut bad = base.to_vec();
    bad.extend(["--k", "0"]);
    fails(&bad, "--k must be at least 1");
    let mut bad = base.to_vec();
    bad.extend(["--metric", "cosine"]);
    fails(&bad, "unknown metric 'cosine'");
    let mut bad = base.to_vec();
    bad.extend(["--k", "21"]);
    fails(&bad, "between 1 and 20");
    let mut bad = base.to_vec();
    bad.extend(["--out", "nn.txt"]);
    fails(&bad, "FILE.npy or FILE.csv");
}

#[test]
fn tangents_draws_each_input_beside_its_tangents() {
    let dir = scratch("tangents");
    let spec = ModelSpec::builder()
        .encoder([64, 5])
        .code_activation(Activation::Sigmoid)
        .variant(Variant::Contractive {
            lambda: 0.1,
            projections: None,
        })
        .build()
        .unwrap();
    let ckpt = model(&dir, "m.safetensors", &spec);
    let data = fixture(&dir, "x.npy", 6, 64, 5);
    let (png, out) = (dir.join("t.png"), dir.join("t.npy"));
    let text = ok(&hourglass(&[
        "tangents",
        "--model",
        s(&ckpt),
        "--data",
        s(&data),
        "--rows",
        "0,4",
        "--k",
        "3",
        "--png",
        s(&png),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("row 0: singular values "), "{text}");
    assert!(text.contains("row 4: singular values "), "{text}");
    let (w, h, color) = png_size(&png);
    assert_grid((w, h), 4, 2, 8); // input + 3 tangents, two rows
    assert_eq!(color, png::ColorType::Grayscale);
    let t = read_npy(&out).unwrap();
    assert_eq!((t.rows, t.cols), (6, 64));
    let norm: f32 = t.row(0).iter().map(|v| v * v).sum();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "unit tangents, got ‖v‖² = {norm}"
    );
    fails(
        &[
            "tangents",
            "--model",
            s(&ckpt),
            "--data",
            s(&data),
            "--rows",
            "6",
        ],
        "--rows 6 is past the end",
    );
    let odd = model(
        &dir,
        "odd.safetensors",
        &ModelSpec::builder().encoder([10, 2]).build().unwrap(),
    );
    let x10 = fixture(&dir, "x10.npy", 3, 10, 6);
    fails(
        &[
            "tangents",
            "--model",
            s(&odd),
            "--data",
            s(&x10),
            "--png",
            s(&png),
        ],
        "not a square image",
    );
}

#[test]
fn field_trains_a_denoiser_and_draws_its_arrows() {
    let dir = scratch("field");
    let out = dir.join("run");
    let text = ok(&hourglass(&[
        "field",
        "--toy",
        "spiral",
        "--n",
        "200",
        "--steps",
        "150",
        "--grid",
        "10",
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("for 150 steps: loss"), "{text}");
    assert!(text.contains("mean cosine"), "{text}");
    assert_eq!(
        png_size(&out.join("field.png")),
        (FIELD_PLOT_SIZE.0, FIELD_PLOT_SIZE.1, png::ColorType::Rgb)
    );
    let field = read_npy(&out.join("field.npy")).unwrap();
    assert_eq!((field.rows, field.cols), (100, 4));
    let points = read_npy(&out.join("points.npy")).unwrap();
    assert_eq!((points.rows, points.cols), (200, 2));
    // The saved model is the denoiser that drew the field.
    let mut ae = Autoencoder::load(out.join("model.safetensors"), Device::Cpu).unwrap();
    let grid: Vec<f32> = (0..100).flat_map(|i| field.row(i)[..2].to_vec()).collect();
    let r = ae
        .reconstruct(&Dataset::new(100, 2, grid).unwrap())
        .unwrap();
    for i in [0, 37, 99] {
        let want = field.row(i)[0] + field.row(i)[2];
        assert!((r.row(i)[0] - want).abs() < 1e-5, "point {i}");
    }
    fails(
        &["field", "--toy", "torus", "--out", s(&out)],
        "unknown toy data 'torus'",
    );
    fails(
        &["field", "--noise", "blur:1", "--out", s(&out)],
        "unknown noise 'blur'",
    );
}

#[test]
fn traverse_draws_one_row_per_latent_dimension() {
    let dir = scratch("traverse");
    let vae = ModelSpec::builder()
        .encoder([64, 16, 4])
        .variant(Variant::Vae {
            beta: 1.0,
            samples: 1,
        })
        .build()
        .unwrap();
    let ckpt = model(&dir, "vae.safetensors", &vae);
    let (png, out) = (dir.join("t.png"), dir.join("t.npy"));
    let text = ok(&hourglass(&[
        "traverse",
        "--model",
        s(&ckpt),
        "--dim",
        "0,3",
        "--steps",
        "5",
        "--png",
        s(&png),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(
        text.contains("2 sweeps of 5 steps from −3 to 3, the others at 0"),
        "{text}"
    );
    let (w, h, _) = png_size(&png);
    assert_grid((w, h), 5, 2, 8); // 5 steps wide, one row per dimension
    assert_eq!(read_npy(&out).unwrap().rows, 10);
    // Around the μ of a row of data.
    let data = fixture(&dir, "x.npy", 3, 64, 7);
    let text = ok(&hourglass(&[
        "traverse",
        "--model",
        s(&ckpt),
        "--dim",
        "1",
        "--row",
        "2",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]));
    assert!(text.contains("the others at the μ of row 2"), "{text}");
    fails(
        &[
            "traverse",
            "--model",
            s(&ckpt),
            "--dim",
            "4",
            "--png",
            s(&png),
        ],
        "--dim 4 is past the model's 4 latent dimensions",
    );
    let plain = model(
        &dir,
        "plain.safetensors",
        &ModelSpec::builder().encoder([64, 4]).build().unwrap(),
    );
    fails(
        &[
            "traverse",
            "--model",
            s(&plain),
            "--dim",
            "0",
            "--png",
            s(&png),
        ],
        "is not a VAE",
    );
}
