//! The single-file store of earlier versions (`faces.store`), read once and imported into a
//! SQLite database that takes its place.
//!
//! Its layout: the 16-byte magic `SIAMESE-FACES-01`, a little-endian `u64` length and that many
//! bytes of JSON (settings fingerprint, `dim`, photos without embeddings), then every face's
//! embedding as little-endian `f32`, in the order the faces appear in the JSON.

use std::path::Path;

use super::records::{StoredPhoto, DIM};
use super::sqlite::SqliteStore;
use super::{Backend, CollectionSpec};
use crate::{Error, Result};

/// First bytes of a legacy store file.
pub const MAGIC: &[u8; 16] = b"SIAMESE-FACES-01";

/// The embedding model of every legacy store (they only held faces).
pub const FACE_MODEL: &str = "dlib_face_recognition_resnet_model_v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    fingerprint: String,
    dim: usize,
    photos: Vec<StoredPhoto>,
}

/// A legacy store's settings fingerprint and photos (with embeddings).
pub fn read(path: &Path) -> Result<(String, Vec<StoredPhoto>)> {
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
    Ok((header.fingerprint, header.photos))
}

/// Writes a legacy store file (tests of the import, and nothing else).
pub fn write(path: &Path, fingerprint: &str, photos: &[StoredPhoto]) -> Result<()> {
    let header = Header {
        fingerprint: fingerprint.to_string(),
        dim: DIM,
        photos: photos.to_vec(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| Error::Other(e.to_string()))?;
    let mut bytes = Vec::with_capacity(24 + json.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    for face in photos.iter().flat_map(|p| &p.faces) {
        for v in &face.embedding {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    crate::output::write_atomic(path, &bytes)
}

/// Replaces the legacy store at `path` by a SQLite database holding the same photos and faces:
/// built beside it, flushed, then renamed over it (a crash leaves the old file or the new one).
/// Returns the number of photos imported.
pub fn import_in_place(path: &Path) -> Result<usize> {
    let (fingerprint, photos) = read(path)?;
    let target = crate::output::output_target(path)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = target.with_file_name(format!(".{name}.import-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut db = SqliteStore::open_sqlite(&temp)?;
        let collection = db.collection(&CollectionSpec {
            fingerprint,
            model: FACE_MODEL.to_string(),
            dim: DIM,
        })?;
        db.put_photos(collection, &photos)?;
        // Back to a rollback journal before the rename, so no -wal file is left behind.
        db.execute_batch("PRAGMA journal_mode = DELETE;")?;
        drop(db);
        let file = std::fs::File::open(&temp).map_err(|e| Error::io(&temp, e))?;
        file.sync_all().map_err(|e| Error::io(&temp, e))?;
        std::fs::rename(&temp, &target).map_err(|e| Error::io(&target, e))
    })();
    if result.is_err() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
        }
    }
    result?;
    eprintln!(
        "imported the legacy face store {} ({} photos) into a database in its place",
        path.display(),
        photos.len()
    );
    Ok(photos.len())
}
