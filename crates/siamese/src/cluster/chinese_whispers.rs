//! Chinese whispers (Biemann 2006), the graph clustering dlib uses for faces: points closer than
//! `threshold` are joined by an edge; every point starts in its own cluster and, visiting the
//! points in a random order each round, takes the label carried by most of its neighbours
//! (ties to the smallest label), until no label changes or `max_rounds` is reached.
//! Deterministic under `seed`. [`chinese_whispers`] takes the full distance matrix (the
//! reference), [`chinese_whispers_graph`] a symmetrised neighbour graph (memory O(n·k)): the same
//! result when the graph holds every pair under the cut, and the votes of each face's `k`
//! nearest otherwise.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::index::knn_graph::KnnGraph;
use crate::{Error, Result};

/// Cluster of each of the `n` points of the row-major `n × n` matrix `dist`, numbered in order
/// of first appearance. A point with no edge stays alone.
pub fn chinese_whispers(
    dist: &[f32],
    n: usize,
    threshold: f32,
    max_rounds: usize,
    seed: u64,
) -> Result<Vec<u32>> {
    if dist.len() != n * n {
        return Err(Error::config(
            "distances",
            format!("{} values for {n} points", dist.len()),
        ));
    }
    check_threshold(threshold)?;
    let edges: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| j != i && dist[i * n + j] < threshold)
                .collect()
        })
        .collect();
    Ok(whisper(n, |i| edges[i].iter().copied(), max_rounds, seed))
}

/// Chinese whispers over the edges of `graph` (symmetrise it first) shorter than `threshold`.
pub fn chinese_whispers_graph(
    graph: &KnnGraph,
    threshold: f32,
    max_rounds: usize,
    seed: u64,
) -> Result<Vec<u32>> {
    check_threshold(threshold)?;
    let neighbours = |i: usize| {
        let (t, d) = graph.row(i);
        t.iter()
            .zip(d)
            .filter(move |&(_, &d)| d < threshold)
            .map(|(&j, _)| j as usize)
    };
    Ok(whisper(graph.len(), neighbours, max_rounds, seed))
}

fn check_threshold(threshold: f32) -> Result<()> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(Error::config(
            "threshold",
            format!("{threshold} is not a positive distance"),
        ));
    }
    Ok(())
}

/// The label propagation over `neighbours(i)` (every neighbour of `i` but itself).
fn whisper<I, F>(n: usize, neighbours: F, max_rounds: usize, seed: u64) -> Vec<u32>
where
    F: Fn(usize) -> I,
    I: Iterator<Item = usize>,
{
    let mut labels: Vec<usize> = (0..n).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut votes: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for _ in 0..max_rounds.max(1) {
        order.shuffle(&mut rng);
        let mut changed = false;
        for &i in &order {
            votes.clear();
            for j in neighbours(i) {
                *votes.entry(labels[j]).or_default() += 1;
            }
            let Some(best) = votes
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(&l, _)| l)
            else {
                continue;
            };
            if best != labels[i] {
                labels[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut ids = std::collections::HashMap::new();
    labels
        .iter()
        .map(|l| {
            let next = ids.len() as u32;
            *ids.entry(*l).or_insert(next)
        })
        .collect()
}
