//! Agglomerative clustering on a neighbour graph (memory O(n·k) instead of the n² matrix):
//! repeatedly merges the two clusters with the smallest linkage distance below the cut, among
//! pairs of clusters joined by at least one graph edge.
//!
//! The linkage of a joined pair is exact: for average linkage the sum of all |A|·|B| pairwise
//! distances (complete: their maximum, single: their minimum) is kept per joined pair; merging A
//! and B adds (or takes the max/min of) their sums towards each neighbour X, and a pair the
//! graph never held (A–X joined, B–X not) is computed from the embeddings when first needed.
//!
//! What a missing edge means: two clusters with no edge between them are never merged, that is
//! their linkage is taken to be at least the cut. That is exact when the graph holds every pair
//! closer than the cut (each of the three linkages is ≥ the smallest pairwise distance, so a
//! pair of clusters under the cut has a pair of points under it); with `k` neighbours a row it
//! is exact while no point has more than `k` others under the cut, and for larger groups any
//! one of their many edges joins them. Merges are taken in order of (linkage, cluster ids), so
//! the result is the matrix version's (`super::agglomerative`) up to ties and the graph's
//! missing pairs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::agglomerative::Linkage;
use crate::index::knn_graph::KnnGraph;
use crate::{Error, Result};

/// Cluster of each row of `data` (rows of `dim`, the rows of `graph`; symmetrise the graph
/// first), merging while the linkage is below `threshold`. Clusters are numbered in order of
/// their first row.
pub fn agglomerative_graph(
    graph: &KnnGraph,
    data: &[f32],
    dim: usize,
    linkage: Linkage,
    threshold: f32,
) -> Result<Vec<u32>> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(Error::config(
            "threshold",
            format!("{threshold} is not a positive distance"),
        ));
    }
    let n = graph.len();
    if dim == 0 || data.len() != n * dim {
        return Err(Error::config(
            "embeddings",
            format!("{} values for {n} rows of {dim}", data.len()),
        ));
    }
    let mut state = State {
        data,
        dim,
        linkage,
        members: (0..n as u32).map(|i| vec![i]).collect(),
        links: vec![HashMap::new(); n],
        version: vec![0; n],
        heap: BinaryHeap::new(),
        threshold,
    };
    for i in 0..n {
        let (t, d) = graph.row(i);
        for (&j, &dist) in t.iter().zip(d) {
            if j as usize != i {
                state.links[i].insert(j, f64::from(dist));
            }
        }
    }
    for i in 0..n {
        let pairs: Vec<(u32, f64)> = state.links[i].iter().map(|(&j, &v)| (j, v)).collect();
        for (j, v) in pairs {
            if (i as u32) < j {
                state.push(i as u32, j, v);
            }
        }
    }
    while let Some(Reverse((_, a, b, va, vb))) = state.heap.pop() {
        let (a, b) = (a as usize, b as usize);
        if state.members[a].is_empty()
            || state.members[b].is_empty()
            || state.version[a] != va
            || state.version[b] != vb
        {
            continue;
        }
        state.merge(a, b);
    }
    let mut ids: Vec<u32> = vec![u32::MAX; n];
    let mut labels = vec![0u32; n];
    let mut next = 0u32;
    let mut owner = vec![0u32; n];
    for (c, m) in state.members.iter().enumerate() {
        for &i in m {
            owner[i as usize] = c as u32;
        }
    }
    for i in 0..n {
        let c = owner[i] as usize;
        if ids[c] == u32::MAX {
            ids[c] = next;
            next += 1;
        }
        labels[i] = ids[c];
    }
    Ok(labels)
}

/// Heap entry: (linkage bits, cluster a < b, their versions when pushed).
type Entry = Reverse<(u64, u32, u32, u32, u32)>;

struct State<'a> {
    data: &'a [f32],
    dim: usize,
    linkage: Linkage,
    /// Rows of each live cluster (empty once absorbed).
    members: Vec<Vec<u32>>,
    /// For each live cluster, its joined clusters and the aggregate over all their pairs (sum
    /// for average, max for complete, min for single linkage).
    links: Vec<HashMap<u32, f64>>,
    /// Bumped whenever a cluster changes, so older heap entries are skipped.
    version: Vec<u32>,
    heap: BinaryHeap<Entry>,
    threshold: f32,
}

impl State<'_> {
    /// The linkage distance of clusters `a`, `b` from their aggregate.
    fn distance(&self, a: u32, b: u32, aggregate: f64) -> f64 {
        match self.linkage {
            Linkage::Average => {
                let pairs = self.members[a as usize].len() * self.members[b as usize].len();
                aggregate / pairs as f64
            }
            Linkage::Complete | Linkage::Single => aggregate,
        }
    }

    fn push(&mut self, a: u32, b: u32, aggregate: f64) {
        let d = self.distance(a, b, aggregate);
        if d < f64::from(self.threshold) {
            let (a, b) = (a.min(b), a.max(b));
            let entry = (
                d.to_bits(),
                a,
                b,
                self.version[a as usize],
                self.version[b as usize],
            );
            self.heap.push(Reverse(entry));
        }
    }

    /// The aggregate over every pair of rows of clusters `a` and `b`, from the embeddings.
    fn compute(&self, a: usize, b: usize) -> f64 {
        let dim = self.dim;
        let row = |i: u32| &self.data[i as usize * dim..(i as usize + 1) * dim];
        let mut acc = match self.linkage {
            Linkage::Average | Linkage::Complete => 0f64,
            Linkage::Single => f64::INFINITY,
        };
        for &i in &self.members[a] {
            for &j in &self.members[b] {
                let d = f64::from(crate::distance::euclidean(row(i), row(j)));
                acc = self.combine(acc, d);
            }
        }
        acc
    }

    fn combine(&self, x: f64, y: f64) -> f64 {
        match self.linkage {
            Linkage::Average => x + y,
            Linkage::Complete => x.max(y),
            Linkage::Single => x.min(y),
        }
    }

    /// Merges clusters `a` and `b` into the larger one (the lower id on equal sizes).
    fn merge(&mut self, a: usize, b: usize) {
        let (keep, gone) = if self.members[a].len() >= self.members[b].len() {
            (a, b)
        } else {
            (b, a)
        };
        let keep_links = std::mem::take(&mut self.links[keep]);
        let gone_links = std::mem::take(&mut self.links[gone]);
        let mut merged: HashMap<u32, f64> =
            HashMap::with_capacity(keep_links.len().max(gone_links.len()));
        for (&x, &v) in &keep_links {
            if x as usize == gone {
                continue;
            }
            let other = match gone_links.get(&x) {
                Some(&w) => w,
                None => self.compute(gone, x as usize),
            };
            merged.insert(x, self.combine(v, other));
        }
        for (&x, &w) in &gone_links {
            if x as usize == keep || keep_links.contains_key(&x) {
                continue;
            }
            let v = self.compute(keep, x as usize);
            merged.insert(x, self.combine(v, w));
        }
        let moved = std::mem::take(&mut self.members[gone]);
        self.members[keep].extend(moved);
        self.version[keep] += 1;
        self.version[gone] += 1;
        // Deterministic push order: by neighbour id.
        let mut neighbours: Vec<(u32, f64)> = merged.iter().map(|(&x, &v)| (x, v)).collect();
        neighbours.sort_unstable_by_key(|p| p.0);
        for &(x, v) in &neighbours {
            let links = &mut self.links[x as usize];
            links.remove(&(gone as u32));
            links.insert(keep as u32, v);
            self.push(keep as u32, x, v);
        }
        self.links[keep] = merged;
    }
}
