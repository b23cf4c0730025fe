//! Data-parallel training: one process (a *rank*) per device, every rank holding the same
//! parameters, each computing the gradient of its contiguous share of the step's global batch,
//! then all ranks summing those gradients so that each applies the same update.
//!
//! A [`Communicator`] is the group of ranks: its rank and size, and the few collectives the
//! trainer needs — a sum of an f32 (or f64) buffer over the ranks, a broadcast, an abort. Its
//! sums are taken in a fixed order (rank 0's buffer, plus rank 1's, plus rank 2's, …, every
//! rank receiving the same bits), so a run is bit-reproducible for a given number of ranks.
//! The gradient's sum can also travel in f16 ([`ReducePrecision::F16`],
//! [`Communicator::all_reduce_sum_f16`]): half the bytes, the same fixed order.
//! Implementations:
//!
//! - [`SingleProcess`]: one rank, every collective a no-op (what every run without MPI is);
//! - [`ThreadGroup`]: several ranks as threads of one process, for tests and for checking the
//!   data-parallel path without MPI;
//! - `MpiCommunicator` (feature `mpi`): the ranks of an `mpirun` / `srun` job, through rsmpi.
//!
//! [`crate::Trainer::new_data_parallel`] trains with one; [`share`] says which rows of a batch
//! a rank takes.

mod single;
mod threads;

#[cfg(feature = "mpi")]
mod mpi;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiCommunicator;
pub use single::SingleProcess;
pub use threads::ThreadGroup;

use crate::error::{Error, Result};

/// The ranks of a data-parallel run. Every rank must call the collectives in the same order
/// with buffers of the same length; the sums are in rank order, so all ranks receive
/// bit-identical results and a run repeats bit for bit with the same number of ranks.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn size(&self) -> usize;

    /// The name of the machine this rank runs on, for messages.
    fn host(&self) -> String;

    /// Replaces `buf` on every rank with the element-wise sum over ranks, summed in rank order
    /// (`((b₀ + b₁) + b₂) + …`) so that every rank gets the same bits.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;

    /// As [`Communicator::all_reduce_sum`], with half the bytes on the wire: each rank's
    /// buffer is rounded to f16 (to nearest, ties to even; beyond ±65504 it becomes ±∞), the
    /// f16 values are summed in rank order in f32 (`((h₀ + h₁) + h₂) + …`), and the sum is
    /// rounded to f16 once more, which every rank receives (as f32). With one rank there is
    /// nothing to reduce and `buf` is left as it is, unrounded.
    ///
    /// The provided method computes exactly these bits through [`Communicator::all_reduce_sum`]
    /// (f16 values summed in f32 in rank order are what that sum gives them), moving f32;
    /// [`ThreadGroup`] and `MpiCommunicator` override it to move 16-bit values, with the same
    /// result bit for bit.
    fn all_reduce_sum_f16(&self, buf: &mut [f32]) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        buf.iter_mut().for_each(|x| *x = round_f16(*x));
        self.all_reduce_sum(buf)?;
        buf.iter_mut().for_each(|x| *x = round_f16(*x));
        Ok(())
    }

    /// As [`Communicator::all_reduce_sum`], in f64 (loss values, flags).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Replaces `buf` on every rank with rank `root`'s.
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()>;

    /// Ends every rank of the job at once with exit status `code` (after the caller printed
    /// why): what a rank that cannot go on does, so that the others do not wait forever in a
    /// collective.
    fn abort(&self, code: i32) -> !;
}

/// The number format in which the ranks' gradients travel and are summed
/// ([`crate::TrainConfig::reduce_precision`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReducePrecision {
    /// f32 (the default): the sum of the f32 shares, in rank order.
    #[default]
    F32,
    /// f16 on the wire, half the bytes ([`Communicator::all_reduce_sum_f16`]): each share and
    /// the sum rounded to f16, the sum itself taken in f32 in rank order. A no-op with one rank.
    F16,
}

impl ReducePrecision {
    /// Parses `f32` or `f16` (the error says what was expected; callers name their field).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(ReducePrecision::F32),
            "f16" => Ok(ReducePrecision::F16),
            other => Err(format!(
                "unknown reduce precision '{other}' (expected f32 or f16)"
            )),
        }
    }

    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            ReducePrecision::F32 => "f32",
            ReducePrecision::F16 => "f16",
        }
    }

    /// Bytes a gradient element takes on the wire.
    pub fn bytes(self) -> usize {
        match self {
            ReducePrecision::F32 => 4,
            ReducePrecision::F16 => 2,
        }
    }

    /// Sums `buf` over `comm`'s ranks in this format ([`Communicator::all_reduce_sum`] or
    /// [`Communicator::all_reduce_sum_f16`]).
    pub fn all_reduce_sum(self, comm: &dyn Communicator, buf: &mut [f32]) -> Result<()> {
        match self {
            ReducePrecision::F32 => comm.all_reduce_sum(buf),
            ReducePrecision::F16 => comm.all_reduce_sum_f16(buf),
        }
    }
}

/// `x` rounded to the nearest f16 (ties to even), as an f32.
pub(crate) fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// `values` as f16 bits (rounded to nearest, ties to even): what goes on the wire.
pub(crate) fn to_f16_bits(values: &[f32]) -> Vec<u16> {
    use half::slice::{HalfBitsSliceExt as _, HalfFloatSliceExt as _};
    let mut bits = vec![0u16; values.len()];
    bits.reinterpret_cast_mut::<half::f16>()
        .convert_from_f32_slice(values);
    bits
}

/// f16 bits as f32 (exact), into `out`.
pub(crate) fn from_f16_bits(bits: &[u16], out: &mut [f32]) {
    use half::slice::{HalfBitsSliceExt as _, HalfFloatSliceExt as _};
    bits.reinterpret_cast::<half::f16>()
        .convert_to_f32_slice(out);
}

/// The rank-ordered f32 sum of `size` f16 buffers of `n` values each, laid end to end in
/// `copies` (rank 0's first), rounded to f16 into `out[..n]`: the one place the f16
/// reduction adds (`((h₀ + h₁) + h₂) + …` element by element, then one rounding).
pub(crate) fn sum_f16_in_rank_order(copies: &[u16], n: usize, out: &mut [u16]) {
    use half::slice::{HalfBitsSliceExt as _, HalfFloatSliceExt as _};
    // A block at a time, so that the f32 partial sums stay in cache.
    const BLOCK: usize = 2048;
    let (mut acc, mut next) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let size = if n == 0 { 0 } else { copies.len() / n };
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let (acc, next) = (&mut acc[..len], &mut next[..len]);
        from_f16_bits(&copies[start..start + len], acc);
        for r in 1..size {
            let first = r * n + start;
            from_f16_bits(&copies[first..first + len], next);
            acc.iter_mut().zip(&*next).for_each(|(a, x)| *a += x);
        }
        out[start..start + len]
            .reinterpret_cast_mut::<half::f16>()
            .convert_from_f32_slice(acc);
    }
}

/// The rows of a batch of `rows` rows that rank `rank` of `size` takes: `(first, count)`,
/// contiguous, in rank order, the counts differing by at most one (the first `rows % size`
/// ranks take one more).
pub fn share(rows: usize, rank: usize, size: usize) -> (usize, usize) {
    let size = size.max(1);
    let (base, extra) = (rows / size, rows % size);
    (
        rank * base + rank.min(extra),
        base + usize::from(rank < extra),
    )
}

/// True on every rank when `ok` is true on every rank (one small sum): a check each rank makes
/// on its own (its inputs opened, its device started) becomes a decision all ranks share.
pub fn all_agree(comm: &dyn Communicator, ok: bool) -> Result<bool> {
    let mut failed = [f64::from(u8::from(!ok))];
    comm.all_reduce_sum_f64(&mut failed)?;
    Ok(failed[0] == 0.0)
}

/// Compares `digest` (a hash of what must be equal on every rank: the resolved configuration,
/// the data's shape, the parameters) with rank 0's. `Ok(None)` when every rank has rank 0's;
/// otherwise `Ok(Some(ranks))` on every rank, `ranks` being those that differ.
pub fn differing_ranks(comm: &dyn Communicator, digest: u64) -> Result<Option<Vec<usize>>> {
    let mut root = digest.to_le_bytes();
    comm.broadcast(&mut root, 0)?;
    let mut differs = vec![0.0f64; comm.size()];
    differs[comm.rank()] = f64::from(u8::from(u64::from_le_bytes(root) != digest));
    comm.all_reduce_sum_f64(&mut differs)?;
    let ranks: Vec<usize> = (0..differs.len()).filter(|&r| differs[r] != 0.0).collect();
    Ok((!ranks.is_empty()).then_some(ranks))
}

/// FNV-1a, 64-bit: a stable digest of bytes (the same on every machine and build), for
/// [`differing_ranks`].
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The digest of an f32 buffer's bits (parameters), for [`differing_ranks`].
pub fn digest_f32(values: &[f32]) -> u64 {
    digest(bytemuck::cast_slice(values))
}

/// The error of a collective that failed.
pub(crate) fn collective_error(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Distributed(format!("{what} between the ranks failed: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order_and_differ_by_at_most_one() {
        for rows in [1usize, 2, 7, 33, 257] {
            for size in 1..=5usize.min(rows) {
                let mut next = 0;
                let counts: Vec<usize> = (0..size)
                    .map(|r| {
                        let (first, count) = share(rows, r, size);
                        assert_eq!(first, next, "rows {rows} size {size} rank {r}");
                        next += count;
                        count
                    })
                    .collect();
                assert_eq!(next, rows);
                let (lo, hi) = (counts.iter().min(), counts.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{counts:?}");
            }
        }
    }

    #[test]
    fn digest_is_fnv1a() {
        // The FNV-1a test vectors.
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
