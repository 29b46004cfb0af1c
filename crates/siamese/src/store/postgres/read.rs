//! The PostgreSQL engine's reads: one collection in memory (`read_store`, one snapshot), the
//! consistency check, and nearest faces by the collection's HNSW index.

use pgvector::Vector;

use super::schema::{self, MAX_EF_SEARCH, MAX_INDEXED_DIM};
use super::{error_line, fail, PostgresStore};
use crate::store::records::{EmbeddingStore, FaceBox, FaceId, StoredFace, StoredPhoto};
use crate::store::CollectionId;
use crate::Result;

impl PostgresStore {
    /// One collection in memory, read in one snapshot.
    pub(super) fn read_store(&mut self, collection: CollectionId) -> Result<EmbeddingStore> {
        let fingerprint: String = self
            .client
            .query_opt(
                "SELECT fingerprint FROM siamese_collections WHERE id = $1",
                &[&collection],
            )
            .map_err(|e| self.err(e))?
            .ok_or_else(|| fail(&self.shown, format!("no collection {collection}")))?
            .get(0);
        let dim = self.dim_of(collection)?;
        let mut store = EmbeddingStore::with_dim(&fingerprint, dim);
        let mut tx = self.client.transaction().map_err(|e| {
            error_line(&self.shown, self.secret.as_deref(), &e) // one snapshot for both reads
        })?;
        let photos = tx
            .query(
                "SELECT id, path, sha256, size, width, height, error FROM siamese_photos
                 WHERE collection = $1 ORDER BY id",
                &[&collection],
            )
            .map_err(|e| error_line(&self.shown, self.secret.as_deref(), &e))?;
        let mut path_of = std::collections::HashMap::with_capacity(photos.len());
        for r in &photos {
            let path: String = r.get(1);
            path_of.insert(r.get::<_, i64>(0), path.clone());
            store.insert(StoredPhoto {
                path,
                sha256: r.get(2),
                size: r.get::<_, i64>(3) as u64,
                width: r.get::<_, i32>(4) as u32,
                height: r.get::<_, i32>(5) as u32,
                faces: Vec::new(),
                error: r.get(6),
            });
        }
        let faces = tx
            .query(
                "SELECT id, photo, box_left, box_top, box_width, box_height, box_score,
                        landmarks, assumed, embedding, person
                 FROM siamese_faces WHERE collection = $1 ORDER BY photo, position",
                &[&collection],
            )
            .map_err(|e| error_line(&self.shown, self.secret.as_deref(), &e))?;
        tx.commit()
            .map_err(|e| error_line(&self.shown, self.secret.as_deref(), &e))?;
        for r in &faces {
            let id: i64 = r.get(0);
            let embedding = r.get::<_, Vector>(9).to_vec();
            if embedding.len() != dim {
                return Err(fail(
                    &self.shown,
                    format!(
                        "face {id}: embedding of length {}, expected {dim}",
                        embedding.len()
                    ),
                ));
            }
            let landmarks: Option<Vec<f32>> = r.get(7);
            let landmarks = match landmarks {
                None => None,
                Some(flat) if flat.len() % 2 == 0 => {
                    Some(flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
                }
                Some(flat) => {
                    return Err(fail(
                        &self.shown,
                        format!(
                            "face {id}: {} landmark coordinates (want pairs)",
                            flat.len()
                        ),
                    ))
                }
            };
            let face = StoredFace {
                bbox: FaceBox {
                    left: r.get(2),
                    top: r.get(3),
                    width: r.get(4),
                    height: r.get(5),
                    score: r.get(6),
                },
                landmarks,
                assumed: r.get(8),
                embedding,
                id: Some(id),
                person: r.get(10),
            };
            let path = &path_of[&r.get::<_, i64>(1)];
            store.get_mut(path).expect("loaded photo").faces.push(face);
        }
        Ok(store)
    }

    /// What PostgreSQL's own checks do not cover: faces filed under a collection other than
    /// their photo's, assigned to another collection's person, or of the wrong length.
    pub(super) fn read_check(&mut self) -> Result<String> {
        let row = self
            .client
            .query_one(
                "SELECT
                   (SELECT count(*) FROM siamese_faces f JOIN siamese_photos p ON f.photo = p.id
                      WHERE f.collection <> p.collection),
                   (SELECT count(*) FROM siamese_faces f JOIN siamese_people q ON f.person = q.id
                      WHERE f.collection <> q.collection),
                   (SELECT count(*) FROM siamese_faces f
                      JOIN siamese_collections c ON f.collection = c.id
                      WHERE vector_dims(f.embedding) <> c.dim)",
                &[],
            )
            .map_err(|e| self.err(e))?;
        let counts: [i64; 3] = [row.get(0), row.get(1), row.get(2)];
        let what = [
            "faces in another collection than their photo",
            "faces assigned to another collection's person",
            "embeddings of the wrong length",
        ];
        let problems: Vec<String> = counts
            .iter()
            .zip(what)
            .filter(|(n, _)| **n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        Ok(if problems.is_empty() {
            "ok".to_string()
        } else {
            problems.join("; ")
        })
    }

    /// The `k` nearest faces by the collection's HNSW index (`hnsw.ef_search` set for this
    /// transaction only); an exact scan when `k` exceeds pgvector's largest `ef_search` or the
    /// length is beyond what HNSW indexes.
    pub(super) fn read_nearest(
        &mut self,
        collection: CollectionId,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(FaceId, f32)>> {
        let dim = self.dim_of(collection)?;
        if query.len() != dim {
            return Err(fail(
                &self.shown,
                format!("query of length {}, the collection's is {dim}", query.len()),
            ));
        }
        if query.iter().any(|v| !v.is_finite()) {
            return Err(fail(&self.shown, "query has a non-finite value"));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let ef = self.ef_search.max(k);
        let mut tx = self.client.transaction().map_err(e)?;
        if ef > MAX_EF_SEARCH || dim > MAX_INDEXED_DIM {
            tx.batch_execute("SET LOCAL enable_indexscan = off")
                .map_err(e)?;
        } else {
            tx.batch_execute(&format!("SET LOCAL hnsw.ef_search = {ef}"))
                .map_err(e)?;
        }
        let sql = schema::nearest_sql("siamese_faces", collection, dim);
        let rows = tx
            .query(&sql, &[&Vector::from(query.to_vec()), &(k as i64)])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, f64>(1) as f32))
            .collect())
    }
}
