//! Philox 4×32-10, the counter-based generator every random number in Hourglass comes from.
//!
//! A draw is a pure function of (seed, stream, step, index), so the CPU reference and the WGSL
//! twin in `shaders/rng.wgsl` produce the same numbers in any order, on any thread, after any
//! resume. Streams keep unrelated uses (initialisation, shuffling, noise) from sharing numbers.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Named streams, the third word of the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Parameter initialisation.
    Init = 1,
    /// The per-epoch shuffle of the training set.
    Shuffle = 2,
    /// Input corruption for denoising models.
    Noise = 3,
    /// The reparameterization noise ε of a VAE.
    Sampler = 4,
    /// Random projections of the stochastic Jacobian-norm estimate.
    Projection = 5,
    /// The validation split.
    Split = 6,
}

/// One Philox 4×32-10 block: four independent 32-bit words for a 128-bit counter and 64-bit key.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The block for element `index` of `stream` at `step` under `seed`.
pub fn block(seed: u64, stream: Stream, step: u32, index: u32) -> [u32; 4] {
    philox4x32(
        [index, step, stream as u32, 0],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// A 32-bit word to a float in [0, 1) with 24 bits of resolution (exact in f32).
pub fn unit_f32(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A 32-bit word to a float in (0, 1], safe to take the logarithm of.
pub fn unit_open_f32(word: u32) -> f32 {
    ((word >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// A standard normal draw from two words by Box–Muller (the cosine half), in f32 as the WGSL
/// twin computes it.
pub fn gaussian_f32(w0: u32, w1: u32) -> f32 {
    let u1 = unit_open_f32(w0);
    let u2 = unit_f32(w1);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The block a kernel draws for element `index` at 1-based `step`, keyed by the step's seed words.
pub fn element_block(
    seed_lo: u32,
    seed_hi: u32,
    stream: Stream,
    step: u32,
    index: u32,
) -> [u32; 4] {
    philox4x32([index, step, stream as u32, 0], [seed_lo, seed_hi])
}

/// The counter index of element `i` of a `[K·batch, cols]` view whose row `k·batch + b` belongs
/// to example `b` of this process's rows of the step's batch, when those rows are rows
/// `row_base..row_base + batch` of a global batch of `rows_global` rows (data-parallel
/// training, [`crate::distributed`]): `((k·rows_global + row_base + b)·cols + col`, the index
/// the same element has in a one-process run of the whole batch. `rows_global == 0` means the
/// view is the whole batch, and the index is `i` (as it also is for `row_base == 0` and
/// `rows_global == batch`). Mirrored by `global_element` in `shaders/rng.wgsl`.
pub fn global_element(i: u32, cols: u32, batch: u32, row_base: u32, rows_global: u32) -> u32 {
    if rows_global == 0 || cols == 0 || batch == 0 {
        return i;
    }
    let (row, col) = (i / cols, i % cols);
    let (k, b) = (row / batch, row % batch);
    (k.wrapping_mul(rows_global)
        .wrapping_add(row_base)
        .wrapping_add(b))
    .wrapping_mul(cols)
    .wrapping_add(col)
}

/// A seeded sequential source for host-side work (initialisation, shuffles): the `i`-th call
/// returns word `i % 4` of block `i / 4`, so the sequence is reproducible from (seed, stream, step).
#[derive(Clone, Debug)]
pub struct Sequence {
    seed: u64,
    stream: Stream,
    step: u32,
    next: u64,
    buffer: [u32; 4],
}

impl Sequence {
    /// A sequence for one (seed, stream, step).
    pub fn new(seed: u64, stream: Stream, step: u32) -> Self {
        Sequence {
            seed,
            stream,
            step,
            next: 0,
            buffer: [0; 4],
        }
    }

    /// The next 32-bit word.
    pub fn next_u32(&mut self) -> u32 {
        let lane = (self.next % 4) as usize;
        if lane == 0 {
            // Counter word 3 takes the high bits so sequences longer than 2^34 words stay distinct.
            let blk = self.next / 4;
            self.buffer = philox4x32(
                [
                    blk as u32,
                    self.step,
                    self.stream as u32,
                    (blk >> 32) as u32,
                ],
                [self.seed as u32, (self.seed >> 32) as u32],
            );
        }
        self.next += 1;
        self.buffer[lane]
    }

    /// A float uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * unit_f32(self.next_u32())
    }

    /// An integer uniform in [0, n), by Lemire's multiply-shift (bias below 2^-32 · n).
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }
}

/// A permutation of 0..n, the shuffle of epoch `epoch` under `seed` (Fisher–Yates).
pub fn permutation(n: usize, seed: u64, epoch: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = Sequence::new(seed, Stream::Shuffle, epoch);
    for i in (1..n).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answers() {
        // Known-answer vectors from Random123's kat_vectors for philox4x32_10.
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([!0, !0, !0, !0], [!0, !0]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn global_element_is_the_index_in_the_whole_batch() {
        // 3 samples (K) of a global batch of 7 rows, 5 columns; this process holds rows 2..5.
        let (cols, k, global, base, local) = (5u32, 3u32, 7u32, 2u32, 3u32);
        for i in 0..k * local * cols {
            let (row, col) = (i / cols, i % cols);
            let (s, b) = (row / local, row % local);
            let whole = (s * global + base + b) * cols + col;
            assert_eq!(global_element(i, cols, local, base, global), whole);
        }
        // The whole batch, or no sharding at all: the index itself.
        for i in 0..k * global * cols {
            assert_eq!(global_element(i, cols, global, 0, global), i);
            assert_eq!(global_element(i, cols, global, 0, 0), i);
        }
    }

    #[test]
    fn permutation_is_a_permutation_and_depends_on_epoch() {
        let a = permutation(1000, 7, 0);
        let b = permutation(1000, 7, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, b);
        assert_eq!(a, permutation(1000, 7, 0));
    }
}
