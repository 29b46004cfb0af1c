//! An on-disk cache of backbone features keyed by image content, so a backbone runs once per
//! image, ever: a second run over the same 10k images does no forward pass at all, and a renamed
//! or copied file is still a hit.
//!
//! One file per extractor id (network + weights hash + preprocessing, see
//! [`FeatureExtractor::id`]) in the cache folder: a header (`SIAMFEAT`, version, feature length,
//! id) followed by records of `SHA-256(file bytes)` (32 bytes) + `F` little-endian `f32`s.
//! Records are appended after every batch, so an interrupted run keeps what it computed; a torn
//! last record is cut off when the file is next opened. One writer at a time is assumed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::backbone::{extract_batched, FeatureExtractor};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"SIAMFEAT";
const VERSION: u32 = 1;

/// A content hash of one image file.
pub type ImageHash = [u8; 32];

/// What one [`FeatureCache::features`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Images asked for.
    pub images: usize,
    /// Distinct image contents among them.
    pub unique: usize,
    /// Distinct contents found in the cache.
    pub hits: usize,
    /// Distinct contents run through the backbone (forward passes, one per image).
    pub computed: usize,
}

/// How [`FeatureCache::features`] runs the backbone.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Images per forward pass.
    pub batch: usize,
    /// Images decoded and appended to the file per step (a multiple of `batch` works best).
    pub chunk: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        // Measured with MobileNetV2 on 2 cores: batches of 1–8 run at the same speed, 32 is
        // slower (activations leave the cache).
        ExtractOptions {
            batch: 8,
            chunk: 32,
            progress: false,
        }
    }
}

/// Features of one extractor, loaded from and appended to one file.
#[derive(Debug)]
pub struct FeatureCache {
    path: PathBuf,
    dim: usize,
    index: HashMap<ImageHash, usize>,
    rows: Vec<f32>,
}

/// The default cache folder: `<home>/features`.
pub fn default_dir() -> PathBuf {
    crate::assets::home().join("features")
}

fn header(id: &str, dim: usize) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(dim as u32).to_le_bytes());
    h.extend_from_slice(&(id.len() as u32).to_le_bytes());
    h.extend_from_slice(id.as_bytes());
    h
}

/// SHA-256 of a file's bytes.
pub fn hash_file(path: &Path) -> Result<ImageHash> {
    let bytes = crate::input::read_file(path)?;
    Ok(Sha256::digest(&bytes).into())
}

impl FeatureCache {
    /// Opens (or creates) the cache file of extractor `id` with feature length `dim` in `dir`.
    pub fn open(dir: &Path, id: &str, dim: usize) -> Result<FeatureCache> {
        if id.is_empty() || id.contains(['/', '\\']) || dim == 0 {
            return Err(Error::config(
                "feature cache",
                format!("bad id `{id}` or dim {dim}"),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("{id}.features"));
        let head = header(id, dim);
        let record = 32 + 4 * dim;
        let mut cache = FeatureCache {
            path: path.clone(),
            dim,
            index: HashMap::new(),
            rows: Vec::new(),
        };
        if !path.exists() {
            std::fs::write(&path, &head).map_err(|e| Error::io(&path, e))?;
            return Ok(cache);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if !bytes.starts_with(&head) {
            return Err(Error::format(
                &path,
                format!("not a feature cache for `{id}` with {dim} features; delete it to rebuild"),
            ));
        }
        let body = &bytes[head.len()..];
        let whole = body.len() / record;
        for r in body.chunks_exact(record) {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&r[..32]);
            if cache.index.contains_key(&hash) {
                continue;
            }
            cache.index.insert(hash, cache.rows.len() / dim);
            cache.rows.extend(
                r[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        if body.len() != whole * record {
            // A run was killed mid-append: drop the torn record so appends stay aligned.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            file.set_len((head.len() + whole * record) as u64)
                .map_err(|e| Error::io(&path, e))?;
        }
        Ok(cache)
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached feature vectors.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The cached features of an image content, if any.
    pub fn get(&self, hash: &ImageHash) -> Option<&[f32]> {
        self.index
            .get(hash)
            .map(|&i| &self.rows[i * self.dim..(i + 1) * self.dim])
    }

    fn append(&mut self, entries: &[(ImageHash, &[f32])]) -> Result<()> {
        let mut buf = Vec::with_capacity(entries.len() * (32 + 4 * self.dim));
        for (hash, features) in entries {
            buf.extend_from_slice(hash);
            for v in *features {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        file.write_all(&buf).map_err(|e| Error::io(&self.path, e))?;
        for (hash, features) in entries {
            if !self.index.contains_key(hash) {
                self.index.insert(*hash, self.rows.len() / self.dim);
                self.rows.extend_from_slice(features);
            }
        }
        Ok(())
    }

    /// Features of every image in `paths` (row-major `[paths.len(), F]`), running `extractor`
    /// only on contents not cached yet and caching them. A file that cannot be read or decoded
    /// is an error naming it.
    pub fn features(
        &mut self,
        extractor: &dyn FeatureExtractor,
        paths: &[PathBuf],
        options: &ExtractOptions,
        device: &Device,
    ) -> Result<(Vec<f32>, CacheStats)> {
        if extractor.feature_dim() != self.dim {
            return Err(Error::config(
                "feature cache",
                format!(
                    "{} holds {}-d features but the extractor makes {}",
                    self.path.display(),
                    self.dim,
                    extractor.feature_dim()
                ),
            ));
        }
        let hashes: Vec<ImageHash> = paths
            .par_iter()
            .map(|p| hash_file(p))
            .collect::<Result<_>>()?;
        let mut missing: Vec<(ImageHash, &PathBuf)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (h, p) in hashes.iter().zip(paths) {
            if seen.insert(*h) && self.get(h).is_none() {
                missing.push((*h, p));
            }
        }
        let stats = CacheStats {
            images: paths.len(),
            unique: seen.len(),
            hits: seen.len() - missing.len(),
            computed: missing.len(),
        };
        let bar = if options.progress && !missing.is_empty() {
            let bar = indicatif::ProgressBar::new(missing.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{} features", extractor.id()));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let preprocess = extractor.preprocess();
        for chunk in missing.chunks(options.chunk.max(1)) {
            let inputs: Vec<Vec<f32>> = chunk
                .par_iter()
                .map(|(_, p)| preprocess.load(p))
                .collect::<Result<_>>()?;
            let feats = extract_batched(extractor, &inputs, options.batch, device)?;
            let entries: Vec<(ImageHash, &[f32])> = chunk
                .iter()
                .zip(feats.chunks_exact(self.dim))
                .map(|((h, _), f)| (*h, f))
                .collect();
            self.append(&entries)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let mut out = Vec::with_capacity(paths.len() * self.dim);
        for h in &hashes {
            let row = self
                .get(h)
                .ok_or_else(|| Error::Other("feature cache lost a row it just wrote".into()))?;
            out.extend_from_slice(row);
        }
        Ok((out, stats))
    }
}
