//! The face store workflow: a folder's photos brought up to date in the embedding database
//! ([`crate::store`]): each photo is looked up by path and SHA-256, and only new or changed ones
//! are run through the pipeline (a renamed but unchanged photo is found by its hash). Each set of
//! pipeline settings (see [`PipelineOptions::fingerprint`]) is a collection of its own, so runs
//! with other flags never mix or replace each other's embeddings. Newly embedded photos are
//! committed every [`COMMIT_EVERY`] photos: a killed run loses at most one batch.
//!
//! [`PipelineOptions::fingerprint`]: super::pipeline::PipelineOptions::fingerprint

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::pipeline::{FacePipeline, Timings};
pub use crate::store::legacy::FACE_MODEL;
use crate::store::{self as db, Backend, CollectionId, CollectionSpec, FaceId, Locator};
pub use crate::store::{EmbeddingStore, StoredFace, StoredPhoto, DIM};
use crate::{Error, Result};

/// The collection of face embeddings made with pipeline settings `fingerprint`.
pub fn face_collection(fingerprint: &str) -> CollectionSpec {
    CollectionSpec {
        fingerprint: fingerprint.to_string(),
        model: FACE_MODEL.to_string(),
        dim: DIM,
    }
}

/// What [`update`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpdateReport {
    /// Photos run through the pipeline this time.
    pub embedded_photos: usize,
    /// Photos found unchanged in the store.
    pub reused_photos: usize,
    /// Faces embedded this time.
    pub embedded_faces: usize,
    pub timings: Timings,
    /// Photos without a usable face: `(path, reason)`, including those remembered from before.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A collection brought up to date for some files, by [`embed_files`].
#[derive(Debug, Clone)]
pub struct EmbeddedFiles {
    pub store: EmbeddingStore,
    /// The collection's id in the database.
    pub collection: CollectionId,
    /// Each file's key in the store, in the order of the files.
    pub keys: Vec<String>,
    pub report: UpdateReport,
}

/// [`embed_files_in`] on the SQLite database file `store_path` (created when missing; a legacy
/// single-file store there is imported first).
pub fn embed_files(
    store_path: &Path,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
) -> Result<EmbeddedFiles> {
    let mut database = db::open(&Locator::Sqlite(store_path.to_path_buf()))?;
    embed_files_in(database.as_mut(), files, pipeline, progress)
}

/// The store workflow: loads the collection of the pipeline's settings from `database` (made
/// when missing), embeds the files it does not hold yet ([`update_committing`]), committing
/// every batch.
pub fn embed_files_in(
    database: &mut dyn Backend,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
) -> Result<EmbeddedFiles> {
    let collection = database.collection(&face_collection(&pipeline.options().fingerprint()))?;
    let mut store = database.load(collection)?;
    let (report, keys) = update_committing(&mut store, files, pipeline, progress, |batch| {
        database.put_photos(collection, batch)
    })?;
    Ok(EmbeddedFiles {
        store,
        collection,
        keys,
        report,
    })
}

/// The legacy store file name earlier versions gave pipeline settings `fingerprint`
/// (`faces-<10 hex digits>.store`), so a cache's old store can be imported.
pub fn legacy_file_name_for(fingerprint: &str) -> String {
    let digest = Sha256::digest(fingerprint.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("faces-{hex}.store")
}

pub use crate::input::{file_hash, key};

/// Brings `store` up to date for `files` in memory only: unchanged photos are reused, the
/// others embedded. Returns the report and, for each file in order, its key in the store.
pub fn update(
    store: &mut EmbeddingStore,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
) -> (UpdateReport, Vec<String>) {
    update_committing(store, files, pipeline, progress, |batch| {
        Ok(batch.iter().map(|_| Vec::new()).collect())
    })
    .expect("a commit that cannot fail")
}

/// Photos embedded between two commits of a folder run: a run killed mid-way loses at most
/// this many photos' work.
pub const COMMIT_EVERY: usize = 256;

/// [`update`], calling `commit` with the photos that changed: first those found under a new
/// path (renamed or copied), then every [`COMMIT_EVERY`] newly embedded photos, so a long
/// folder run keeps its progress as it goes. `commit` returns the database ids of each photo's
/// faces (or nothing, for a store kept in memory), which are recorded in `store`.
pub fn update_committing(
    store: &mut EmbeddingStore,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
    mut commit: impl FnMut(&[StoredPhoto]) -> Result<Vec<Vec<FaceId>>>,
) -> Result<(UpdateReport, Vec<String>)> {
    let mut report = UpdateReport::default();
    let hashed: Vec<(String, Result<(String, u64)>)> =
        files.par_iter().map(|p| (key(p), file_hash(p))).collect();
    let by_hash: HashMap<&str, usize> = store
        .photos()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.sha256.as_str(), i))
        .collect();
    let mut moved = Vec::new();
    let mut todo = Vec::new();
    for (i, (k, h)) in hashed.iter().enumerate() {
        match h {
            Err(e) => report.skipped.push((files[i].clone(), e.to_string())),
            Ok((sha, _)) => {
                if store.get(k).is_some_and(|p| &p.sha256 == sha) {
                    report.reused_photos += 1;
                    continue;
                }
                match by_hash.get(sha.as_str()).map(|&j| &store.photos()[j]) {
                    // The same content under another path: a copy of its faces (new ids, same
                    // people), nothing embedded again.
                    Some(p) => {
                        let mut copy = StoredPhoto {
                            path: k.clone(),
                            ..p.clone()
                        };
                        for face in &mut copy.faces {
                            face.id = None;
                        }
                        moved.push(copy);
                    }
                    None => todo.push(i),
                }
            }
        }
    }
    report.reused_photos += moved.len();
    if !moved.is_empty() {
        commit_batch(store, moved, &mut commit)?;
    }
    let paths: Vec<PathBuf> = todo.iter().map(|&i| files[i].clone()).collect();
    let bar = if progress && !paths.is_empty() {
        let bar = ProgressBar::new(paths.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} photos {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message("embedding faces");
        bar
    } else {
        ProgressBar::hidden()
    };
    report.embedded_photos = paths.len();
    for (batch, todo_batch) in paths.chunks(COMMIT_EVERY).zip(todo.chunks(COMMIT_EVERY)) {
        let (results, timings) = pipeline.process_files(batch, |n| bar.inc(n as u64));
        report.timings.prepare_s += timings.prepare_s;
        report.timings.embed_s += timings.embed_s;
        report.timings.faces += timings.faces;
        report.timings.photos += timings.photos;
        let mut done = Vec::with_capacity(batch.len());
        for (&i, result) in todo_batch.iter().zip(results) {
            let (sha256, size) = hashed[i].1.as_ref().expect("hashed").clone();
            let mut photo = StoredPhoto {
                path: hashed[i].0.clone(),
                sha256,
                size,
                width: 0,
                height: 0,
                faces: Vec::new(),
                error: None,
            };
            match result {
                Ok(found) => {
                    photo.width = found.width;
                    photo.height = found.height;
                    report.embedded_faces += found.faces.len();
                    photo.faces = found
                        .faces
                        .into_iter()
                        .map(|f| StoredFace {
                            bbox: f.bbox,
                            landmarks: f.landmarks,
                            assumed: f.assumed,
                            embedding: f.embedding,
                            id: None,
                            person: None,
                        })
                        .collect();
                }
                // A file that vanished or cannot be read now may be fine later: not remembered.
                Err(e @ Error::Io { .. }) => {
                    report.skipped.push((files[i].clone(), e.to_string()));
                    continue;
                }
                Err(e) => photo.error = Some(e.to_string()),
            }
            done.push(photo);
        }
        commit_batch(store, done, &mut commit)?;
    }
    bar.finish_and_clear();
    let keys: Vec<String> = hashed.into_iter().map(|(k, _)| k).collect();
    for (file, k) in files.iter().zip(&keys) {
        if let Some(p) = store.get(k) {
            if let Some(e) = &p.error {
                report.skipped.push((file.clone(), e.clone()));
            } else if p.faces.is_empty() {
                report
                    .skipped
                    .push((file.clone(), format!("{}: no face found", file.display())));
            }
        }
    }
    Ok((report, keys))
}

/// Commits `photos`, then records them (with the face ids the commit gave) in `store`.
fn commit_batch(
    store: &mut EmbeddingStore,
    mut photos: Vec<StoredPhoto>,
    commit: &mut impl FnMut(&[StoredPhoto]) -> Result<Vec<Vec<FaceId>>>,
) -> Result<()> {
    let ids = commit(&photos)?;
    for (photo, ids) in photos.iter_mut().zip(ids) {
        for (face, id) in photo.faces.iter_mut().zip(ids) {
            face.id = Some(id);
        }
    }
    for photo in photos {
        store.insert(photo);
    }
    Ok(())
}
