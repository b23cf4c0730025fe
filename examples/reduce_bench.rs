//! The cost of one gradient reduction between the ranks of an `mpirun` job, alone (no
//! training): the rank-ordered sum Hourglass uses (reduce-scatter, sum in rank order,
//! all-gather), the same in f16 (`all_reduce_sum_f16`: half the bytes, plus the conversions)
//! and, for comparison, Open MPI's own `MPI_Allreduce` (not reproducible by the standard's
//! rules), for the gradient sizes of the benchmark workloads. BENCHMARKS.md quotes it.
//!
//! ```text
//! cargo build --release --features mpi --example reduce_bench
//! mpirun -np 2 target/release/examples/reduce_bench
//! ```

use std::time::Instant;

use hourglass::distributed::{Communicator, MpiCommunicator};

fn main() -> hourglass::Result<()> {
    let comm = MpiCommunicator::initialize()?;
    // Parameters of mnist_ae, large_ae at a quarter of its width, and large_ae.
    for (name, n) in [
        ("mnist_ae", 1_081_344usize),
        ("large_ae/4", 8_920_320),
        ("large_ae", 142_610_432),
    ] {
        let mut buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
        let reps = if n > 50_000_000 { 3 } else { 20 };
        comm.all_reduce_sum(&mut buf)?; // warm-up
        let started = Instant::now();
        for _ in 0..reps {
            comm.all_reduce_sum(&mut buf)?;
        }
        let ordered = started.elapsed().as_secs_f64() / f64::from(reps);
        let native = comm.native_all_reduce_seconds(&mut buf, reps)?;
        // Small values, so that 1 + reps doublings stay far inside f16's range.
        let mut small: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 2f32.powi(-20)).collect();
        comm.all_reduce_sum_f16(&mut small)?; // warm-up
        let started = Instant::now();
        for _ in 0..reps {
            comm.all_reduce_sum_f16(&mut small)?;
        }
        let half = started.elapsed().as_secs_f64() / f64::from(reps);
        if comm.rank() == 0 {
            let mb = (n * 4) as f64 / 1e6;
            println!(
                "{name:<11} {mb:8.1} MB  rank-ordered {:8.2} ms ({:6.2} GB/s)   f16 ({:.1} MB) \
                 {:8.2} ms   MPI_Allreduce {:8.2} ms",
                1e3 * ordered,
                mb / 1e3 / ordered,
                mb / 2.0,
                1e3 * half,
                1e3 * native
            );
        }
    }
    Ok(())
}
