//! The `hourglass` command line: a thin shell over the library.

mod info;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train autoencoders on any GPU (wgpu: Vulkan, Metal, DX12) or on the CPU.
#[derive(Parser)]
#[command(name = "hourglass", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an autoencoder and write DIR/model.safetensors.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  hourglass train --data x.npy --encoder 784,256,32 --epochs 5 --out run1"
    )]
    Train(Box<train::TrainArgs>),
    /// List the GPU adapters wgpu sees, with backend, type, features and limits.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Info => info::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                hourglass::Error::Gpu(_) | hourglass::Error::NonFinite { .. } => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}
