//! Semantic hashing (Salakhutdinov & Hinton 2009): a code of `c` numbers becomes `c` bits, one
//! per code unit, so that similar inputs get addresses a few bit flips apart and the nearest
//! neighbours of a query are found by Hamming distance on packed bytes.
//!
//! The bits are `code > threshold`: 0.5 for a sigmoid code (the unit's midpoint), 0 for any
//! other code activation ([`threshold_for`]).
//!
//! **Packed layout** (what `hourglass encode --binary` writes): each code row becomes
//! `⌈c/8⌉` bytes; bit `j` of the code is bit `7 − j mod 8` of byte `j / 8` (most significant
//! bit first, NumPy's `np.packbits(bits, axis=1)` order), and the unused low bits of the last
//! byte are 0. As a file it is a `.npy` of dtype `|u1` and shape `[rows, ⌈c/8⌉]`:
//! `np.unpackbits(np.load("codes.npy"), axis=1)[:, :c]` gives the bits back.
//!
//! ```
//! use hourglass::Dataset;
//! use hourglass::analysis::hashing::{binarize, hamming, pack_bits};
//!
//! // Two sigmoid codes of 10 units.
//! let codes = Dataset::new(2, 10, vec![
//!     0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.95, 0.05,
//!     0.9, 0.9, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.05, 0.05,
//! ])?;
//! let bits = binarize(&codes, 0.5);
//! assert_eq!(bits.row(0), [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
//! let packed = pack_bits(&bits)?;
//! assert_eq!(packed.row(0), [0b1010_1010, 0b1000_0000]); // 10 bits in 2 bytes
//! assert_eq!(hamming(packed.row(0), packed.row(1)), 2); // units 1 and 8 differ
//! assert_eq!(packed.unpack(), bits);
//! # Ok::<(), hourglass::Error>(())
//! ```

use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::Activation;

/// The threshold that splits a code unit into a bit: 0.5 for a sigmoid code (the middle of its
/// range), 0 for every other code activation (the sign of an identity or tanh code; a ReLU
/// unit's "on").
pub fn threshold_for(code_activation: Activation) -> f32 {
    match code_activation {
        Activation::Sigmoid => 0.5,
        _ => 0.0,
    }
}

/// 1.0 where a code value is above `threshold`, else 0.0 (NaN gives 0), same shape as `codes`.
pub fn binarize(codes: &Dataset, threshold: f32) -> Dataset {
    Dataset {
        rows: codes.rows,
        cols: codes.cols,
        values: codes
            .values
            .iter()
            .map(|&v| if v > threshold { 1.0 } else { 0.0 })
            .collect(),
    }
}

/// Codes of `bits` bits each, packed 8 to a byte (see the [module docs](self) for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedCodes {
    /// Number of codes.
    pub rows: usize,
    /// Bits per code (the code size `c`).
    pub bits: usize,
    /// `rows × ⌈bits/8⌉` bytes, row by row.
    pub bytes: Vec<u8>,
}

impl PackedCodes {
    /// Bytes per code: `⌈bits/8⌉`.
    pub fn row_bytes(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// The packed bytes of code `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        let b = self.row_bytes();
        &self.bytes[i * b..(i + 1) * b]
    }

    /// The bits as a `rows × bits` data set of 0.0 and 1.0: the inverse of [`pack_bits`].
    pub fn unpack(&self) -> Dataset {
        let values = (0..self.rows)
            .flat_map(|i| {
                let row = self.row(i);
                (0..self.bits).map(move |j| f32::from((row[j / 8] >> (7 - j % 8)) & 1))
            })
            .collect();
        Dataset {
            rows: self.rows,
            cols: self.bits,
            values,
        }
    }

    /// The codes as the bytes of a version 1.0 `.npy` file of dtype `|u1` and shape
    /// `[rows, ⌈bits/8⌉]`, C order, the data starting at a multiple of 64 bytes.
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}), }}",
            self.rows,
            self.row_bytes()
        );
        let unpadded = 6 + 2 + 2 + header.len() + 1;
        header.extend(std::iter::repeat_n(
            ' ',
            unpadded.next_multiple_of(64) - unpadded,
        ));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.bytes.len());
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        // Two numbers of at most 20 digits keep the header far below 65535 bytes.
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Writes [`PackedCodes::to_npy_bytes`] to `path`, atomically.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_npy_bytes())
    }
}

/// Packs a data set of bits (every value 0.0 or 1.0, as [`binarize`] gives) 8 to a byte, most
/// significant bit first. Any other value is a configuration error.
pub fn pack_bits(bits: &Dataset) -> Result<PackedCodes> {
    if let Some(pos) = bits.values.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(Error::Config(format!(
            "value {} at row {}, column {} is not a bit (0 or 1); binarize the codes first",
            bits.values[pos],
            pos / bits.cols.max(1),
            pos % bits.cols.max(1)
        )));
    }
    let row_bytes = bits.cols.div_ceil(8);
    let mut bytes = vec![0u8; bits.rows * row_bytes];
    for i in 0..bits.rows {
        let out = &mut bytes[i * row_bytes..(i + 1) * row_bytes];
        for (j, &v) in bits.row(i).iter().enumerate() {
            if v == 1.0 {
                out[j / 8] |= 0x80 >> (j % 8);
            }
        }
    }
    Ok(PackedCodes {
        rows: bits.rows,
        bits: bits.cols,
        bytes,
    })
}

/// The number of differing bits between two packed codes. Slices of different lengths compare
/// as if the shorter were padded with zero bytes.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let (head, tail) = long.split_at(short.len());
    let mut count: u32 = tail.iter().map(|x| x.count_ones()).sum();
    let (mut x8, mut y8) = (short.chunks_exact(8), head.chunks_exact(8));
    for (x, y) in x8.by_ref().zip(y8.by_ref()) {
        let x = u64::from_le_bytes(x.try_into().expect("chunks of 8"));
        let y = u64::from_le_bytes(y.try_into().expect("chunks of 8"));
        count += (x ^ y).count_ones();
    }
    for (x, y) in x8.remainder().iter().zip(y8.remainder()) {
        count += (x ^ y).count_ones();
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip_on_awkward_widths() {
        for cols in [1, 7, 8, 9, 17, 70] {
            let values = (0..3 * cols)
                .map(|i| f32::from(u8::from((i * 7 + i / 3) % 5 < 2)))
                .collect();
            let bits = Dataset::new(3, cols, values).unwrap();
            let packed = pack_bits(&bits).unwrap();
            assert_eq!(packed.bytes.len(), 3 * cols.div_ceil(8));
            assert_eq!(packed.unpack(), bits, "{cols} bits");
        }
    }

    #[test]
    fn hamming_counts_differing_bits_across_word_boundaries() {
        let a: Vec<u8> = (0..19).map(|i| (i * 37) as u8).collect();
        let mut b = a.clone();
        assert_eq!(hamming(&a, &b), 0);
        b[0] ^= 0b1000_0001;
        b[8] ^= 0xFF;
        b[18] ^= 0b0000_0100;
        assert_eq!(hamming(&a, &b), 11);
        assert_eq!(
            hamming(&[0xFF], &[0x0F, 0x01]),
            5,
            "missing bytes count as 0"
        );
    }

    #[test]
    fn non_bits_are_refused() {
        let d = Dataset::new(1, 3, vec![0.0, 0.7, 1.0]).unwrap();
        let e = pack_bits(&d).unwrap_err().to_string();
        assert!(e.contains("column 1 is not a bit"), "{e}");
    }

    #[test]
    fn npy_header_is_padded_and_parsable() {
        let packed = pack_bits(&Dataset::new(2, 9, vec![1.0; 18]).unwrap()).unwrap();
        let bytes = packed.to_npy_bytes();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'descr': '|u1'") && header.contains("(2, 2)"));
        assert_eq!(&bytes[10 + header_len..], [0xFF, 0x80, 0xFF, 0x80]);
    }
}
