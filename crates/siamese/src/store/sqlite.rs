//! The SQLite engine: one database file (SQLite compiled into the binary by `rusqlite`'s
//! `bundled` feature), WAL journal, foreign keys on, every write one transaction. Opening checks
//! that the file is a SQLite database of ours (`application_id`), migrates an older schema and
//! refuses a newer one. (A legacy `.store` file is imported by `store::open` before this opens it.)

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::records::{EmbeddingStore, FaceBox, FaceId, Person, PersonId, StoredFace, StoredPhoto};
use super::schema::{APPLICATION_ID, MIGRATIONS, VERSION};
use super::{Backend, CollectionId, CollectionInfo, CollectionSpec};
use crate::{Error, Result};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A SQLite database file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Connection,
    /// The HNSW graphs this connection has searched (`sqlite_index`).
    graphs: super::sqlite_index::GraphCache,
}

/// What kind of file sits at a database path.
enum FileKind {
    Missing,
    Sqlite,
}

fn file_kind(path: &Path) -> Result<FileKind> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(Error::io(path, e)),
        Ok(_) => crate::input::check_regular(path)?,
    }
    let mut head = [0u8; 16];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(|e| Error::io(path, e))? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    if n == 0 {
        // An empty file (e.g. made by `touch`) is a new database to SQLite too.
        return Ok(FileKind::Missing);
    }
    if n == 16 && &head == SQLITE_MAGIC {
        Ok(FileKind::Sqlite)
    } else {
        Err(Error::format(
            path,
            "not a siamese database (neither a SQLite file nor a legacy face store)",
        ))
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        match file_kind(path)? {
            FileKind::Missing => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
            }
            FileKind::Sqlite => {}
        }
        Self::open_sqlite(path)
    }

    /// Opens a SQLite file (never a legacy store), checking and migrating its schema.
    pub(crate) fn open_sqlite(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        let mut store = SqliteStore {
            path: path.to_path_buf(),
            conn,
            graphs: Default::default(),
        };
        store.prepare()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.path, e)
    }

    fn prepare(&mut self) -> Result<()> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(e)?;
        let app: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(e)?;
        let version: i32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        let tables: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .map_err(e)?;
            let rows = st.query_map([], |r| r.get(0)).map_err(e)?;
            rows.collect::<std::result::Result<_, _>>().map_err(e)?
        };
        if app != APPLICATION_ID && !(app == 0 && tables.is_empty()) {
            let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            return Err(Error::format(
                &self.path,
                format!(
                    "a SQLite database of another program (application_id {app:#x}, tables: {}), \
                     not a siamese database",
                    if shown.is_empty() {
                        "none".to_string()
                    } else {
                        shown.join(", ")
                    }
                ),
            ));
        }
        if version > VERSION {
            return Err(Error::format(
                &self.path,
                format!(
                    "schema version {version} is newer than this siamese knows ({VERSION}); \
                     use a newer siamese"
                ),
            ));
        }
        self.conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(e)?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(e)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(e)?;
        if version < VERSION {
            self.migrate(version)?;
        }
        Ok(())
    }

    /// Runs the migrations from the file's version to [`VERSION`] in one transaction, which
    /// holds the write lock from its start: of two processes opening one new file, the second
    /// finds the first one's schema instead of creating it again.
    fn migrate(&mut self, _seen: i32) -> Result<()> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let from: i32 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        if from >= VERSION {
            return Ok(());
        }
        for sql in &MIGRATIONS[from as usize..] {
            tx.execute_batch(sql).map_err(e)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(e)?;
        tx.pragma_update(None, "user_version", VERSION).map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Applies only the first `version` migrations to a new file (for migration tests).
    pub fn create_at_version(path: &Path, version: i32) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        for sql in &MIGRATIONS[..version as usize] {
            conn.execute_batch(sql).map_err(|e| db_error(path, e))?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(|e| db_error(path, e))?;
        conn.pragma_update(None, "user_version", version)
            .map_err(|e| db_error(path, e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn,
            graphs: Default::default(),
        })
    }

    /// Runs SQL on the file (tests and migrations of older versions).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i32> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn check_person(
        tx: &Transaction<'_>,
        path: &Path,
        collection: CollectionId,
        person: PersonId,
    ) -> Result<Option<String>> {
        tx.query_row(
            "SELECT name FROM people WHERE id = ?1 AND collection = ?2",
            params![person, collection],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .map_err(|e| db_error(path, e))?
        .ok_or_else(|| Error::config("person", format!("no person {person} in this collection")))
    }
}

/// A SQLite error on the file at `path`, one line.
fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    let message = e.to_string().replace('\n', " ");
    Error::format(path, format!("database: {message}"))
}

fn embedding_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Backend for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn collection(&mut self, spec: &CollectionSpec) -> Result<CollectionId> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let found: Option<(i64, String, i64)> = self
            .conn
            .query_row(
                "SELECT id, model, dim FROM collections WHERE fingerprint = ?1",
                params![spec.fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(e)?;
        if let Some((id, model, dim)) = found {
            if model != spec.model || dim as usize != spec.dim {
                return Err(Error::format(
                    &self.path,
                    format!(
                        "collection {id} holds {model} embeddings of length {dim}, not {} of \
                         length {}",
                        spec.model, spec.dim
                    ),
                ));
            }
            return Ok(id);
        }
        self.conn
            .execute(
                "INSERT INTO collections (fingerprint, model, dim) VALUES (?1, ?2, ?3)",
                params![spec.fingerprint, spec.model, spec.dim as i64],
            )
            .map_err(e)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn collections(&mut self) -> Result<Vec<CollectionInfo>> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let mut st = self
            .conn
            .prepare(
                "SELECT c.id, c.fingerprint, c.model, c.dim,
                    (SELECT count(*) FROM photos p WHERE p.collection = c.id),
                    (SELECT count(*) FROM faces f JOIN photos p ON f.photo = p.id
                        WHERE p.collection = c.id),
                    (SELECT count(*) FROM people q WHERE q.collection = c.id)
                 FROM collections c ORDER BY c.id",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok(CollectionInfo {
                    id: r.get(0)?,
                    spec: CollectionSpec {
                        fingerprint: r.get(1)?,
                        model: r.get(2)?,
                        dim: r.get::<_, i64>(3)? as usize,
                    },
                    photos: r.get::<_, i64>(4)? as usize,
                    faces: r.get::<_, i64>(5)? as usize,
                    people: r.get::<_, i64>(6)? as usize,
                })
            })
            .map_err(e)?;
        rows.collect::<std::result::Result<_, _>>().map_err(e)
    }

    fn load(&mut self, collection: CollectionId) -> Result<EmbeddingStore> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let (fingerprint, dim): (String, i64) = self
            .conn
            .query_row(
                "SELECT fingerprint, dim FROM collections WHERE id = ?1",
                params![collection],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(e)?
            .ok_or_else(|| Error::format(&self.path, format!("no collection {collection}")))?;
        let dim = dim as usize;
        let mut store = EmbeddingStore::with_dim(&fingerprint, dim);
        let mut photo_ids: Vec<i64> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare(
                    "SELECT id, path, sha256, size, width, height, error FROM photos
                     WHERE collection = ?1 ORDER BY id",
                )
                .map_err(e)?;
            let mut rows = st.query(params![collection]).map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                photo_ids.push(r.get(0).map_err(e)?);
                store.insert(StoredPhoto {
                    path: r.get(1).map_err(e)?,
                    sha256: r.get(2).map_err(e)?,
                    size: r.get::<_, i64>(3).map_err(e)? as u64,
                    width: r.get::<_, i64>(4).map_err(e)? as u32,
                    height: r.get::<_, i64>(5).map_err(e)? as u32,
                    faces: Vec::new(),
                    error: r.get(6).map_err(e)?,
                });
            }
        }
        let index_of: std::collections::HashMap<i64, usize> = photo_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let paths: Vec<String> = store.photos().iter().map(|p| p.path.clone()).collect();
        let mut st = self
            .conn
            .prepare(
                "SELECT f.id, f.photo, f.box_left, f.box_top, f.box_width, f.box_height,
                        f.box_score, f.landmarks, f.assumed, f.embedding, f.person
                 FROM faces f JOIN photos p ON f.photo = p.id
                 WHERE p.collection = ?1 ORDER BY f.photo, f.position",
            )
            .map_err(e)?;
        let mut rows = st.query(params![collection]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let id: i64 = r.get(0).map_err(e)?;
            let photo: i64 = r.get(1).map_err(e)?;
            let blob: Vec<u8> = r.get(9).map_err(e)?;
            if blob.len() != dim * 4 {
                return Err(Error::format(
                    &self.path,
                    format!(
                        "face {id}: embedding of {} bytes, expected {} ({dim} floats)",
                        blob.len(),
                        dim * 4
                    ),
                ));
            }
            let landmarks: Option<String> = r.get(7).map_err(e)?;
            let landmarks = match landmarks {
                None => None,
                Some(text) => Some(serde_json::from_str(&text).map_err(|err| {
                    Error::format(&self.path, format!("face {id}: bad landmarks: {err}"))
                })?),
            };
            let face = StoredFace {
                bbox: FaceBox {
                    left: r.get::<_, f64>(2).map_err(e)? as f32,
                    top: r.get::<_, f64>(3).map_err(e)? as f32,
                    width: r.get::<_, f64>(4).map_err(e)? as f32,
                    height: r.get::<_, f64>(5).map_err(e)? as f32,
                    score: r.get::<_, f64>(6).map_err(e)? as f32,
                },
                landmarks,
                assumed: r.get::<_, i64>(8).map_err(e)? != 0,
                embedding: blob
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                id: Some(id),
                person: r.get(10).map_err(e)?,
            };
            let i = *index_of.get(&photo).expect("face of a loaded photo");
            store
                .get_mut(&paths[i])
                .expect("loaded photo")
                .faces
                .push(face);
        }
        Ok(store)
    }

    fn put_photos(
        &mut self,
        collection: CollectionId,
        photos: &[StoredPhoto],
    ) -> Result<Vec<Vec<FaceId>>> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let dim: i64 = self
            .conn
            .query_row(
                "SELECT dim FROM collections WHERE id = ?1",
                params![collection],
                |r| r.get(0),
            )
            .map_err(e)?;
        super::records::check_embeddings(photos, dim as usize)
            .map_err(|m| Error::format(&path, m))?;
        let tx = self.conn.transaction().map_err(e)?;
        let mut all_ids = Vec::with_capacity(photos.len());
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO photos (collection, path, sha256, size, width, height, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (collection, path) DO UPDATE SET sha256 = excluded.sha256,
                        size = excluded.size, width = excluded.width, height = excluded.height,
                        error = excluded.error
                     RETURNING id",
                )
                .map_err(e)?;
            let mut clear = tx
                .prepare_cached("DELETE FROM faces WHERE photo = ?1")
                .map_err(e)?;
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO faces (id, photo, position, box_left, box_top, box_width,
                        box_height, box_score, landmarks, assumed, embedding, person)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(e)?;
            for photo in photos {
                let photo_id: i64 = upsert
                    .query_row(
                        params![
                            collection,
                            photo.path,
                            photo.sha256,
                            photo.size as i64,
                            photo.width,
                            photo.height,
                            photo.error
                        ],
                        |r| r.get(0),
                    )
                    .map_err(e)?;
                clear.execute(params![photo_id]).map_err(e)?;
                let mut ids = Vec::with_capacity(photo.faces.len());
                for (position, face) in photo.faces.iter().enumerate() {
                    let landmarks = face
                        .landmarks
                        .as_ref()
                        .map(|l| serde_json::to_string(l).expect("landmarks serialise"));
                    let b = &face.bbox;
                    add.execute(params![
                        face.id,
                        photo_id,
                        position as i64,
                        b.left as f64,
                        b.top as f64,
                        b.width as f64,
                        b.height as f64,
                        b.score as f64,
                        landmarks,
                        face.assumed as i64,
                        embedding_blob(&face.embedding),
                        face.person
                    ])
                    .map_err(e)?;
                    ids.push(tx.last_insert_rowid());
                }
                all_ids.push(ids);
            }
        }
        tx.commit().map_err(e)?;
        Ok(all_ids)
    }

    fn people(&mut self, collection: CollectionId) -> Result<Vec<Person>> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let mut st = self
            .conn
            .prepare(
                "SELECT q.id, q.name, count(f.id) FROM people q
                 LEFT JOIN faces f ON f.person = q.id
                 WHERE q.collection = ?1 GROUP BY q.id ORDER BY q.id",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![collection], |r| {
                Ok(Person {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    faces: r.get::<_, i64>(2)? as usize,
                })
            })
            .map_err(e)?;
        rows.collect::<std::result::Result<_, _>>().map_err(e)
    }

    fn create_people(&mut self, collection: CollectionId, count: usize) -> Result<Vec<PersonId>> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        let mut ids = Vec::with_capacity(count);
        {
            let mut add = tx
                .prepare_cached("INSERT INTO people (collection) VALUES (?1)")
                .map_err(e)?;
            for _ in 0..count {
                add.execute(params![collection]).map_err(e)?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(e)?;
        Ok(ids)
    }

    fn assign(
        &mut self,
        collection: CollectionId,
        assignments: &[(FaceId, Option<PersonId>)],
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE faces SET person = ?2 WHERE id = ?1
                     AND photo IN (SELECT id FROM photos WHERE collection = ?3)",
                )
                .map_err(e)?;
            let mut known = std::collections::HashSet::new();
            for &(face, person) in assignments {
                if let Some(p) = person {
                    if known.insert(p) {
                        Self::check_person(&tx, &path, collection, p)?;
                    }
                }
                if set.execute(params![face, person, collection]).map_err(e)? == 0 {
                    return Err(Error::config(
                        "face",
                        format!("no face {face} in this collection"),
                    ));
                }
            }
        }
        tx.execute(
            "DELETE FROM people WHERE collection = ?1 AND name IS NULL
             AND NOT EXISTS (SELECT 1 FROM faces f WHERE f.person = people.id)",
            params![collection],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn name_person(
        &mut self,
        collection: CollectionId,
        person: PersonId,
        name: Option<&str>,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        Self::check_person(&tx, &path, collection, person)?;
        tx.execute(
            "UPDATE people SET name = ?2 WHERE id = ?1",
            params![person, name],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn merge_people(
        &mut self,
        collection: CollectionId,
        into: PersonId,
        from: PersonId,
    ) -> Result<()> {
        if into == from {
            return Err(Error::config(
                "person",
                format!("cannot merge person {into} into itself"),
            ));
        }
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        let into_name = Self::check_person(&tx, &path, collection, into)?;
        let from_name = Self::check_person(&tx, &path, collection, from)?;
        tx.execute(
            "UPDATE faces SET person = ?1 WHERE person = ?2",
            params![into, from],
        )
        .map_err(e)?;
        if into_name.is_none() && from_name.is_some() {
            tx.execute(
                "UPDATE people SET name = ?2 WHERE id = ?1",
                params![into, from_name],
            )
            .map_err(e)?;
        }
        tx.execute("DELETE FROM people WHERE id = ?1", params![from])
            .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn delete_person(&mut self, collection: CollectionId, person: PersonId) -> Result<()> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let tx = self.conn.transaction().map_err(e)?;
        Self::check_person(&tx, &path, collection, person)?;
        let faces: i64 = tx
            .query_row(
                "SELECT count(*) FROM faces WHERE person = ?1",
                params![person],
                |r| r.get(0),
            )
            .map_err(e)?;
        if faces > 0 {
            return Err(Error::config(
                "person",
                format!("person {person} still has {faces} faces"),
            ));
        }
        tx.execute("DELETE FROM people WHERE id = ?1", params![person])
            .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn check(&mut self) -> Result<String> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        let mut st = self.conn.prepare("PRAGMA integrity_check").map_err(e)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
        let lines: Vec<String> = rows.collect::<std::result::Result<_, _>>().map_err(e)?;
        Ok(lines.join("; "))
    }

    /// By the collection's HNSW file beside the database from [`super::sqlite_index::HNSW_FROM`]
    /// faces on; `None` (exact search by the caller) below.
    fn nearest(
        &mut self,
        collection: CollectionId,
        query: &[f32],
        k: usize,
    ) -> Result<Option<Vec<(FaceId, f32)>>> {
        let path = self.path.clone();
        let e = |err| db_error(&path, err);
        super::sqlite_index::nearest(
            &self.conn,
            &self.path,
            &mut self.graphs,
            collection,
            query,
            k,
            &e,
        )
    }
}
