//! Barnes–Hut t-SNE (van der Maaten 2014): data row-major `[n, dim]` f32 → `[n]` 2-D points.
//!
//! Input similarities: exact k-nearest neighbours (k = 3·perplexity, GEMM-based, from
//! crate::eval), per-point Gaussian bandwidths by binary search on the perplexity, symmetrised
//! into a sparse P. Optimisation: PCA initialisation (scaled to σ = 1e-4, as scikit-learn), early
//! exaggeration 12 for the first quarter (≤ 250 iterations), momentum 0.5 → 0.8, delta-bar-delta
//! gains, learning rate max(n / 12 / 4, 50); repulsion through a quadtree (`quadtree`) with θ = 0.5. Every
//! point's forces are computed independently (rayon) and sums run in a fixed order, so the
//! result depends only on the data and the seed (which jitters the start to split duplicates).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::pca::pca_2d;
use super::quadtree::{morton_order, QuadTree};
use crate::distance::Distance;
use crate::eval::nearest;
use crate::{Error, Result};

/// Settings of [`tsne_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneConfig {
    /// Effective number of neighbours (typically 5–50); lowered to (n − 1) / 3 for tiny sets.
    pub perplexity: f64,
    /// Seed of the start jitter.
    pub seed: u64,
    /// Gradient steps (1000 is the usual choice; 500 is often enough for a picture).
    pub iterations: usize,
    /// Barnes–Hut accuracy: a cell is summarised when its width < θ · its distance.
    pub theta: f32,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig {
            perplexity: 30.0,
            seed: 0,
            iterations: 1000,
            theta: 0.5,
        }
    }
}

const EARLY_EXAGGERATION: f32 = 12.0;
const MIN_GAIN: f32 = 0.01;

/// Barnes–Hut t-SNE of the rows of `data` into 2-D (θ = 0.5); see the module notes.
pub fn tsne(
    data: &[f32],
    dim: usize,
    perplexity: f64,
    seed: u64,
    iterations: usize,
) -> Result<Vec<[f32; 2]>> {
    tsne_with(
        data,
        dim,
        &TsneConfig {
            perplexity,
            seed,
            iterations,
            theta: 0.5,
        },
    )
}

/// t-SNE with explicit settings.
pub fn tsne_with(data: &[f32], dim: usize, config: &TsneConfig) -> Result<Vec<[f32; 2]>> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::config(
            "t-SNE data",
            format!(
                "{} values are not whole rows of dimension {dim}",
                data.len()
            ),
        ));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(Error::config("t-SNE data", "holds a non-finite value"));
    }
    if !(config.perplexity.is_finite() && config.perplexity > 0.0) {
        return Err(Error::config(
            "perplexity",
            format!("{} is not a positive number", config.perplexity),
        ));
    }
    if !(config.theta.is_finite() && config.theta >= 0.0) {
        return Err(Error::config(
            "theta",
            format!("{} is not a non-negative number", config.theta),
        ));
    }
    let n = data.len() / dim;
    if n < 2 {
        return Ok(vec![[0.0; 2]; n]);
    }
    let perplexity = config.perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let k = ((3.0 * perplexity).floor() as usize).clamp(1, n - 1);
    let p = joint_probabilities(data, dim, k, perplexity);
    let mut y = initial_layout(data, dim, config.seed);
    optimise(&p, &mut y, config);
    Ok(y)
}

/// Symmetric sparse P in CSR form (row i: `cols[start[i]..start[i+1]]`), summing to 1.
struct SparseP {
    start: Vec<usize>,
    cols: Vec<u32>,
    values: Vec<f32>,
}

/// Conditional Gaussian probabilities over each point's k nearest neighbours, symmetrised.
fn joint_probabilities(data: &[f32], dim: usize, k: usize, perplexity: f64) -> SparseP {
    let n = data.len() / dim;
    let neighbours = nearest(data, data, dim, Distance::SquaredEuclidean, k + 1);
    let target_entropy = perplexity.ln();
    let conditional: Vec<Vec<(u32, f64)>> = neighbours
        .into_par_iter()
        .enumerate()
        .map(|(i, mut row)| {
            match row.iter().position(|&(j, _)| j == i) {
                Some(pos) => {
                    row.remove(pos);
                }
                None => {
                    row.pop();
                }
            }
            let d: Vec<f64> = row.iter().map(|&(_, d)| f64::from(d)).collect();
            let p = gaussian_row(&d, target_entropy);
            row.iter().map(|&(j, _)| j as u32).zip(p).collect()
        })
        .collect();
    // P_ij = (P_j|i + P_i|j) / 2n, gathered as (i, j, value) edges in both directions.
    let mut edges: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * n * k);
    for (i, row) in conditional.iter().enumerate() {
        for &(j, p) in row {
            edges.push((i as u32, j, p));
            edges.push((j, i as u32, p));
        }
    }
    edges.sort_unstable_by_key(|e| (e.0, e.1));
    let mut start = vec![0usize; n + 1];
    let mut cols = Vec::with_capacity(edges.len());
    let mut values: Vec<f32> = Vec::with_capacity(edges.len());
    let norm = 2.0 * n as f64;
    let mut previous = None;
    for (i, j, p) in edges {
        if previous == Some((i, j)) {
            // Both i→j and j→i were neighbours: the two halves add up.
            *values.last_mut().expect("a previous edge") += (p / norm) as f32;
        } else {
            cols.push(j);
            values.push((p / norm) as f32);
            start[i as usize + 1] += 1;
            previous = Some((i, j));
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    SparseP {
        start,
        cols,
        values,
    }
}

/// P_j|i ∝ exp(−β d_j) with β found by bisection so the entropy is ln(perplexity).
fn gaussian_row(d: &[f64], target_entropy: f64) -> Vec<f64> {
    let d_min = d.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
    let mut p = vec![0f64; d.len()];
    for _ in 0..200 {
        let mut sum = 0.0;
        for (pj, &dj) in p.iter_mut().zip(d) {
            *pj = (-beta * (dj - d_min)).exp();
            sum += *pj;
        }
        let weighted: f64 = p.iter().zip(d).map(|(pj, dj)| pj * (dj - d_min)).sum();
        let entropy = sum.ln() + beta * weighted / sum;
        p.iter_mut().for_each(|pj| *pj /= sum);
        let diff = entropy - target_entropy;
        if diff.abs() < 1e-5 {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    p
}

/// PCA layout scaled so the first axis has standard deviation 1e-4, plus a seeded 1e-6 jitter.
fn initial_layout(data: &[f32], dim: usize, seed: u64) -> Vec<[f32; 2]> {
    let mut y = pca_2d(data, dim);
    let n = y.len() as f64;
    let mean = y.iter().map(|p| f64::from(p[0])).sum::<f64>() / n;
    let std = (y
        .iter()
        .map(|p| (f64::from(p[0]) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let scale = if std > 0.0 { (1e-4 / std) as f32 } else { 0.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in &mut y {
        for c in p.iter_mut() {
            *c = *c * scale + (rng.random::<f32>() - 0.5) * 2e-6;
        }
    }
    y
}

fn optimise(p: &SparseP, y: &mut [[f32; 2]], config: &TsneConfig) {
    let n = y.len();
    let learning_rate = (n as f32 / EARLY_EXAGGERATION / 4.0).max(50.0);
    let exaggerated_steps = (config.iterations / 4).min(250);
    let mut update = vec![[0f32; 2]; n];
    let mut gains = vec![[1f32; 2]; n];
    for step in 0..config.iterations {
        let (exaggeration, momentum) = if step < exaggerated_steps {
            (EARLY_EXAGGERATION, 0.5)
        } else {
            (1.0, 0.8)
        };
        let grad = gradient(p, y, exaggeration, config.theta);
        for i in 0..n {
            for c in 0..2 {
                let g = grad[i][c];
                let gain = &mut gains[i][c];
                *gain = if (update[i][c] > 0.0) != (g > 0.0) {
                    *gain + 0.2
                } else {
                    *gain * 0.8
                };
                *gain = gain.max(MIN_GAIN);
                update[i][c] = momentum * update[i][c] - learning_rate * *gain * g;
                y[i][c] += update[i][c];
            }
        }
        // Re-centre (translation does not change the cost) to keep coordinates small.
        for c in 0..2 {
            let mean = y.iter().map(|v| f64::from(v[c])).sum::<f64>() / n as f64;
            y.iter_mut().for_each(|v| v[c] -= mean as f32);
        }
    }
}

/// ∂KL/∂y: 4 (exaggeration · Σ_j P_ij q_ij Z (y_i − y_j) − Σ_j q_ij² Z² (y_i − y_j) / Z).
///
/// Points are visited (and inserted into the tree) in Morton order of the current layout, so
/// consecutive points walk nearly the same cells and the tree's arena is laid out along the
/// same curve: both keep the traversal in cache.
fn gradient(p: &SparseP, y: &[[f32; 2]], exaggeration: f32, theta: f32) -> Vec<[f32; 2]> {
    let order = morton_order(y);
    let tree = QuadTree::build(y, &order);
    let theta2 = theta * theta;
    let forces: Vec<([f32; 2], [f32; 2], f32)> = order
        .par_iter()
        .map_init(
            || Vec::with_capacity(128),
            |stack, &i| {
                let i = i as usize;
                let yi = y[i];
                let mut attract = [0f32; 2];
                let row = p.start[i]..p.start[i + 1];
                for (&j, &pij) in p.cols[row.clone()].iter().zip(&p.values[row]) {
                    let yj = y[j as usize];
                    let (dx, dy) = (yi[0] - yj[0], yi[1] - yj[1]);
                    let w = pij / (1.0 + dx * dx + dy * dy);
                    attract[0] += w * dx;
                    attract[1] += w * dy;
                }
                let (repel, sum_q) = tree.repulsion(i as u32, yi, theta2, stack);
                (attract, repel, sum_q)
            },
        )
        .collect();
    // Z in a fixed (Morton) order, in f64: the result does not depend on the thread schedule.
    let sum_q: f64 = forces
        .iter()
        .map(|f| f64::from(f.2))
        .sum::<f64>()
        .max(1e-12);
    let mut grad = vec![[0f32; 2]; y.len()];
    for (&i, (a, r, _)) in order.iter().zip(forces) {
        grad[i as usize] = [
            4.0 * (exaggeration * a[0] - (f64::from(r[0]) / sum_q) as f32),
            4.0 * (exaggeration * a[1] - (f64::from(r[1]) / sum_q) as f32),
        ];
    }
    grad
}
