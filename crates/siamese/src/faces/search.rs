//! Face search: the stored faces nearest to a query face, Euclidean distance like verification:
//! exact search over a loaded collection ([`StoreIndex`], [`crate::index::FlatIndex`]), or the
//! database engine's own index where it has one ([`search_database`]: pgvector's HNSW).

use super::detect::FaceBox;
use super::store::{EmbeddingStore, StoredFace, StoredPhoto, DIM};
use super::verify::verdict;
use crate::distance::Distance;
use crate::index::FlatIndex;
use crate::Result;

/// One result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// 1 for the nearest.
    pub rank: usize,
    pub distance: f32,
    /// Within the same-person threshold.
    pub same_person: bool,
    pub path: String,
    /// Index of the face in its photo.
    pub face: usize,
    pub bbox: FaceBox,
}

/// The stored faces as an index, with `(photo path, face index, box)` per row.
pub struct StoreIndex {
    index: FlatIndex,
    rows: Vec<(String, usize, FaceBox)>,
}

impl StoreIndex {
    /// Indexes every face of `store`.
    pub fn new(store: &EmbeddingStore) -> Result<Self> {
        Self::of_faces(store.faces())
    }

    /// Indexes the faces of the photos stored under `keys` (in that order; keys not in the
    /// store are left out).
    pub fn for_photos(store: &EmbeddingStore, keys: &[String]) -> Result<Self> {
        Self::of_faces(
            keys.iter()
                .filter_map(|k| store.get(k))
                .flat_map(|p| p.faces.iter().enumerate().map(move |(i, f)| (p, i, f))),
        )
    }

    fn of_faces<'a>(
        faces: impl Iterator<Item = (&'a StoredPhoto, usize, &'a StoredFace)>,
    ) -> Result<Self> {
        let mut data = Vec::new();
        let mut rows = Vec::new();
        for (photo, i, face) in faces {
            data.extend_from_slice(&face.embedding);
            rows.push((photo.path.clone(), i, face.bbox));
        }
        Ok(StoreIndex {
            index: FlatIndex::new(data, DIM, Distance::Euclidean)?,
            rows,
        })
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the store had no face.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `k` nearest faces to `query`, nearest first; `threshold` marks same-person hits.
    pub fn search(&self, query: &[f32], k: usize, threshold: f32) -> Result<Vec<SearchHit>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .index
            .search(query, k)?
            .into_iter()
            .enumerate()
            .map(|(r, hit)| {
                let (path, face, bbox) = self.rows[hit.row].clone();
                SearchHit {
                    rank: r + 1,
                    distance: hit.distance,
                    same_person: verdict(hit.distance, threshold).same,
                    path,
                    face,
                    bbox,
                }
            })
            .collect())
    }
}

/// The `k` faces of `collection` nearest to `query`: by the engine's own index when it has one
/// and `exact` is not asked for, else exactly over `store` (the collection as loaded).
pub fn search_database(
    database: &mut dyn crate::store::Backend,
    collection: crate::store::CollectionId,
    store: &EmbeddingStore,
    query: &[f32],
    k: usize,
    threshold: f32,
    exact: bool,
) -> Result<Vec<SearchHit>> {
    let served = if exact {
        None
    } else {
        database.nearest(collection, query, k)?
    };
    let Some(found) = served else {
        return StoreIndex::new(store)?.search(query, k, threshold);
    };
    let rows: std::collections::HashMap<i64, (&StoredPhoto, usize, &StoredFace)> = store
        .faces()
        .filter_map(|(p, i, f)| f.id.map(|id| (id, (p, i, f))))
        .collect();
    Ok(found
        .into_iter()
        .filter_map(|(id, distance)| rows.get(&id).map(|r| (*r, distance)))
        .enumerate()
        .map(|(r, ((photo, face, f), distance))| SearchHit {
            rank: r + 1,
            distance,
            same_person: verdict(distance, threshold).same,
            path: photo.path.clone(),
            face,
            bbox: f.bbox,
        })
        .collect())
}
