//! The SQLite engine's approximate search: one HNSW graph per collection in a file beside the
//! database (`DB.hnsw-N` for collection N), built on the first search of a collection of at
//! least [`HNSW_FROM`] faces, extended when faces were only added since, rebuilt when any face
//! it holds is gone, and never used stale.
//!
//! The file's content key is `COUNT:DIGEST`, the FNV-1a digest of the faces it holds in id
//! order, each as its id and its photo's SHA-256. New faces get ids above every face present,
//! so "the file covers the first COUNT of today's faces" is the test for extending it; SQLite
//! may give a deleted largest id to a new face, but a face's embedding follows from its photo's
//! content (one collection = one pipeline), so the photo's hash in the digest tells them apart.
//!
//! A connection keeps each collection's graph in memory ([`GraphCache`]) with the database's
//! stamp when it was checked: SQLite's `data_version` (moves when another connection commits)
//! and this connection's `total_changes` (moves with its own writes). While the stamp holds, a
//! search reads nothing but the two counters; when it moves, the faces are listed again and the
//! graph in memory is extended or rebuilt by the same rule as the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::records::FaceId;
use super::CollectionId;
use crate::index::{HnswIndex, HnswParams};
use crate::{Error, Result};

/// Collections smaller than this are searched exactly (a GEMM over them takes milliseconds).
pub const HNSW_FROM: usize = 20_000;

/// The HNSW file of `collection` beside the database at `db`.
pub fn index_path(db: &Path, collection: CollectionId) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(format!(".hnsw-{collection}"));
    PathBuf::from(name)
}

/// FNV-1a over a face's id (little-endian bytes) and its photo's hash, one step per face.
fn digest_step(hash: u64, id: i64, photo_sha256: &str) -> u64 {
    id.to_le_bytes()
        .iter()
        .chain(photo_sha256.as_bytes())
        .fold(hash, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
const DIGEST_START: u64 = 0xcbf2_9ce4_8422_2325;

fn content_key(count: usize, digest: u64) -> String {
    format!("{count}:{digest:016x}")
}

/// The graphs a connection has searched, by collection (see the module docs).
#[derive(Default)]
pub struct GraphCache {
    graphs: HashMap<CollectionId, CachedGraph>,
}

struct CachedGraph {
    stamp: Stamp,
    /// The first `count` faces (in id order) are in `index`, and `key` is their content key.
    count: usize,
    key: String,
    index: HnswIndex,
}

/// `(data_version, total_changes)`: equal stamps mean no face changed in between.
type Stamp = (i64, u64);

fn stamp(conn: &Connection, e: &dyn Fn(rusqlite::Error) -> Error) -> Result<Stamp> {
    let version = conn
        .query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(e)?;
    Ok((version, conn.total_changes()))
}

fn search(index: &mut HnswIndex, query: &[f32], k: usize) -> Result<Vec<(FaceId, f32)>> {
    index.set_ef(HnswParams::default().expansion_search.max(k))?;
    Ok(index
        .search(query, k)?
        .into_iter()
        .map(|n| (n.id as i64, n.distance))
        .collect())
}

/// The `k` faces of `collection` nearest to `query` by its HNSW file (made or brought up to
/// date first), or `None` below [`HNSW_FROM`] faces. The file is a cache: when it cannot be
/// written (a read-only folder) the search still runs on the graph built in memory.
pub fn nearest(
    conn: &Connection,
    db: &Path,
    cache: &mut GraphCache,
    collection: CollectionId,
    query: &[f32],
    k: usize,
    e: &dyn Fn(rusqlite::Error) -> Error,
) -> Result<Option<Vec<(FaceId, f32)>>> {
    // Taken before the faces are read: a commit in between only costs the next search a check.
    let now = stamp(conn, e)?;
    if let Some(cached) = cache.graphs.get_mut(&collection) {
        if cached.stamp == now {
            if query.len() != cached.index.dim() {
                return Err(query_length(query, cached.index.dim()));
            }
            return search(&mut cached.index, query, k).map(Some);
        }
    }
    let faces: Vec<(i64, String)> = {
        let mut st = conn
            .prepare(
                "SELECT f.id, p.sha256 FROM faces f JOIN photos p ON f.photo = p.id
                 WHERE p.collection = ?1 ORDER BY f.id",
            )
            .map_err(e)?;
        let rows = st
            .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?;
        rows.collect::<std::result::Result<_, _>>().map_err(e)?
    };
    let ids: Vec<i64> = faces.iter().map(|f| f.0).collect();
    if ids.len() < HNSW_FROM {
        cache.graphs.remove(&collection);
        return Ok(None);
    }
    let dim: i64 = conn
        .query_row(
            "SELECT dim FROM collections WHERE id = ?1",
            [collection],
            |r| r.get(0),
        )
        .map_err(e)?;
    let dim = dim as usize;
    if query.len() != dim {
        return Err(query_length(query, dim));
    }
    let path = index_path(db, collection);
    let mut digests = Vec::with_capacity(ids.len() + 1);
    digests.push(DIGEST_START);
    for (id, sha) in &faces {
        digests.push(digest_step(*digests.last().unwrap(), *id, sha));
    }
    let key = content_key(ids.len(), digests[ids.len()]);
    // What the graph in memory, else the saved file, covers: all of today's faces, a prefix of
    // them, or something else.
    let covers =
        |count: usize, key: &str| count <= ids.len() && key == content_key(count, digests[count]);
    let in_memory = cache
        .graphs
        .remove(&collection)
        .filter(|c| c.index.dim() == dim && covers(c.count, &c.key));
    let (mut index, covered) = match in_memory {
        Some(c) => (c.index, c.count),
        None => {
            let saved = HnswIndex::read_header(&path)
                .ok()
                .filter(|h| h.dim == dim && covers(h.count, &h.content_key));
            match saved.map(|h| (HnswIndex::load(&path, Some(&h.content_key)), h.count)) {
                Some((Ok((index, _)), count)) => (index, count),
                _ => (HnswIndex::new(dim, HnswParams::default())?, 0),
            }
        }
    };
    if covered < ids.len() {
        let after = if covered == 0 {
            i64::MIN
        } else {
            ids[covered - 1]
        };
        let (new_ids, data) = embeddings_after(conn, collection, after, dim, e)?;
        if new_ids.len() != ids.len() - covered {
            return Err(Error::Other(format!(
                "{}: database: faces changed during the search; run it again",
                db.display()
            )));
        }
        index.add(&new_ids, &data)?;
        // A cache: a folder we may not write to costs the next process a rebuild, nothing else.
        let _ = index.save(&path, &key);
    }
    let found = search(&mut index, query, k)?;
    cache.graphs.insert(
        collection,
        CachedGraph {
            stamp: now,
            count: ids.len(),
            key,
            index,
        },
    );
    Ok(Some(found))
}

fn query_length(query: &[f32], dim: usize) -> Error {
    Error::config(
        "query",
        format!(
            "{} values, the collection's embeddings have {dim}",
            query.len()
        ),
    )
}

/// Ids and embeddings of `collection`'s faces with an id above `after`, in id order.
fn embeddings_after(
    conn: &Connection,
    collection: CollectionId,
    after: i64,
    dim: usize,
    e: &dyn Fn(rusqlite::Error) -> Error,
) -> Result<(Vec<u64>, Vec<f32>)> {
    let mut st = conn
        .prepare(
            "SELECT f.id, f.embedding FROM faces f JOIN photos p ON f.photo = p.id
             WHERE p.collection = ?1 AND f.id > ?2 ORDER BY f.id",
        )
        .map_err(e)?;
    let mut rows = st.query((collection, after)).map_err(e)?;
    let (mut ids, mut data) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next().map_err(e)? {
        let id: i64 = r.get(0).map_err(e)?;
        let blob: Vec<u8> = r.get(1).map_err(e)?;
        if blob.len() != dim * 4 {
            return Err(Error::Other(format!(
                "face {id}: embedding of {} bytes, expected {}",
                blob.len(),
                dim * 4
            )));
        }
        ids.push(id as u64);
        data.extend(
            blob.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok((ids, data))
}
