//! IDX files, the format of MNIST and Fashion-MNIST.
//!
//! An IDX file starts with four bytes: two zeros, a type code and the number of dimensions n.
//! Then come n big-endian u32 dimension sizes, then the values, big-endian, in row-major order.
//! Type codes: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64. The files are usually
//! distributed gzipped (`t10k-images-idx3-ubyte.gz`).
//!
//! The first dimension counts the examples and the rest are flattened into the columns, so
//! 10000 images of 28×28 pixels become a 10000×784 data set. u8 values (pixels) are scaled to
//! [0, 1] by dividing by 255; every other type is converted to f32 unscaled.

use std::path::Path;

use super::Dataset;
use crate::error::{Error, Result};
use crate::io::read::{self, Limits};

/// Reads an IDX file (gzipped or not) into a [`Dataset`]: first dimension = rows, the others
/// flattened into columns, u8 scaled to [0, 1], other types converted unscaled.
pub fn read_idx(path: &Path) -> Result<Dataset> {
    read_idx_limited(path, &Limits::new(None, ""))
}

/// [`read_idx`] within `limits`.
pub(crate) fn read_idx_limited(path: &Path, limits: &Limits) -> Result<Dataset> {
    let bytes = read_bounded(path, limits)?;
    parse_idx(&bytes, path)
}

/// Reads a 1-D u8 IDX label file (gzipped or not), such as `t10k-labels-idx1-ubyte.gz`.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_bounded(path, &Limits::new(None, ""))?;
    parse_idx_labels(&bytes, path)
}

/// The bytes of an IDX file, read as its header describes: the four magic bytes, the
/// dimensions, then exactly the data they call for once its values (4 bytes each in memory)
/// fit `limits`. A file that goes on past that is refused.
fn read_bounded(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    let mut input = read::open(path)?;
    let mut bytes = input.up_to(4)?;
    if let [0, 0, _, ndims] = bytes[..] {
        bytes.extend(input.up_to(4 * usize::from(ndims))?);
    }
    let (ty, dims, _, needed) = parse_header(&bytes, path)?;
    let what = format!("{} {} values", shape_text(&dims), ty.name());
    let values = (needed / ty.size()).saturating_mul(4);
    limits.admit(path, &what, needed, values)?;
    bytes.extend(input.up_to(needed)?);
    if bytes.len() == needed + 4 + 4 * dims.len() {
        input.end()?;
    }
    Ok(bytes)
}

/// Parses the bytes of an IDX file into a [`Dataset`]; `path` only names the file in errors.
///
/// Rejects a bad magic (nonzero first two bytes), an unknown type code, zero dimensions, a
/// header cut short, dimensions whose product overflows, rows of zero values, and data shorter
/// or longer than the dimensions say. A first dimension of 0 gives an empty data set.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let file = parse_layout(bytes, path)?;
    let rows = file.dims[0];
    // Cannot overflow: the product of all dimensions was checked by `parse_layout`.
    let cols: usize = file.dims[1..].iter().product();
    if cols == 0 && rows > 0 {
        return Err(Error::bad_file(
            path,
            format!("dimensions {} give rows with no values", file.shape()),
        ));
    }
    Dataset::new(rows, cols, file.ty.decode(file.data))
}

/// Parses the bytes of a 1-D u8 IDX label file; `path` only names the file in errors.
///
/// Rejects everything [`parse_idx`] rejects, and any file that is not 1-D u8.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>> {
    let file = parse_layout(bytes, path)?;
    if file.ty != IdxType::U8 || file.dims.len() != 1 {
        return Err(Error::bad_file(
            path,
            format!(
                "not a label file: expected 1-D u8 data, found {} {}",
                file.shape(),
                file.ty.name()
            ),
        ));
    }
    Ok(file.data.iter().map(|&b| u32::from(b)).collect())
}

/// An IDX element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdxType {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxType {
    /// The type a header code names, if any.
    fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// The type's name in messages.
    fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }

    /// Converts big-endian elements (a whole number of them) to f32; u8 is scaled by 1/255.
    fn decode(self, data: &[u8]) -> Vec<f32> {
        fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
            data.as_chunks::<N>().0.iter().map(|&c| f(c)).collect()
        }
        match self {
            IdxType::U8 => data.iter().map(|&b| f32::from(b) / 255.0).collect(),
            IdxType::I8 => data.iter().map(|&b| f32::from(b as i8)).collect(),
            IdxType::I16 => each(data, |c| f32::from(i16::from_be_bytes(c))),
            IdxType::I32 => each(data, |c| i32::from_be_bytes(c) as f32),
            IdxType::F32 => each(data, f32::from_be_bytes),
            IdxType::F64 => each(data, |c| f64::from_be_bytes(c) as f32),
        }
    }
}

/// A checked IDX file: its type, dimensions, and exactly the data they call for.
struct IdxFile<'a> {
    ty: IdxType,
    dims: Vec<usize>,
    data: &'a [u8],
}

impl IdxFile<'_> {
    /// The dimensions as `10000×28×28`.
    fn shape(&self) -> String {
        shape_text(&self.dims)
    }
}

fn shape_text(dims: &[usize]) -> String {
    let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
    dims.join("×")
}

/// Checks the header against the file length and splits off the data.
fn parse_layout<'a>(bytes: &'a [u8], path: &Path) -> Result<IdxFile<'a>> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let (ty, dims, header_len, needed) = parse_header(bytes, path)?;
    let data = &bytes[header_len..];
    if data.len() < needed {
        return Err(bad(format!(
            "dimensions {} of {} need {needed} bytes of data but the file has {}",
            shape_text(&dims),
            ty.name(),
            data.len()
        )));
    }
    if data.len() > needed {
        return Err(bad(format!(
            "file has {} bytes after the data ({} {} values need {needed})",
            data.len() - needed,
            shape_text(&dims),
            ty.name()
        )));
    }
    Ok(IdxFile { ty, dims, data })
}

/// The type, dimensions, header length and data bytes the header at the start of `bytes`
/// declares.
fn parse_header(bytes: &[u8], path: &Path) -> Result<(IdxType, Vec<usize>, usize, usize)> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let Some(&[zero0, zero1, code, ndims]) = bytes.get(..4) else {
        return Err(bad(format!(
            "file is too short for an IDX header ({} bytes, need at least 4)",
            bytes.len()
        )));
    };
    if (zero0, zero1) != (0, 0) {
        return Err(bad(format!(
            "not an IDX file: bad magic {zero0:02x} {zero1:02x} (expected 00 00)"
        )));
    }
    let ty = IdxType::from_code(code).ok_or_else(|| {
        bad(format!(
            "unknown IDX type code 0x{code:02x} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)"
        ))
    })?;
    if ndims == 0 {
        return Err(bad("IDX header declares zero dimensions".into()));
    }
    let header_len = 4 + 4 * usize::from(ndims);
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(bad(format!(
            "file ends inside the header: {ndims} dimensions need {header_len} header bytes \
             but the file has {}",
            bytes.len()
        )));
    };
    let dims: Vec<usize> = dim_bytes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|&d| u32::from_be_bytes(d) as usize)
        .collect();
    let needed = dims
        .iter()
        .try_fold(ty.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {} overflow", shape_text(&dims))))?;
    Ok((ty, dims, header_len, needed))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const FASHION: &str = "/usr/share/datasets/fashion-mnist";

    /// A fresh path under the temporary directory, unique to this process and call.
    fn temp_path(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("hourglass-idx-{}-{n}-{name}", std::process::id()))
    }

    /// An IDX file of type `code`, dimensions `dims` and raw big-endian `data`.
    fn idx(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, code, dims.len() as u8];
        out.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
        out.extend(data);
        out
    }

    /// Concatenates encoded values, as in `cat([1i16, 2].map(i16::to_be_bytes))`.
    fn cat<const N: usize>(chunks: impl IntoIterator<Item = [u8; N]>) -> Vec<u8> {
        chunks.into_iter().flatten().collect()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn parse(bytes: &[u8]) -> Result<Dataset> {
        parse_idx(bytes, Path::new("test-idx3-ubyte"))
    }

    /// The error message of parsing `bytes`, which must fail.
    fn error(bytes: &[u8]) -> String {
        let result = parse(bytes);
        result.expect_err("malformed file accepted").to_string()
    }

    #[test]
    fn u8_images_are_scaled_and_flattened() {
        let d = parse(&idx(0x08, &[2, 2, 2], &[0, 255, 51, 102, 0, 0, 0, 255])).unwrap();
        assert_eq!((d.rows, d.cols), (2, 4));
        assert_eq!(d.values, [0.0, 1.0, 0.2, 0.4, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn other_types_are_unscaled() {
        let values = |code, data: Vec<u8>| parse(&idx(code, &[2], &data)).unwrap().values;
        assert_eq!(values(0x09, vec![0xff, 5]), [-1.0, 5.0]);
        assert_eq!(
            values(0x0B, cat([-300i16, 7].map(i16::to_be_bytes))),
            [-300.0, 7.0]
        );
        assert_eq!(
            values(0x0C, cat([-70000i32, 3].map(i32::to_be_bytes))),
            [-70000.0, 3.0]
        );
        assert_eq!(
            values(0x0D, cat([1.5f32, -0.25].map(f32::to_be_bytes))),
            [1.5, -0.25]
        );
        assert_eq!(
            values(0x0E, cat([2.5f64, 1e3].map(f64::to_be_bytes))),
            [2.5, 1000.0]
        );
    }

    #[test]
    fn zero_rows_is_empty() {
        let d = parse(&idx(0x08, &[0, 28, 28], &[])).unwrap();
        assert_eq!((d.rows, d.cols, d.values.len()), (0, 784, 0));
    }

    #[test]
    fn reads_gzipped_and_plain_files() {
        let bytes = idx(0x08, &[1, 3], &[0, 255, 0]);
        for (name, contents) in [("a-ubyte.gz", gzip(&bytes)), ("b-ubyte", bytes.clone())] {
            let path = temp_path(name);
            fs::write(&path, contents).unwrap();
            let d = read_idx(&path);
            fs::remove_file(&path).unwrap();
            assert_eq!(d.unwrap().values, [0.0, 1.0, 0.0]);
        }
        // Gzip is recognised by its magic even without the .gz name.
        let path = temp_path("c-ubyte");
        fs::write(&path, gzip(&bytes)).unwrap();
        let d = read_idx(&path);
        fs::remove_file(&path).unwrap();
        assert_eq!(d.unwrap().cols, 3);
    }

    #[test]
    fn reads_labels() {
        let path = temp_path("labels-idx1-ubyte.gz");
        fs::write(&path, gzip(&idx(0x08, &[4], &[3, 0, 9, 1]))).unwrap();
        let labels = read_idx_labels(&path);
        fs::remove_file(&path).unwrap();
        assert_eq!(labels.unwrap(), [3, 0, 9, 1]);
    }

    #[test]
    fn labels_reject_images() {
        let e = parse_idx_labels(&idx(0x08, &[1, 2], &[0, 0]), Path::new("x"));
        assert!(e.unwrap_err().to_string().contains("not a label file"));
    }

    #[test]
    fn rejects_bad_magic() {
        assert!(error(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("magic"));
        assert!(error(&[0, 0]).contains("too short"));
    }

    #[test]
    fn rejects_unknown_type() {
        assert!(error(&idx(0x0A, &[1], &[0])).contains("type code 0x0a"));
    }

    #[test]
    fn rejects_zero_dims() {
        assert!(error(&idx(0x08, &[], &[])).contains("zero dimensions"));
        assert!(error(&idx(0x08, &[3, 0], &[])).contains("no values"));
    }

    #[test]
    fn rejects_truncated_header() {
        assert!(error(&[0, 0, 8, 3, 0, 0, 0, 1]).contains("ends inside the header"));
    }

    #[test]
    fn rejects_overflowing_dims() {
        let dims = [u32::MAX; 4];
        assert!(error(&idx(0x0E, &dims, &[])).contains("overflow"));
    }

    #[test]
    fn rejects_short_data() {
        let e = error(&idx(0x08, &[60000, 28, 28], &[0; 10]));
        assert!(e.contains("60000×28×28 of u8 need 47040000 bytes"), "{e}");
    }

    #[test]
    fn rejects_extra_data() {
        assert!(error(&idx(0x08, &[1, 2], &[0; 5])).contains("3 bytes after the data"));
    }

    #[test]
    fn a_gzip_bomb_is_refused_by_what_it_becomes_in_memory() {
        // 4 MiB of zero pixels in a few KiB: 16 MiB of f32 once loaded.
        let bomb = gzip(&idx(0x08, &[1024, 4096], &vec![0u8; 4 << 20]));
        assert!(bomb.len() < 16 << 10, "{}", bomb.len());
        let path = temp_path("bomb-idx3-ubyte.gz");
        fs::write(&path, &bomb).unwrap();
        // 8 MiB would hold the inflated bytes but not the f32 values they become.
        let e = read_idx_limited(&path, &Limits::new(Some(8 << 20), "a test"));
        let ok = read_idx_limited(&path, &Limits::new(Some(16 << 20), "a test"));
        fs::remove_file(&path).unwrap();
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("1024×4096 u8 values needs 16777216 bytes in memory")
                && e.contains("read limit of 8388608 bytes (a test)"),
            "{e}"
        );
        assert_eq!(ok.unwrap().rows, 1024);
    }

    #[test]
    fn rejects_broken_gzip() {
        let mut gz = gzip(&idx(0x08, &[100], &[7; 100]));
        gz.truncate(gz.len() / 2);
        let path = temp_path("broken-ubyte.gz");
        fs::write(&path, &gz).unwrap();
        let e = read_idx(&path);
        fs::remove_file(&path).unwrap();
        assert!(e.unwrap_err().to_string().contains("gzip"));
        let path = temp_path("plain-ubyte.gz");
        fs::write(&path, idx(0x08, &[1], &[7])).unwrap();
        let e = read_idx(&path);
        fs::remove_file(&path).unwrap();
        assert!(e.unwrap_err().to_string().contains("gzip"));
    }

    #[test]
    fn reads_fashion_mnist_test_set_if_present() {
        let images = Path::new(FASHION).join("t10k-images-idx3-ubyte.gz");
        let labels = Path::new(FASHION).join("t10k-labels-idx1-ubyte.gz");
        if !images.exists() || !labels.exists() {
            eprintln!("note: Fashion-MNIST not found under {FASHION}; skipping");
            return;
        }
        let d = read_idx(&images).unwrap();
        assert_eq!((d.rows, d.cols), (10000, 784));
        assert!(d.values.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(d.values.iter().any(|&v| v > 0.5));
        let labels = read_idx_labels(&labels).unwrap();
        assert_eq!(labels.len(), 10000);
        assert!(labels.iter().all(|&l| l < 10));
    }
}
