//! Clustering embeddings into groups (people, for faces): DBSCAN, agglomerative (average,
//! complete or single linkage), chinese whispers, and k-means (`kmeans`),
//! behind one [`Method`] so callers pick by name. Labels are `u32`;
//! [`crate::eval::clustering::NOISE`] marks points left out (DBSCAN only).
//!
//! The threshold-based methods work on the full distance matrix (`n²` floats: 6,000 points use
//! 144 MB), computed once with `crate::eval::knn::pairwise_distances`.

pub mod agglomerative;
pub mod chinese_whispers;
pub mod dbscan;
pub mod kmeans;

use crate::distance::Distance;
use crate::eval::knn::pairwise_distances;
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

/// Clusters the `data.len() / dim` rows of `data` (Euclidean distance); deterministic under
/// `seed` (k-means and chinese whispers use it).
pub fn cluster(data: &[f32], dim: usize, method: &Method, seed: u64) -> Result<Vec<u32>> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::config(
            "embeddings",
            format!("{} values are not rows of {dim}", data.len()),
        ));
    }
    let n = data.len() / dim;
    if n == 0 {
        return Ok(Vec::new());
    }
    if let Method::Kmeans { k } = method {
        if *k == 0 || *k > n {
            return Err(Error::config("k", format!("{k} clusters for {n} points")));
        }
        return Ok(kmeans::kmeans(data, dim, *k, seed, 100));
    }
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
        Method::Kmeans { .. } => unreachable!("handled above"),
    }
}
