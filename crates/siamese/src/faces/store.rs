//! The embedding store: one file holding, for every photo seen, its path, SHA-256, size, faces
//! (box, landmarks, 128-d embedding each) or the reason it was skipped. A later run over the
//! same photos looks each up by path and hash and only embeds new or changed ones (a renamed
//! but unchanged photo is found by its hash). Stores made with other pipeline settings (see
//! [`PipelineOptions::fingerprint`]) are not reused.
//!
//! File layout: the 16-byte magic `SIAMESE-FACES-01`, a little-endian `u64` length and that
//! many bytes of JSON (settings and photos, embeddings left out), then every face's embedding
//! as little-endian `f32`, in the order the faces appear in the JSON. Written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::detect::FaceBox;
use super::pipeline::{FacePipeline, Timings};
use crate::{Error, Result};

const MAGIC: &[u8; 16] = b"SIAMESE-FACES-01";
/// Embedding length stored.
pub const DIM: usize = 128;

/// One face of a stored photo.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredFace {
    pub bbox: FaceBox,
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// The box was assumed (nothing detected), see `PipelineOptions::assume_centered`.
    pub assumed: bool,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// One photo: where it was, what it contained, or why it was skipped.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredPhoto {
    /// Absolute path when embedded.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<StoredFace>,
    /// Why the photo has no faces when it could not be read (`None` when it was read).
    pub error: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    fingerprint: String,
    dim: usize,
    photos: Vec<StoredPhoto>,
}

/// Photos and their faces, by path.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingStore {
    fingerprint: String,
    photos: Vec<StoredPhoto>,
    by_path: HashMap<String, usize>,
}

impl EmbeddingStore {
    /// An empty store for pipeline settings `fingerprint`.
    pub fn new(fingerprint: &str) -> Self {
        EmbeddingStore {
            fingerprint: fingerprint.to_string(),
            photos: Vec::new(),
            by_path: HashMap::new(),
        }
    }

    /// Settings the embeddings were made with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// All photos, in insertion order.
    pub fn photos(&self) -> &[StoredPhoto] {
        &self.photos
    }

    /// The photo stored under `path` (absolute), if any.
    pub fn get(&self, path: &str) -> Option<&StoredPhoto> {
        self.by_path.get(path).map(|&i| &self.photos[i])
    }

    /// Every face with its photo: `(photo, face index, face)`.
    pub fn faces(&self) -> impl Iterator<Item = (&StoredPhoto, usize, &StoredFace)> {
        self.photos
            .iter()
            .flat_map(|p| p.faces.iter().enumerate().map(move |(i, f)| (p, i, f)))
    }

    /// Adds or replaces the entry for `photo.path`.
    pub fn insert(&mut self, photo: StoredPhoto) {
        match self.by_path.get(&photo.path) {
            Some(&i) => self.photos[i] = photo,
            None => {
                self.by_path.insert(photo.path.clone(), self.photos.len());
                self.photos.push(photo);
            }
        }
    }

    /// Reads a store file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::input::read_file(path)?;
        let bad = |m: &str| Error::format(path, format!("not a face embedding store: {m}"));
        if bytes.len() < 24 || &bytes[..16] != MAGIC {
            return Err(bad("wrong magic"));
        }
        let json_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")) as usize;
        let json_end = 24usize
            .checked_add(json_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated"))?;
        let mut header: Header =
            serde_json::from_slice(&bytes[24..json_end]).map_err(|e| bad(&e.to_string()))?;
        if header.dim != DIM {
            return Err(bad(&format!(
                "embedding length {} (expected {DIM})",
                header.dim
            )));
        }
        let faces: usize = header.photos.iter().map(|p| p.faces.len()).sum();
        let floats = &bytes[json_end..];
        if floats.len() != faces * DIM * 4 {
            return Err(bad(&format!(
                "{} embedding bytes for {faces} faces",
                floats.len()
            )));
        }
        let mut values = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        for face in header.photos.iter_mut().flat_map(|p| p.faces.iter_mut()) {
            face.embedding = values.by_ref().take(DIM).collect();
        }
        let by_path = header
            .photos
            .iter()
            .enumerate()
            .map(|(i, p)| (p.path.clone(), i))
            .collect();
        Ok(EmbeddingStore {
            fingerprint: header.fingerprint,
            photos: header.photos,
            by_path,
        })
    }

    /// The store at `path` when it exists and was made with `fingerprint`; else a new one.
    pub fn load_or_new(path: &Path, fingerprint: &str) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::new(fingerprint));
        }
        let store = Self::load(path)?;
        Ok(if store.fingerprint == fingerprint {
            store
        } else {
            Self::new(fingerprint)
        })
    }

    /// Writes the store atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = Header {
            fingerprint: self.fingerprint.clone(),
            dim: DIM,
            photos: self.photos.clone(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| Error::Other(e.to_string()))?;
        let mut bytes = Vec::with_capacity(24 + json.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        for (_, _, face) in self.faces() {
            for v in &face.embedding {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        crate::output::write_atomic(path, &bytes)
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

/// A store brought up to date for some files, by [`embed_files`].
#[derive(Debug, Clone)]
pub struct EmbeddedFiles {
    pub store: EmbeddingStore,
    /// Each file's key in the store, in the order of the files.
    pub keys: Vec<String>,
    pub report: UpdateReport,
}

/// The store workflow: loads the store at `store_path` (a new one when it is missing or was made
/// with other pipeline settings), embeds the files it does not hold yet ([`update`]) and saves it.
pub fn embed_files(
    store_path: &Path,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
) -> Result<EmbeddedFiles> {
    let fingerprint = pipeline.options().fingerprint();
    // A store of other settings is never replaced silently (its embeddings would be lost).
    if store_path.exists() {
        let existing = EmbeddingStore::load(store_path)?;
        if existing.fingerprint != fingerprint {
            return Err(Error::format(
                store_path,
                format!(
                    "was made with other face settings ({}); give these settings another store \
                     file (--store, or another --out), or remove this one",
                    settings_difference(&existing.fingerprint, &fingerprint)
                ),
            ));
        }
    }
    let mut store = EmbeddingStore::load_or_new(store_path, &fingerprint)?;
    // Saved after every batch of newly embedded photos: a killed run keeps what it did.
    let (report, keys) = update_committing(&mut store, files, pipeline, progress, |st| {
        st.save(store_path)
    })?;
    store.save(store_path)?;
    Ok(EmbeddedFiles {
        store,
        keys,
        report,
    })
}

/// The settings of fingerprint `now` that differ from `before`, as `flip=true (store: flip=false)`.
fn settings_difference(before: &str, now: &str) -> String {
    let old: Vec<&str> = before.split(';').collect();
    let diffs: Vec<String> = now
        .split(';')
        .filter(|part| !old.contains(part))
        .map(|part| {
            let key = part.split(['=', '(']).next().unwrap_or(part);
            match old.iter().find(|o| o.starts_with(key)) {
                Some(was) => format!("{part} (store: {was})"),
                None => format!("{part} (store: none)"),
            }
        })
        .collect();
    if diffs.is_empty() {
        let gone: Vec<&str> = old
            .into_iter()
            .filter(|o| !now.split(';').any(|n| n == *o))
            .collect();
        format!("store has {}", gone.join(", "))
    } else {
        diffs.join(", ")
    }
}

/// A store file name that differs between pipeline settings: `faces-<10 hex digits>.store`.
pub fn file_name_for(fingerprint: &str) -> String {
    let digest = Sha256::digest(fingerprint.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("faces-{hex}.store")
}

/// Hex SHA-256 and size of a file.
pub fn file_hash(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok((
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        size,
    ))
}

/// Absolute form of `path` (the store's key).
pub fn key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Brings `store` up to date for `files`: unchanged photos are reused, the others embedded.
/// Returns the report and, for each file in order, its key in the store.
pub fn update(
    store: &mut EmbeddingStore,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
) -> (UpdateReport, Vec<String>) {
    update_committing(store, files, pipeline, progress, |_| Ok(()))
        .expect("a commit that cannot fail")
}

/// Photos embedded between two commits of a folder run: a run killed mid-way loses at most
/// this many photos' work.
pub const COMMIT_EVERY: usize = 256;

/// [`update`], calling `commit` with the store after every [`COMMIT_EVERY`] newly embedded
/// photos (and once at the end), so a long folder run keeps its progress as it goes.
pub fn update_committing(
    store: &mut EmbeddingStore,
    files: &[PathBuf],
    pipeline: &FacePipeline,
    progress: bool,
    mut commit: impl FnMut(&EmbeddingStore) -> Result<()>,
) -> Result<(UpdateReport, Vec<String>)> {
    let mut report = UpdateReport::default();
    let hashed: Vec<(String, Result<(String, u64)>)> =
        files.par_iter().map(|p| (key(p), file_hash(p))).collect();
    let by_hash: HashMap<&str, usize> = store
        .photos
        .iter()
        .enumerate()
        .map(|(i, p)| (p.sha256.as_str(), i))
        .collect();
    let mut reused = Vec::new();
    let mut todo = Vec::new();
    for (i, (k, h)) in hashed.iter().enumerate() {
        match h {
            Err(e) => report.skipped.push((files[i].clone(), e.to_string())),
            Ok((sha, _)) => {
                let same_path = store.get(k).filter(|p| &p.sha256 == sha);
                let found =
                    same_path.or_else(|| by_hash.get(sha.as_str()).map(|&j| &store.photos[j]));
                match found {
                    Some(p) => reused.push(StoredPhoto {
                        path: k.clone(),
                        ..p.clone()
                    }),
                    None => todo.push(i),
                }
            }
        }
    }
    report.reused_photos = reused.len();
    for photo in reused {
        store.insert(photo);
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
            store.insert(photo);
        }
        commit(store)?;
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
