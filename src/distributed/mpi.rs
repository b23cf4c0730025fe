//! The ranks of an `mpirun` / `srun` job (feature `mpi`), through rsmpi.
//!
//! The sum is deliberately not `MPI_Allreduce`: the standard leaves its order of summation to
//! the implementation (Open MPI picks an algorithm by message size and rank count, and may
//! change it between versions), so its floating-point result is not guaranteed to repeat, nor
//! to be the same bits on every rank. Instead the buffer is cut into one slice per rank
//! ([`super::share`]); `MPI_Alltoallv` hands every rank all ranks' copies of its slice, which it
//! sums in rank order (`((b₀ + b₁) + b₂) + …`), and `MPI_Allgatherv` hands the summed slices to
//! everyone: a reduce-scatter and an all-gather, as a ring all-reduce does, moving
//! 2(N − 1)/N × the buffer per rank, but with the order of every sum fixed. Every rank gets the
//! same bits, and a repeat with the same number of ranks the same bits again.
//!
//! The f16 sum ([`Communicator::all_reduce_sum_f16`]) is the same two collectives on 16-bit
//! values: every rank's shares are rounded to f16 and exchanged, the owner of a slice sums its
//! copies in f32 in rank order and rounds the sum to f16, and the all-gather hands out those f16
//! values: half the bytes both ways, the same fixed order.

use std::sync::Mutex;

use ::mpi::Threading;
use ::mpi::environment::Universe;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};

use super::{Communicator, collective_error, from_f16_bits, sum_f16_in_rank_order, to_f16_bits};
use crate::error::{Error, Result};

/// Elements reduced per round: bounds the scratch at `CHUNK` elements and keeps every count
/// within MPI's `int`.
const CHUNK: usize = 1 << 22;

struct Inner {
    world: SimpleCommunicator,
    /// Every rank's copy of this rank's slice, kept between sums (8-byte words, cast to the
    /// element type).
    scratch: Vec<u64>,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

/// The world communicator of an MPI job. Created once per process
/// ([`MpiCommunicator::initialize`]); MPI is finalized when it is dropped.
pub struct MpiCommunicator {
    inner: Mutex<Inner>,
    rank: usize,
    size: usize,
    host: String,
}

// SAFETY: MPI is initialized with `MPI_THREAD_SERIALIZED` (checked), and every call goes
// through the mutex, so no two threads are ever in MPI at once.
unsafe impl Send for MpiCommunicator {}
unsafe impl Sync for MpiCommunicator {}

impl MpiCommunicator {
    /// Initializes MPI (once per process) and returns the world communicator.
    pub fn initialize() -> Result<Self> {
        let (universe, provided) = ::mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Distributed("MPI was already initialized".into()))?;
        if provided < Threading::Serialized {
            return Err(Error::Distributed(format!(
                "the MPI library offers thread support {provided:?}, below the \
                 MPI_THREAD_SERIALIZED Hourglass needs"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let host = ::mpi::environment::processor_name().unwrap_or_else(|_| "unknown host".into());
        Ok(MpiCommunicator {
            inner: Mutex::new(Inner {
                world,
                scratch: Vec::new(),
                _universe: universe,
            }),
            rank,
            size,
            host,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| collective_error("an MPI call", "a thread panicked inside MPI"))
    }

    /// Sums `buf` over the ranks in rank order (reduce-scatter by `MPI_Alltoallv`, the sum of
    /// each slice by its owner, all-gather by `MPI_Allgatherv`), `CHUNK` elements at a time.
    fn ordered_sum<T>(&self, buf: &mut [T], add: impl Fn(&mut T, T)) -> Result<()>
    where
        T: bytemuck::Pod + ::mpi::datatype::Equivalence,
    {
        self.reduce_scatter_gather(buf, |copies, own| {
            let (sum, rest) = copies.split_at_mut(own);
            for r in 1..self.size {
                for (a, &x) in sum.iter_mut().zip(&rest[(r - 1) * own..r * own]) {
                    add(a, x);
                }
            }
        })
    }

    /// The collectives of [`MpiCommunicator::ordered_sum`]: `combine(copies, own)` replaces
    /// `copies[..own]` (this rank's slice) with the sum of the `size` copies of it laid end to
    /// end in `copies`, rank 0's first.
    fn reduce_scatter_gather<T>(
        &self,
        buf: &mut [T],
        mut combine: impl FnMut(&mut [T], usize),
    ) -> Result<()>
    where
        T: bytemuck::Pod + ::mpi::datatype::Equivalence,
    {
        if self.size == 1 {
            return Ok(());
        }
        let mut guard = self.lock()?;
        let inner = &mut *guard;
        let (rank, size) = (self.rank, self.size);
        for chunk in buf.chunks_mut(CHUNK) {
            let n = chunk.len();
            // Slice r of the chunk, and its length, as MPI counts (CHUNK keeps them in range).
            let slices: Vec<(i32, i32)> = (0..size)
                .map(|r| {
                    let (first, len) = super::share(n, r, size);
                    (first as i32, len as i32)
                })
                .collect();
            let own = slices[rank].1 as usize;
            let send_counts: Vec<i32> = slices.iter().map(|s| s.1).collect();
            let send_displs: Vec<i32> = slices.iter().map(|s| s.0).collect();
            let recv_counts = vec![own as i32; size];
            let recv_displs: Vec<i32> = (0..size).map(|r| (r * own) as i32).collect();
            let words = (size * own * std::mem::size_of::<T>()).div_ceil(8);
            if inner.scratch.len() < words {
                inner.scratch.resize(words, 0);
            }
            let copies: &mut [T] =
                &mut bytemuck::cast_slice_mut(&mut inner.scratch[..words])[..size * own];
            {
                let send =
                    ::mpi::datatype::Partition::new(&chunk[..], &send_counts[..], &send_displs[..]);
                let mut recv = ::mpi::datatype::PartitionMut::new(
                    &mut *copies,
                    &recv_counts[..],
                    &recv_displs[..],
                );
                inner.world.all_to_all_varcount_into(&send, &mut recv);
            }
            combine(&mut *copies, own);
            let mut all =
                ::mpi::datatype::PartitionMut::new(chunk, &send_counts[..], &send_displs[..]);
            inner
                .world
                .all_gather_varcount_into(&copies[..own], &mut all);
        }
        Ok(())
    }
}

impl MpiCommunicator {
    /// Seconds per `MPI_Allreduce(MPI_SUM)` of `buf` over `reps` repetitions (after one
    /// warm-up): what the library's own reduction would cost, for comparison
    /// (`examples/reduce_bench.rs`). Not used for training: its order of summation is the
    /// library's choice.
    pub fn native_all_reduce_seconds(&self, buf: &mut [f32], reps: u32) -> Result<f64> {
        use ::mpi::collective::SystemOperation;
        let inner = self.lock()?;
        let send = buf.to_vec();
        inner
            .world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        let started = std::time::Instant::now();
        for _ in 0..reps {
            inner
                .world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        Ok(started.elapsed().as_secs_f64() / f64::from(reps.max(1)))
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn host(&self) -> String {
        self.host.clone()
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.ordered_sum(buf, |a, x| *a += x)
    }

    fn all_reduce_sum_f16(&self, buf: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let mut wire = to_f16_bits(buf);
        let mut sum = Vec::new();
        self.reduce_scatter_gather(&mut wire, |copies, own| {
            sum.resize(own, 0u16);
            sum_f16_in_rank_order(copies, own, &mut sum);
            copies[..own].copy_from_slice(&sum);
        })?;
        from_f16_bits(&wire, buf);
        Ok(())
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.ordered_sum(buf, |a, x| *a += x)
    }

    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let inner = self.lock()?;
        inner
            .world
            .process_at_rank(root as i32)
            .broadcast_into(&mut buf[..]);
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        // No lock: the rank may be aborting because a thread died holding it.
        SimpleCommunicator::world().abort(code)
    }
}
