//! What `--resume` and `--init` may take from the command line, and what a resumed run checks
//! before it continues: the training state is of the run's model (its `config.toml`), and the
//! data and batch size are the ones the state was trained on.

use std::collections::HashMap;

use clap::ArgMatches;
use clap::parser::ValueSource;
use hourglass::data::Dataset;
use hourglass::model::{ModelSpec, Variant};
use hourglass::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::Ui;

/// Metadata key of the [`DataIdentity`] in `train_state.safetensors`.
pub const DATA_KEY: &str = "hourglass.data";

/// Flags that define the model (`--init` refuses them: the checkpoint's model is used).
const ARCHITECTURE: [&str; 7] = [
    "encoder",
    "decoder",
    "activation",
    "code_activation",
    "output_activation",
    "tied",
    "variant",
];

/// Flags of the training objective: `--init` applies them to the checkpoint's model.
const OBJECTIVE: [&str; 8] = [
    "loss",
    "sparsity",
    "sparsity_target",
    "noise",
    "contractive",
    "jacobian_projections",
    "beta",
    "vae_samples",
];

/// Flags of the data and its batching.
const DATA: [&str; 10] = [
    "data",
    "dataset",
    "data_dir",
    "normalize",
    "allow_nonfinite",
    "val",
    "val_split",
    "batch_size",
    "accumulate",
    "drop_last",
];

fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// `--resume DIR` continues DIR's run as its `config.toml` describes it: flags that would
/// change its model or data are refused.
pub fn refuse_run_flags(matches: &ArgMatches, dir: &std::path::Path) -> Result<()> {
    let changed: Vec<String> = ARCHITECTURE
        .iter()
        .chain(&OBJECTIVE)
        .chain(&DATA)
        .chain(&["init"])
        .filter(|id| given(matches, id))
        .map(|id| flag(id))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} would change the model or data of the run being resumed, which are fixed by {}; \
         to train a changed copy: hourglass train --config {} {} ... --out NEW_DIR",
        changed.join(", "),
        dir.join("config.toml").display(),
        dir.join("config.toml").display(),
        changed[0]
    )))
}

/// The flags of the checkpoint's model under `--init`: architecture flags are refused,
/// objective flags are applied to it (with a note). `from_ckpt` holds the flags rebuilt from
/// the checkpoint's spec, `cli` those parsed; the result is the flags to build the spec from.
pub fn init_flags<T: Serialize + for<'de> Deserialize<'de>>(
    matches: &ArgMatches,
    init: &std::path::Path,
    ckpt: &ModelSpec,
    from_ckpt: &T,
    cli: &T,
    ui: Ui,
) -> Result<T> {
    let refused: Vec<String> = ARCHITECTURE
        .iter()
        .filter(|id| given(matches, id))
        .map(|id| flag(id))
        .collect();
    if !refused.is_empty() {
        return Err(Error::Config(format!(
            "{} with --init: the model is {}'s ({}); drop {}, or train a new model without --init",
            refused.join(", "),
            init.display(),
            describe(ckpt),
            if refused.len() == 1 { "it" } else { "them" }
        )));
    }
    let applied: Vec<&str> = OBJECTIVE
        .iter()
        .copied()
        .filter(|id| given(matches, id))
        .collect();
    let mut table = crate::config::to_table(from_ckpt)?;
    let cli_table = crate::config::to_table(cli)?;
    for id in &applied {
        let key = id.replace('_', "-");
        let variant_of = match *id {
            "sparsity" | "sparsity_target" => Some("sparse"),
            "noise" => Some("denoising"),
            "contractive" | "jacobian_projections" => Some("contractive"),
            "beta" | "vae_samples" => Some("vae"),
            _ => None,
        };
        if let Some(v) = variant_of
            && variant_name(ckpt) != v
        {
            return Err(Error::Config(format!(
                "{} applies to a {v} model, but {} holds a {}",
                flag(id),
                init.display(),
                describe(ckpt)
            )));
        }
        match cli_table.get(&key) {
            Some(value) => table.insert(key, value.clone()),
            None => table.remove(&key),
        };
    }
    if !applied.is_empty() {
        let names: Vec<String> = applied.iter().map(|id| flag(id)).collect();
        ui.note(&format!(
            "--init {}: training its {} with {} as given",
            init.display(),
            describe(ckpt),
            names.join(", ")
        ));
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| Error::Config(e.to_string().trim().replace('\n', " ")))
}

/// A resumed state's model must be the one its run's `config.toml` describes.
pub fn check_state_spec(
    state: &ModelSpec,
    config: &ModelSpec,
    dir: &std::path::Path,
) -> Result<()> {
    if state == config {
        return Ok(());
    }
    Err(Error::bad_file(
        dir.join("train_state.safetensors"),
        format!(
            "holds a {} but {} describes a {}: the state is not this run's; resume a folder \
             whose state and config.toml belong together",
            describe(state),
            dir.join("config.toml").display(),
            describe(config)
        ),
    ))
}

/// `vae`, `plain`, ...: the `--variant` of a spec.
pub fn variant_name(spec: &ModelSpec) -> &'static str {
    match spec.variant {
        Variant::Plain => "plain",
        Variant::Sparse { .. } => "sparse",
        Variant::Denoising { .. } => "denoising",
        Variant::Contractive { .. } => "contractive",
        Variant::Vae { .. } => "vae",
        Variant::Psd { .. } => "psd",
    }
}

/// `plain 784→16→784 model (relu, bce)`.
pub fn describe(spec: &ModelSpec) -> String {
    let widths: Vec<String> = if spec.is_conv() {
        // `1x28x28→conv32k3s2→32→6272→convT1k3s2`: the encoder string, the decoder's dense
        // widths, then the transposed convs back to the input channels.
        let stages = spec.conv_stages().unwrap_or_default();
        spec.encoder_tokens()
            .iter()
            .map(|t| t.to_string())
            .chain(spec.decoder.iter().skip(1).map(usize::to_string))
            .chain(
                stages
                    .iter()
                    .rev()
                    .map(|s| format!("convT{}k{}s{}", s.in_c, s.kernel, s.stride)),
            )
            .collect()
    } else {
        spec.encoder
            .iter()
            .chain(spec.decoder.iter().skip(1))
            .map(usize::to_string)
            .collect()
    };
    format!(
        "{} {} model{}",
        variant_name(spec),
        widths.join("→"),
        if spec.tied { " (tied)" } else { "" }
    )
}

/// What a run trains on, recorded in its training state: resuming on other data (or with
/// another batch size) is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// The source (a file's absolute path, a named set, `bundled`).
    pub source: String,
    /// Training rows (after a validation split).
    pub rows: usize,
    /// Features per row.
    pub features: usize,
    /// FNV-1a (64-bit) of the first and the last MiB of the training matrix's f32 bytes, as
    /// 16 hex digits.
    pub hash: String,
    /// `--batch-size`.
    pub batch_size: usize,
}

impl DataIdentity {
    /// The identity of `data` (before normalization) from `source`, batched by `batch_size`.
    pub fn of(source: String, data: &Dataset, batch_size: usize) -> Self {
        DataIdentity {
            source,
            rows: data.rows,
            features: data.cols,
            hash: format!("{:016x}", fingerprint(bytemuck::cast_slice(&data.values))),
            batch_size,
        }
    }

    /// As metadata text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a data identity always serializes")
    }

    /// Refuses to resume on data other than the state's (naming what changed); a state
    /// without a recorded identity (an older run) is not checked.
    pub fn check(&self, metadata: &HashMap<String, String>, dir: &std::path::Path) -> Result<()> {
        let Some(text) = metadata.get(DATA_KEY) else {
            return Ok(());
        };
        let saved: DataIdentity = serde_json::from_str(text).map_err(|e| {
            Error::bad_file(
                dir.join("train_state.safetensors"),
                format!("unreadable '{DATA_KEY}' metadata: {e}"),
            )
        })?;
        let mut changed = Vec::new();
        if saved.source != self.source {
            changed.push(format!("source {} → {}", saved.source, self.source));
        }
        if saved.rows != self.rows {
            changed.push(format!("rows {} → {}", saved.rows, self.rows));
        }
        if saved.features != self.features {
            changed.push(format!("features {} → {}", saved.features, self.features));
        }
        if saved.rows == self.rows && saved.features == self.features && saved.hash != self.hash {
            changed.push("the values of the rows (their fingerprint differs)".into());
        }
        if saved.batch_size != self.batch_size {
            changed.push(format!(
                "batch size {} → {}",
                saved.batch_size, self.batch_size
            ));
        }
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "the run in {} was trained on other data: {}; resume it on the data it was trained \
             on, or start a new run with --config {} --out NEW_DIR",
            dir.display(),
            changed.join(", "),
            dir.join("config.toml").display()
        )))
    }
}

/// FNV-1a over the first and last MiB of `bytes` (all of it when shorter than 2 MiB), and the
/// length.
fn fingerprint(bytes: &[u8]) -> u64 {
    const MIB: usize = 1 << 20;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |part: &[u8]| {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    if bytes.len() <= 2 * MIB {
        eat(bytes);
    } else {
        eat(&bytes[..MIB]);
        eat(&bytes[bytes.len() - MIB..]);
    }
    eat(&(bytes.len() as u64).to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_sees_the_first_and_last_mebibyte() {
        let big = vec![0.5f32; 3 << 18]; // 3 MiB
        let base = fingerprint(bytemuck::cast_slice(&big));
        let mut first = big.clone();
        first[0] = 1.0;
        let mut last = big.clone();
        *last.last_mut().unwrap() = 1.0;
        assert_ne!(fingerprint(bytemuck::cast_slice(&first)), base);
        assert_ne!(fingerprint(bytemuck::cast_slice(&last)), base);
        assert_eq!(fingerprint(bytemuck::cast_slice(&big.clone())), base);
    }
}
