//! The ranks of an `mpirun` / `srun` job (feature `mpi`), through rsmpi.
//!
//! The sum is deliberately not `MPI_Allreduce`: the standard leaves its order of summation to
//! the implementation (Open MPI picks an algorithm by message size and rank count, and may
//! change it between versions), so its floating-point result is not guaranteed to repeat, nor
//! to be the same bits on every rank. Instead every rank's buffer is gathered to rank 0
//! (`MPI_Gather`), summed there in rank order, and the sum broadcast (`MPI_Bcast`): the same
//! bits on every rank, and on every repeat with the same number of ranks. It moves
//! (N − 1) × the buffer into rank 0 where a ring all-reduce moves 2(N − 1)/N × the buffer per
//! rank; BENCHMARKS.md ("More than one device") measures it and gives the cost model.

use std::sync::Mutex;

use ::mpi::Threading;
use ::mpi::environment::Universe;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator as _, Root as _};

use super::{Communicator, collective_error};
use crate::error::{Error, Result};

/// Elements gathered per round: bounds rank 0's scratch at `size × CHUNK` elements and keeps
/// every count within MPI's `int`.
const CHUNK: usize = 1 << 22;

struct Inner {
    // Dropped last: finalizes MPI.
    world: SimpleCommunicator,
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

    /// Gathers `buf` to rank 0, sums there in rank order with `add`, broadcasts the sum.
    fn ordered_sum<T>(&self, buf: &mut [T], add: impl Fn(&mut T, T)) -> Result<()>
    where
        T: Copy + Default + ::mpi::datatype::Equivalence,
    {
        if self.size == 1 {
            return Ok(());
        }
        let inner = self.lock()?;
        let root = inner.world.process_at_rank(0);
        let mut gathered = if self.rank == 0 {
            vec![T::default(); self.size * CHUNK.min(buf.len())]
        } else {
            Vec::new()
        };
        for chunk in buf.chunks_mut(CHUNK) {
            let n = chunk.len();
            if self.rank == 0 {
                let all = &mut gathered[..self.size * n];
                root.gather_into_root(&chunk[..], &mut all[..]);
                for r in 1..self.size {
                    for (a, &x) in chunk.iter_mut().zip(&all[r * n..(r + 1) * n]) {
                        add(a, x);
                    }
                }
            } else {
                root.gather_into(&chunk[..]);
            }
            root.broadcast_into(&mut chunk[..]);
        }
        Ok(())
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
