//! What a command is about to write, checked before it reads or computes anything: no output
//! may be one of the command's inputs (the same path, a symlink to it or a hard link of it), no
//! two outputs may be the same file, and every output is named with the extension its writer
//! produces. Every command that writes builds one [`Plan`] and calls [`Plan::check`].

use std::path::{Path, PathBuf};

use hourglass::{Error, Result};

use crate::source::{DataArgs, NORMALIZATION_FILE};

/// The inputs and outputs of one command.
#[derive(Default)]
pub struct Plan {
    /// `(flag, path)` of each file the command reads.
    inputs: Vec<(String, PathBuf)>,
    /// `(flag, path, extensions its writer produces)`; no extensions: any name (a folder's
    /// files, whose names the command chooses).
    outputs: Vec<(String, PathBuf, &'static [&'static str])>,
}

impl Plan {
    pub fn new() -> Self {
        Plan::default()
    }

    /// A file the command reads, named by `flag` in messages.
    pub fn input(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.inputs.push((flag.to_string(), p.to_path_buf()));
        }
        self
    }

    /// A data file as `--data` names it (`x.safetensors:TENSOR` is the file `x.safetensors`).
    pub fn data_file(self, flag: &str, spec: Option<&str>) -> Self {
        let Some(spec) = spec else { return self };
        let path = match spec.rsplit_once(':') {
            Some((file, _)) if !Path::new(spec).exists() && Path::new(file).exists() => file,
            _ => spec,
        };
        self.input(flag, Some(Path::new(path)))
    }

    /// The data flags' file, if they name one.
    pub fn data(self, args: &DataArgs) -> Self {
        self.data_file("--data", args.data.as_deref())
    }

    /// A model checkpoint and the `normalization.json` beside it, which commands also read.
    pub fn model(self, model: &Path) -> Self {
        let normalization = model
            .parent()
            .unwrap_or(Path::new(""))
            .join(NORMALIZATION_FILE);
        self.input("--model", Some(model))
            .input("the model's normalization", Some(&normalization))
    }

    /// A file the command writes, given by `flag`, whose writer produces `extensions`.
    pub fn output(
        mut self,
        flag: &str,
        path: Option<&Path>,
        extensions: &'static [&'static str],
    ) -> Self {
        if let Some(p) = path {
            self.outputs
                .push((flag.to_string(), p.to_path_buf(), extensions));
        }
        self
    }

    /// The files `names` the command writes into the folder given by `flag`.
    pub fn folder(mut self, flag: &str, dir: &Path, names: &[&str]) -> Self {
        for name in names {
            self.outputs
                .push((format!("{flag} {}", dir.display()), dir.join(name), &[]));
        }
        self
    }

    /// Refuses the plan when an output would replace an input or another output, or is named
    /// with an extension its writer does not produce.
    pub fn check(&self) -> Result<()> {
        for (flag, path, extensions) in &self.outputs {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_lowercase);
            if !extensions.is_empty() && !extensions.iter().any(|e| ext.as_deref() == Some(e)) {
                let wanted: Vec<String> = extensions.iter().map(|e| format!("FILE.{e}")).collect();
                return Err(Error::Config(format!(
                    "{flag} {}: this writes {}; name the file {}",
                    path.display(),
                    extensions
                        .iter()
                        .map(|e| format!(".{e}"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    wanted.join(" or ")
                )));
            }
            for (in_flag, input) in &self.inputs {
                if same_file(path, input) {
                    return Err(Error::Config(format!(
                        "{flag}: {} is {} ({in_flag} {}); writing it would destroy that input, \
                         so choose another output path",
                        path.display(),
                        if path == input {
                            "an input of this command"
                        } else {
                            "the same file as an input of this command"
                        },
                        input.display()
                    )));
                }
            }
        }
        for (i, (flag, path, _)) in self.outputs.iter().enumerate() {
            for (other_flag, other, _) in &self.outputs[i + 1..] {
                if normalized(path) == normalized(other) {
                    return Err(Error::Config(format!(
                        "{flag} and {other_flag} both name {}; give each its own file",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// True when `a` and `b` both exist and are one file: by device and inode on Unix (symlinks
/// followed, hard links included), by canonical path elsewhere.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// `path` with its folder made canonical (the file itself need not exist yet).
fn normalized(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => crate::config::absolute(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_an_input_is_refused_by_path_symlink_and_hard_link() {
        let dir = std::env::temp_dir().join(format!("hourglass-outputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("x.npy");
        std::fs::write(&data, b"data").unwrap();
        let hard = dir.join("hard.npy");
        std::fs::hard_link(&data, &hard).unwrap();
        let plan = |out: &Path| {
            Plan::new()
                .data_file("--data", Some(data.to_str().unwrap()))
                .output("--out", Some(out), &["npy"])
                .check()
        };
        assert!(plan(&data).is_err());
        assert!(plan(&hard).is_err());
        #[cfg(unix)]
        {
            let link = dir.join("link.npy");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            assert!(plan(&link).is_err());
        }
        assert!(plan(&dir.join("codes.npy")).is_ok());
        assert!(plan(&dir.join("codes.png")).is_err(), "wrong extension");
        let twice = Plan::new()
            .output("--out", Some(&dir.join("a.npy")), &["npy"])
            .output("--png", Some(&dir.join("./a.npy")), &["npy"]);
        assert!(twice.check().is_err(), "two outputs, one file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
