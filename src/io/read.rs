//! Bounded reading: the one way every loader gets bytes from a file.
//!
//! A loader opens its file with [`open`] (which sees through gzip by name or by magic), reads
//! the fixed part of its header with [`Input::exact`], derives from the header how many bytes
//! follow, checks that what they become in memory fits the budget ([`Limits::admit`]), reads
//! exactly that many and then asks [`Input::end`] whether the file really ends there. Nothing
//! is read before the header vouches for it, so an endless stream (`/dev/zero`, a fifo), a huge
//! sparse file or a gzip bomb is refused after a few bytes or at the budget, never by the OOM
//! killer. Text formats read through [`Input::line`], which stops at a NUL byte (binary data,
//! `/dev/zero`) and counts the bytes read against the budget.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How much a loader may read, and what it may build in memory from it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most bytes a loaded matrix may take in memory (and the most bytes of text read).
    pub bytes: u64,
    /// Where the figure comes from, for messages: "half the memory available", or what the
    /// caller named (e.g. an environment variable the CLI maps onto it).
    pub from: String,
}

impl Limits {
    /// `max` bytes when given (named `from`), else half the memory the system reports
    /// available (Linux `MemAvailable`), else no limit.
    pub fn new(max: Option<u64>, from: &str) -> Self {
        if let Some(bytes) = max {
            return Limits {
                bytes,
                from: from.to_string(),
            };
        }
        let half_available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib.saturating_mul(1024) / 2)
            });
        match half_available {
            Some(bytes) => Limits {
                bytes,
                from: "half the memory available".into(),
            },
            None => Limits {
                bytes: u64::MAX,
                from: "no limit".into(),
            },
        }
    }

    /// Refuses `what` (e.g. "shape (10, 3) of <f4") when it needs more than the budget: `raw`
    /// bytes read from the file and `memory` bytes of what it becomes (f32 values).
    pub fn admit(&self, path: &Path, what: &str, raw: usize, memory: usize) -> Result<()> {
        let need = raw.max(memory) as u64;
        if need > self.bytes {
            return Err(Error::bad_file(
                path,
                format!(
                    "{what} needs {need} bytes in memory, more than the read limit of {} bytes \
                     ({})",
                    self.bytes, self.from
                ),
            ));
        }
        Ok(())
    }
}

/// An open input, plain or gunzipped, that counts what it has read.
pub struct Input {
    reader: Box<dyn BufRead>,
    path: PathBuf,
    gzip: bool,
    read: u64,
}

/// A read error: broken gzip data, or the operating system's error on `path`.
fn failed(path: &Path, gzip: bool, e: std::io::Error) -> Error {
    if gzip {
        Error::bad_file(path, format!("broken gzip data: {e}"))
    } else {
        Error::io(path, e)
    }
}

/// Opens `path` for bounded reading, gunzipping when its name ends in `.gz` or it starts with
/// the gzip magic.
pub fn open(path: &Path) -> Result<Input> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::bad_file(path, "is a folder, not a file"));
    }
    let mut plain = BufReader::new(file);
    let named_gz = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    let starts_gz = plain
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(&GZIP_MAGIC);
    let (reader, gzip): (Box<dyn BufRead>, bool) = if named_gz || starts_gz {
        (Box::new(BufReader::new(MultiGzDecoder::new(plain))), true)
    } else {
        (Box::new(plain), false)
    };
    Ok(Input {
        reader,
        path: path.to_path_buf(),
        gzip,
        read: 0,
    })
}

impl Input {
    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes read so far (after gunzipping).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn failed(&self, e: std::io::Error) -> Error {
        failed(&self.path, self.gzip, e)
    }

    /// Up to `n` bytes: fewer only where the file ends first.
    pub fn up_to(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| {
            Error::bad_file(&self.path, format!("cannot allocate {n} bytes to read"))
        })?;
        let got = (&mut self.reader)
            .take(n as u64)
            .read_to_end(&mut out)
            .map_err(|e| self.failed(e))?;
        self.read += got as u64;
        Ok(out)
    }

    /// Exactly `n` bytes, or an error saying the file ends early (`what` names the part).
    pub fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>> {
        let before = self.read;
        let out = self.up_to(n)?;
        if out.len() < n {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "file ends inside {what}: it needs {n} bytes but the file has {}",
                    out.len() as u64 + before
                ),
            ));
        }
        Ok(out)
    }

    /// Succeeds when the file ends here: the header described everything in it.
    pub fn end(&mut self) -> Result<()> {
        let (path, gzip) = (&self.path, self.gzip);
        let at_end = self
            .reader
            .fill_buf()
            .map_err(|e| failed(path, gzip, e))?
            .is_empty();
        if !at_end {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "data goes on past the {} bytes its header describes",
                    self.read
                ),
            ));
        }
        Ok(())
    }

    /// The next line (without its `\n`) into `line`, or `false` at the end of the file. Refuses
    /// a NUL byte (binary data, `/dev/zero`) and reading past `limits` in all; `line_no` (1-based)
    /// names the line in errors.
    pub fn line(&mut self, line: &mut Vec<u8>, line_no: usize, limits: &Limits) -> Result<bool> {
        line.clear();
        loop {
            let (path, gzip) = (&self.path, self.gzip);
            let buf = self.reader.fill_buf().map_err(|e| failed(path, gzip, e))?;
            if buf.is_empty() {
                return Ok(!line.is_empty());
            }
            let end = buf.iter().position(|&b| b == b'\n' || b == 0);
            let take = end.map_or(buf.len(), |i| i + 1);
            if end.is_some_and(|i| buf[i] == 0) {
                return Err(Error::bad_file(
                    &self.path,
                    format!("line {line_no} holds a NUL byte: this is not a text file"),
                ));
            }
            if self.read + take as u64 > limits.bytes {
                return Err(Error::bad_file(
                    &self.path,
                    format!(
                        "text goes on past the read limit of {} bytes ({})",
                        limits.bytes, limits.from
                    ),
                ));
            }
            line.extend_from_slice(&buf[..end.unwrap_or(buf.len())]);
            self.reader.consume(take);
            self.read += take as u64;
            if end.is_some() {
                return Ok(true);
            }
        }
    }
}

/// The whole text of a small file (a config, `normalization.json`, `metrics.jsonl`), refusing
/// one longer than `cap` bytes, a NUL byte and text that is not UTF-8. `None` when the file does
/// not exist.
pub fn read_text(path: &Path, cap: u64) -> Result<Option<String>> {
    let mut input = match open(path) {
        Ok(input) => input,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let limits = Limits {
        bytes: cap,
        from: "the most a file of this kind may hold".into(),
    };
    let (mut text, mut line) = (String::new(), Vec::new());
    let mut line_no = 1;
    while input.line(&mut line, line_no, &limits)? {
        let s = std::str::from_utf8(&line)
            .map_err(|_| Error::bad_file(path, format!("line {line_no} is not UTF-8 text")))?;
        text.push_str(s);
        text.push('\n');
        line_no += 1;
    }
    Ok(Some(text))
}

/// The bytes of a whole safetensors file, read as its header describes: the 8-byte header
/// length, the JSON header (at most 100 MB, safetensors' own limit), then exactly the data its
/// tensors' offsets span, checked against `limits` first. Anything after that is refused.
pub fn read_safetensors(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    const MAX_HEADER: u64 = 100_000_000;
    let bad = |reason: String| Error::bad_file(path, reason);
    let mut input = open(path)?;
    let mut bytes = input.exact(8, "the safetensors header length")?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(bad(format!(
            "not a safetensors file: its header length {n} is over the format's 100 MB limit"
        )));
    }
    let header = input.exact(n as usize, "the safetensors header")?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file: bad header: {e}")))?;
    let Some(tensors) = json.as_object() else {
        return Err(bad(
            "not a safetensors file: the header is not a JSON object".into(),
        ));
    };
    let mut data_len = 0u64;
    for (name, t) in tensors.iter().filter(|(k, _)| *k != "__metadata__") {
        let end = t["data_offsets"][1].as_u64().ok_or_else(|| {
            bad(format!(
                "not a safetensors file: tensor '{name}' has no data offsets"
            ))
        })?;
        data_len = data_len.max(end);
    }
    let data_len = usize::try_from(data_len)
        .map_err(|_| bad(format!("tensor data of {data_len} bytes is too large")))?;
    let what = format!("tensor data of {data_len} bytes");
    limits.admit(path, &what, data_len, data_len)?;
    bytes.extend_from_slice(&header);
    bytes.extend(input.exact(data_len, "the tensor data")?);
    input.end()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_zero_as_text_stops_at_the_first_byte() {
        let limits = Limits::new(Some(1 << 30), "a test");
        let mut input = open(Path::new("/dev/zero")).unwrap();
        let e = input.line(&mut Vec::new(), 1, &limits).unwrap_err();
        assert!(e.to_string().contains("line 1 holds a NUL byte"), "{e}");
        assert!(input.bytes_read() == 0);
    }

    #[test]
    fn exact_then_end_refuses_more() {
        let mut input = open(Path::new("/dev/zero")).unwrap();
        assert_eq!(input.exact(16, "a header").unwrap(), [0; 16]);
        let e = input.end().unwrap_err().to_string();
        assert!(
            e.contains("data goes on past the 16 bytes its header describes"),
            "{e}"
        );
    }

    #[test]
    fn admit_names_the_limit() {
        let limits = Limits::new(Some(100), "MAX");
        assert!(limits.admit(Path::new("x"), "it", 10, 100).is_ok());
        let e = limits
            .admit(Path::new("x"), "it", 10, 101)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("it needs 101 bytes in memory, more than the read limit of 100 bytes (MAX)"),
            "{e}"
        );
    }
}
