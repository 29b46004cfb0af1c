//! The sparse k-nearest-neighbour graph the clustering methods run on: for every row its (at
//! most) `k` nearest other rows closer than a distance cut, in memory O(n·k), stored as
//! compressed rows (offsets, neighbour rows, Euclidean distances), each row sorted by
//! (distance, neighbour).
//!
//! Built exactly by blocked GEMM top-k (`crate::eval::knn::nearest`, a chunk of queries at a
//! time against all rows; distances recomputed exactly for the neighbours kept), or, for very
//! large `n`, from an HNSW index ([`super::hnsw`]) searched once per row. [`KnnGraph::build`]
//! picks exact search up to [`GraphParams::exact_limit`] rows. [`KnnGraph::symmetrised`] adds
//! every edge in both directions (the union), which the clustering methods use.

use rayon::prelude::*;

use super::hnsw::{HnswIndex, HnswParams};
use crate::distance::Distance;
use crate::eval::knn::{nearest, rows_of};
use crate::{Error, Result};

/// Query rows per exact chunk (the results of one chunk are at most this × (k+1) pairs).
const CHUNK: usize = 2048;

/// How the graph is built.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GraphParams {
    /// Neighbours kept per row at most.
    pub k: usize,
    /// Only edges with distance ≤ `cut` are kept.
    pub cut: f32,
    /// Exact (GEMM) search up to this many rows, HNSW above.
    pub exact_limit: usize,
    /// The HNSW settings used above `exact_limit` (ef is raised to at least k + 1).
    pub hnsw: HnswParams,
}

impl GraphParams {
    /// `k` neighbours under `cut`; exact search up to 200,000 rows.
    pub fn new(k: usize, cut: f32) -> Self {
        GraphParams {
            k,
            cut,
            exact_limit: 200_000,
            hnsw: HnswParams::default(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::config(
                "k",
                "the graph needs at least 1 neighbour a row",
            ));
        }
        if !(self.cut.is_finite() && self.cut > 0.0) {
            return Err(Error::config(
                "cut",
                format!("{} is not a positive distance", self.cut),
            ));
        }
        Ok(())
    }
}

/// A sparse neighbour graph over rows `0..n` (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    distances: Vec<f32>,
}

impl KnnGraph {
    /// From per-row neighbour lists (each sorted by distance).
    fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Self {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        let total: usize = rows.iter().map(Vec::len).sum();
        let mut targets = Vec::with_capacity(total);
        let mut distances = Vec::with_capacity(total);
        for row in rows {
            for (j, d) in row {
                targets.push(j);
                distances.push(d);
            }
            offsets.push(targets.len());
        }
        KnnGraph {
            offsets,
            targets,
            distances,
        }
    }

    /// Exact graph of the rows of `data` by blocked GEMM top-k.
    pub fn exact(data: &[f32], dim: usize, params: &GraphParams) -> Result<Self> {
        params.check()?;
        let n = check_rows(data, dim)?;
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::with_capacity(n);
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let found = nearest(
                &data[start * dim..end * dim],
                data,
                dim,
                Distance::Euclidean,
                (params.k + 1).min(n),
            );
            for (i, hits) in (start..end).zip(found) {
                rows.push(keep(
                    i,
                    hits.into_iter().map(|(j, d)| (j as u32, d)),
                    params,
                ));
            }
        }
        Ok(KnnGraph::from_rows(rows))
    }

    /// Graph of the rows of `data` from an HNSW index over them (keys = row numbers), searched
    /// once per row with ef ≥ k + 1 (the near edges, those under a clustering cut, are found
    /// reliably; the farthest of the k may be approximate).
    pub fn from_hnsw(
        index: &mut HnswIndex,
        data: &[f32],
        dim: usize,
        params: &GraphParams,
    ) -> Result<Self> {
        params.check()?;
        let n = check_rows(data, dim)?;
        if index.len() != n || index.dim() != dim {
            return Err(Error::config(
                "index",
                format!(
                    "holds {} rows of {}, the data {n} of {dim}",
                    index.len(),
                    index.dim()
                ),
            ));
        }
        let ef = index.params().expansion_search.max(params.k + 1);
        index.set_ef(ef)?;
        let index = &*index;
        let rows: Result<Vec<Vec<(u32, f32)>>> = data
            .par_chunks_exact(dim)
            .enumerate()
            .map(|(i, q)| {
                let hits = index.search(q, params.k + 1)?;
                Ok(keep(
                    i,
                    hits.into_iter().map(|h| (h.id as u32, h.distance)),
                    params,
                ))
            })
            .collect();
        Ok(KnnGraph::from_rows(rows?))
    }

    /// Exact up to `params.exact_limit` rows, else through an HNSW index built here.
    pub fn build(data: &[f32], dim: usize, params: &GraphParams) -> Result<Self> {
        let n = check_rows(data, dim)?;
        if n <= params.exact_limit {
            return KnnGraph::exact(data, dim, params);
        }
        let ids: Vec<u64> = (0..n as u64).collect();
        let mut index = HnswIndex::build(dim, &ids, data, params.hnsw)?;
        KnnGraph::from_hnsw(&mut index, data, dim, params)
    }

    /// Rows of the graph.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the graph has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Directed edges stored.
    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    /// Neighbour rows and distances of row `i`, nearest first.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        (&self.targets[a..b], &self.distances[a..b])
    }

    /// The union of the edges in both directions (`j` lists `i` whenever `i` lists `j`), each
    /// row sorted by (distance, neighbour).
    pub fn symmetrised(&self) -> Self {
        let n = self.len();
        let mut degree = vec![0usize; n];
        for i in 0..n {
            let (t, _) = self.row(i);
            degree[i] += t.len();
            for &j in t {
                degree[j as usize] += 1;
            }
        }
        let mut offsets = vec![0usize; n + 1];
        for i in 0..n {
            offsets[i + 1] = offsets[i] + degree[i];
        }
        let mut fill = offsets[..n].to_vec();
        let mut pairs = vec![(0u32, 0f32); offsets[n]];
        for i in 0..n {
            let (t, d) = self.row(i);
            for (&j, &dist) in t.iter().zip(d) {
                pairs[fill[i]] = (j, dist);
                fill[i] += 1;
                pairs[fill[j as usize]] = (i as u32, dist);
                fill[j as usize] += 1;
            }
        }
        let rows: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut row = pairs[offsets[i]..offsets[i + 1]].to_vec();
                row.sort_unstable_by_key(|a| a.0);
                row.dedup_by_key(|p| p.0);
                row.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                row
            })
            .collect();
        drop(pairs);
        KnnGraph::from_rows(rows)
    }
}

/// Rows of `data` as a graph's node count (at most `u32::MAX`).
fn check_rows(data: &[f32], dim: usize) -> Result<usize> {
    let n = rows_of("embeddings", data, dim)?;
    if n > u32::MAX as usize {
        return Err(Error::config(
            "embeddings",
            format!("{n} rows, at most {}", u32::MAX),
        ));
    }
    Ok(n)
}

/// Row `i`'s neighbours from sorted hits: itself left out, at most `k`, distance ≤ `cut`.
fn keep(i: usize, hits: impl Iterator<Item = (u32, f32)>, params: &GraphParams) -> Vec<(u32, f32)> {
    let mut row: Vec<(u32, f32)> = hits
        .filter(|&(j, d)| j as usize != i && d <= params.cut)
        .collect();
    row.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    row.truncate(params.k);
    row
}
