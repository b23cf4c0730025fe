//! The library's side of `python/bench/encode_overhead.py`: loads a checkpoint and a `.npy`
//! matrix, encodes it `repeats` times on the CPU and prints the median seconds of one call, so
//! that the Python binding's overhead over the library it wraps can be read off one command.
//!
//! `cargo run --release --example encode_timing -- MODEL.safetensors X.npy [REPEATS]`

use std::path::Path;
use std::time::Instant;

use hourglass::data::npy::read_npy;
use hourglass::infer::Autoencoder;
use hourglass::train::Device;

fn main() -> hourglass::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(data)) = (args.first(), args.get(1)) else {
        eprintln!("usage: encode_timing MODEL.safetensors X.npy [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(10);
    let mut model = Autoencoder::load(model, Device::Cpu)?;
    let x = read_npy(Path::new(data))?;
    model.encode(&x)?; // the first call builds the executor
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            model.encode(&x).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<hourglass::Result<_>>()?;
    times.sort_by(f64::total_cmp);
    println!("{:.6}", times[times.len() / 2]);
    Ok(())
}
