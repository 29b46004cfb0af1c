//! What the database holds, as plain values: photos, their faces (box, landmarks, embedding,
//! person), people, and a collection loaded into memory ([`EmbeddingStore`]).

use std::collections::HashMap;

/// Embedding length of the face network (dlib's ResNet).
pub const DIM: usize = 128;

/// A face box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    /// Detector score (higher is surer); `0` for boxes that were assumed, not detected.
    pub score: f32,
}

impl FaceBox {
    /// Centre of the box.
    pub fn center(&self) -> [f32; 2] {
        [self.left + self.width / 2.0, self.top + self.height / 2.0]
    }
}

/// Database id of a face (stable while its photo is unchanged).
pub type FaceId = i64;
/// Database id of a person (stable across runs, merges keep the target's).
pub type PersonId = i64;

/// One face of a stored photo.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredFace {
    pub bbox: FaceBox,
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// The box was assumed (nothing detected), see `PipelineOptions::assume_centered`.
    pub assumed: bool,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// Its id once written to a database.
    #[serde(skip)]
    pub id: Option<FaceId>,
    /// The person it was assigned to, if any.
    #[serde(skip)]
    pub person: Option<PersonId>,
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

/// Why `photos` cannot be written to a collection of `dim`-long embeddings (a face's vector of
/// another length, or holding NaN or ±∞), as the message each engine prefixes with its name;
/// checked before any write so a batch is all or nothing.
pub fn check_embeddings(photos: &[StoredPhoto], dim: usize) -> std::result::Result<(), String> {
    for photo in photos {
        for (position, face) in photo.faces.iter().enumerate() {
            if face.embedding.len() != dim {
                return Err(format!(
                    "{}: face {position} has an embedding of length {}, the collection's is {dim}",
                    photo.path,
                    face.embedding.len()
                ));
            }
            if face.embedding.iter().any(|v| !v.is_finite()) {
                return Err(format!(
                    "{}: face {position} has a non-finite embedding",
                    photo.path
                ));
            }
        }
    }
    Ok(())
}

/// A person of a collection: an id, an optional name, how many faces.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Person {
    pub id: PersonId,
    pub name: Option<String>,
    pub faces: usize,
}

/// One collection (embeddings of one model with one set of settings) in memory: photos and
/// their faces, by path.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingStore {
    fingerprint: String,
    dim: usize,
    photos: Vec<StoredPhoto>,
    by_path: HashMap<String, usize>,
}

impl EmbeddingStore {
    /// An empty collection of face embeddings ([`DIM`]) for pipeline settings `fingerprint`.
    pub fn new(fingerprint: &str) -> Self {
        Self::with_dim(fingerprint, DIM)
    }

    /// An empty collection of `dim`-long embeddings.
    pub fn with_dim(fingerprint: &str, dim: usize) -> Self {
        EmbeddingStore {
            fingerprint: fingerprint.to_string(),
            dim,
            photos: Vec::new(),
            by_path: HashMap::new(),
        }
    }

    /// Settings the embeddings were made with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All photos, in insertion order.
    pub fn photos(&self) -> &[StoredPhoto] {
        &self.photos
    }

    /// The photo stored under `path` (absolute), if any.
    pub fn get(&self, path: &str) -> Option<&StoredPhoto> {
        self.by_path.get(path).map(|&i| &self.photos[i])
    }

    /// The photo stored under `path`, to change in place (e.g. to record face ids).
    pub fn get_mut(&mut self, path: &str) -> Option<&mut StoredPhoto> {
        self.by_path.get(path).map(|&i| &mut self.photos[i])
    }

    /// Every face with its photo: `(photo, face index, face)`.
    pub fn faces(&self) -> impl Iterator<Item = (&StoredPhoto, usize, &StoredFace)> {
        self.photos
            .iter()
            .flat_map(|p| p.faces.iter().enumerate().map(move |(i, f)| (p, i, f)))
    }

    /// Every face, to change in place (person assignments).
    pub fn faces_mut(&mut self) -> impl Iterator<Item = &mut StoredFace> {
        self.photos.iter_mut().flat_map(|p| p.faces.iter_mut())
    }

    /// Number of faces.
    pub fn face_count(&self) -> usize {
        self.photos.iter().map(|p| p.faces.len()).sum()
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
}
