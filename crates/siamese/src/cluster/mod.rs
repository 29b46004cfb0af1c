//! Clustering embeddings into groups (people, for faces): DBSCAN, agglomerative (average,
//! complete or single linkage), chinese whispers, and k-means (`kmeans`),
//! behind one [`Method`] so callers pick by name. Labels are `u32`;
//! [`crate::eval::clustering::NOISE`] marks points left out (DBSCAN only).
//!
//! The threshold-based methods run on a sparse neighbour graph
//! ([`crate::index::knn_graph::KnnGraph`]: each point's [`GRAPH_K`] nearest under the method's
//! cut, symmetrised; memory O(n·k), exact GEMM top-k up to 200,000 points, HNSW above), so a
//! million faces fit in a few GB. [`cluster_matrix`] keeps the full-matrix versions (`n²`
//! floats) as the reference the graph versions are tested against.

pub mod agglomerative;
pub mod bench;
pub mod chinese_whispers;
pub mod dbscan;
pub mod graph_agglomerative;
pub mod kmeans;

use crate::distance::Distance;
use crate::eval::knn::pairwise_distances;
use crate::index::knn_graph::{GraphParams, KnnGraph};
use crate::{Error, Result};

pub use agglomerative::Linkage;
pub use dbscan::DbscanParams;

/// A clustering method with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Method {
    Dbscan { eps: f32, min_points: usize },
    Kmeans { k: usize },
    Agglomerative { linkage: Linkage, threshold: f32 },
    ChineseWhispers { threshold: f32, max_rounds: usize },
}

impl Method {
    /// The method's CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Dbscan { .. } => "dbscan",
            Method::Kmeans { .. } => "kmeans",
            Method::Agglomerative { .. } => "agglomerative",
            Method::ChineseWhispers { .. } => "chinese-whispers",
        }
    }
}

/// Neighbours a point keeps in the graph of the threshold methods.
pub const GRAPH_K: usize = 64;

impl Method {
    /// The distance cut of a threshold method (`None` for k-means).
    pub fn cut(&self) -> Option<f32> {
        match *self {
            Method::Dbscan { eps, .. } => Some(eps),
            Method::Agglomerative { threshold, .. } | Method::ChineseWhispers { threshold, .. } => {
                Some(threshold)
            }
            Method::Kmeans { .. } => None,
        }
    }
}

/// Rows of `data`, or an error; k-means runs here (it needs no graph or matrix).
fn prepare(
    data: &[f32],
    dim: usize,
    method: &Method,
    seed: u64,
) -> Result<(usize, Option<Vec<u32>>)> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::config(
            "embeddings",
            format!("{} values are not rows of {dim}", data.len()),
        ));
    }
    let n = data.len() / dim;
    if n == 0 {
        return Ok((0, Some(Vec::new())));
    }
    if let Method::Kmeans { k } = method {
        if *k == 0 || *k > n {
            return Err(Error::config("k", format!("{k} clusters for {n} points")));
        }
        return Ok((n, Some(kmeans::kmeans(data, dim, *k, seed, 100))));
    }
    Ok((n, None))
}

/// Clusters the `data.len() / dim` rows of `data` (Euclidean distance) on their neighbour graph
/// (see the module docs); deterministic under `seed` (k-means and chinese whispers use it; above
/// 200,000 points the graph comes from a parallel HNSW build, deterministic with one thread).
pub fn cluster(data: &[f32], dim: usize, method: &Method, seed: u64) -> Result<Vec<u32>> {
    cluster_with_k(data, dim, method, seed, GRAPH_K)
}

/// [`cluster`] with `k` neighbours a point in the graph.
pub fn cluster_with_k(
    data: &[f32],
    dim: usize,
    method: &Method,
    seed: u64,
    k: usize,
) -> Result<Vec<u32>> {
    let (n, done) = prepare(data, dim, method, seed)?;
    if let Some(labels) = done {
        return Ok(labels);
    }
    // The graph (directed, then symmetrised: at most 3·n·k edges of 8 bytes) plus one block of
    // exact distances per thread; refuse what cannot fit, with numbers.
    let threads = rayon::current_num_threads() as u64;
    let need = n as u64 * k as u64 * 24 + threads * 64 * n as u64 * 12;
    check_memory(n, method, need, "neighbour graph")?;
    let cut = method.cut().expect("a threshold method");
    let graph = KnnGraph::build(data, dim, &GraphParams::new(k, cut))?.symmetrised();
    cluster_graph(&graph, data, dim, method, seed)
}

/// A threshold method on a given symmetrised graph over the rows of `data`.
pub fn cluster_graph(
    graph: &KnnGraph,
    data: &[f32],
    dim: usize,
    method: &Method,
    seed: u64,
) -> Result<Vec<u32>> {
    match *method {
        Method::Dbscan { eps, min_points } => {
            dbscan::dbscan_graph(graph, &DbscanParams { eps, min_points })
        }
        Method::Agglomerative { linkage, threshold } => {
            graph_agglomerative::agglomerative_graph(graph, data, dim, linkage, threshold)
        }
        Method::ChineseWhispers {
            threshold,
            max_rounds,
        } => chinese_whispers::chinese_whispers_graph(graph, threshold, max_rounds, seed),
        Method::Kmeans { k } => Ok(kmeans::kmeans(data, dim, k, seed, 100)),
    }
}

fn check_memory(n: usize, method: &Method, need: u64, what: &str) -> Result<()> {
    if let Some(limit) = crate::memory::memory_limit()? {
        if need > limit {
            return Err(Error::config(
                "faces",
                format!(
                    "clustering {n} faces with {} needs a {what} of {}, more than the {} \
                     available; use --method kmeans (SIAMESE_MAX_MEMORY sets the limit)",
                    method.name(),
                    crate::memory::gib(need),
                    crate::memory::gib(limit)
                ),
            ));
        }
    }
    Ok(())
}

/// The same clustering on the full n × n distance matrix (4·n² bytes: the reference the graph
/// versions are checked against).
pub fn cluster_matrix(data: &[f32], dim: usize, method: &Method, seed: u64) -> Result<Vec<u32>> {
    let (n, done) = prepare(data, dim, method, seed)?;
    if let Some(labels) = done {
        return Ok(labels);
    }
    check_memory(
        n,
        method,
        (n as u64).pow(2) * 4,
        &format!("{n}×{n} distance matrix"),
    )?;
    let dist = pairwise_distances(data, data, dim, Distance::Euclidean)?;
    match *method {
        Method::Dbscan { eps, min_points } => {
            dbscan::dbscan(&dist, n, &DbscanParams { eps, min_points })
        }
        Method::Agglomerative { linkage, threshold } => {
            agglomerative::agglomerative(&dist, n, linkage, threshold)
        }
        Method::ChineseWhispers {
            threshold,
            max_rounds,
        } => chinese_whispers::chinese_whispers(&dist, n, threshold, max_rounds, seed),
        Method::Kmeans { .. } => unreachable!("handled in prepare"),
    }
}
