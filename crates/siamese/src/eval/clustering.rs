//! Clustering of embeddings (k-means, row-major `[n, dim]` f32) and clustering quality against
//! true labels: NMI and AMI (scikit-learn's definitions, arithmetic-mean normalisation) and
//! pair-counting precision/recall/F1. Label vectors are `&[u32]`; in a *predicted* labelling
//! [`NOISE`] marks an item left unclustered (e.g. by DBSCAN).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::retrieval::dot_block;
use crate::{Error, Result};

/// The predicted label of an item that belongs to no cluster; it counts as its own singleton.
pub const NOISE: u32 = u32::MAX;

/// Settings of [`kmeans_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansConfig {
    /// Number of clusters (at least 1; more than the number of points is an error).
    pub k: usize,
    /// Seed of the k-means++ initialisations.
    pub seed: u64,
    /// Lloyd iterations per restart at most.
    pub max_iter: usize,
    /// Independent k-means++ restarts; the lowest inertia wins.
    pub restarts: usize,
}

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansFit {
    /// Cluster of each point, in `0..k`.
    pub assignments: Vec<u32>,
    /// Cluster centres, row-major `[k, dim]`.
    pub centroids: Vec<f32>,
    /// Sum of squared distances of the points to their centres.
    pub inertia: f64,
    /// Lloyd iterations run by the winning restart.
    pub iterations: usize,
}

/// k-means (k-means++ initialisation, Lloyd iterations, 4 restarts keeping the lowest inertia),
/// deterministic under `seed`. Returns the cluster of each of the `data.len() / dim` points.
///
/// Lenient by design, for callers whose `k` comes from the data: `k` is clamped to
/// `1..=points`; no points (or `dim == 0`) gives an empty vector.
pub fn kmeans(data: &[f32], dim: usize, k: usize, seed: u64, max_iter: usize) -> Vec<u32> {
    if dim == 0 || data.len() < dim {
        return Vec::new();
    }
    let data = &data[..data.len() / dim * dim];
    let n = data.len() / dim;
    let config = KMeansConfig {
        k: k.clamp(1, n),
        seed,
        max_iter: max_iter.max(1),
        restarts: 4,
    };
    match kmeans_with(data, dim, &config) {
        Ok(fit) => fit.assignments,
        // Only non-finite input can fail here; one cluster is the honest answer then.
        Err(_) => vec![0; n],
    }
}

/// k-means with explicit settings; errors on bad shapes, non-finite values or `k` out of range.
pub fn kmeans_with(data: &[f32], dim: usize, config: &KMeansConfig) -> Result<KMeansFit> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::config(
            "k-means data",
            format!(
                "{} values are not whole rows of dimension {dim}",
                data.len()
            ),
        ));
    }
    let n = data.len() / dim;
    if config.k == 0 || config.k > n {
        return Err(Error::config(
            "k",
            format!("{} clusters asked for {n} points (need 1..={n})", config.k),
        ));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(Error::config("k-means data", "holds a non-finite value"));
    }
    let norms: Vec<f32> = data
        .chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut best: Option<KMeansFit> = None;
    for _ in 0..config.restarts.max(1) {
        let centroids = kmeans_plus_plus(data, dim, config.k, &mut rng);
        let fit = lloyd(data, &norms, dim, centroids, config.max_iter.max(1));
        if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
            best = Some(fit);
        }
    }
    Ok(best.expect("at least one restart"))
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// k-means++ seeding: each new centre drawn with probability proportional to D².
fn kmeans_plus_plus(data: &[f32], dim: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = data.len() / dim;
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(row(first));
    let mut d2: Vec<f32> = data
        .par_chunks(dim)
        .map(|r| squared_distance(r, row(first)))
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().map(|&v| f64::from(v)).sum();
        let next = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0f64;
            d2.iter()
                .position(|&v| {
                    acc += f64::from(v);
                    acc > target
                })
                .unwrap_or(n - 1)
        } else {
            // Every point sits on a centre already: duplicates are all that is left.
            rng.random_range(0..n)
        };
        let c = row(next).to_vec();
        d2.par_iter_mut()
            .zip(data.par_chunks(dim))
            .for_each(|(d, r)| *d = d.min(squared_distance(r, &c)));
        centroids.extend_from_slice(&c);
    }
    centroids
}

/// Nearest centre of every point and the squared distance to it (GEMM-based, parallel).
fn assign(data: &[f32], norms: &[f32], dim: usize, centroids: &[f32]) -> Vec<(u32, f32)> {
    const BLOCK: usize = 256;
    let k = centroids.len() / dim;
    let cnorms: Vec<f32> = centroids
        .chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    data.par_chunks(BLOCK * dim)
        .zip(norms.par_chunks(BLOCK))
        .flat_map_iter(|(block, bnorms)| {
            let nb = bnorms.len();
            let mut dots = vec![0f32; nb * k];
            dot_block(block, nb, centroids, k, dim, &mut dots);
            let out: Vec<(u32, f32)> = dots
                .chunks_exact(k)
                .zip(bnorms)
                .map(|(row, xn)| {
                    let mut best = (0u32, f32::INFINITY);
                    for (c, (dot, cn)) in row.iter().zip(&cnorms).enumerate() {
                        let d = (xn + cn - 2.0 * dot).max(0.0);
                        if d < best.1 {
                            best = (c as u32, d);
                        }
                    }
                    best
                })
                .collect();
            out
        })
        .collect()
}

/// Lloyd iterations from the given centres until assignments stop changing.
fn lloyd(
    data: &[f32],
    norms: &[f32],
    dim: usize,
    mut centroids: Vec<f32>,
    max_iter: usize,
) -> KMeansFit {
    let n = data.len() / dim;
    let k = centroids.len() / dim;
    let mut assignments: Vec<u32> = vec![u32::MAX; n];
    let mut iterations = 0;
    let mut nearest = assign(data, norms, dim, &centroids);
    for _ in 0..max_iter {
        iterations += 1;
        let changed = nearest.iter().zip(&assignments).any(|((c, _), a)| c != a);
        assignments
            .iter_mut()
            .zip(&nearest)
            .for_each(|(a, (c, _))| *a = *c);
        if !changed {
            break;
        }
        // Sequential f64 sums keep the result independent of the thread schedule.
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (r, &c) in data.chunks_exact(dim).zip(&assignments) {
            counts[c as usize] += 1;
            sums[c as usize * dim..(c as usize + 1) * dim]
                .iter_mut()
                .zip(r)
                .for_each(|(s, v)| *s += f64::from(*v));
        }
        // An empty cluster takes the point farthest from its centre.
        let mut far: Vec<usize> = (0..n).collect();
        far.sort_by(|&a, &b| nearest[b].1.total_cmp(&nearest[a].1).then(a.cmp(&b)));
        let mut far = far.into_iter();
        for c in 0..k {
            let centre = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] > 0 {
                centre
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                    .for_each(|(x, s)| *x = (*s / counts[c] as f64) as f32);
            } else if let Some(p) = far.next() {
                centre.copy_from_slice(&data[p * dim..(p + 1) * dim]);
            }
        }
        nearest = assign(data, norms, dim, &centroids);
    }
    let inertia = nearest.iter().map(|(_, d)| f64::from(*d)).sum();
    let assignments = nearest.iter().map(|(c, _)| *c).collect();
    KMeansFit {
        assignments,
        centroids,
        inertia,
        iterations,
    }
}

/// A copy of `pred` where every [`NOISE`] item gets a fresh label of its own, so that NMI/AMI
/// treat noise as singletons (as [`pairwise_scores`] does) rather than as one big cluster.
pub fn noise_as_singletons(pred: &[u32]) -> Vec<u32> {
    let mut next = pred
        .iter()
        .filter(|&&p| p != NOISE)
        .max()
        .map_or(0, |m| m + 1);
    pred.iter()
        .map(|&p| {
            if p == NOISE {
                next += 1;
                next - 1
            } else {
                p
            }
        })
        .collect()
}

/// The counts of a map, ordered by key (so sums run in a fixed order).
fn counts_by_key<K: Ord>(m: HashMap<K, u64>) -> Vec<u64> {
    let mut v: Vec<(K, u64)> = m.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, c)| c).collect()
}

/// The contingency table of two labellings: non-zero cells, row sums and column sums.
struct Contingency {
    cells: Vec<u64>,
    rows: Vec<u64>,
    cols: Vec<u64>,
    n: u64,
}

fn contingency(truth: &[u32], pred: &[u32]) -> Contingency {
    assert_eq!(
        truth.len(),
        pred.len(),
        "truth and prediction must label the same items"
    );
    let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
    let mut rows: HashMap<u32, u64> = HashMap::new();
    let mut cols: HashMap<u32, u64> = HashMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        *cells.entry((t, p)).or_default() += 1;
        *rows.entry(t).or_default() += 1;
        *cols.entry(p).or_default() += 1;
    }
    Contingency {
        cells: counts_by_key(cells),
        rows: counts_by_key(rows),
        cols: counts_by_key(cols),
        n: truth.len() as u64,
    }
}

fn entropy(counts: &[u64], n: u64) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

fn mutual_information(t: &Contingency) -> f64 {
    // MI = H(T) + H(P) − H(T, P); clamp the rounding below zero as scikit-learn does.
    (entropy(&t.rows, t.n) + entropy(&t.cols, t.n) - entropy(&t.cells, t.n)).max(0.0)
}

/// Normalised mutual information with the arithmetic mean of the entropies (scikit-learn's
/// `normalized_mutual_info_score` default). Panics if the lengths differ.
pub fn nmi(truth: &[u32], pred: &[u32]) -> f64 {
    let t = contingency(truth, pred);
    if t.rows.len() == t.cols.len() && t.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_information(&t);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(&t.rows, t.n) + entropy(&t.cols, t.n)) / 2.0)
}

/// Adjusted mutual information (scikit-learn's `adjusted_mutual_info_score`, arithmetic mean):
/// (MI − E[MI]) / (mean(H(T), H(P)) − E[MI]), E[MI] under the hypergeometric model.
/// Panics if the lengths differ.
pub fn ami(truth: &[u32], pred: &[u32]) -> f64 {
    let t = contingency(truth, pred);
    if t.rows.len() == t.cols.len() && t.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_information(&t);
    let emi = expected_mutual_information(&t.rows, &t.cols, t.n);
    let normaliser = (entropy(&t.rows, t.n) + entropy(&t.cols, t.n)) / 2.0;
    let mut denominator = normaliser - emi;
    denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    (mi - emi) / denominator
}

/// E[MI] of two labellings with marginals `a` and `b` over `n` items (Vinh, Epps, Bailey 2010).
fn expected_mutual_information(a: &[u64], b: &[u64], n: u64) -> f64 {
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    // ln(k!) for k = 0..=n by cumulative sums: exact enough and no gamma function needed.
    let mut ln_fact = vec![0f64; n as usize + 1];
    for k in 1..=n as usize {
        ln_fact[k] = ln_fact[k - 1] + (k as f64).ln();
    }
    let nf = n as f64;
    let ln_n = nf.ln();
    let mut emi = 0f64;
    for &ai in a {
        for &bj in b {
            let start = (ai + bj).saturating_sub(n).max(1);
            let end = ai.min(bj);
            let fixed = ln_fact[ai as usize]
                + ln_fact[bj as usize]
                + ln_fact[(n - ai) as usize]
                + ln_fact[(n - bj) as usize]
                - ln_fact[n as usize];
            let ln_ab = (ai as f64).ln() + (bj as f64).ln();
            for nij in start..=end {
                let nijf = nij as f64;
                let ln_p = fixed
                    - ln_fact[nij as usize]
                    - ln_fact[(ai - nij) as usize]
                    - ln_fact[(bj - nij) as usize]
                    - ln_fact[(n - ai - bj + nij) as usize];
                emi += nijf / nf * (ln_n + nijf.ln() - ln_ab) * ln_p.exp();
            }
        }
    }
    emi
}

/// Pair-counting scores of a clustering: of the pairs put in one cluster, the fraction truly
/// together (precision), of the truly-together pairs, the fraction put together (recall), F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairwiseScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Pairwise precision/recall/F1 from the contingency table (O(n), not O(n²)). A [`NOISE`] item
/// in `pred` is a singleton. With no predicted pairs precision is 1 (nothing wrongly joined);
/// with no true pairs recall is 1. Panics if the lengths differ.
pub fn pairwise_scores(truth: &[u32], pred: &[u32]) -> PairwiseScores {
    let pred = noise_as_singletons(pred);
    let t = contingency(truth, &pred);
    let pairs = |counts: &[u64]| {
        counts
            .iter()
            .map(|&c| c * c.saturating_sub(1) / 2)
            .sum::<u64>()
    };
    let (together, pred_pairs, true_pairs) = (pairs(&t.cells), pairs(&t.cols), pairs(&t.rows));
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = ratio(together, pred_pairs);
    let recall = ratio(together, true_pairs);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    PairwiseScores {
        precision,
        recall,
        f1,
    }
}
