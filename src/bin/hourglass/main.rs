//! The `hourglass` command line: a thin shell over the library.

#[macro_use]
mod output;

mod analysis;
mod bench;
mod config;
mod encode;
mod estimate;
mod eval;
mod fit;
mod flag_names;
mod gpu_options;
mod headless;
mod info;
mod limits;
mod metrics;
mod outputs;
mod overlap;
mod parallel;
mod progress;
mod psd;
mod resume;
mod runfolder;
mod sample;
mod source;
mod train;
mod unused;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Train autoencoders on any GPU (wgpu: Vulkan, Metal, DX12) or on the CPU.
#[derive(Parser)]
#[command(name = "hourglass", version, about, long_about = None)]
struct Cli {
    /// Print nothing but errors (and the results a command was asked for, such as eval's).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an autoencoder; writes model, best model, metrics, config and pictures to --out.
    #[command(allow_negative_numbers = true, after_help = train::EXAMPLES)]
    Train(Box<train::TrainArgs>),
    /// The loss of a trained model on data: reconstruction and every regularizer term.
    #[command(after_help = eval::EXAMPLES)]
    Eval(eval::EvalArgs),
    /// Write the code of each row (μ for a VAE) as a .npy matrix, as packed bits with
    /// --binary, or scatter 2-D codes coloured by label with --png.
    #[command(after_help = encode::ENCODE_EXAMPLES)]
    Encode(encode::EncodeArgs),
    /// Write each row's reconstruction as .npy, and a PNG grid for image data.
    #[command(after_help = encode::RECONSTRUCT_EXAMPLES)]
    Reconstruct(encode::ReconstructArgs),
    /// Decode codes drawn from a VAE's prior N(0, I), or walk between the codes of two inputs.
    #[command(after_help = sample::EXAMPLES)]
    Sample(sample::SampleArgs),
    /// Nearest neighbours of each query among the index rows by their codes (Hamming distance
    /// on bits, or Euclidean), with precision@k when there are labels.
    #[command(after_help = analysis::NEIGHBORS_EXAMPLES)]
    Neighbors(analysis::NeighborsArgs),
    /// The directions an encoder is most sensitive to at chosen inputs: the top right singular
    /// vectors of ∂h/∂x, drawn as images, with the singular values.
    #[command(after_help = analysis::TANGENTS_EXAMPLES)]
    Tangents(analysis::TangentsArgs),
    /// Train a denoising autoencoder on 2-D toy data and draw its vector field r(x) − x.
    #[command(after_help = analysis::FIELD_EXAMPLES)]
    Field(analysis::FieldArgs),
    /// Decode sweeps of single latent dimensions of a VAE, one row of images per dimension.
    #[command(after_help = analysis::TRAVERSE_EXAMPLES)]
    Traverse(analysis::TraverseArgs),
    /// Train the benchmark workloads on synthetic data and report samples/s, TFLOP/s, memory
    /// and start-up time, GPU and CPU side by side.
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::BenchArgs),
    /// List the GPU adapters wgpu sees, with backend, type, features and limits.
    #[command(after_help = "Examples:\n  hourglass info\n  hourglass info --backend gl")]
    Info(info::InfoArgs),
}

/// Where a command's messages go: notes on stderr and progress on stdout, both silenced by
/// `--quiet`; results and errors always get through.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    /// `--quiet` was given.
    pub quiet: bool,
}

impl Ui {
    /// A progress or summary line on stdout.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            output::outln!("{line}");
        }
    }

    /// A remark on stderr (`note: ...`).
    pub fn note(&self, line: &str) {
        if !self.quiet {
            output::errln!("note: {line}");
        }
    }

    /// The bundled data's licence line, once per process.
    pub fn bundled_notice(&self) {
        static SHOWN: AtomicBool = AtomicBool::new(false);
        if !SHOWN.swap(true, Ordering::Relaxed) {
            self.note(hourglass::data::embedded::LICENSE_NOTICE);
        }
    }
}

fn main() -> ExitCode {
    headless::probe_without_display();
    // The command line owns its process: OpenBLAS may be made single-threaded, so the CPU
    // executor's products run one OpenBLAS call per rayon thread (see set_openblas_serial).
    hourglass::cpu::set_openblas_serial(true);
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return output::clap_error(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return output::clap_error(&e),
    };
    let ui = Ui { quiet: cli.quiet };
    // Training's product is its folder; every other command's is (also) what it prints.
    let prints_product = !matches!(cli.command, Command::Train(_) | Command::Field(_));
    let result = match cli.command {
        Command::Train(args) => {
            let sub = matches
                .subcommand_matches("train")
                .expect("clap matched the train subcommand");
            train::run(*args, sub, ui)
        }
        Command::Eval(args) => eval::run(args, ui),
        Command::Encode(args) => encode::run_encode(args, ui),
        Command::Reconstruct(args) => encode::run_reconstruct(args, ui),
        Command::Sample(args) => sample::run(args, ui),
        Command::Neighbors(args) => analysis::run_neighbors(args, ui),
        Command::Tangents(args) => analysis::run_tangents(args, ui),
        Command::Field(args) => analysis::run_field(args, ui),
        Command::Traverse(args) => analysis::run_traverse(args, ui),
        Command::Bench(args) => bench::run_bench(args, ui),
        Command::Info(args) => info::run(args),
    };
    output::exit_code(result, fit::was_interrupted(), prints_product)
}
