//! One tensor of a safetensors file as a data set: `FILE.safetensors[:TENSOR]` (what
//! [`crate::data::load`] and `--data` take).
//!
//! The first dimension counts the examples and the rest are flattened into the columns, as for
//! `.npy` and IDX files; a 1-D tensor is one column. Float tensors (F16, BF16, F32, F64) and
//! integer tensors are converted to f32 unscaled, except U8, which holds pixels and is scaled to
//! [0, 1] like the other loaders do; BOOL becomes 0 or 1. Without a name the file must hold
//! exactly one tensor.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::Dataset;
use crate::error::{Error, Result};
use crate::io::read::{Limits, read_safetensors};

const SUFFIX: &str = ".safetensors";

/// Splits `x.safetensors:name` into the path and the tensor name, and `x.safetensors` into the
/// path alone; anything else is not a safetensors data source.
pub fn split_source(source: &str) -> Option<(&str, Option<&str>)> {
    let end = source.to_ascii_lowercase().rfind(SUFFIX)? + SUFFIX.len();
    match &source[end..] {
        "" => Some((source, None)),
        rest => rest
            .strip_prefix(':')
            .map(|name| (&source[..end], Some(name).filter(|n| !n.is_empty()))),
    }
}

/// Reads tensor `name` (or the only tensor) of the safetensors file at `path`.
pub fn read_tensor(path: &Path, name: Option<&str>) -> Result<Dataset> {
    read_tensor_limited(path, name, &Limits::new(None, ""))
}

/// [`read_tensor`] within `limits`.
pub(crate) fn read_tensor_limited(
    path: &Path,
    name: Option<&str>,
    limits: &Limits,
) -> Result<Dataset> {
    let bytes = read_safetensors(path, limits)?;
    parse_tensor(&bytes, name).map_err(|reason| Error::bad_file(path, reason))
}

/// The names of the tensors, sorted, for error messages (at most 20, then a count).
fn listing(st: &SafeTensors) -> String {
    let mut names = st.names();
    names.sort_unstable();
    let shown: Vec<&str> = names.iter().take(20).copied().collect();
    let more = names.len().saturating_sub(shown.len());
    let mut text = shown.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Parses safetensors bytes and converts tensor `name` (or the only tensor); the error is a
/// reason without the path.
pub fn parse_tensor(bytes: &[u8], name: Option<&str>) -> std::result::Result<Dataset, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => match st.names().as_slice() {
            [only] => only.to_string(),
            [] => return Err("the file holds no tensors".into()),
            _ => {
                return Err(format!(
                    "the file holds several tensors; name one as FILE.safetensors:NAME ({})",
                    listing(&st)
                ));
            }
        },
    };
    let view = st
        .tensor(&name)
        .map_err(|_| format!("no tensor '{name}' (the file has: {})", listing(&st)))?;
    let shape = view.shape();
    let Some((&rows, rest)) = shape.split_first() else {
        return Err(format!("tensor '{name}' is a scalar, not a data matrix"));
    };
    let cols = rest.iter().product::<usize>();
    if cols == 0 && rows > 0 {
        return Err(format!(
            "tensor '{name}' of shape {shape:?} has rows with no values"
        ));
    }
    let values = decode(view.dtype(), view.data())
        .ok_or_else(|| format!("tensor '{name}' has unsupported dtype {:?}", view.dtype()))?;
    Dataset::new(rows, cols, values).map_err(|e| e.to_string())
}

/// Little-endian elements of `dtype` as f32, or `None` for a dtype this loader does not read.
fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        data.as_chunks::<N>().0.iter().map(|&c| f(c)).collect()
    }
    Some(match dtype {
        Dtype::BOOL => data.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
        Dtype::U8 => data.iter().map(|&b| f32::from(b) / 255.0).collect(),
        Dtype::I8 => data.iter().map(|&b| f32::from(b as i8)).collect(),
        Dtype::I16 => each(data, |c| f32::from(i16::from_le_bytes(c))),
        Dtype::U16 => each(data, |c| f32::from(u16::from_le_bytes(c))),
        Dtype::I32 => each(data, |c| i32::from_le_bytes(c) as f32),
        Dtype::U32 => each(data, |c| u32::from_le_bytes(c) as f32),
        Dtype::I64 => each(data, |c| i64::from_le_bytes(c) as f32),
        Dtype::U64 => each(data, |c| u64::from_le_bytes(c) as f32),
        Dtype::F16 => each(data, |c| half::f16::from_le_bytes(c).to_f32()),
        Dtype::BF16 => each(data, |c| half::bf16::from_le_bytes(c).to_f32()),
        Dtype::F32 => each(data, f32::from_le_bytes),
        Dtype::F64 => each(data, |c| f64::from_le_bytes(c) as f32),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use safetensors::tensor::TensorView;

    use super::*;

    fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: HashMap<String, TensorView> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(&views, None).unwrap()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn data_load_reads_a_named_tensor_or_the_only_one() {
        let dir = std::env::temp_dir().join(format!("hourglass-tensors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let two = dir.join("two.safetensors");
        let x = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = f32_bytes(&[9.0]);
        std::fs::write(
            &two,
            file(&[
                ("x", Dtype::F32, vec![3, 2], x.clone()),
                ("y", Dtype::F32, vec![1], y),
            ]),
        )
        .unwrap();
        let named = crate::data::load(Path::new(&format!("{}:x", two.display()))).unwrap();
        assert_eq!((named.rows, named.cols), (3, 2));
        assert_eq!(named.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let e = crate::data::load(&two).unwrap_err().to_string();
        assert!(e.contains("several tensors") && e.contains("x, y"), "{e}");
        let one = dir.join("one.safetensors");
        std::fs::write(&one, file(&[("x", Dtype::F32, vec![3, 2], x)])).unwrap();
        assert_eq!(crate::data::load(&one).unwrap(), named);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn splits_the_tensor_name_off_the_path() {
        assert_eq!(split_source("x.safetensors"), Some(("x.safetensors", None)));
        assert_eq!(
            split_source("d/X.SafeTensors:train_x"),
            Some(("d/X.SafeTensors", Some("train_x")))
        );
        assert_eq!(
            split_source("a.safetensors:"),
            Some(("a.safetensors", None))
        );
        assert_eq!(split_source("x.npy"), None);
        assert_eq!(split_source("x.safetensors.gz"), None);
    }

    #[test]
    fn reads_the_only_tensor_or_a_named_one() {
        let bytes = file(&[(
            "x",
            Dtype::F32,
            vec![2, 3],
            f32_bytes(&[1., 2., 3., 4., 5., 6.]),
        )]);
        let d = parse_tensor(&bytes, None).unwrap();
        assert_eq!((d.rows, d.cols), (2, 3));
        assert_eq!(d.row(1), [4.0, 5.0, 6.0]);

        let bytes = file(&[
            (
                "images",
                Dtype::U8,
                vec![2, 2, 2],
                vec![0, 255, 51, 0, 0, 0, 0, 255],
            ),
            (
                "labels",
                Dtype::I64,
                vec![2],
                [3i64, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ]);
        let images = parse_tensor(&bytes, Some("images")).unwrap();
        assert_eq!(
            (images.rows, images.cols),
            (2, 4),
            "trailing dimensions flatten"
        );
        assert_eq!(images.row(0), [0.0, 1.0, 0.2, 0.0], "u8 scales to [0, 1]");
        let labels = parse_tensor(&bytes, Some("labels")).unwrap();
        assert_eq!(
            (labels.rows, labels.cols, labels.values),
            (2, 1, vec![3.0, 7.0])
        );
    }

    #[test]
    fn converts_half_precision_and_f64() {
        // 1.0, -2.5, 2^-24 (the smallest subnormal), 65504 (the largest finite half).
        let halves: Vec<u8> = [0x3c00u16, 0xc100, 0x0001, 0x7bff]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let bf16: Vec<u8> = [0x3f80u16, 0xc020]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let f64s: Vec<u8> = [0.5f64, -1e3]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = file(&[
            ("h", Dtype::F16, vec![4], halves),
            ("b", Dtype::BF16, vec![1, 2], bf16),
            ("d", Dtype::F64, vec![2], f64s),
        ]);
        let h = parse_tensor(&bytes, Some("h")).unwrap().values;
        assert_eq!(h, [1.0, -2.5, 2f32.powi(-24), 65504.0]);
        assert_eq!(parse_tensor(&bytes, Some("b")).unwrap().values, [1.0, -2.5]);
        assert_eq!(
            parse_tensor(&bytes, Some("d")).unwrap().values,
            [0.5, -1000.0]
        );
    }

    #[test]
    fn errors_name_the_choices() {
        let bytes = file(&[
            ("a", Dtype::F32, vec![1], f32_bytes(&[1.0])),
            ("b", Dtype::F32, vec![1], f32_bytes(&[2.0])),
        ]);
        let e = parse_tensor(&bytes, None).unwrap_err();
        assert!(e.contains("several tensors") && e.contains("a, b"), "{e}");
        let e = parse_tensor(&bytes, Some("c")).unwrap_err();
        assert!(e.contains("no tensor 'c'") && e.contains("a, b"), "{e}");
        let scalar = file(&[("s", Dtype::F32, vec![], f32_bytes(&[1.0]))]);
        assert!(parse_tensor(&scalar, None).unwrap_err().contains("scalar"));
        let e = parse_tensor(b"not a file", None).unwrap_err();
        assert!(e.contains("not a safetensors file"), "{e}");
    }
}
