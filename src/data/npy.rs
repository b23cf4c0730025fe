//! NumPy `.npy` files.
//!
//! A `.npy` file is the magic `\x93NUMPY`, a major and a minor version byte, the header length
//! (u16 little-endian in version 1.0, u32 in 2.0 and 3.0) and the header: a Python dict literal
//! such as `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }`, padded with
//! spaces and ended by a newline (ASCII in 1.0 and 2.0, UTF-8 in 3.0). The raw values follow,
//! shape product × item size bytes, in C (row-major) or Fortran (column-major) order.
//!
//! The reader accepts these dtypes, converting every value to f32:
//!
//! * `<f4`, `>f4`: f32, either byte order;
//! * `<f8`, `>f8`: f64, rounded to f32;
//! * `|u1` (also spelled `<u1`, `>u1`): u8 pixels, scaled to [0, 1] by dividing by 255;
//! * `<i4`, `>i4`, `<i8`, `>i8`: integers, converted unscaled (rounded to the nearest f32 when
//!   larger than 2^24 in magnitude).
//!
//! Shape `(N, D)` gives N rows of D columns, `(N,)` N rows of one column, and `(N, a, b, …)`
//! N rows of a·b·… columns (image stacks), flattened in C order whatever the file's order.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};
use crate::io::read::{self, Limits};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The dtypes named in error messages.
const SUPPORTED_DTYPES: &str = "<f4, >f4, <f8, >f8, |u1, <i4, >i4, <i8, >i8";

/// How deeply header literals may nest (a structured dtype needs 3 levels).
const MAX_DEPTH: usize = 8;

/// Reads a `.npy` file (gzipped when its name ends in `.gz` or it starts with the gzip magic)
/// into a [`Dataset`]. See the module docs for the dtypes and shapes accepted.
pub fn read_npy(path: &Path) -> Result<Dataset> {
    read_npy_limited(path, &Limits::new(None, ""))
}

/// [`read_npy`] within `limits`: the preamble and header are read first, then exactly the bytes
/// the header's shape needs, once the values they become fit the budget.
pub(crate) fn read_npy_limited(path: &Path, limits: &Limits) -> Result<Dataset> {
    let mut input = read::open(path)?;
    // Magic, version and the longest header length field; every .npy file is longer.
    let mut bytes = input.up_to(12)?;
    let (start, len) = header_span(&bytes, path)?;
    if len > MAX_HEADER {
        return Err(Error::bad_file(
            path,
            format!("bad .npy header: its length {len} is over {MAX_HEADER} bytes"),
        ));
    }
    let more = (start + len).saturating_sub(bytes.len());
    bytes.extend(input.up_to(more)?);
    let layout = layout(&bytes, path)?;
    let values = layout.rows.saturating_mul(layout.cols).saturating_mul(4);
    limits.admit(path, &layout.describe(), layout.needed, values)?;
    let data = input.up_to(layout.needed)?;
    let data = decode(&layout, &data, path)?;
    input.end()?;
    Ok(data)
}

/// Parses the bytes of a `.npy` file; `path` only names the file in errors.
///
/// Rejects a bad magic, versions other than 1.0, 2.0 and 3.0, a header that is not a dict of
/// exactly `descr`, `fortran_order` and `shape`, an unsupported dtype, a 0-d shape, a shape
/// whose size overflows, rows of zero values, and data shorter or longer than the shape says.
/// A shape of zero rows gives an empty data set.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let layout = layout(bytes, path)?;
    let data = &bytes[layout.data_start..];
    if data.len() > layout.needed {
        return Err(Error::bad_file(
            path,
            format!(
                "file has {} bytes after the data ({} needs {})",
                data.len() - layout.needed,
                layout.describe(),
                layout.needed
            ),
        ));
    }
    decode(&layout, data, path)
}

/// The longest header the reader accepts (numpy writes a few hundred bytes).
const MAX_HEADER: usize = 1 << 20;

/// Where the header starts and how long it is, from the first 10 or 12 bytes.
fn header_span(bytes: &[u8], path: &Path) -> Result<(usize, usize)> {
    let bad = |reason: String| Error::bad_file(path, reason);
    if !bytes.starts_with(MAGIC) {
        return Err(bad(
            "not a .npy file: bad magic (expected \\x93NUMPY)".into()
        ));
    }
    let Some(&[major, minor]) = bytes.get(6..8) else {
        return Err(bad("file ends before the .npy version bytes".into()));
    };
    let len_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(bad(format!(
                "unsupported .npy version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )));
        }
    };
    let header_start = 8 + len_size;
    let Some(len_bytes) = bytes.get(8..header_start) else {
        return Err(bad("file ends inside the .npy header length".into()));
    };
    // A little-endian u16 (version 1.0) or u32 (2.0, 3.0).
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok((header_start, header_len))
}

/// What a `.npy` header says: the dtype, the shape, and the bytes of data it calls for.
struct Layout {
    descr: String,
    dtype: Dtype,
    fortran_order: bool,
    dims: Vec<usize>,
    shape_text: String,
    rows: usize,
    cols: usize,
    data_start: usize,
    needed: usize,
}

impl Layout {
    /// `shape (2, 3) of <f4`.
    fn describe(&self) -> String {
        format!("shape {} of {}", self.shape_text, self.descr)
    }
}

/// Parses the preamble and header at the start of `bytes` (which may end there).
fn layout(bytes: &[u8], path: &Path) -> Result<Layout> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let (header_start, header_len) = header_span(bytes, path)?;
    let major = bytes[6];
    let Some(header_bytes) = bytes.get(header_start..header_start.saturating_add(header_len))
    else {
        return Err(bad(format!(
            "header length {header_len} runs past the end of the file ({} bytes)",
            bytes.len()
        )));
    };
    let header_text = match std::str::from_utf8(header_bytes) {
        Ok(text) if major == 3 || text.is_ascii() => text,
        _ if major == 3 => return Err(bad("bad .npy header: not UTF-8".into())),
        _ => return Err(bad("bad .npy header: not ASCII".into())),
    };
    let header = parse_header(header_text).map_err(|m| bad(format!("bad .npy header: {m}")))?;
    let dtype = Dtype::parse(&header.descr).ok_or_else(|| {
        bad(format!(
            "unsupported dtype '{}' (supported: {SUPPORTED_DTYPES})",
            header.descr
        ))
    })?;

    let shape_text = format_shape(&header.shape);
    let dims: Vec<usize> = header
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| bad(format!("shape {shape_text} is too large")))?;
    let Some((&rows, rest)) = dims.split_first() else {
        return Err(bad("shape () is a scalar, not a data matrix".into()));
    };
    let needed = rest
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|cols| Some((cols, cols.checked_mul(rows)?.checked_mul(dtype.size())?)));
    let Some((cols, needed)) = needed else {
        return Err(bad(format!("shape {shape_text} overflows")));
    };
    if cols == 0 && rows > 0 {
        return Err(bad(format!("shape {shape_text} has rows with no values")));
    }
    Ok(Layout {
        descr: header.descr,
        dtype,
        fortran_order: header.fortran_order,
        dims,
        shape_text,
        rows,
        cols,
        data_start: header_start + header_len,
        needed,
    })
}

/// The values of `data` (which must be at least as long as the layout needs) as a data set.
fn decode(layout: &Layout, data: &[u8], path: &Path) -> Result<Dataset> {
    if data.len() < layout.needed {
        return Err(Error::bad_file(
            path,
            format!(
                "{} needs {} bytes but the file has {}",
                layout.describe(),
                layout.needed,
                data.len()
            ),
        ));
    }
    let mut values = layout.dtype.decode(&data[..layout.needed]);
    if layout.fortran_order && layout.dims.len() > 1 {
        values = fortran_to_c(&values, &layout.dims);
    }
    Dataset::new(layout.rows, layout.cols, values)
}

/// Writes a `rows × cols` row-major matrix as a version 1.0 `<f4` C-order `.npy` file whose data
/// starts at a multiple of 64 bytes.
///
/// The file is written to `path` with `.tmp` appended, synced, then renamed over `path`, so a
/// crash never leaves a half-written file under the real name. Fails with a configuration error
/// if `values` does not hold `rows × cols` numbers, and with an I/O error if writing fails.
pub fn write_npy(path: &Path, rows: usize, cols: usize, values: &[f32]) -> Result<()> {
    if rows.checked_mul(cols) != Some(values.len()) {
        return Err(Error::Config(format!(
            "cannot write {}: a {rows}×{cols} matrix needs {} values, got {}",
            path.display(),
            rows.saturating_mul(cols),
            values.len()
        )));
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that magic, version, length, header and the final newline fill whole 64-byte blocks.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    // Two numbers of at most 20 digits each keep the header far below 65535 bytes.
    let header_len = u16::try_from(header.len())
        .map_err(|_| Error::Config(format!("cannot write {}: header too long", path.display())))?;

    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // Errors name `path`, the file the caller asked for, not the temporary one.
    let written = write_file(&tmp, path, header_len, &header, values)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Writes the whole `.npy` file to `path` and syncs it to disk; errors name `name`.
fn write_file(
    path: &Path,
    name: &Path,
    header_len: u16,
    header: &str,
    values: &[f32],
) -> Result<()> {
    let io = |e| Error::io(name, e);
    let mut out = BufWriter::new(fs::File::create(path).map_err(io)?);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&[1, 0]).map_err(io)?;
    out.write_all(&header_len.to_le_bytes()).map_err(io)?;
    out.write_all(header.as_bytes()).map_err(io)?;
    for value in values {
        out.write_all(&value.to_le_bytes()).map_err(io)?;
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

/// An element type the reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32 { big: bool },
    F64 { big: bool },
    U8,
    I32 { big: bool },
    I64 { big: bool },
}

impl Dtype {
    /// The dtype a `descr` string names, if supported.
    fn parse(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f4" => Dtype::F32 { big: false },
            ">f4" => Dtype::F32 { big: true },
            "<f8" => Dtype::F64 { big: false },
            ">f8" => Dtype::F64 { big: true },
            "|u1" | "<u1" | ">u1" => Dtype::U8,
            "<i4" => Dtype::I32 { big: false },
            ">i4" => Dtype::I32 { big: true },
            "<i8" => Dtype::I64 { big: false },
            ">i8" => Dtype::I64 { big: true },
            _ => return None,
        })
    }

    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 { .. } | Dtype::I32 { .. } => 4,
            Dtype::F64 { .. } | Dtype::I64 { .. } => 8,
        }
    }

    /// Converts raw elements (a whole number of them) to f32, in file order.
    fn decode(self, data: &[u8]) -> Vec<f32> {
        fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
            data.as_chunks::<N>().0.iter().map(|&c| f(c)).collect()
        }
        match self {
            Dtype::U8 => data.iter().map(|&b| f32::from(b) / 255.0).collect(),
            Dtype::F32 { big: false } => each(data, f32::from_le_bytes),
            Dtype::F32 { big: true } => each(data, f32::from_be_bytes),
            Dtype::F64 { big: false } => each(data, |c| f64::from_le_bytes(c) as f32),
            Dtype::F64 { big: true } => each(data, |c| f64::from_be_bytes(c) as f32),
            Dtype::I32 { big: false } => each(data, |c| i32::from_le_bytes(c) as f32),
            Dtype::I32 { big: true } => each(data, |c| i32::from_be_bytes(c) as f32),
            Dtype::I64 { big: false } => each(data, |c| i64::from_le_bytes(c) as f32),
            Dtype::I64 { big: true } => each(data, |c| i64::from_be_bytes(c) as f32),
        }
    }
}

/// Reorders `values` of an array of shape `dims` from Fortran order (first index fastest) into
/// C order (last index fastest).
fn fortran_to_c(values: &[f32], dims: &[usize]) -> Vec<f32> {
    // strides[k]: distance in the C-order output between neighbours along dimension k.
    let mut strides = vec![1usize; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * dims[k + 1];
    }
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0usize; dims.len()];
    let mut offset = 0; // C-order offset of `index`
    for &value in values {
        out[offset] = value;
        // Step `index` to the next element in Fortran order: first index fastest, with carries.
        for k in 0..dims.len() {
            index[k] += 1;
            offset += strides[k];
            if index[k] < dims[k] {
                break;
            }
            offset -= index[k] * strides[k];
            index[k] = 0;
        }
    }
    out
}

/// Formats a shape the way Python prints a tuple: `(3, 4)`, `(5,)`, `()`.
fn format_shape(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// What a `.npy` header says.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A Python literal, as far as `.npy` headers use them.
#[derive(Debug)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(u64),
    /// A tuple or a list.
    Seq(Vec<Literal>),
}

/// Parses the header dict; errors are reasons without the file name.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut parser = Parser { text, pos: 0 };
    let entries = parser.dict()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err("unexpected text after the dict".into());
    }
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in entries {
        match (key.as_str(), value) {
            ("descr", Literal::Str(s)) => descr = Some(s),
            ("descr", _) => {
                return Err(
                    "'descr' is not a simple dtype string (structured dtypes are not \
                            supported)"
                        .into(),
                );
            }
            ("fortran_order", Literal::Bool(b)) => fortran_order = Some(b),
            ("fortran_order", _) => return Err("'fortran_order' is not True or False".into()),
            ("shape", Literal::Seq(items)) => {
                let dims = items.into_iter().map(|item| match item {
                    Literal::Int(n) => Ok(n),
                    _ => Err("'shape' is not a tuple of non-negative integers".to_string()),
                });
                shape = Some(dims.collect::<std::result::Result<Vec<u64>, _>>()?);
            }
            ("shape", _) => return Err("'shape' is not a tuple".into()),
            (other, _) => return Err(format!("unexpected key '{other}'")),
        }
    }
    let missing = |key: &str| format!("missing the '{key}' key");
    Ok(Header {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// A recursive-descent parser over the header text.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Parses `{key: value, …}` into its entries, keys being strings.
    fn dict(&mut self) -> std::result::Result<Vec<(String, Literal)>, String> {
        self.skip_space();
        if self.peek() != Some('{') {
            return Err("not a dict literal".into());
        }
        self.pos += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(entries);
            }
            let Literal::Str(key) = self.value(1)? else {
                return Err("a dict key is not a string".into());
            };
            self.skip_space();
            if self.peek() != Some(':') {
                return Err(format!("expected ':' after key '{key}'"));
            }
            self.pos += 1;
            entries.push((key, self.value(1)?));
            self.skip_space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(entries);
                }
                _ => return Err("expected ',' or '}' in the dict".into()),
            }
        }
    }

    /// Parses one literal nested `depth` levels deep.
    fn value(&mut self, depth: usize) -> std::result::Result<Literal, String> {
        if depth > MAX_DEPTH {
            return Err("literals nest too deeply".into());
        }
        self.skip_space();
        match self.peek() {
            None => Err("ends in the middle of the dict".into()),
            Some(quote @ ('\'' | '"')) => self.string(quote),
            Some('(') => self.seq(')', depth),
            Some('[') => self.seq(']', depth),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(c) if c.is_alphabetic() => {
                let word = self.take_while(|c| c.is_alphanumeric() || c == '_');
                match word {
                    "True" => Ok(Literal::Bool(true)),
                    "False" => Ok(Literal::Bool(false)),
                    _ => Err(format!("unexpected '{word}'")),
                }
            }
            Some(c) => Err(format!("unexpected '{c}'")),
        }
    }

    /// Advances past the characters matching `keep`, returning them.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        let rest = &self.text[start..];
        self.pos += rest.find(|c| !keep(c)).unwrap_or(rest.len());
        &self.text[start..self.pos]
    }

    /// Parses a quoted string, keeping backslash escapes as written.
    fn string(&mut self, quote: char) -> std::result::Result<Literal, String> {
        let start = self.pos + 1;
        let mut escaped = false;
        for (i, c) in self.text[start..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == quote => {
                    self.pos = start + i + 1;
                    return Ok(Literal::Str(self.text[start..start + i].to_string()));
                }
                _ => {}
            }
        }
        Err("unterminated string".into())
    }

    /// Parses a non-negative integer, allowing the `L` suffix written by Python 2.
    fn int(&mut self) -> std::result::Result<Literal, String> {
        let digits = self.take_while(|c| c.is_ascii_digit());
        let n = digits
            .parse()
            .map_err(|_| format!("integer {digits} is too large"))?;
        if self.peek() == Some('L') {
            self.pos += 1;
        }
        Ok(Literal::Int(n))
    }

    /// Parses a tuple or list ending in `close`, trailing comma allowed.
    fn seq(&mut self, close: char, depth: usize) -> std::result::Result<Literal, String> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(Literal::Seq(items));
            }
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(Literal::Seq(items));
                }
                _ => return Err(format!("expected ',' or '{close}'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// A fresh path under the temporary directory, unique to this process and call.
    fn temp_path(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("hourglass-npy-{}-{n}-{name}", std::process::id()))
    }

    /// A `.npy` file of the given version, header text (padded and newline-ended) and data.
    fn npy(version: (u8, u8), header: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{header:<50}\n");
        let mut out = MAGIC.to_vec();
        out.extend([version.0, version.1]);
        if version.0 == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    /// A version 1.0 file with a well-formed header.
    fn v1(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        npy((1, 0), &header(descr, fortran, shape), data)
    }

    fn header(descr: &str, fortran: bool, shape: &str) -> String {
        let fortran = if fortran { "True" } else { "False" };
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    }

    /// Concatenates encoded values, as in `cat([1.0f32, 2.0].map(f32::to_le_bytes))`.
    fn cat<const N: usize>(chunks: impl IntoIterator<Item = [u8; N]>) -> Vec<u8> {
        chunks.into_iter().flatten().collect()
    }

    fn parse(bytes: &[u8]) -> Result<Dataset> {
        parse_npy(bytes, Path::new("test.npy"))
    }

    /// The error message of parsing `bytes`, which must fail.
    fn error(bytes: &[u8]) -> String {
        let result = parse(bytes);
        result.expect_err("malformed file accepted").to_string()
    }

    #[test]
    fn round_trip_f32() {
        let path = temp_path("round.npy");
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        write_npy(&path, 3, 4, &values).unwrap();
        let bytes = fs::read(&path).unwrap();
        let data_start = 10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(data_start % 64, 0, "data must start on a 64-byte boundary");
        assert_eq!(bytes[data_start - 1], b'\n');
        let read = read_npy(&path).unwrap();
        assert_eq!(read, Dataset::new(3, 4, values).unwrap());
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        assert!(!Path::new(&tmp).exists(), "temporary file left behind");
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn write_rejects_wrong_length() {
        let path = temp_path("wrong.npy");
        assert!(write_npy(&path, 2, 3, &[1.0; 5]).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn reads_gzipped_file() {
        let path = temp_path("data.npy.gz");
        let bytes = v1(
            "<f4",
            false,
            "(2, 2)",
            &cat([1.0f32, 2.0, 3.0, 4.0].map(f32::to_le_bytes)),
        );
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&bytes).unwrap();
        fs::write(&path, encoder.finish().unwrap()).unwrap();
        let read = read_npy(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(read.values, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn reads_hand_built_f64() {
        let data = cat([1.5f64, -2.25, 1e-3, 4.0, 5.0, 6.0].map(f64::to_le_bytes));
        let d = parse(&v1("<f8", false, "(2, 3)", &data)).unwrap();
        assert_eq!((d.rows, d.cols), (2, 3));
        assert_eq!(d.values, [1.5, -2.25, 1e-3, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn scales_u8() {
        let d = parse(&v1("|u1", false, "(2, 2)", &[0, 51, 255, 102])).unwrap();
        assert_eq!(d.values, [0.0, 0.2, 1.0, 0.4]);
    }

    #[test]
    fn converts_ints_unscaled() {
        let data = cat([-3i64, 7].map(i64::to_le_bytes));
        assert_eq!(
            parse(&v1("<i8", false, "(2,)", &data)).unwrap().values,
            [-3.0, 7.0]
        );
        let data = cat([5i32, -6].map(i32::to_be_bytes));
        assert_eq!(
            parse(&v1(">i4", false, "(1, 2)", &data)).unwrap().values,
            [5.0, -6.0]
        );
    }

    #[test]
    fn fortran_order_is_transposed() {
        // The 2×3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
        let data = cat([1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0].map(f32::to_le_bytes));
        let d = parse(&v1("<f4", true, "(2, 3)", &data)).unwrap();
        assert_eq!((d.rows, d.cols), (2, 3));
        assert_eq!(d.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn fortran_order_3d_is_flattened_in_c_order() {
        // a[i, j, k] = 100 i + 10 j + k for shape (2, 3, 2), stored first index fastest.
        let mut values = Vec::new();
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..2 {
                    values.push((100 * i + 10 * j + k) as f32);
                }
            }
        }
        let data = cat(values.iter().map(|v| v.to_le_bytes()));
        let d = parse(&v1("<f4", true, "(2, 3, 2)", &data)).unwrap();
        assert_eq!((d.rows, d.cols), (2, 6));
        assert_eq!(d.row(1), [100.0, 101.0, 110.0, 111.0, 120.0, 121.0]);
    }

    #[test]
    fn flattens_3d() {
        let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let data = cat(values.iter().map(|v| v.to_le_bytes()));
        let d = parse(&v1("<f4", false, "(2, 3, 4)", &data)).unwrap();
        assert_eq!((d.rows, d.cols), (2, 12));
        assert_eq!(d.values, values);
    }

    #[test]
    fn one_d_is_a_column() {
        let data = cat([1.0f32, 2.0, 3.0].map(f32::to_le_bytes));
        let d = parse(&v1("<f4", false, "(3,)", &data)).unwrap();
        assert_eq!((d.rows, d.cols), (3, 1));
    }

    #[test]
    fn zero_rows_is_empty() {
        let d = parse(&v1("<f4", false, "(0, 5)", &[])).unwrap();
        assert_eq!((d.rows, d.cols, d.values.len()), (0, 5, 0));
    }

    #[test]
    fn big_endian() {
        let data = cat([1.5f32, -2.0].map(f32::to_be_bytes));
        assert_eq!(
            parse(&v1(">f4", false, "(1, 2)", &data)).unwrap().values,
            [1.5, -2.0]
        );
        let data = cat([0.25f64, 8.0].map(f64::to_be_bytes));
        assert_eq!(
            parse(&v1(">f8", false, "(2, 1)", &data)).unwrap().values,
            [0.25, 8.0]
        );
    }

    #[test]
    fn versions_2_and_3() {
        let data = cat([1.0f32, 2.0].map(f32::to_le_bytes));
        for version in [(2, 0), (3, 0)] {
            let d = parse(&npy(version, &header("<f4", false, "(1, 2)"), &data)).unwrap();
            assert_eq!(d.values, [1.0, 2.0]);
        }
    }

    #[test]
    fn python2_long_shape_and_double_quotes() {
        let h = r#"{"descr": "<f4", "fortran_order": False, "shape": (1L, 2L)}"#;
        let data = cat([1.0f32, 2.0].map(f32::to_le_bytes));
        assert_eq!(parse(&npy((1, 0), h, &data)).unwrap().cols, 2);
    }

    #[test]
    fn rejects_bad_magic() {
        assert!(error(b"PK\x03\x04 not numpy at all").contains("magic"));
        assert!(error(b"").contains("magic"));
    }

    #[test]
    fn rejects_truncated_preamble() {
        assert!(error(b"\x93NUMPY\x01").contains("version"));
        assert!(error(b"\x93NUMPY\x01\x00\x10").contains("header length"));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend(1000u16.to_le_bytes());
        bytes.extend(b"{'descr': '<f4'");
        assert!(error(&bytes).contains("past the end"));
    }

    #[test]
    fn rejects_unsupported_version() {
        let e = error(&npy((4, 0), &header("<f4", false, "(1, 1)"), &[0; 4]));
        assert!(e.contains("version 4.0"), "{e}");
    }

    #[test]
    fn rejects_header_not_a_dict() {
        let e = error(&npy((1, 0), "['descr', '<f4']", &[]));
        assert!(e.contains("dict"), "{e}");
        let e = error(&npy((1, 0), "{'descr': '<f4', 'shape': (1,)", &[]));
        assert!(e.contains("header"), "{e}");
        let h = format!("{} extra", header("<f4", false, "(1,)"));
        let e = error(&npy((1, 0), &h, &[]));
        assert!(e.contains("after the dict"), "{e}");
    }

    #[test]
    fn rejects_missing_and_unexpected_keys() {
        let e = error(&npy(
            (1, 0),
            "{'descr': '<f4', 'fortran_order': False}",
            &[],
        ));
        assert!(e.contains("missing the 'shape'"), "{e}");
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}";
        assert!(error(&npy((1, 0), h, &[0; 4])).contains("unexpected key"));
    }

    #[test]
    fn rejects_bad_values() {
        let h = "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}";
        assert!(error(&npy((1, 0), h, &[0; 4])).contains("fortran_order"));
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 'a')}";
        assert!(error(&npy((1, 0), h, &[0; 4])).contains("shape"));
        let h = "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,)}";
        assert!(error(&npy((1, 0), h, &[0; 4])).contains("structured"));
        let h = format!("{{'descr': {}'<f4'{}}}", "[".repeat(100), "]".repeat(100));
        assert!(error(&npy((1, 0), &h, &[])).contains("nest"));
    }

    #[test]
    fn rejects_unknown_dtype() {
        let e = error(&v1("<c16", false, "(1, 1)", &[0; 16]));
        assert!(e.contains("dtype '<c16'"), "{e}");
    }

    #[test]
    fn rejects_scalar_and_empty_rows() {
        assert!(error(&v1("<f4", false, "()", &[0; 4])).contains("scalar"));
        assert!(error(&v1("<f4", false, "(2, 0)", &[])).contains("no values"));
    }

    #[test]
    fn rejects_overflowing_shape() {
        let e = error(&v1(
            "<f4",
            false,
            "(4294967296, 4294967296, 4294967296)",
            &[],
        ));
        assert!(e.contains("overflows"), "{e}");
        let e = error(&v1("<f4", false, "(99999999999999999999999,)", &[]));
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn rejects_short_data() {
        let e = error(&v1("<f4", false, "(1000000, 1000)", &[0; 8]));
        let expected = "shape (1000000, 1000) of <f4 needs 4000000000 bytes but the file has 8";
        assert!(e.contains(expected), "{e}");
    }

    #[test]
    fn rejects_extra_data() {
        let e = error(&v1("<f4", false, "(1, 1)", &[0; 7]));
        assert!(e.contains("3 bytes after the data"), "{e}");
    }

    #[test]
    fn rejects_non_ascii_v1_header() {
        let e = error(&npy((1, 0), "{'descr': '<f4', 'é': 1}", &[]));
        assert!(e.contains("ASCII"), "{e}");
    }

    #[test]
    fn missing_file_is_io_error() {
        assert!(read_npy(&temp_path("absent.npy")).is_err());
    }
}
