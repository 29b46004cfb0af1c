//! k-means on row-major `[n, dim]` f32 embeddings: k-means++ seeding, Lloyd iterations with
//! blocked dot products (‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²), deterministic under the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::eval::knn::dot_block;
use crate::{Error, Result};

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
