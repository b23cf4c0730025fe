//! Several ranks as threads of one process: the data-parallel path without MPI, for tests.
//! Each collective deposits every rank's buffer in a slot, waits for all, and has every rank
//! sum the slots in rank order (so all receive the same bits), as the MPI implementation does.

use std::sync::{Arc, Barrier, Mutex};

use super::{Communicator, collective_error};
use crate::error::Result;

struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

/// One rank of a group of threads; [`ThreadGroup::new`] makes the whole group, one value per
/// thread to move into it.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank 0 first.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Deposits `bytes`, waits for every rank's, and hands all of them (rank order) to `read`.
    fn exchange<R>(&self, bytes: &[u8], read: impl FnOnce(&[Vec<u8>]) -> R) -> Result<R> {
        {
            let mut slots = self
                .shared
                .slots
                .lock()
                .map_err(|_| collective_error("an exchange", "a rank panicked"))?;
            slots[self.rank] = bytes.to_vec();
        }
        self.shared.barrier.wait();
        let out = {
            let slots = self
                .shared
                .slots
                .lock()
                .map_err(|_| collective_error("an exchange", "a rank panicked"))?;
            read(&slots)
        };
        // Nobody overwrites a slot before every rank has read them all.
        self.shared.barrier.wait();
        Ok(out)
    }
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn host(&self) -> String {
        "this process".into()
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let sum = self.exchange(bytemuck::cast_slice(buf), |slots| {
            let mut acc: Vec<f32> = bytemuck::pod_collect_to_vec(&slots[0]);
            for s in &slots[1..] {
                let v: Vec<f32> = bytemuck::pod_collect_to_vec(s);
                for (a, x) in acc.iter_mut().zip(&v) {
                    *a += *x;
                }
            }
            acc
        })?;
        buf.copy_from_slice(&sum);
        Ok(())
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let sum = self.exchange(bytemuck::cast_slice(buf), |slots| {
            let mut acc: Vec<f64> = bytemuck::pod_collect_to_vec(&slots[0]);
            for s in &slots[1..] {
                let v: Vec<f64> = bytemuck::pod_collect_to_vec(s);
                for (a, x) in acc.iter_mut().zip(&v) {
                    *a += *x;
                }
            }
            acc
        })?;
        buf.copy_from_slice(&sum);
        Ok(())
    }

    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        let root_bytes = self.exchange(buf, |slots| slots[root].clone())?;
        buf.copy_from_slice(&root_bytes);
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_rank_order_and_broadcasts() {
        let group = ThreadGroup::new(3);
        let results: Vec<(Vec<f32>, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|c| {
                    scope.spawn(move || {
                        let r = c.rank() as f32;
                        // 1e8 + 1 − 1e8 in order is 0 in f32 (1e8 + 1 rounds to 1e8).
                        let mut v = vec![[1e8f32, 1.0, -1e8][c.rank()], r];
                        c.all_reduce_sum(&mut v).unwrap();
                        let mut b = vec![c.rank() as u8; 2];
                        c.broadcast(&mut b, 2).unwrap();
                        (v, b)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (v, b) in &results {
            assert_eq!(v, &vec![0.0, 3.0]);
            assert_eq!(b, &vec![2u8, 2]);
        }
    }
}
