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

/// Replaces the legacy store at `path` by a SQLite database holding the same photos and faces
/// (see [`import_into_new`]). Returns the number of photos imported.
pub fn import_in_place(path: &Path) -> Result<usize> {
    import_into_new(&[path.to_path_buf()], path)
}

/// The database a command defaults to in `dir`: `dir/faces.db`. When it does not exist yet but
/// legacy store files do (`faces.store` of `faces cluster`, `faces-<hash>.store` of the LFW
/// cache), they are imported into it first, once; the old files are left as they were.
pub fn default_database_in(dir: &Path) -> Result<std::path::PathBuf> {
    let target = dir.join("faces.db");
    if target.exists() {
        return Ok(target);
    }
    let mut legacy: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|n| n.starts_with("faces") && n.ends_with(".store"))
                    && p.is_file()
                    && is_legacy(p)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    legacy.sort();
    if !legacy.is_empty() {
        import_into_new(&legacy, &target)?;
    }
    Ok(target)
}

/// Whether the file at `path` starts with the legacy magic.
pub fn is_legacy(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == MAGIC
}

/// Builds a SQLite database holding every legacy store of `sources` (one collection each)
/// beside `target`, flushes it and renames it onto `target` (a crash leaves the old file or the
/// new one). Returns the number of photos imported.
pub fn import_into_new(sources: &[std::path::PathBuf], target: &Path) -> Result<usize> {
    let read: Vec<(String, Vec<StoredPhoto>)> =
        sources.iter().map(|p| read(p)).collect::<Result<_>>()?;
    let target = crate::output::output_target(target)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = target.with_file_name(format!(".{name}.import-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut db = SqliteStore::open_sqlite(&temp)?;
        for (fingerprint, photos) in &read {
            let collection = db.collection(&CollectionSpec {
                fingerprint: fingerprint.clone(),
                model: FACE_MODEL.to_string(),
                dim: DIM,
            })?;
            db.put_photos(collection, photos)?;
        }
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
    let photos: usize = read.iter().map(|r| r.1.len()).sum();
    for source in sources {
        eprintln!(
            "imported the legacy face store {} into {}",
            source.display(),
            target.display()
        );
    }
    Ok(photos)
}
