//! The SQLite schema and its migrations. A database file is ours when its `application_id` is
//! [`APPLICATION_ID`]; its `user_version` is the schema version. Opening an older file runs the
//! missing migrations in one transaction; a newer one is refused.
//!
//! Version 1 held what the single-file store held (collections, photos, faces); version 2 added
//! people and each face's person.

/// `PRAGMA application_id` of a siamese database: the bytes `SIAM`.
pub const APPLICATION_ID: i32 = 0x5349_414D;

/// The schema version this build writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`.
pub const MIGRATIONS: [&str; 2] = [V1, V2];

const V1: &str = "
CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL CHECK (dim > 0)
);
CREATE TABLE photos (
    id         INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    error      TEXT,
    UNIQUE (collection, path)
);
CREATE INDEX photos_by_hash ON photos (collection, sha256);
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY,
    photo      INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    box_left   REAL NOT NULL,
    box_top    REAL NOT NULL,
    box_width  REAL NOT NULL,
    box_height REAL NOT NULL,
    box_score  REAL NOT NULL,
    landmarks  TEXT,
    assumed    INTEGER NOT NULL,
    embedding  BLOB NOT NULL,
    UNIQUE (photo, position)
);
";

const V2: &str = "
CREATE TABLE people (
    id         INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name       TEXT
);
CREATE INDEX people_by_collection ON people (collection);
ALTER TABLE faces ADD COLUMN person INTEGER REFERENCES people(id) ON DELETE SET NULL;
CREATE INDEX faces_by_person ON faces (person);
";
