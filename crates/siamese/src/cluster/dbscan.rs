//! DBSCAN over a precomputed distance matrix: a point with at least `min_points` points
//! (itself included) within `eps` is a core point; clusters are core points joined through
//! `eps`-neighbourhoods plus the border points they reach; everything else is noise.

use crate::eval::clustering::NOISE;
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
    let mut labels = vec![NOISE; n];
    let mut next = 0u32;
    for start in 0..n {
        if labels[start] != NOISE || !core[start] {
            continue;
        }
        labels[start] = next;
        let mut stack = vec![start];
        while let Some(p) = stack.pop() {
            for &q in &neighbours[p] {
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
    Ok(labels)
}
