//! A run's retrieval system in the database: `siamese index add --model RUN DIR` embeds image
//! files with a trained run (converted MNIST-style, as `siamese recognize` does) into a
//! collection of their own, keyed by the run's weights (SHA-256 of `model.safetensors`), so a
//! retrained run never mixes with the old one; `siamese search --model RUN IMAGE` returns the
//! nearest stored images. Unchanged files are not embedded again; every batch is committed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::recognizer::{collect_image_paths, load_images_mnist_style};
use crate::distance::Distance;
use crate::index::FlatIndex;
use crate::input::{file_hash, key};
use crate::store::{Backend, CollectionId, CollectionSpec, FaceBox, StoredFace, StoredPhoto};
use crate::{Error, Result};

/// Images embedded between two commits.
pub const COMMIT_EVERY: usize = 1024;

/// The model name of run collections.
pub const RUN_MODEL: &str = "siamese-run";

/// The collection of a run's embeddings of `dim`: one per weights file.
pub fn run_collection(run: &Path, dim: usize) -> Result<CollectionSpec> {
    let weights = run.join("checkpoint").join("model.safetensors");
    let (sha, _) = file_hash(&weights)?;
    Ok(CollectionSpec {
        fingerprint: format!("run-weights-sha256={sha};input=mnist-style-28x28"),
        model: RUN_MODEL.to_string(),
        dim,
    })
}

/// What [`index_images`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IndexReport {
    pub collection: CollectionId,
    pub dim: usize,
    /// Images embedded this time.
    pub added: usize,
    /// Images found unchanged in the collection.
    pub unchanged: usize,
    /// Images in the collection afterwards.
    pub images: usize,
}

/// The run's embeddings of image files (MNIST-style); a non-finite one names its file.
fn embed_paths(
    model: &crate::model::embedding_cnn::EmbeddingCnn,
    paths: &[PathBuf],
) -> Result<crate::embed::Embeddings> {
    let images = load_images_mnist_style(paths)?;
    let emb = crate::run::embed(model, &images)?;
    if let Some(i) = (0..emb.len()).find(|&i| emb.row(i).iter().any(|v| !v.is_finite())) {
        return Err(Error::format(
            &paths[i],
            "the run's network gave a non-finite embedding",
        ));
    }
    Ok(emb)
}

/// Embeds the images named by `inputs` (files, or folders searched recursively) with the run at
/// `run` into its collection of `database`.
pub fn index_images(
    database: &mut dyn Backend,
    run: &Path,
    inputs: &[PathBuf],
) -> Result<IndexReport> {
    let paths = collect_image_paths(inputs)?;
    let model = crate::run::load_inference_model(run)?;
    let first = embed_paths(&model, &paths[..1])?;
    let spec = run_collection(run, first.dim)?;
    let collection = database.collection(&spec)?;
    let stored = database.load(collection)?;
    let mut todo = Vec::new();
    let mut unchanged = 0;
    for path in &paths {
        let (sha, size) = file_hash(path)?;
        let k = key(path);
        if stored.get(&k).is_some_and(|p| p.sha256 == sha) {
            unchanged += 1;
        } else {
            todo.push((path.clone(), k, sha, size));
        }
    }
    for batch in todo.chunks(COMMIT_EVERY) {
        let files: Vec<PathBuf> = batch.iter().map(|t| t.0.clone()).collect();
        let emb = embed_paths(&model, &files)?;
        let photos: Vec<StoredPhoto> = batch
            .iter()
            .enumerate()
            .map(|(i, (_, k, sha, size))| StoredPhoto {
                path: k.clone(),
                sha256: sha.clone(),
                size: *size,
                width: 28,
                height: 28,
                faces: vec![StoredFace {
                    bbox: FaceBox {
                        left: 0.0,
                        top: 0.0,
                        width: 28.0,
                        height: 28.0,
                        score: 0.0,
                    },
                    landmarks: None,
                    assumed: true,
                    embedding: emb.row(i).to_vec(),
                    id: None,
                    person: None,
                }],
                error: None,
            })
            .collect();
        database.put_photos(collection, &photos)?;
    }
    let images = database
        .collections()?
        .into_iter()
        .find(|c| c.id == collection)
        .map_or(0, |c| c.photos);
    Ok(IndexReport {
        collection,
        dim: spec.dim,
        added: todo.len(),
        unchanged,
        images,
    })
}

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageHit {
    /// 1 for the nearest.
    pub rank: usize,
    pub path: String,
    pub distance: f32,
}

/// The `k` stored images nearest to `query` (Euclidean) in the run's collection; `exact` skips
/// an engine's approximate index.
pub fn search_images(
    database: &mut dyn Backend,
    run: &Path,
    query: &Path,
    k: usize,
    exact: bool,
) -> Result<Vec<ImageHit>> {
    if k == 0 {
        return Err(Error::config("k", "must be at least 1"));
    }
    let model = crate::run::load_inference_model(run)?;
    let q = embed_paths(&model, &[query.to_path_buf()])?;
    let spec = run_collection(run, q.dim)?;
    let found = database
        .collections()?
        .into_iter()
        .find(|c| c.spec.fingerprint == spec.fingerprint);
    let Some(info) = found else {
        return Err(Error::config(
            "--model",
            format!(
                "{}: no images indexed with this run in {} (run `siamese index add` first)",
                run.display(),
                database.describe()
            ),
        ));
    };
    let stored = database.load(info.id)?;
    let rows: Vec<(&str, Option<i64>)> = stored
        .faces()
        .map(|(p, _, f)| (p.path.as_str(), f.id))
        .collect();
    let served = if exact {
        None
    } else {
        database.nearest(info.id, q.row(0), k)?
    };
    let hits: Vec<(String, f32)> = match served {
        Some(hits) => {
            let path_of: HashMap<i64, &str> = rows
                .iter()
                .filter_map(|(p, id)| id.map(|i| (i, *p)))
                .collect();
            hits.into_iter()
                .filter_map(|(id, d)| path_of.get(&id).map(|p| (p.to_string(), d)))
                .collect()
        }
        None => {
            let data: Vec<f32> = stored
                .faces()
                .flat_map(|f| f.2.embedding.iter().copied())
                .collect();
            let index = FlatIndex::new(data, q.dim, Distance::Euclidean)?;
            if index.is_empty() {
                Vec::new()
            } else {
                index
                    .search(q.row(0), k)?
                    .into_iter()
                    .map(|h| (rows[h.row].0.to_string(), h.distance))
                    .collect()
            }
        }
    };
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, (path, distance))| ImageHit {
            rank: i + 1,
            path,
            distance,
        })
        .collect())
}
