//! Several ranks as threads of one process: the data-parallel path without MPI, for tests.
//! Each collective deposits every rank's buffer in a slot, waits for all, and has every rank
//! sum the slots in rank order (so all receive the same bits), as the MPI implementation does.
//! The f16 sum deposits 16-bit values (half the bytes) and rounds and sums as the MPI one.

use std::sync::{Arc, Barrier, Mutex};

use super::{Communicator, collective_error, from_f16_bits, sum_f16_in_rank_order, to_f16_bits};
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

    fn all_reduce_sum_f16(&self, buf: &mut [f32]) -> Result<()> {
        if self.shared.size == 1 {
            return Ok(());
        }
        let wire = to_f16_bits(buf);
        let n = wire.len();
        let sum = self.exchange(bytemuck::cast_slice(&wire), |slots| {
            let copies: Vec<u16> = slots
                .iter()
                .flat_map(|s| bytemuck::pod_collect_to_vec::<u8, u16>(s))
                .collect();
            let mut out = vec![0u16; n];
            sum_f16_in_rank_order(&copies, n, &mut out);
            out
        })?;
        from_f16_bits(&sum, buf);
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

    /// A group that only has the provided `all_reduce_sum_f16` (rounding, then the f32 sum).
    struct Provided(ThreadGroup);

    impl Communicator for Provided {
        fn rank(&self) -> usize {
            self.0.rank()
        }
        fn size(&self) -> usize {
            self.0.size()
        }
        fn host(&self) -> String {
            self.0.host()
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            self.0.all_reduce_sum(buf)
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.0.all_reduce_sum_f64(buf)
        }
        fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
            self.0.broadcast(buf, root)
        }
        fn abort(&self, code: i32) -> ! {
            self.0.abort(code)
        }
    }

    /// Every rank's f16 sums of `values(rank)`, through the override and the provided method.
    fn f16_sums(size: usize, values: fn(usize) -> Vec<f32>) -> Vec<(Vec<f32>, Vec<f32>)> {
        let group = ThreadGroup::new(size);
        std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|c| {
                    scope.spawn(move || {
                        let mut ours = values(c.rank());
                        c.all_reduce_sum_f16(&mut ours).unwrap();
                        let provided = Provided(c);
                        let mut theirs = values(provided.rank());
                        provided.all_reduce_sum_f16(&mut theirs).unwrap();
                        (ours, theirs)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_f16_shares_in_f32_in_rank_order() {
        // 1 + 2⁻¹¹ + 2⁻¹¹: 1 + 2⁻¹⁰ summed in f32 (an f16 value), but 1 if every partial sum
        // were rounded to f16 (1 + 2⁻¹¹ is a tie, which goes to the even 1). 0.1 is not an f16:
        // each share is rounded first (0.0999755859375), so the sum is not f16(0.3).
        // 70000 overflows f16.
        let values = |rank: usize| {
            vec![
                [1.0f32, 2f32.powi(-11), 2f32.powi(-11)][rank],
                0.1,
                [70000.0, 0.0, 0.0][rank],
                [1e-9, 0.0, 0.0][rank],
            ]
        };
        let h = |x: f32| half::f16::from_f32(x).to_f32();
        let want = vec![
            1.0 + 2f32.powi(-10),
            h(h(0.1) + h(0.1) + h(0.1)),
            f32::INFINITY,
            0.0,
        ];
        assert_ne!(want[1], h(0.3), "the shares are rounded before the sum");
        for (ours, provided) in f16_sums(3, values) {
            assert_eq!(ours, want);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&ours),
                bits(&provided),
                "the override and the definition"
            );
        }
        // One rank: nothing to reduce, nothing rounded.
        for (ours, provided) in f16_sums(1, values) {
            assert_eq!(ours, values(0));
            assert_eq!(provided, values(0));
        }
    }
}
