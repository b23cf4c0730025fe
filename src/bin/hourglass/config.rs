//! `--config FILE.toml` and the `config.toml` a run writes: the keys are the flags of the
//! command without their dashes (`batch-size = 128`), the values are TOML (`encoder =
//! [784, 256, 32]`, `no-shuffle = true`). Flags given on the command line win over the file,
//! and the file wins over the flags' defaults; clap's `ArgMatches::value_source` tells which
//! flags were given. Relative paths in a file are relative to the file's folder.

use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use hourglass::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Keys whose values are paths.
const PATH_KEYS: [&str; 5] = ["data", "val", "data-dir", "init", "out"];

/// Groups of keys that name the same thing in different ways: a flag given on the command line
/// drops every key of its group from the file.
const ALTERNATIVES: [[&str; 2]; 3] = [
    ["steps", "epochs"],
    ["data", "dataset"],
    ["val", "val-split"],
];

/// The most bytes a config file may hold.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Keys whose whole-number values may exceed what a TOML integer holds (i64): written as a
/// string of digits, read back from either form.
const WIDE_KEYS: [&str; 1] = ["seed"];

/// Reads a TOML file as a table.
pub fn read(path: &Path) -> Result<toml::Table> {
    let text = hourglass::io::read::read_text(path, MAX_CONFIG_BYTES)?
        .ok_or_else(|| Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
    text.parse::<toml::Table>().map_err(|e| {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = 1 + before.matches('\n').count();
            let column = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
            format!("line {line}, column {column}: ")
        });
        let message = crate::output::one_line(e.message());
        Error::bad_file(
            path,
            format!(
                "not a valid TOML config: {}{message}",
                at.unwrap_or_default()
            ),
        )
    })
}

/// A `u64` from a TOML integer or a string of digits (how [`to_table`] writes the values of
/// [`WIDE_KEYS`] above `i64::MAX`).
pub fn u64_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Wide {
        Number(u64),
        Text(String),
    }
    match Wide::deserialize(d)? {
        Wide::Number(n) => Ok(n),
        Wide::Text(s) => s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "'{s}' is not a whole number from 0 to {}",
                u64::MAX
            ))
        }),
    }
}

/// `value` as a TOML table, for merging and writing. Floats that are f32 values are written
/// in their shortest form (`lr = 0.001`, not `0.0010000000474974513`), which reads back as the
/// same f32. A whole number above `i64::MAX` (the most a TOML integer holds) is written as a
/// string for the keys of [`WIDE_KEYS`] and refused, naming its flag, for the others.
pub fn to_table<T: Serialize>(value: &T) -> Result<toml::Table> {
    let json = serde_json::to_string(value)
        .map_err(|e| Error::Config(format!("cannot express the configuration: {e}")))?;
    let Ordered(fields) = serde_json::from_str(&json)
        .map_err(|e| Error::Config(format!("the configuration is not a table: {e}")))?;
    let mut table = toml::Table::new();
    for (key, v) in fields {
        let v = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::Number(n) if n.as_u64().is_some_and(|n| n > i64::MAX as u64) => {
                if !WIDE_KEYS.contains(&key.as_str()) {
                    return Err(Error::Config(format!(
                        "--{key} {n} is out of range: at most {}",
                        i64::MAX
                    )));
                }
                serde_json::Value::String(n.to_string())
            }
            v => v,
        };
        let v = toml::Value::try_from(v)
            .map_err(|e| Error::Config(format!("cannot express --{key} in TOML: {e}")))?;
        table.insert(key, v);
    }
    for (_, v) in table.iter_mut() {
        if let toml::Value::Float(x) = v
            && f64::from(*x as f32) == *x
            && let Ok(short) = (*x as f32).to_string().parse::<f64>()
        {
            *x = short;
        }
    }
    Ok(table)
}

/// The fields of a JSON object in the order they were written (the struct's order, which
/// `config.toml` keeps).
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Ordered(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// The configuration of `given` (what clap parsed, defaults included) with the values of
/// `file` for every flag not given on the command line. `keys` lists the keys a file may set
/// (the flags' long names); `path` names the file in errors and anchors its relative paths.
pub fn merge<T: Serialize + DeserializeOwned>(
    given: &T,
    matches: &ArgMatches,
    mut file: toml::Table,
    keys: &[String],
    path: &Path,
) -> Result<T> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let on_command_line =
        |key: &str| matches.value_source(&key.replace('-', "_")) == Some(ValueSource::CommandLine);
    let base = path.parent().unwrap_or(Path::new(""));
    let mut table = to_table(given)?;
    for group in ALTERNATIVES {
        if group.iter().all(|k| file.contains_key(*k)) {
            return Err(bad(format!(
                "sets both {} and {}; keep one",
                group[0], group[1]
            )));
        }
        if group.iter().any(|k| on_command_line(k)) {
            // The command line chose for the group: the file's choice goes.
            for k in group {
                file.remove(k);
            }
        } else if group.iter().any(|k| file.contains_key(*k)) {
            // The file chose: the command line's defaults for the group go.
            for k in group {
                table.remove(k);
            }
        }
    }
    if on_command_line("data") {
        // A data file on the command line replaces the file's named data set and its folder.
        file.remove("data-dir");
    }
    for (key, mut value) in file {
        if value.as_array().is_some_and(Vec::is_empty) {
            return Err(bad(format!(
                "{key} = [] is an empty list; give at least one value or leave the key out"
            )));
        }
        if !keys.contains(&key) {
            return Err(bad(format!(
                "unknown key '{key}' (the keys are the long flags: {})",
                keys.join(", ")
            )));
        }
        if on_command_line(&key) {
            continue;
        }
        if PATH_KEYS.contains(&key.as_str())
            && let toml::Value::String(s) = &value
        {
            value = toml::Value::String(anchor(base, s));
        }
        table.insert(key, value);
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| bad(crate::output::one_line(&e.to_string())))
}

/// `path` resolved against `base` unless absolute.
fn anchor(base: &Path, path: &str) -> String {
    if Path::new(path).is_absolute() {
        path.to_string()
    } else {
        base.join(path).to_string_lossy().into_owned()
    }
}

/// `path` made absolute against the current directory (without touching the file system
/// beyond reading the current directory).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `--` long names of the arguments of a clap command, as config keys.
pub fn keys_of(command: &clap::Command, except: &[&str]) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !except.contains(l))
        .map(str::to_string)
        .collect()
}
