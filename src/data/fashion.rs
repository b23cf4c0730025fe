//! The full Fashion-MNIST (60,000 training and 10,000 test images) from a folder of IDX files,
//! as Zalando distributes them and Debian's `dataset-fashion-mnist` installs them under
//! [`DEFAULT_DIR`]. MNIST uses the same file names and format, so the same loader reads it.
//!
//! In a folder, split `train` is `train-images-idx3-ubyte` with `train-labels-idx1-ubyte`, and
//! split `test` is `t10k-images-idx3-ubyte` with `t10k-labels-idx1-ubyte`; each may be gzipped
//! (`.gz`) and may spell the last dash as a dot (`train-images.idx3-ubyte`, as some mirrors do).

use std::path::{Path, PathBuf};

use super::Dataset;
use super::idx::{read_idx, read_idx_labels};
use crate::error::{Error, Result};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// One of the two splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
    /// The file-name prefix of the split.
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// The images of a split and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled {
    /// One row per image, pixels scaled to [0, 1].
    pub images: Dataset,
    /// The class of each image.
    pub labels: Vec<u32>,
}

/// The file of `split` holding `what` (`images-idx3` or `labels-idx1`) in `dir`, under any of
/// the accepted spellings; the error lists what was looked for and how to get the files.
fn find(dir: &Path, split: Split, what: &str) -> Result<PathBuf> {
    let prefix = split.prefix();
    let (kind, dims) = what.split_once('-').unwrap_or((what, ""));
    let stems = [
        format!("{prefix}-{kind}-{dims}-ubyte"),
        format!("{prefix}-{kind}.{dims}-ubyte"),
    ];
    let candidates: Vec<PathBuf> = stems
        .iter()
        .flat_map(|s| [dir.join(format!("{s}.gz")), dir.join(s)])
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::bad_file(
                dir,
                format!(
                    "no {stem}[.gz] here. Install Debian's dataset-fashion-mnist package \
                     (files in {DEFAULT_DIR}), or download the four IDX files from \
                     https://github.com/zalandoresearch/fashion-mnist and give their folder as the data directory",
                    stem = stems[0]
                ),
            )
        })
}

/// The images of `split` in `dir` (gzipped or not), pixels scaled to [0, 1].
pub fn load_images(dir: &Path, split: Split) -> Result<Dataset> {
    read_idx(&find(dir, split, "images-idx3")?)
}

/// The labels of `split` in `dir` (gzipped or not).
pub fn load_labels(dir: &Path, split: Split) -> Result<Vec<u32>> {
    read_idx_labels(&find(dir, split, "labels-idx1")?)
}

/// Images and labels of `split` in `dir`, checked to be of equal count.
pub fn load(dir: &Path, split: Split) -> Result<Labelled> {
    let images = load_images(dir, split)?;
    let labels = load_labels(dir, split)?;
    if labels.len() != images.rows {
        return Err(Error::bad_file(
            dir,
            format!(
                "the {} split has {} images but {} labels",
                split.prefix(),
                images.rows,
                labels.len()
            ),
        ));
    }
    Ok(Labelled { images, labels })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hourglass-fashion-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn idx(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, code, dims.len() as u8];
        out.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
        out.extend(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_gzipped_and_plain_mnist_style_folders() {
        let dir = scratch("mixed");
        // Train split gzipped with the usual names; test split plain with the dotted spelling.
        let images = idx(
            0x08,
            &[3, 2, 2],
            &[0, 255, 0, 255, 51, 51, 51, 51, 0, 0, 0, 0],
        );
        fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
        fs::write(
            dir.join("train-labels-idx1-ubyte.gz"),
            gzip(&idx(0x08, &[3], &[7, 0, 9])),
        )
        .unwrap();
        fs::write(
            dir.join("t10k-images.idx3-ubyte"),
            idx(0x08, &[1, 2, 2], &[255; 4]),
        )
        .unwrap();
        fs::write(dir.join("t10k-labels.idx1-ubyte"), idx(0x08, &[1], &[4])).unwrap();

        let train = load(&dir, Split::Train).unwrap();
        assert_eq!((train.images.rows, train.images.cols), (3, 4));
        assert_eq!(train.images.row(1), [0.2; 4]);
        assert_eq!(train.labels, [7, 0, 9]);
        let test = load(&dir, Split::Test).unwrap();
        assert_eq!(test.images.values, [1.0; 4]);
        assert_eq!(test.labels, [4]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_say_how_to_get_them() {
        let dir = scratch("empty");
        let e = load_images(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("no train-images-idx3-ubyte[.gz]"), "{e}");
        assert!(e.contains("give their folder as the data directory"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn label_count_must_match() {
        let dir = scratch("mismatch");
        fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            idx(0x08, &[2, 1, 1], &[0, 0]),
        )
        .unwrap();
        fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            idx(0x08, &[3], &[0, 1, 2]),
        )
        .unwrap();
        let e = load(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("2 images but 3 labels"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_installed_data_set_if_present() {
        let dir = Path::new(DEFAULT_DIR);
        if !dir.join("train-images-idx3-ubyte.gz").exists() {
            eprintln!("note: Fashion-MNIST not found under {DEFAULT_DIR}; skipping");
            return;
        }
        let train = load(dir, Split::Train).unwrap();
        assert_eq!((train.images.rows, train.images.cols), (60_000, 784));
        assert!(train.labels.iter().all(|&l| l < 10));
        assert_eq!(load_images(dir, Split::Test).unwrap().rows, 10_000);
    }
}
