//! Exact k-nearest-neighbour search over codes, and how often the neighbours share a label.

use rayon::prelude::*;

use super::hashing::{PackedCodes, hamming, pack_bits};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// How two codes are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Euclidean distance between the code vectors.
    Euclidean,
    /// The number of differing bits; the codes must be 0/1 (see
    /// [`hashing::binarize`](super::hashing::binarize)).
    Hamming,
}

impl Metric {
    /// Parses `euclidean` or `hamming`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "euclidean" | "l2" => Ok(Metric::Euclidean),
            "hamming" => Ok(Metric::Hamming),
            other => Err(Error::Config(format!(
                "unknown metric '{other}' (expected hamming or euclidean)"
            ))),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Hamming => "hamming",
        }
    }
}

/// The distance between two codes under `metric`: Euclidean, or for [`Metric::Hamming`] the
/// number of positions where the values differ (the Hamming distance of 0/1 codes).
pub fn distance(a: &[f32], b: &[f32], metric: Metric) -> f32 {
    match metric {
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt(),
        Metric::Hamming => a.iter().zip(b).filter(|(x, y)| x != y).count() as f32,
    }
}

/// The `k` rows of `index` nearest to each row of `query`, nearest first; equal distances are
/// ordered by index (the lower first). Exact search, queries in parallel.
///
/// Errors: `k` of 0 or more than the index's rows, codes of different widths, or, for
/// [`Metric::Hamming`], values other than 0 and 1.
///
/// ```
/// use hourglass::Dataset;
/// use hourglass::analysis::{Metric, neighbors, precision_at_k};
///
/// let index = Dataset::new(4, 2, vec![0.0, 0.0, 1.0, 0.0, 5.0, 5.0, 6.0, 5.0])?;
/// let query = Dataset::new(2, 2, vec![0.2, 0.1, 5.9, 5.2])?;
/// let nn = neighbors(&index, &query, 2, Metric::Euclidean)?;
/// assert_eq!(nn, [vec![0, 1], vec![3, 2]]);
///
/// // Labels: rows 0 and 1 are class 0, rows 2 and 3 class 1.
/// let p = precision_at_k(&nn, &[0, 0, 1, 1], &[0, 1])?;
/// assert_eq!(p, 1.0);
/// # Ok::<(), hourglass::Error>(())
/// ```
pub fn neighbors(
    index: &Dataset,
    query: &Dataset,
    k: usize,
    metric: Metric,
) -> Result<Vec<Vec<usize>>> {
    if index.cols != query.cols {
        return Err(Error::Config(format!(
            "the index codes have {} values and the query codes {}",
            index.cols, query.cols
        )));
    }
    search(index, query, k, metric, false)
}

/// The `k` nearest other rows of `codes` for each of its rows (leave-one-out: a row is never
/// its own neighbour), nearest first, ties to the lower index. Errors as [`neighbors`], with
/// `k` at most `rows − 1`.
pub fn neighbors_within(codes: &Dataset, k: usize, metric: Metric) -> Result<Vec<Vec<usize>>> {
    search(codes, codes, k, metric, true)
}

fn search(
    index: &Dataset,
    query: &Dataset,
    k: usize,
    metric: Metric,
    leave_one_out: bool,
) -> Result<Vec<Vec<usize>>> {
    let available = index.rows.saturating_sub(usize::from(leave_one_out));
    if k == 0 || k > available {
        return Err(Error::Config(format!(
            "k must be between 1 and {available} (the index has {} rows{}), got {k}",
            index.rows,
            if leave_one_out {
                ", one of them the query"
            } else {
                ""
            }
        )));
    }
    if index.rows > u32::MAX as usize {
        return Err(Error::Config(format!(
            "an index of {} rows is more than this search handles (2^32)",
            index.rows
        )));
    }
    match metric {
        Metric::Hamming => {
            let pi = pack_bits(index)?;
            let pq = if leave_one_out {
                None
            } else {
                Some(pack_bits(query)?)
            };
            Ok(top_k(&pi, pq.as_ref().unwrap_or(&pi), k, leave_one_out))
        }
        Metric::Euclidean => Ok((0..query.rows)
            .into_par_iter()
            .map_init(Vec::new, |d: &mut Vec<(f32, usize)>, q| {
                let x = query.row(q);
                d.clear();
                d.extend(
                    (0..index.rows)
                        .filter(|&i| !(leave_one_out && i == q))
                        .map(|i| {
                            let s: f32 = x
                                .iter()
                                .zip(index.row(i))
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum();
                            (s, i)
                        }),
                );
                let cmp =
                    |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                // k ≤ d.len() was checked: the k smallest end up in front.
                if k < d.len() {
                    d.select_nth_unstable_by(k - 1, cmp);
                }
                let mut top = d[..k].to_vec();
                top.sort_unstable_by(cmp);
                top.into_iter().map(|(_, i)| i).collect()
            })
            .collect()),
    }
}

/// Hamming top-k with (distance, index) packed into one u64 key, so ties order by index.
fn top_k(
    index: &PackedCodes,
    query: &PackedCodes,
    k: usize,
    leave_one_out: bool,
) -> Vec<Vec<usize>> {
    (0..query.rows)
        .into_par_iter()
        .map_init(Vec::new, |keys: &mut Vec<u64>, q| {
            let x = query.row(q);
            keys.clear();
            keys.extend(
                (0..index.rows)
                    .filter(|&i| !(leave_one_out && i == q))
                    .map(|i| (u64::from(hamming(x, index.row(i))) << 32) | i as u64),
            );
            if k < keys.len() {
                keys.select_nth_unstable(k - 1);
            }
            let mut top = keys[..k].to_vec();
            top.sort_unstable();
            top.into_iter()
                .map(|key| (key & 0xFFFF_FFFF) as usize)
                .collect()
        })
        .collect()
}

fn check_labels(
    neighbors: &[Vec<usize>],
    index_labels: &[u32],
    query_labels: &[u32],
) -> Result<()> {
    if neighbors.len() != query_labels.len() {
        return Err(Error::Config(format!(
            "{} queries but {} query labels",
            neighbors.len(),
            query_labels.len()
        )));
    }
    if let Some(&bad) = neighbors
        .iter()
        .flatten()
        .find(|&&i| i >= index_labels.len())
    {
        return Err(Error::Config(format!(
            "neighbour {bad} has no label (the index has {} labels)",
            index_labels.len()
        )));
    }
    Ok(())
}

/// Precision@k: the fraction of each query's neighbours whose label is the query's, averaged
/// over the queries (a query with no neighbours counts 0). `neighbors[q]` are rows of the index
/// (as [`neighbors`] returns them); for [`neighbors_within`] pass the same labels twice.
pub fn precision_at_k(
    neighbors: &[Vec<usize>],
    index_labels: &[u32],
    query_labels: &[u32],
) -> Result<f64> {
    check_labels(neighbors, index_labels, query_labels)?;
    if neighbors.is_empty() {
        return Err(Error::Config("precision@k needs at least one query".into()));
    }
    let sum: f64 = neighbors
        .iter()
        .zip(query_labels)
        .map(|(nn, &label)| {
            let hits = nn.iter().filter(|&&i| index_labels[i] == label).count();
            if nn.is_empty() {
                0.0
            } else {
                hits as f64 / nn.len() as f64
            }
        })
        .sum();
    Ok(sum / neighbors.len() as f64)
}

/// The precision@k that neighbours drawn at random would have on average: for each query, the
/// fraction of index rows sharing its label (leaving the query itself out when
/// `leave_one_out`, for [`neighbors_within`]), averaged over the queries. The baseline a code
/// has to beat; 0.1 for ten balanced classes.
pub fn random_precision(
    index_labels: &[u32],
    query_labels: &[u32],
    leave_one_out: bool,
) -> Result<f64> {
    let others = index_labels
        .len()
        .saturating_sub(usize::from(leave_one_out));
    if query_labels.is_empty() || others == 0 {
        return Err(Error::Config(
            "the random baseline needs at least one query and one other index row".into(),
        ));
    }
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    for &l in index_labels {
        *counts.entry(l).or_default() += 1;
    }
    let sum: f64 = query_labels
        .iter()
        .map(|l| {
            let same = counts.get(l).copied().unwrap_or(0);
            same.saturating_sub(usize::from(leave_one_out)) as f64 / others as f64
        })
        .sum();
    Ok(sum / query_labels.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hamming_ties_go_to_the_lower_index() {
        // Index codes at Hamming distance 1, 1, 0, 3 from the query.
        let index =
            Dataset::new(4, 3, vec![1., 0., 1., 0., 1., 1., 0., 0., 1., 1., 1., 0.]).unwrap();
        let query = Dataset::new(1, 3, vec![0., 0., 1.]).unwrap();
        let nn = neighbors(&index, &query, 3, Metric::Hamming).unwrap();
        assert_eq!(nn, [vec![2, 0, 1]]);
        let all = neighbors(&index, &query, 4, Metric::Hamming).unwrap();
        assert_eq!(all, [vec![2, 0, 1, 3]]);
    }

    #[test]
    fn leave_one_out_never_returns_the_query() {
        let codes = Dataset::new(3, 1, vec![0.0, 0.1, 0.5]).unwrap();
        let nn = neighbors_within(&codes, 2, Metric::Euclidean).unwrap();
        assert_eq!(nn, [vec![1, 2], vec![0, 2], vec![1, 0]]);
        let e = neighbors_within(&codes, 3, Metric::Euclidean).unwrap_err();
        assert!(e.to_string().contains("between 1 and 2"), "{e}");
    }

    #[test]
    fn random_baseline_of_balanced_classes() {
        let labels: Vec<u32> = (0..100).map(|i| i % 10).collect();
        assert!((random_precision(&labels, &labels, false).unwrap() - 0.1).abs() < 1e-12);
        let loo = random_precision(&labels, &labels, true).unwrap();
        assert!((loo - 9.0 / 99.0).abs() < 1e-12);
    }
}
