//! The one writer of everything the command line prints: every line to stdout or stderr goes
//! through [`out`] or [`err`] (the `outln!` and `errln!` macros), never `println!`, which
//! panics when stdout is closed (`| head -1`) or full (`> /dev/full`).
//!
//! A line that cannot be written is dropped, and the first failure is kept: [`exit_code`] then
//! decides at the end of the command. A closed pipe ends quietly with the command's own status;
//! a full or broken stdout fails a command whose product is what it prints (exit 1, one
//! `error:` line), while training, whose product is its folder, saves it and exits 0 with a
//! note. Writes to stderr that fail are dropped: there is nowhere left to say so.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Mutex;

/// The first error writing stdout met, if any; once set, stdout is written no more.
static STDOUT_FAILURE: Mutex<Option<io::Error>> = Mutex::new(None);

/// `println!` through the one writer.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out(format_args!($($arg)*)) };
}

/// `eprintln!` through the one writer.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::err(format_args!($($arg)*)) };
}

pub(crate) use {errln, outln};

/// Writes one line to stdout, or drops it when stdout has failed.
pub fn out(line: fmt::Arguments) {
    let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    if failure.is_some() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        *failure = Some(e);
    }
}

/// Writes one line to stderr, dropping it when that fails.
pub fn err(line: fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// How a command that returned `result` ends, given what became of its stdout.
/// `prints_product`: what the command prints is its result (eval, info, …), not progress.
pub fn exit_code(
    result: hourglass::Result<()>,
    interrupted: bool,
    prints_product: bool,
) -> ExitCode {
    let failure = STDOUT_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match result {
        Err(e) => {
            errln!(
                "error: {}",
                one_line(&crate::flag_names::in_cli_terms(&e.to_string()))
            );
            match e {
                hourglass::Error::Gpu(_) | hourglass::Error::NonFinite { .. } => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
        Ok(()) if interrupted => ExitCode::from(130),
        Ok(()) => match failure {
            None => ExitCode::SUCCESS,
            // The reader went away (`| head -1`): what it did not read is not wanted.
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Some(e) if prints_product => {
                errln!("error: cannot write the results to stdout: {e}");
                ExitCode::from(1)
            }
            Some(e) => {
                errln!(
                    "note: stdout could not be written ({e}); progress lines were dropped, the \
                     run's files were saved as usual"
                );
                ExitCode::SUCCESS
            }
        },
    }
}

/// A message that may span lines (a library's diagram, a usage block) as one line: its
/// non-blank lines, trimmed, joined by "; ".
pub fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// A clap error as one `error:` line and at most one `hint:` line; help and version requests
/// print in full on stdout. Returns the exit code clap chose (2 for a usage error).
pub fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    let text = e.render().to_string();
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        outln!("{}", text.trim_end());
        return ExitCode::from(code);
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The `error:` line and the lines that continue it (a list of missing arguments), up to the
    // first blank line.
    let message = match lines.iter().position(|l| l.starts_with("error: ")) {
        Some(start) => {
            let rest = lines[start + 1..].iter().take_while(|l| !l.is_empty());
            let mut parts = vec![lines[start].trim_start_matches("error: ")];
            parts.extend(rest.copied());
            parts.join(" ")
        }
        None => one_line(&text),
    };
    // `Usage: hourglass eval --model <PATH> [OPTIONS]` gives `hourglass eval`.
    let usage = lines
        .iter()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| {
            let words: Vec<&str> = u
                .split_whitespace()
                .take_while(|w| !w.starts_with(['-', '[', '<']))
                .collect();
            words.join(" ")
        });
    let hint = lines
        .iter()
        .find_map(|l| l.strip_prefix("tip: "))
        .map(str::to_string)
        .or_else(|| usage.map(|u| format!("see '{u} --help'")))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("For more information"))
                .map(|l| l.to_string())
        });
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        errln!("{}", text.trim_end());
        return ExitCode::from(code);
    }
    errln!("error: {message}");
    if let Some(hint) = hint {
        errln!("hint: {hint}");
    }
    ExitCode::from(code)
}
