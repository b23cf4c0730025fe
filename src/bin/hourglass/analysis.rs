//! What trained models are for (`hourglass::analysis`): `neighbors` (semantic hashing and
//! precision@k), `tangents` (the top singular vectors of ∂h/∂x), `field` (a denoiser's vector
//! field on 2-D toy data) and `traverse` (a VAE's latent dimensions one at a time). Also the
//! label loading that `encode --png` shares.

use std::path::{Path, PathBuf};

use clap::Args;
use hourglass::analysis::field::{self, Toy};
use hourglass::analysis::hashing::{binarize, threshold_for};
use hourglass::analysis::traversal::traversal_codes;
use hourglass::analysis::{
    Metric, distance, neighbors, neighbors_within, precision_at_k, random_precision, tangents_at,
};
use hourglass::data::fashion::{self, Split};
use hourglass::data::npy::write_npy;
use hourglass::data::{Dataset, embedded};
use hourglass::infer::Autoencoder;
use hourglass::io::checkpoint;
use hourglass::model::{Noise, Variant};
use hourglass::viz::{Figure, Tile, image_side, short_number, write_field};
use hourglass::{Error, Result};

use crate::Ui;
use crate::outputs::Plan;
use crate::source::{DataArgs, DeviceArg, Source, inference_normalization, load_file};

pub const NEIGHBORS_EXAMPLES: &str = "\
Examples:
  hourglass neighbors --model hash/model.safetensors --k 10
      (the bundled test set, each image against the other 9,999, with labels: precision@10)
  hourglass neighbors --model hash/model.safetensors --dataset fashion-mnist --out nn.npy
      (the 10,000 test images as queries against the 60,000 training images)
  hourglass neighbors --model m.safetensors --index db.npy --query q.npy --metric euclidean \\
      --index-labels db-labels.npy --query-labels q-labels.npy --out nn.csv";

pub const TANGENTS_EXAMPLES: &str = "\
Examples:
  hourglass tangents --model cae/model.safetensors --rows 0,1,2 --k 5 --png tangents.png
  hourglass tangents --model cae/model.safetensors --data x.npy --rows 7 --k 3 --out t.npy";

pub const FIELD_EXAMPLES: &str = "\
Examples:
  hourglass field --out circle
  hourglass field --toy spiral --noise gaussian:0.1 --steps 4000 --out spiral";

pub const TRAVERSE_EXAMPLES: &str = "\
Examples:
  hourglass traverse --model vae/model.safetensors --dim 0,1,2,3 --steps 9 --png dims.png
  hourglass traverse --model vae/model.safetensors --dim 5 --row 0 --range 2 --png boot.png
      (dimension 5 swept around the μ of row 0, an ankle boot, the others held there)";

/// The most neighbours printed per command unless --show asks for more.
const SHOW: usize = 10;

/// The labels of what [`Source::load_one`] reads, when the source has them: the bundled set's,
/// or the test split's of a named set.
pub fn source_labels(source: &Source) -> Result<Option<Vec<u32>>> {
    match source {
        Source::Bundled => embedded::fashion_mnist_test_labels().map(Some),
        Source::Named { dir, .. } => fashion::load_labels(dir, Split::Test).map(Some),
        Source::File(_) => Ok(None),
    }
}

/// The class names of a source's labels (Fashion-MNIST's; none for files and MNIST, whose
/// labels are their own names).
pub fn class_names(source: &Source) -> &'static [&'static str] {
    match source {
        Source::Bundled => &embedded::CLASS_NAMES,
        Source::Named { name, .. } if name == "fashion-mnist" => &embedded::CLASS_NAMES,
        _ => &[],
    }
}

/// Labels for `rows` rows: from `file` when given, else `auto`; checked to be one per row.
fn labels_for(
    file: Option<&str>,
    auto: Option<Vec<u32>>,
    rows: usize,
    what: &str,
) -> Result<Option<Vec<u32>>> {
    let labels = match file {
        Some(f) => Some(hourglass::data::load_labels(Path::new(f))?),
        None => auto,
    };
    if let Some(l) = &labels
        && l.len() != rows
    {
        return Err(Error::Config(format!(
            "{} labels for the {rows} rows of the {what}",
            l.len()
        )));
    }
    Ok(labels)
}

#[derive(Args)]
pub struct NeighborsArgs {
    /// Checkpoint of the model.
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    /// The rows to search among, a data file (any format --data reads). Default: the data
    /// flags' set (for --dataset fashion-mnist or mnist, its train split).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["data", "dataset"])]
    index: Option<String>,
    /// The rows to find neighbours for, a data file. Default: the test split of --dataset;
    /// otherwise every index row against all the others (leave-one-out).
    #[arg(long, value_name = "PATH")]
    query: Option<String>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// hamming (codes thresholded into bits, as encode --binary) or euclidean (the codes).
    #[arg(long, default_value = "hamming", value_name = "hamming|euclidean")]
    metric: String,
    /// Bit threshold for --metric hamming [default: 0.5 for a sigmoid code, else 0].
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = crate::limits::finite_f32)]
    threshold: Option<f32>,
    /// Labels of the index rows (IDX label file, or a one-column .npy/.csv); automatic for the
    /// bundled set and --dataset.
    #[arg(long, value_name = "PATH")]
    index_labels: Option<String>,
    /// Labels of the query rows; automatic for --dataset and leave-one-out.
    #[arg(long, value_name = "PATH")]
    query_labels: Option<String>,
    /// Write every query's neighbours (index rows, nearest first): FILE.npy (float32
    /// [queries, k]) or FILE.csv (a header, then `query,n1,...,nk` per line).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Queries whose neighbours are printed.
    #[arg(long, default_value_t = SHOW, value_name = "N")]
    show: usize,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
}

/// A set of rows with its labels and a name for messages.
struct Rows {
    data: Dataset,
    labels: Option<Vec<u32>>,
    what: String,
}

pub fn run_neighbors(args: NeighborsArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .data_file("--index", args.index.as_deref())
        .data_file("--query", args.query.as_deref())
        .data_file("--index-labels", args.index_labels.as_deref())
        .data_file("--query-labels", args.query_labels.as_deref())
        .output("--out", args.out.as_deref(), &["npy", "csv"])
        .check()?;
    let metric = Metric::parse(&args.metric)?;
    if args.k == 0 {
        return Err(Error::Config("--k must be at least 1".into()));
    }
    if let Some(out) = &args.out {
        out_format(out)?;
    }
    let (spec, params) = checkpoint::load(&args.model)?;
    let source = args.data.source()?;
    // The index: --index, else the data flags' set (a named set's train split).
    let index = match (&args.index, &source) {
        (Some(file), _) => Rows {
            data: load_file(file)?,
            labels: None,
            what: file.clone(),
        },
        (None, Source::Named { dir, name }) => {
            let l = fashion::load(dir, Split::Train)?;
            Rows {
                data: l.images,
                labels: Some(l.labels),
                what: format!("the {name} train split"),
            }
        }
        (None, _) => Rows {
            data: source.load_one(ui)?,
            labels: source_labels(&source)?,
            what: source.describe(),
        },
    };
    let index = Rows {
        labels: labels_for(
            args.index_labels.as_deref(),
            index.labels,
            index.data.rows,
            &index.what,
        )?,
        ..index
    };
    // The queries: --query, else a named set's test split, else leave-one-out.
    let query = match (&args.query, &args.index, &source) {
        (Some(file), _, _) => Some(Rows {
            data: load_file(file)?,
            labels: None,
            what: file.clone(),
        }),
        (None, None, Source::Named { name, .. }) => Some(Rows {
            data: source.load_one(ui)?,
            labels: source_labels(&source)?,
            what: format!("the {name} test split"),
        }),
        _ => None,
    };
    let query = match query {
        Some(q) => Some(Rows {
            labels: labels_for(args.query_labels.as_deref(), q.labels, q.data.rows, &q.what)?,
            ..q
        }),
        None if args.query_labels.is_some() => {
            return Err(Error::Config(
                "--query-labels needs --query (without it every index row is a query, with \
                 the index labels)"
                    .into(),
            ));
        }
        None => None,
    };

    let mut ae = Autoencoder::new(spec.clone(), params, args.device.open(ui, "encoding")?)?;
    let n = inference_normalization(&args.data, &args.model, Some(&index.data), ui)?;
    let encode = |ae: &mut Autoencoder, mut d: Dataset| -> Result<Dataset> {
        if let Some(n) = &n {
            n.apply(&mut d)?;
        }
        let codes = ae.encode(&d)?;
        Ok(match metric {
            Metric::Hamming => binarize(
                &codes,
                args.threshold
                    .unwrap_or_else(|| threshold_for(spec.code_activation)),
            ),
            Metric::Euclidean => codes,
        })
    };
    let index_codes = encode(&mut ae, index.data)?;
    let query_codes = match &query {
        Some(q) => Some(encode(&mut ae, q.data.clone())?),
        None => None,
    };
    let nn = match &query_codes {
        Some(q) => neighbors(&index_codes, q, args.k, metric)?,
        None => neighbors_within(&index_codes, args.k, metric)?,
    };
    let qcodes = query_codes.as_ref().unwrap_or(&index_codes);
    let qlabels = match &query {
        Some(q) => q.labels.as_deref(),
        None => index.labels.as_deref(),
    };
    let names = class_names(&source);
    let show_label = |labels: Option<&[u32]>, i: usize| match labels {
        Some(l) => match names.get(l[i] as usize) {
            Some(name) => format!(" [{name}]"),
            None => format!(" [{}]", l[i]),
        },
        None => String::new(),
    };
    for (q, row) in nn.iter().enumerate().take(args.show) {
        let list: Vec<String> = row
            .iter()
            .map(|&i| {
                let d = distance(qcodes.row(q), index_codes.row(i), metric);
                let d = match metric {
                    Metric::Hamming => format!("{d}"),
                    Metric::Euclidean => format!("{d:.4}"),
                };
                format!("{i}{} d={d}", show_label(index.labels.as_deref(), i))
            })
            .collect();
        outln!("query {q}{}: {}", show_label(qlabels, q), list.join(", "));
    }
    if args.show > 0 && nn.len() > args.show {
        ui.say(&format!(
            "... {} more queries{}",
            nn.len() - args.show,
            if args.out.is_some() { " in --out" } else { "" }
        ));
    }
    let queries = match &query {
        Some(q) => format!("{} queries from {}", nn.len(), q.what),
        None => format!("{} queries, each against the other rows", nn.len()),
    };
    let code = match metric {
        Metric::Hamming => format!("{}-bit codes", spec.code_dim()),
        Metric::Euclidean => format!("{}-number codes", spec.code_dim()),
    };
    ui.say(&format!(
        "{} nearest by {} distance on {code}: {queries} in {} ({} rows)",
        args.k,
        metric.name(),
        index.what,
        index_codes.rows
    ));
    match (&index.labels, qlabels) {
        (Some(il), Some(ql)) => {
            let p = precision_at_k(&nn, il, ql)?;
            let chance = random_precision(il, ql, query.is_none())?;
            outln!(
                "precision@{}: {p:.4} (random neighbours: {chance:.4})",
                args.k
            );
        }
        _ => ui.note(
            "no labels for both sides, so no precision@k (see --index-labels, --query-labels)",
        ),
    }
    if let Some(out) = &args.out {
        write_neighbors(out, &nn, args.k)?;
        ui.say(&format!(
            "wrote {}: {} rows of {} neighbours",
            out.display(),
            nn.len(),
            args.k
        ));
    }
    Ok(())
}

/// `npy` or `csv`, from the name of --out.
fn out_format(path: &Path) -> Result<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .as_deref()
    {
        Some("npy") => Ok("npy"),
        Some("csv") => Ok("csv"),
        _ => Err(Error::Config(format!(
            "--out {}: write neighbours as FILE.npy or FILE.csv",
            path.display()
        ))),
    }
}

fn write_neighbors(path: &Path, nn: &[Vec<usize>], k: usize) -> Result<()> {
    if out_format(path)? == "npy" {
        if let Some(&big) = nn.iter().flatten().find(|&&i| i >= 1 << 24) {
            return Err(Error::Config(format!(
                "row {big} is past what float32 holds exactly (2^24); write --out FILE.csv"
            )));
        }
        let values: Vec<f32> = nn.iter().flatten().map(|&i| i as f32).collect();
        return write_npy(path, nn.len(), k, &values);
    }
    let mut text = String::from("query");
    for j in 1..=k {
        text.push_str(&format!(",n{j}"));
    }
    text.push('\n');
    for (q, row) in nn.iter().enumerate() {
        text.push_str(&q.to_string());
        for i in row {
            text.push_str(&format!(",{i}"));
        }
        text.push('\n');
    }
    hourglass::io::write_atomic(path, text.as_bytes())
}

#[derive(Args)]
pub struct TangentsArgs {
    /// Checkpoint of the model (any but a VAE; contractive ones have the clearest tangents).
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    /// Rows of the data (0-based) to take tangents at.
    #[arg(
        long,
        value_name = "R,R,...",
        value_delimiter = ',',
        default_value = "0,1,2,3"
    )]
    rows: Vec<usize>,
    /// Tangent directions per row: the top k right singular vectors of ∂h/∂x.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Draw each row's input followed by its k tangents (grey is 0, each tangent scaled to its
    /// largest component); square images only.
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Write the tangents as a float32 .npy matrix [rows·k, features], row by row (zeros past
    /// a Jacobian's rank).
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run_tangents(args: TangentsArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .output("--out", args.out.as_deref(), &["npy"])
        .output("--png", args.png.as_deref(), &["png"])
        .check()?;
    if args.k == 0 || args.rows.is_empty() {
        return Err(Error::Config(
            "--k and --rows need at least one value each".into(),
        ));
    }
    let (spec, params) = checkpoint::load(&args.model)?;
    if matches!(spec.variant, Variant::Vae { .. }) {
        return Err(Error::Config(
            "tangents need a deterministic encoder; a VAE's μ head is not supported".into(),
        ));
    }
    let d = spec.input_dim();
    let side = match (&args.png, image_side(d)) {
        (Some(png), None) => {
            return Err(Error::Config(format!(
                "{}: the model's {d} features are not a square image; write --out FILE.npy \
                 instead",
                png.display()
            )));
        }
        (_, side) => side,
    };
    let source = args.data.source()?;
    let data = source.load_one(ui)?;
    if let Some(&bad) = args.rows.iter().find(|&&r| r >= data.rows) {
        return Err(Error::Config(format!(
            "--rows {bad} is past the end of {} ({} rows)",
            source.describe(),
            data.rows
        )));
    }
    let picked: Vec<f32> = args
        .rows
        .iter()
        .flat_map(|&r| data.row(r).to_vec())
        .collect();
    let original = Dataset::new(args.rows.len(), data.cols, picked)?;
    let mut inputs = original.clone();
    if let Some(n) = inference_normalization(&args.data, &args.model, Some(&data), ui)? {
        n.apply(&mut inputs)?;
    }
    let ae = Autoencoder::new(
        spec.clone(),
        params,
        args.device.open(ui, "computing tangents")?,
    )?;
    let all = tangents_at(&ae, &inputs, args.k)?;
    for (&r, (sigma, _)) in args.rows.iter().zip(&all) {
        let values: Vec<String> = sigma.iter().map(|s| format!("{s:.5}")).collect();
        let short = if sigma.len() < args.k {
            format!(" (rank {} < k)", sigma.len())
        } else {
            String::new()
        };
        outln!("row {r}: singular values {}{short}", values.join(", "));
    }
    if let Some(out) = &args.out {
        let mut values = Vec::with_capacity(all.len() * args.k * d);
        for (_, vectors) in &all {
            for j in 0..args.k {
                match vectors.get(j) {
                    Some(v) => values.extend_from_slice(v),
                    None => values.extend(std::iter::repeat_n(0.0, d)),
                }
            }
        }
        write_npy(out, all.len() * args.k, d, &values)?;
        ui.say(&format!(
            "wrote {}: {} tangents of {d} features ({} rows × k = {})",
            out.display(),
            all.len() * args.k,
            all.len(),
            args.k
        ));
    }
    if let (Some(png), Some(side)) = (&args.png, side) {
        let grey = vec![0.5; d];
        let mut tiles: Vec<Vec<Vec<f32>>> = Vec::new();
        for (_, vectors) in &all {
            let mut row = Vec::new();
            for j in 0..args.k {
                row.push(match vectors.get(j) {
                    Some(v) => {
                        let m = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                        let m = if m > 0.0 { m } else { 1.0 };
                        v.iter().map(|x| 0.5 + 0.5 * x / m).collect()
                    }
                    None => grey.clone(),
                });
            }
            tiles.push(row);
        }
        let mut figure = Figure::new(side).title(format!(
            "tangents: the input, then its {} leading directions by singular value σ",
            args.k
        ));
        for (i, (&r, (sigma, _))) in args.rows.iter().zip(&all).enumerate() {
            let input = Tile {
                values: original.row(i),
                caption: Some("input".into()),
            };
            let directions = tiles[i].iter().enumerate().map(|(j, t)| Tile {
                values: t,
                caption: Some(match sigma.get(j) {
                    Some(&s) => format!("σ {}", short_number(s)),
                    None => "rank".into(),
                }),
            });
            figure.row(
                Some(format!("row {r}")),
                std::iter::once(input).chain(directions),
            );
        }
        let grid = figure.render()?;
        grid.write_png(png)?;
        ui.say(&format!(
            "wrote {}: {} inputs, each followed by its {} tangents ({}×{} pixels)",
            png.display(),
            all.len(),
            args.k,
            grid.width,
            grid.height
        ));
    }
    Ok(())
}

#[derive(Args)]
pub struct FieldArgs {
    /// Folder for model.safetensors, field.png, points.npy (the toy data, [n, 2]) and
    /// field.npy ([grid², 4]: x, y and r(x) − x).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The toy data: circle (the unit circle) or spiral (two turns).
    #[arg(long, default_value = "circle", value_name = "circle|spiral")]
    toy: String,
    /// Toy points.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Standard deviation of the toy points around their curve.
    #[arg(long, default_value_t = 0.05, value_name = "F", value_parser = crate::limits::non_negative_f32)]
    jitter: f32,
    /// The denoiser's training corruption: gaussian:σ, mask:ν or saltpepper:ν.
    #[arg(long, default_value = "gaussian:0.2", value_name = "KIND:F")]
    noise: String,
    /// Adam steps (batches of 64, learning rate 3e-3).
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Arrows per side of the grid.
    #[arg(long, default_value_t = 25, value_name = "N")]
    grid: usize,
    /// Seed of the toy data and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run_field(args: FieldArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .folder(
            "--out",
            &args.out,
            &["model.safetensors", "points.npy", "field.npy", "field.png"],
        )
        .check()?;
    let toy = Toy::parse(&args.toy)?;
    let noise = Noise::parse(&args.noise)?;
    if !(2..=200).contains(&args.grid) {
        return Err(Error::Config(format!(
            "--grid must be between 2 and 200, got {}",
            args.grid
        )));
    }
    let data = field::toy_data(toy, args.n, args.jitter, args.seed)?;
    let device = args.device.open(ui, "training")?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let (mut model, loss) = field::train_denoiser(&data, noise, args.steps, args.seed, &device)?;
    ui.say(&format!(
        "trained a 2→64→64→64→2 denoiser ({}) on {} {} points for {} steps: loss {loss}",
        args.noise,
        args.n,
        toy.name(),
        args.steps
    ));
    let points = field::grid(&data, args.grid, 0.5)?;
    let vectors = field::vector_field(&mut model, &points)?;
    let model_path = args.out.join("model.safetensors");
    model.save(&model_path)?;
    write_npy(&args.out.join("points.npy"), data.rows, 2, &data.values)?;
    let rows: Vec<f32> = points
        .values
        .chunks_exact(2)
        .zip(&vectors)
        .flat_map(|(p, v)| [p[0], p[1], v[0], v[1]])
        .collect();
    write_npy(&args.out.join("field.npy"), points.rows, 4, &rows)?;
    let title = format!("r(x) − x of a denoiser ({}), {}", args.noise, toy.name());
    let png = args.out.join("field.png");
    write_field(&png, &points, &vectors, &data, &title)?;
    // Near but off the data: beyond the jitter, within the corruption's reach.
    let near = (2.0 * args.jitter.max(0.01), 0.5);
    if let Some(cos) = field::alignment(&points, &vectors, &data, near) {
        ui.say(&format!(
            "mean cosine between r(x) − x and the way to the nearest data point, over grid \
             points {:.2}–{:.2} from the data: {cos:.3}",
            near.0, near.1
        ));
    }
    ui.say(&format!(
        "wrote {}, {} and the points and field as .npy in {}",
        png.display(),
        model_path.display(),
        args.out.display()
    ));
    Ok(())
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "png"]))]
pub struct TraverseArgs {
    /// Checkpoint of a VAE.
    #[arg(long, value_name = "CKPT")]
    model: PathBuf,
    /// Latent dimensions (0-based) to sweep, one picture row each.
    #[arg(long, value_name = "J,J,...", value_delimiter = ',', required = true)]
    dim: Vec<usize>,
    /// Values per sweep.
    #[arg(long, default_value_t = 9)]
    steps: usize,
    /// Each sweep runs from −range to +range (in units of the prior's σ).
    #[arg(long, default_value_t = 3.0, value_name = "F", value_parser = crate::limits::positive_f32)]
    range: f32,
    /// Hold the other dimensions at the μ of this row of the data, instead of at 0.
    #[arg(long, value_name = "R")]
    row: Option<usize>,
    /// Draw the decoded rows, one sweep per row of the picture (square images only).
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Write the decoded rows as a float32 .npy matrix [dims·steps, features].
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run_traverse(args: TraverseArgs, ui: Ui) -> Result<()> {
    Plan::new()
        .model(&args.model)
        .data(&args.data)
        .output("--out", args.out.as_deref(), &["npy"])
        .output("--png", args.png.as_deref(), &["png"])
        .check()?;
    if !(1..=1000).contains(&args.steps) {
        return Err(Error::Config(format!(
            "--steps must be between 1 and 1000, got {}",
            args.steps
        )));
    }
    let (spec, params) = checkpoint::load(&args.model)?;
    if !matches!(spec.variant, Variant::Vae { .. }) {
        return Err(Error::Config(format!(
            "traverse sweeps a VAE's latent dimensions around its prior, but {} is not a VAE; \
             train one with --variant vae, or walk between two inputs with sample --interpolate",
            args.model.display()
        )));
    }
    let c = spec.code_dim();
    if let Some(&bad) = args.dim.iter().find(|&&j| j >= c) {
        return Err(Error::Config(format!(
            "--dim {bad} is past the model's {c} latent dimensions (0-based)"
        )));
    }
    if let Some(png) = &args.png
        && image_side(spec.input_dim()).is_none()
    {
        return Err(Error::Config(format!(
            "{}: the model's {} features are not a square image; write --out FILE.npy instead",
            png.display(),
            spec.input_dim()
        )));
    }
    let mut ae = Autoencoder::new(spec.clone(), params, args.device.open(ui, "decoding")?)?;
    let (base, normalization, around) = match args.row {
        None => (
            None,
            inference_normalization(&args.data, &args.model, None, ui)?,
            "the others at 0".to_string(),
        ),
        Some(r) => {
            let source = args.data.source()?;
            let mut data = source.load_one(ui)?;
            if r >= data.rows {
                return Err(Error::Config(format!(
                    "--row {r} is past the end of {} ({} rows)",
                    source.describe(),
                    data.rows
                )));
            }
            let n = inference_normalization(&args.data, &args.model, Some(&data), ui)?;
            if let Some(n) = &n {
                n.apply(&mut data)?;
            }
            let mu = ae.encode(&Dataset::new(1, data.cols, data.row(r).to_vec())?)?;
            (
                Some(mu.values),
                n,
                format!("the others at the μ of row {r}"),
            )
        }
    };
    let zeros = vec![0.0; c];
    let codes = traversal_codes(
        base.as_deref().unwrap_or(&zeros),
        &args.dim,
        args.steps,
        args.range,
    )?;
    let mut decoded = ae.decode(&codes)?;
    if let Some(n) = &normalization {
        n.invert(&mut decoded)?;
    }
    let what = format!(
        "{} sweeps of {} steps from −{r} to {r}, {around}",
        args.dim.len(),
        args.steps,
        r = args.range
    );
    if let Some(out) = &args.out {
        write_npy(out, decoded.rows, decoded.cols, &decoded.values)?;
        ui.say(&format!("wrote {}: {what}", out.display()));
    }
    if let Some(png) = &args.png {
        let side = image_side(decoded.cols).expect("checked above");
        let mut figure = Figure::new(side).title(what.clone());
        for (k, &dim) in args.dim.iter().enumerate() {
            let rows = k * args.steps..(k + 1) * args.steps;
            figure.row(
                Some(format!("z{dim}")),
                rows.map(|i| Tile {
                    values: decoded.row(i),
                    caption: Some(short_number(codes.row(i)[dim])),
                }),
            );
        }
        let grid = figure.render()?;
        grid.write_png(png)?;
        ui.say(&format!(
            "wrote {}: {what} ({}×{} pixels)",
            png.display(),
            grid.width,
            grid.height
        ));
    }
    Ok(())
}
