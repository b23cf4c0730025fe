//! The folder a `hourglass train` run writes, held for one process at a time, and never
//! losing an earlier run's files to a run that has not yet saved a checkpoint of its own.
//!
//! - An advisory lock file, `.hourglass.lock` (`PID HOST`), keeps a second run out; a lock of
//!   a process that is gone (same host, no such pid) is taken over with a note.
//! - A new run refuses a folder that already holds a run unless `--overwrite` is given.
//! - A run that replaces (`--overwrite`) or continues (`--resume`) one writes into a staging
//!   folder inside it until its first checkpoint (model and training state) exists, and only
//!   then moves its files over the old ones ([`RunFolder::commit`]). A run that fails before
//!   that leaves every earlier file byte for byte as it was.
//! - Temporary files of a killed run (`.NAME.tmp-PID`, staging folders) are removed when the
//!   next run takes the folder, with a note.

use std::io::Write;
use std::path::{Path, PathBuf};

use hourglass::{Error, Result};

use crate::Ui;

/// The files a run writes (and the only ones a run ever removes).
pub const RUN_FILES: [&str; 10] = [
    "model.safetensors",
    "best.safetensors",
    "train_state.safetensors",
    "metrics.jsonl",
    "config.toml",
    "normalization.json",
    "loss.png",
    "reconstructions.png",
    "reconstructions.npy",
    "atoms.png",
];

/// The files whose presence means the folder holds a run.
const RUN_MARKERS: [&str; 5] = [
    "config.toml",
    "train_state.safetensors",
    "model.safetensors",
    "best.safetensors",
    "metrics.jsonl",
];

const LOCK_FILE: &str = ".hourglass.lock";
const STAGING_PREFIX: &str = ".hourglass-staging-";

/// How a run uses its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new run: the folder must not hold one.
    New,
    /// A new run replacing the one in the folder (`--overwrite`).
    Overwrite,
    /// Continuing the run in the folder (`--resume`).
    Resume,
}

/// A run folder held by this process.
pub struct RunFolder {
    dir: PathBuf,
    /// Where files go until the first checkpoint; `None` once committed (or when there is
    /// nothing to protect).
    staging: Option<PathBuf>,
    /// At the commit, remove the old run's files that the new run has not written.
    replace_old: bool,
    /// The folder did not exist before this run.
    created: bool,
    lock: PathBuf,
}

impl RunFolder {
    /// Takes `dir` for a run in `mode`: creates it, locks it, refuses a new run in a folder
    /// holding one, and removes a killed run's temporaries.
    pub fn open(dir: &Path, mode: Mode, ui: Ui) -> Result<RunFolder> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = acquire(dir, ui)?;
        let mut folder = RunFolder {
            dir: dir.to_path_buf(),
            staging: None,
            replace_old: mode == Mode::Overwrite,
            created,
            lock,
        };
        let held: Vec<&str> = RUN_MARKERS
            .into_iter()
            .filter(|name| dir.join(name).exists())
            .collect();
        if mode == Mode::New && !held.is_empty() {
            return Err(Error::Config(format!(
                "--out {}: the folder already holds a run ({}); continue it with --resume {}, \
                 or replace it with --overwrite (the old run is kept until the new one has \
                 saved its first checkpoint)",
                dir.display(),
                held.join(", "),
                dir.display()
            )));
        }
        folder.remove_temporaries(ui)?;
        if mode != Mode::New && !held.is_empty() {
            let staging = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
            std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            folder.staging = Some(staging);
        }
        Ok(folder)
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the run writes `name` now: the staging folder before the first checkpoint, the
    /// run folder after.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.as_ref().unwrap_or(&self.dir).join(name)
    }

    /// The first checkpoint exists: the staged files replace the old run's.
    pub fn commit(&mut self) -> Result<()> {
        let Some(staging) = self.staging.take() else {
            return Ok(());
        };
        if self.replace_old {
            for name in RUN_FILES {
                if !staging.join(name).exists() {
                    remove_if_present(&self.dir.join(name))?;
                }
            }
        }
        let entries = std::fs::read_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        // The training state last: until it moves, a resume still finds the old run whole.
        names.sort_by_key(|n| n == "train_state.safetensors");
        for name in names {
            let to = self.dir.join(&name);
            std::fs::rename(staging.join(&name), &to).map_err(|e| Error::io(&to, e))?;
        }
        std::fs::remove_dir(&staging).map_err(|e| Error::io(&staging, e))
    }

    /// Removes what a killed run left: `.NAME.tmp-PID` files of the run's files and staging
    /// folders (the lock is held, so none of them belongs to a live run).
    fn remove_temporaries(&self, ui: Ui) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if is_temporary(&name) {
                remove_if_present(&path)?;
            } else if let Some(pid) = name.strip_prefix(STAGING_PREFIX)
                && pid.parse::<u32>().is_ok()
                && path.is_dir()
            {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            } else {
                continue;
            }
            removed.push(name);
        }
        if !removed.is_empty() {
            removed.sort();
            ui.note(&format!(
                "removed what an interrupted run left in {}: {}",
                self.dir.display(),
                removed.join(", ")
            ));
        }
        Ok(())
    }
}

impl Drop for RunFolder {
    /// A run that never committed leaves the old run as it was; the lock goes; a folder this
    /// run created and left empty goes too.
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            let _ = std::fs::remove_dir_all(staging);
        }
        let _ = std::fs::remove_file(&self.lock);
        if self.created {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// `.NAME.tmp-PID` for one of the run's files (what [`hourglass::io::write_atomic`] writes).
fn is_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once(".tmp-") {
        Some((file, pid)) => {
            RUN_FILES.contains(&file) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// This machine's name, for the lock file.
fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` runs on this machine (assumed when it cannot be told).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Creates the lock file of `dir`, taking over a stale one.
fn acquire(dir: &Path, ui: Ui) -> Result<PathBuf> {
    let path = dir.join(LOCK_FILE);
    let me = host();
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                writeln!(f, "{} {me}", std::process::id()).map_err(|e| Error::io(&path, e))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut words = text.split_whitespace();
                let pid = words.next().and_then(|p| p.parse::<u32>().ok());
                let holder = words.next().unwrap_or("").to_string();
                let stale = match pid {
                    None => true,
                    Some(pid) => holder == me && !alive(pid),
                };
                if !stale {
                    return Err(Error::Config(format!(
                        "{} is in use by another hourglass train (pid {} on {holder}, see {}); \
                         wait for it to finish, or remove that file if the process is gone",
                        dir.display(),
                        pid.unwrap_or(0),
                        path.display()
                    )));
                }
                ui.note(&format!(
                    "{}: taking over the lock of {} (it no longer runs)",
                    dir.display(),
                    match pid {
                        Some(pid) => format!("pid {pid} on {holder}"),
                        None => "an unfinished run".into(),
                    }
                ));
                remove_if_present(&path)?;
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Err(Error::Config(format!(
        "{}: could not take the lock {}",
        dir.display(),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_only_those_of_run_files() {
        assert!(is_temporary(".model.safetensors.tmp-1234"));
        assert!(is_temporary(".metrics.jsonl.tmp-7"));
        assert!(!is_temporary(".notes.txt.tmp-7"), "a user's file");
        assert!(!is_temporary("model.safetensors.tmp-7"));
        assert!(!is_temporary(".model.safetensors.tmp-"));
        assert!(!is_temporary(".model.safetensors.tmp-12a"));
    }
}
