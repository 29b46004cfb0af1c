//! The embedding database: photos, faces (box, landmarks, embedding), people and their names,
//! in collections (one per model and settings fingerprint), behind one trait ([`Backend`]) with
//! two engines: SQLite in one file on this machine (the default, `sqlite`) and PostgreSQL +
//! pgvector beyond it (`postgres`). Old single-file `.store` files are imported once (`legacy`).
//!
//! Every write is a transaction: a run killed between two batches keeps every batch before it,
//! and a half-written batch is never visible.

pub mod legacy;
pub mod locator;
pub mod postgres;
pub mod records;
pub mod schema;
pub mod sqlite;
pub mod sqlite_index;

pub use locator::Locator;
pub use records::{
    EmbeddingStore, FaceBox, FaceId, Person, PersonId, StoredFace, StoredPhoto, DIM,
};

use crate::Result;

/// Database id of a collection.
pub type CollectionId = i64;

/// What identifies a collection: embeddings of one model made with one set of settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollectionSpec {
    /// The settings' fingerprint (`PipelineOptions::fingerprint`, or a run's for `index`).
    pub fingerprint: String,
    /// The embedding model, for people to read (`dlib_face_recognition_resnet_model_v1`).
    pub model: String,
    /// Embedding length.
    pub dim: usize,
}

/// A collection as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectionInfo {
    pub id: CollectionId,
    pub spec: CollectionSpec,
    pub photos: usize,
    pub faces: usize,
    pub people: usize,
}

/// One engine of the database. Methods that take a collection id act only inside it.
pub trait Backend: Send {
    /// Where it is, safe to print (no password).
    fn describe(&self) -> String;

    /// The id of the collection `spec`, created when missing. A collection with the same
    /// fingerprint and another model or length is an error.
    fn collection(&mut self, spec: &CollectionSpec) -> Result<CollectionId>;

    /// Every collection with its counts.
    fn collections(&mut self) -> Result<Vec<CollectionInfo>>;

    /// The whole collection in memory: photos, faces with ids, persons and embeddings.
    fn load(&mut self, collection: CollectionId) -> Result<EmbeddingStore>;

    /// Writes `photos` in one transaction, each replacing what was stored under its path (its
    /// old faces go; a photo whose content is unchanged keeps nothing from before either: the
    /// caller passes the faces it wants kept, with their ids and persons). Returns the ids
    /// given to each photo's faces, in order.
    fn put_photos(
        &mut self,
        collection: CollectionId,
        photos: &[StoredPhoto],
    ) -> Result<Vec<Vec<FaceId>>>;

    /// People of the collection, by id.
    fn people(&mut self, collection: CollectionId) -> Result<Vec<Person>>;

    /// Makes `count` new unnamed people; returns their ids.
    fn create_people(&mut self, collection: CollectionId, count: usize) -> Result<Vec<PersonId>>;

    /// Sets each face's person (`None`: unassigned) in one transaction, then deletes people
    /// left without faces and without a name.
    fn assign(
        &mut self,
        collection: CollectionId,
        assignments: &[(FaceId, Option<PersonId>)],
    ) -> Result<()>;

    /// Names (or with `None` unnames) a person.
    fn name_person(
        &mut self,
        collection: CollectionId,
        person: PersonId,
        name: Option<&str>,
    ) -> Result<()>;

    /// Moves every face of `from` to `into` and deletes `from`; `into` keeps its name, or takes
    /// `from`'s when it had none.
    fn merge_people(
        &mut self,
        collection: CollectionId,
        into: PersonId,
        from: PersonId,
    ) -> Result<()>;

    /// Deletes a person with no faces left (its name goes with it).
    fn delete_person(&mut self, collection: CollectionId, person: PersonId) -> Result<()>;

    /// The engine's own consistency check (`PRAGMA integrity_check` for SQLite): `ok` or what is
    /// wrong.
    fn check(&mut self) -> Result<String>;

    /// The `k` faces nearest to `query` (Euclidean), computed by the engine where it has an
    /// index of its own (pgvector); `None` when the caller should search the loaded collection.
    fn nearest(
        &mut self,
        _collection: CollectionId,
        _query: &[f32],
        _k: usize,
    ) -> Result<Option<Vec<(FaceId, f32)>>> {
        Ok(None)
    }
}

/// Opens the database at `locator` for a command that only reads: a SQLite file that is
/// missing or empty is an error instead of a new database (nothing is created at the path).
pub fn open_existing(locator: &Locator) -> Result<Box<dyn Backend>> {
    if let Locator::Sqlite(path) = locator {
        let meta = std::fs::metadata(path).map_err(|e| crate::Error::io(path, e))?;
        if meta.is_file() && meta.len() == 0 {
            return Err(crate::Error::format(path, "empty file, not a database"));
        }
    }
    open(locator)
}

/// Opens the database at `locator` (a SQLite file is created when missing, a legacy store file
/// is imported into its place first).
pub fn open(locator: &Locator) -> Result<Box<dyn Backend>> {
    match locator {
        Locator::Sqlite(path) => {
            if path.is_file() && legacy::is_legacy(path) {
                legacy::import_in_place(path)?;
            }
            Ok(Box::new(sqlite::SqliteStore::open(path)?))
        }
        Locator::Postgres(url) => Ok(Box::new(postgres::PostgresStore::connect(url)?)),
    }
}
