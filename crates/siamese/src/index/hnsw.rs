//! Approximate nearest-neighbour search: an HNSW graph ([`super::hnsw_graph`], ours: hnswlib's
//! layout with prefetching, AVX-512 / AVX2 distances picked at run time) over `u64`-keyed
//! embeddings, with Euclidean distances, incremental adds, and a saved file whose header lets
//! the caller tell a stale index from a current one.
//!
//! Distances returned are true Euclidean (square roots of the graph's squared L2). Building and
//! adding run in parallel over rayon's threads; with one thread (`RAYON_NUM_THREADS=1`) the
//! graph, and so every search, is the same run after run; with more, insertion order between
//! threads varies and so may a few neighbours found (not the recall). Search is deterministic
//! for a given graph.
//!
//! File layout: `SIAMHNSW` magic, `u32` format version, `u32` header length, the JSON
//! [`IndexHeader`] (dimension, count, settings, the caller's content key), the ids (`u64` each,
//! in row order), then the graph's bytes ([`Graph::from_bytes`]). [`HnswIndex::read_header`]
//! reads only the header, so a database can decide to rebuild without loading a stale graph.
//! Files of format 1 (the `usearch` graph of earlier builds) are refused as another format; a
//! database treats its file as a cache and rebuilds it.

use std::path::Path;

use std::collections::HashMap;

use rayon::prelude::*;

use super::hnsw_graph::Graph;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"SIAMHNSW";
const VERSION: u32 = 2;

/// Graph settings. `connectivity` (HNSW's M) and `expansion_add` (efConstruction) are fixed at
/// build time; `expansion_search` (ef) can be changed at any time with [`HnswIndex::set_ef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    pub connectivity: usize,
    pub expansion_add: usize,
    pub expansion_search: usize,
}

impl Default for HnswParams {
    /// M = 16, efConstruction = 128, ef = 64 (see ARCHITECTURE.md for the measurements).
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
        }
    }
}

impl HnswParams {
    /// Rejects settings the graph cannot use.
    pub fn check(&self) -> Result<()> {
        if !(2..=1024).contains(&self.connectivity) {
            return Err(Error::config(
                "connectivity",
                format!("{} is not in 2..=1024", self.connectivity),
            ));
        }
        for (name, v) in [
            ("expansion_add", self.expansion_add),
            ("ef", self.expansion_search),
        ] {
            if !(1..=100_000).contains(&v) {
                return Err(Error::config(name, format!("{v} is not in 1..=100000")));
            }
        }
        Ok(())
    }
}

/// What a saved index says about itself: enough to detect that it no longer matches the data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexHeader {
    pub dim: usize,
    pub count: usize,
    pub params: HnswParams,
    /// The caller's digest of what was indexed (ids and contents), given to [`HnswIndex::save`].
    pub content_key: String,
}

/// One hit: the id given at insertion and its Euclidean distance to the query.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Neighbour {
    pub id: u64,
    pub distance: f32,
}

/// An HNSW index over rows of `dim` floats, keyed by `u64` ids (unique).
pub struct HnswIndex {
    graph: Graph,
    /// The caller's id of each graph row, and the row of each id.
    ids: Vec<u64>,
    rows: HashMap<u64, u32>,
    dim: usize,
    params: HnswParams,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("params", &self.params)
            .finish()
    }
}

impl HnswIndex {
    /// An empty index for rows of `dim`.
    pub fn new(dim: usize, params: HnswParams) -> Result<Self> {
        params.check()?;
        if dim == 0 {
            return Err(Error::config(
                "dim",
                "embedding dimension must be at least 1",
            ));
        }
        Ok(HnswIndex {
            graph: Graph::new(dim, params.connectivity, params.expansion_add),
            ids: Vec::new(),
            rows: HashMap::new(),
            dim,
            params,
        })
    }

    /// An index over `data` (rows of `dim`), row `i` keyed by `ids[i]`.
    pub fn build(dim: usize, ids: &[u64], data: &[f32], params: HnswParams) -> Result<Self> {
        let mut index = HnswIndex::new(dim, params)?;
        index.add(ids, data)?;
        Ok(index)
    }

    /// Adds rows (in parallel); an id already in the index, repeated among `ids`, or a
    /// non-finite value is an error before anything is added.
    pub fn add(&mut self, ids: &[u64], data: &[f32]) -> Result<()> {
        let rows = crate::eval::knn::rows_of("vectors", data, self.dim)?;
        if rows != ids.len() {
            return Err(Error::config(
                "ids",
                format!("{} ids for {rows} vectors", ids.len()),
            ));
        }
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config("ids", format!("id {} is repeated", w[0])));
        }
        if let Some(id) = ids.iter().find(|&&id| self.rows.contains_key(&id)) {
            return Err(Error::config("ids", format!("id {id} is already indexed")));
        }
        if let Some(v) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::config(
                "vectors",
                format!("hold a non-finite value ({v})"),
            ));
        }
        if self.len() + rows >= u32::MAX as usize {
            return Err(Error::config("ids", "more than 4 billion rows"));
        }
        let start = self.len() as u32;
        self.rows
            .extend(ids.iter().zip(start..).map(|(&id, row)| (id, row)));
        self.ids.extend_from_slice(ids);
        self.graph.add(data);
        Ok(())
    }

    /// Rows in the index.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The distance kernel picked for this CPU at run time (`avx512f`, `avx2+fma`, `portable`).
    pub fn kernel(&self) -> String {
        self.graph.kernel().to_string()
    }

    /// Row dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The settings (ef as last set).
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the search breadth ef (more: higher recall, slower); at least `k` is used.
    pub fn set_ef(&mut self, ef: usize) -> Result<()> {
        let p = HnswParams {
            expansion_search: ef,
            ..self.params
        };
        p.check()?;
        self.params = p;
        Ok(())
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: u64) -> bool {
        self.rows.contains_key(&id)
    }

    /// The `k` nearest indexed rows to `query`, nearest first (fewer when the index is smaller).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>> {
        if query.len() != self.dim {
            return Err(Error::config(
                "query",
                format!("{} values, index rows have {}", query.len(), self.dim),
            ));
        }
        if let Some(v) = query.iter().find(|v| !v.is_finite()) {
            return Err(Error::config(
                "query",
                format!("holds a non-finite value ({v})"),
            ));
        }
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .graph
            .search(query, k, self.params.expansion_search)
            .into_iter()
            .map(|(row, d2)| Neighbour {
                id: self.ids[row as usize],
                distance: d2.max(0.0).sqrt(),
            })
            .collect())
    }

    pub fn search_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbour>>> {
        crate::eval::knn::rows_of("queries", queries, self.dim)?;
        queries
            .par_chunks_exact(self.dim)
            .map(|q| self.search(q, k))
            .collect()
    }

    /// Writes the index to `path` atomically, with `content_key` (the caller's digest of the
    /// indexed ids/contents) in its header.
    pub fn save(&self, path: &Path, content_key: &str) -> Result<()> {
        let header = serde_json::to_vec(&IndexHeader {
            dim: self.dim,
            count: self.len(),
            params: self.params,
            content_key: content_key.to_string(),
        })
        .map_err(|e| Error::Other(format!("HNSW header: {e}")))?;
        let graph = self.graph.to_bytes();
        let mut bytes = Vec::with_capacity(16 + header.len() + self.ids.len() * 8 + graph.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        for id in &self.ids {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        bytes.extend_from_slice(&graph);
        crate::output::write_atomic(path, &bytes)
    }

    /// The header of the index file at `path`, without loading the graph.
    pub fn read_header(path: &Path) -> Result<IndexHeader> {
        use std::io::Read;
        crate::input::check_regular(path)?;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut fixed = [0u8; 16];
        file.read_exact(&mut fixed)
            .map_err(|_| Error::format(path, "too short for an HNSW index file"))?;
        let len = parse_fixed(path, &fixed)?;
        let mut header = vec![0u8; len];
        file.read_exact(&mut header)
            .map_err(|_| Error::format(path, "HNSW header cut short"))?;
        parse_header(path, &header)
    }

    /// Loads the index at `path`. When `expected_key` is given and the file's content key
    /// differs, this is an error naming both (a caller rebuilds then; see [`Self::read_header`]).
    pub fn load(path: &Path, expected_key: Option<&str>) -> Result<(Self, IndexHeader)> {
        let bytes = crate::input::read_file(path)?;
        if bytes.len() < 16 {
            return Err(Error::format(path, "too short for an HNSW index file"));
        }
        let len = parse_fixed(path, &bytes[..16])?;
        let body = 16 + len;
        if bytes.len() < body {
            return Err(Error::format(path, "HNSW header cut short"));
        }
        let header = parse_header(path, &bytes[16..body])?;
        if let Some(key) = expected_key.filter(|&k| k != header.content_key) {
            return Err(Error::format(
                path,
                format!(
                    "stale HNSW index: content key {:?}, expected {key:?}",
                    header.content_key
                ),
            ));
        }
        let id_bytes = header
            .count
            .checked_mul(8)
            .filter(|&b| b <= bytes.len() - body)
            .ok_or_else(|| Error::format(path, "HNSW ids cut short"))?;
        let ids: Vec<u64> = bytes[body..body + id_bytes]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let rows: HashMap<u64, u32> = ids.iter().zip(0u32..).map(|(&id, r)| (id, r)).collect();
        if rows.len() != ids.len() {
            return Err(Error::format(path, "HNSW ids repeat"));
        }
        let graph = Graph::from_bytes(&bytes[body + id_bytes..])
            .map_err(|e| Error::format(path, format!("HNSW graph unreadable: {e}")))?;
        if graph.len() != header.count
            || graph.dim() != header.dim
            || graph.m() != header.params.connectivity
        {
            return Err(Error::format(
                path,
                format!(
                    "HNSW graph holds {} rows of {} (M {}), its header says {} of {} (M {})",
                    graph.len(),
                    graph.dim(),
                    graph.m(),
                    header.count,
                    header.dim,
                    header.params.connectivity
                ),
            ));
        }
        let index = HnswIndex {
            graph,
            ids,
            rows,
            dim: header.dim,
            params: header.params,
        };
        Ok((index, header))
    }
}

/// The header length from the 16 fixed bytes (magic, version, length), checked.
fn parse_fixed(path: &Path, fixed: &[u8]) -> Result<usize> {
    if &fixed[..8] != MAGIC {
        return Err(Error::format(path, "not an HNSW index file (bad magic)"));
    }
    let version = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::format(
            path,
            format!("HNSW index format {version}, this build reads {VERSION}"),
        ));
    }
    let len = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes")) as usize;
    if len > 1 << 20 {
        return Err(Error::format(path, format!("HNSW header of {len} bytes")));
    }
    Ok(len)
}

fn parse_header(path: &Path, bytes: &[u8]) -> Result<IndexHeader> {
    let header: IndexHeader = serde_json::from_slice(bytes)
        .map_err(|e| Error::format(path, format!("HNSW header: {e}")))?;
    header.params.check()?;
    if header.dim == 0 {
        return Err(Error::format(path, "HNSW header: dimension 0"));
    }
    Ok(header)
}
