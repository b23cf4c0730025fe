//! CSV files of numbers.
//!
//! A restricted CSV: one example per line, cells separated by commas, every cell a number as
//! Rust's `f32` parser reads it (`1`, `-0.5`, `1e-3`, `NaN`, `inf`; the caller decides what to
//! do with non-finite values). No quoting: a comma always separates cells. Whitespace around
//! cells, blank lines, a UTF-8 byte order mark and `\r\n` line endings are accepted. The first
//! non-blank line is a header, and skipped, when any of its cells is a non-empty non-number,
//! or when it is exactly `0,1,…,n−1` with n ≥ 2 (pandas' `df.to_csv(index=False)` of a frame
//! without column names); [`CsvHeader`] forces either way. A header fixes the column count
//! like a first data row would. Files may be gzipped.

use std::path::Path;

use super::Dataset;
use crate::error::{Error, Result};
use crate::io::read::{self, Limits};

/// How much of a bad cell an error message quotes.
const QUOTE_CHARS: usize = 40;

/// Whether the first non-blank line of a CSV file is a header (`--csv-header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsvHeader {
    /// A header when any of its cells is a non-empty non-number, or when its cells are exactly
    /// `0,1,…,n−1` with n ≥ 2 (what pandas' `df.to_csv(index=False)` writes for a frame built
    /// from an array).
    #[default]
    Auto,
    /// Always a header.
    Yes,
    /// Never a header: the first line is data.
    No,
}

impl CsvHeader {
    /// Parses `auto`, `yes` or `no`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(CsvHeader::Auto),
            "yes" => Ok(CsvHeader::Yes),
            "no" => Ok(CsvHeader::No),
            other => Err(Error::Config(format!(
                "the CSV header setting must be yes, no or auto, not '{other}'"
            ))),
        }
    }

    /// Whether the first non-blank line, cut into `cells`, is a header.
    fn is_header(self, cells: &[&str]) -> bool {
        match self {
            CsvHeader::Yes => true,
            CsvHeader::No => false,
            CsvHeader::Auto => {
                let named = cells
                    .iter()
                    .any(|c| !c.is_empty() && c.parse::<f32>().is_err());
                let pandas =
                    cells.len() >= 2 && cells.iter().enumerate().all(|(i, c)| *c == i.to_string());
                named || pandas
            }
        }
    }
}

/// Reads a CSV file of numbers (gzipped when its name ends in `.gz` or it starts with the gzip
/// magic) into a [`Dataset`]. Rejects text that is not UTF-8, and everything [`parse_csv`]
/// rejects.
pub fn read_csv(path: &Path) -> Result<Dataset> {
    read_csv_limited(path, CsvHeader::Auto, &Limits::new(None, ""))
}

/// [`read_csv`] line by line within `limits`: the text read and the values it becomes both
/// count against the budget, and a NUL byte (binary data, `/dev/zero`) stops it at once.
pub(crate) fn read_csv_limited(path: &Path, header: CsvHeader, limits: &Limits) -> Result<Dataset> {
    let mut input = read::open(path)?;
    let mut parser = Parser::new(path, header);
    let mut line = Vec::new();
    let mut line_no = 1;
    while input.line(&mut line, line_no, limits)? {
        let text = std::str::from_utf8(&line)
            .map_err(|_| Error::bad_file(path, format!("line {line_no} is not UTF-8 text")))?;
        parser.line(line_no, text.strip_suffix('\r').unwrap_or(text))?;
        let what = format!("the values of the first {line_no} lines");
        limits.admit(path, &what, 0, parser.values.len().saturating_mul(4))?;
        line_no += 1;
    }
    parser.finish()
}

/// Parses CSV text into a [`Dataset`]; `path` only names the file in errors.
///
/// Rejects rows whose column count differs from the first row's (or the header's), cells that
/// are empty or not numbers, and text with no data rows. Errors give the 1-based line number
/// and, for a bad cell, the 1-based column.
pub fn parse_csv(text: &str, path: &Path) -> Result<Dataset> {
    let mut parser = Parser::new(path, CsvHeader::Auto);
    for (index, line) in text.lines().enumerate() {
        parser.line(index + 1, line)?;
    }
    parser.finish()
}

/// The state of reading a CSV file line by line.
struct Parser<'p> {
    path: &'p Path,
    header: CsvHeader,
    values: Vec<f32>,
    rows: usize,
    /// The column count every row must have, and the line that set it.
    expected: Option<(usize, usize)>,
    header_line: Option<usize>,
}

impl<'p> Parser<'p> {
    fn new(path: &'p Path, header: CsvHeader) -> Self {
        Parser {
            path,
            header,
            values: Vec::new(),
            rows: 0,
            expected: None,
            header_line: None,
        }
    }

    fn line(&mut self, line_no: usize, line: &str) -> Result<()> {
        let bad = |reason: String| Error::bad_file(self.path, reason);
        let line = if line_no == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.trim().is_empty() {
            return Ok(());
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        match self.expected {
            None => {
                self.expected = Some((cells.len(), line_no));
                if self.header.is_header(&cells) {
                    self.header_line = Some(line_no);
                    return Ok(());
                }
            }
            Some((columns, first_line)) if cells.len() != columns => {
                return Err(bad(format!(
                    "line {line_no} has {} columns, expected {columns} (as on line {first_line})",
                    cells.len()
                )));
            }
            Some(_) => {}
        }
        push_row(&cells, line_no, &mut self.values).map_err(bad)?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<Dataset> {
        let bad = |reason: String| Error::bad_file(self.path, reason);
        match (self.expected, self.header_line) {
            (Some((cols, _)), _) if self.rows > 0 => Dataset::new(self.rows, cols, self.values),
            (_, Some(line)) => Err(bad(format!("no data rows after the header on line {line}"))),
            _ => Err(bad("no data rows".into())),
        }
    }
}

/// Parses one row's cells onto `values`, or says which cell is bad.
fn push_row(cells: &[&str], line_no: usize, values: &mut Vec<f32>) -> Result<(), String> {
    for (index, cell) in cells.iter().enumerate() {
        let column = index + 1;
        match cell.parse::<f32>() {
            Ok(value) => values.push(value),
            Err(_) if cell.is_empty() => {
                return Err(format!("line {line_no}, column {column} is empty"));
            }
            Err(_) => {
                return Err(format!(
                    "line {line_no}, column {column}: '{}' is not a number",
                    shorten(cell)
                ));
            }
        }
    }
    Ok(())
}

/// `cell`, cut to [`QUOTE_CHARS`] characters with an ellipsis if longer.
fn shorten(cell: &str) -> String {
    match cell.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell.to_string(),
    }
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

    /// A fresh path under the temporary directory, unique to this process and call.
    fn temp_path(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("hourglass-csv-{}-{n}-{name}", std::process::id()))
    }

    fn parse(text: &str) -> Result<Dataset> {
        parse_csv(text, Path::new("test.csv"))
    }

    /// The error message of parsing `text`, which must fail.
    fn error(text: &str) -> String {
        let result = parse(text);
        result.expect_err("malformed text accepted").to_string()
    }

    #[test]
    fn parses_numbers() {
        let d = parse("1,2,3\n4.5,-6,1e-3\n").unwrap();
        assert_eq!((d.rows, d.cols), (2, 3));
        assert_eq!(d.values, [1.0, 2.0, 3.0, 4.5, -6.0, 1e-3]);
    }

    #[test]
    fn skips_header_blank_lines_and_crlf() {
        let d = parse("\u{feff}x, y\r\n\r\n 1 , 2 \r\n\n3,4\r\n\r\n").unwrap();
        assert_eq!((d.rows, d.cols), (2, 2));
        assert_eq!(d.values, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn no_trailing_newline() {
        assert_eq!(parse("1,2\n3,4").unwrap().values, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn nan_and_inf_are_numbers() {
        let d = parse("NaN,inf,-inf,nan\n").unwrap();
        assert!(d.values[0].is_nan() && d.values[3].is_nan());
        assert_eq!(d.values[1..3], [f32::INFINITY, f32::NEG_INFINITY]);
    }

    #[test]
    fn header_fixes_column_count() {
        let e = error("a,b,c\n1,2\n");
        assert!(e.contains("line 2 has 2 columns, expected 3"), "{e}");
    }

    #[test]
    fn rejects_ragged_rows() {
        let e = error("1,2,3,4\n\n5,6,7,8\n1,2,3,4\n\n\n\n9,9,9\n");
        assert!(e.contains("line 8 has 3 columns, expected 4"), "{e}");
    }

    #[test]
    fn rejects_non_numeric_cells() {
        let e = error("x,y\n1,2\n3,abc\n");
        assert!(e.contains("line 3, column 2: 'abc' is not a number"), "{e}");
        let e = error("1,2\n3,\n");
        assert!(e.contains("line 2, column 2 is empty"), "{e}");
        let e = error(&format!("1\n{}\n", "z".repeat(1000)));
        assert!(
            e.contains(&format!("'{}…'", "z".repeat(QUOTE_CHARS))),
            "{e}"
        );
    }

    #[test]
    fn pandas_integer_header_is_a_header() {
        let d = parse("0,1,2\n5,6,7\n").unwrap();
        assert_eq!((d.rows, d.values.as_slice()), (1, &[5.0, 6.0, 7.0][..]));
        // Not the sequence 0..n, or one column: data.
        assert_eq!(parse("0,2,1\n5,6,7\n").unwrap().rows, 2);
        assert_eq!(parse("0\n5\n").unwrap().rows, 2);
        assert_eq!(parse("0.0,1.0\n5,6\n").unwrap().rows, 2);
        let p = Parser::new(Path::new("x.csv"), CsvHeader::No);
        assert!(!p.header.is_header(&["0", "1"]));
        assert!(CsvHeader::Yes.is_header(&["3", "4"]));
        assert!(
            CsvHeader::parse("maybe")
                .unwrap_err()
                .to_string()
                .contains("yes, no or auto")
        );
    }

    #[test]
    fn empty_first_cell_is_not_a_header() {
        let e = error(",1\n2,3\n");
        assert!(e.contains("line 1, column 1 is empty"), "{e}");
    }

    #[test]
    fn rejects_no_data_rows() {
        assert!(error("").contains("no data rows"));
        assert!(error("\n  \r\n").contains("no data rows"));
        assert!(error("a,b\n\n").contains("no data rows after the header on line 1"));
    }

    #[test]
    fn reads_files_plain_and_gzipped() {
        let text = "a,b\n1,2\n3,4\n";
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();
        for (name, contents) in [("plain.csv", text.as_bytes().to_vec()), ("z.csv.gz", gz)] {
            let path = temp_path(name);
            fs::write(&path, contents).unwrap();
            let d = read_csv(&path);
            fs::remove_file(&path).unwrap();
            assert_eq!(d.unwrap().values, [1.0, 2.0, 3.0, 4.0]);
        }
    }

    #[test]
    fn rejects_non_utf8() {
        let path = temp_path("latin1.csv");
        fs::write(&path, b"1,2\n3,\xe94\n").unwrap();
        let e = read_csv(&path);
        fs::remove_file(&path).unwrap();
        assert!(e.unwrap_err().to_string().contains("line 2 is not UTF-8"));
    }
}
