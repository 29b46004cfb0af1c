//! DBSCAN over a precomputed distance matrix: a point with at least `min_points` points
//! (itself included) within `eps` is a core point; clusters are core points joined through
//! `eps`-neighbourhoods plus the border points they reach; everything else is noise.
//!
//! [`dbscan`] takes the full distance matrix (the reference); [`dbscan_graph`] a symmetrised
//! neighbour graph (memory O(n·k)). The core test is exact while `min_points ≤ k + 1` (a row
//! lists up to `k` neighbours); the clusters are too when no point has more than `k` others
//! within `eps`, and otherwise they follow the edges the graph kept.

use crate::eval::clustering::NOISE;
use crate::index::knn_graph::KnnGraph;
use crate::{Error, Result};

/// DBSCAN settings, checked before any work.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DbscanParams {
    /// Neighbourhood radius (same unit as the distances).
    pub eps: f32,
    /// Points (self included) a neighbourhood needs for its centre to be a core point.
    pub min_points: usize,
}

impl DbscanParams {
    /// Rejects a non-positive radius and `min_points == 0`.
    pub fn check(&self) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::config(
                "eps",
                format!("{} is not a positive distance", self.eps),
            ));
        }
        if self.min_points == 0 {
            return Err(Error::config("min_points", "must be at least 1"));
        }
        Ok(())
    }
}

/// Cluster of each of the `n` points of the row-major `n × n` matrix `dist`; noise is [`NOISE`].
/// Clusters are numbered in order of their first point, so the result is deterministic.
pub fn dbscan(dist: &[f32], n: usize, params: &DbscanParams) -> Result<Vec<u32>> {
    params.check()?;
    if dist.len() != n * n {
        return Err(Error::config(
            "distances",
            format!("{} values for {n} points", dist.len()),
        ));
    }
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|i| (0..n).filter(|&j| dist[i * n + j] <= params.eps).collect())
        .collect();
    let core: Vec<bool> = neighbours
        .iter()
        .map(|nb| nb.len() >= params.min_points)
        .collect();
    Ok(expand(n, &core, |p| neighbours[p].iter().copied()))
}

/// DBSCAN over the edges of `graph` (symmetrise it first) no longer than `eps`.
pub fn dbscan_graph(graph: &KnnGraph, params: &DbscanParams) -> Result<Vec<u32>> {
    params.check()?;
    let n = graph.len();
    let within = |p: usize| {
        let (t, d) = graph.row(p);
        t.iter()
            .zip(d)
            .filter(|&(_, &d)| d <= params.eps)
            .map(|(&q, _)| q as usize)
    };
    // Itself included, as in the matrix version.
    let core: Vec<bool> = (0..n)
        .map(|p| within(p).count() + 1 >= params.min_points)
        .collect();
    Ok(expand(n, &core, within))
}

/// Labels from the core points, growing each cluster through `neighbours(p)`.
fn expand<I, F>(n: usize, core: &[bool], neighbours: F) -> Vec<u32>
where
    F: Fn(usize) -> I,
    I: Iterator<Item = usize>,
{
    let mut labels = vec![NOISE; n];
    let mut next = 0u32;
    for start in 0..n {
        if labels[start] != NOISE || !core[start] {
            continue;
        }
        labels[start] = next;
        let mut stack = vec![start];
        while let Some(p) = stack.pop() {
            for q in neighbours(p) {
                if labels[q] == NOISE {
                    labels[q] = next;
                    if core[q] {
                        stack.push(q);
                    }
                }
            }
        }
        next += 1;
    }
    labels
}
