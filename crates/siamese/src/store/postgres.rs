//! The PostgreSQL + pgvector engine, for a database beyond one machine: a connection (the sync
//! `postgres` crate, no TLS, a 10 s connect timeout unless the URL sets one), the versioned
//! `siamese_*` schema (`schema`), every write one transaction (`write`), nearest faces by each
//! collection's HNSW index, and the index benchmark (`bench`). Every error is one line that names
//! the database by its redacted locator: a password never reaches a message.

pub mod bench;
mod read;
pub mod schema;
mod write;

use std::str::FromStr;
use std::time::Duration;

use pgvector::Vector;
use postgres::{Client, Config, NoTls, Transaction};

use super::locator::redact;
use super::records::{EmbeddingStore, FaceId, Person, PersonId, StoredPhoto};
use super::{Backend, CollectionId, CollectionInfo, CollectionSpec};
use crate::{Error, Result};
use schema::{DEFAULT_EF_SEARCH, LOCK_KEY, MAX_EF_SEARCH, MAX_INDEXED_DIM, PREFIX, VERSION};

/// How long connecting may take when the URL does not say (`connect_timeout=`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL database holding (or about to hold) the `siamese_*` tables.
pub struct PostgresStore {
    client: Client,
    /// The locator with its password replaced: the only form printed.
    shown: String,
    /// The password, to scrub from any message that might echo it.
    secret: Option<String>,
    ef_search: usize,
}

/// One line about a PostgreSQL failure: the redacted locator, then what went wrong (a server
/// error's message and detail, or the client's error and its cause), with `secret` scrubbed.
pub(crate) fn error_line(shown: &str, secret: Option<&str>, e: &postgres::Error) -> Error {
    let what = match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => with_causes(e),
    };
    Error::Other(format!("{shown}: {}", scrub(&what, secret)))
}

/// An error's message followed by its causes'.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// A one-line error about the database `shown`.
pub(crate) fn fail(shown: &str, message: impl std::fmt::Display) -> Error {
    Error::Other(format!("{shown}: {message}"))
}

/// `text` on one line, without `secret` and with any URL's password redacted.
fn scrub(text: &str, secret: Option<&str>) -> String {
    let mut line = text.replace(['\n', '\r'], " ");
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        line = line.replace(secret, "***");
    }
    redact(&line)
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or libpq `key=value` string), then checks the
    /// schema: created with `CREATE EXTENSION IF NOT EXISTS vector` in an empty (of ours)
    /// database, used when its version is this build's, refused when newer, or when
    /// `siamese_*` tables stand without our `siamese_meta`.
    pub fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let mut config = Config::from_str(url).map_err(|e| {
            // The parser's message may quote the string it choked on.
            Error::Other(format!(
                "{shown}: {}",
                scrub(&with_causes(&e), None).replace(url, &shown)
            ))
        })?;
        let secret = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("siamese");
        }
        let client = config
            .connect(NoTls)
            .map_err(|e| error_line(&shown, secret.as_deref(), &e))?;
        let mut store = PostgresStore {
            client,
            shown,
            secret,
            ef_search: DEFAULT_EF_SEARCH,
        };
        store.prepare()?;
        Ok(store)
    }

    /// Sets `hnsw.ef_search` for [`Backend::nearest`] (clamped to 1..=1000; a larger `k` raises
    /// it to `k`).
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.ef_search = ef_search.clamp(1, MAX_EF_SEARCH);
    }

    fn err(&self, e: postgres::Error) -> Error {
        error_line(&self.shown, self.secret.as_deref(), &e)
    }

    /// Runs SQL (several statements) on the connection: tests and maintenance.
    pub fn execute_batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| self.err(e))
    }

    /// The schema version stored in `siamese_meta`.
    pub fn schema_version(&mut self) -> Result<i32> {
        let row = self
            .client
            .query_opt(
                "SELECT value FROM siamese_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(|e| self.err(e))?;
        let value: String = row
            .ok_or_else(|| fail(&self.shown, "siamese_meta has no schema_version"))?
            .get(0);
        value.parse().map_err(|_| {
            fail(
                &self.shown,
                format!("schema version '{value}' is not a number"),
            )
        })
    }

    /// The query plan of [`Backend::nearest`] for `collection` (one line per plan line), so a
    /// test can see the HNSW index is used.
    pub fn explain_nearest(&mut self, collection: CollectionId, k: usize) -> Result<Vec<String>> {
        let dim = self.dim_of(collection)?;
        let sql = format!(
            "EXPLAIN {}",
            schema::nearest_sql("siamese_faces", collection, dim)
        );
        let zero = Vector::from(vec![0.0f32; dim]);
        let rows = self
            .client
            .query(&sql, &[&zero, &(k as i64)])
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    fn prepare(&mut self) -> Result<()> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let mut tx = self.client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1::int8)", &[&LOCK_KEY])
            .map_err(e)?;
        let tables: Vec<String> = tx
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                 AND starts_with(tablename, $1) ORDER BY tablename",
                &[&PREFIX],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if tables.is_empty() {
            tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .map_err(e)?;
            tx.batch_execute(schema::V1).map_err(e)?;
            tx.execute(
                "INSERT INTO siamese_meta (key, value) VALUES ('schema_version', $1)",
                &[&VERSION.to_string()],
            )
            .map_err(e)?;
            return tx.commit().map_err(e);
        }
        if !tables.iter().any(|t| t == "siamese_meta") {
            let shown_tables: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            return Err(fail(
                &self.shown,
                format!(
                    "tables {} are not siamese's (no siamese_meta); use another database or schema",
                    shown_tables.join(", ")
                ),
            ));
        }
        drop(tx);
        let version = self.schema_version()?;
        if version > VERSION {
            return Err(fail(
                &self.shown,
                format!(
                    "schema version {version} is newer than this siamese knows ({VERSION}); use a \
                 newer siamese"
                ),
            ));
        }
        if version < 1 {
            return Err(fail(
                &self.shown,
                format!("schema version {version} is not one of siamese's"),
            ));
        }
        Ok(())
    }

    fn dim_of(&mut self, collection: CollectionId) -> Result<usize> {
        let row = self
            .client
            .query_opt(
                "SELECT dim FROM siamese_collections WHERE id = $1",
                &[&collection],
            )
            .map_err(|e| self.err(e))?;
        let dim: i32 = row
            .ok_or_else(|| fail(&self.shown, format!("no collection {collection}")))?
            .get(0);
        Ok(dim as usize)
    }

    /// The name of `person` when it is one of `collection`'s, else the one-line error the
    /// SQLite engine gives.
    fn check_person(
        tx: &mut Transaction<'_>,
        shown: &str,
        secret: Option<&str>,
        collection: CollectionId,
        person: PersonId,
    ) -> Result<Option<String>> {
        tx.query_opt(
            "SELECT name FROM siamese_people WHERE id = $1 AND collection = $2",
            &[&person, &collection],
        )
        .map_err(|e| error_line(shown, secret, &e))?
        .map(|r| r.get::<_, Option<String>>(0))
        .ok_or_else(|| Error::config("person", format!("no person {person} in this collection")))
    }
}

impl Backend for PostgresStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn collection(&mut self, spec: &CollectionSpec) -> Result<CollectionId> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let dim = i32::try_from(spec.dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                fail(
                    &self.shown,
                    format!("embedding length {} is out of range", spec.dim),
                )
            })?;
        let mut tx = self.client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1::int8)", &[&LOCK_KEY])
            .map_err(e)?;
        let found = tx
            .query_opt(
                "SELECT id, model, dim FROM siamese_collections WHERE fingerprint = $1",
                &[&spec.fingerprint],
            )
            .map_err(e)?;
        if let Some(row) = found {
            let (id, model, have): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
            if model != spec.model || have != dim {
                return Err(fail(
                    &self.shown,
                    format!(
                    "collection {id} holds {model} embeddings of length {have}, not {} of length \
                     {}",
                    spec.model, spec.dim
                ),
                ));
            }
            return Ok(id);
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO siamese_collections (fingerprint, model, dim) VALUES ($1, $2, $3) \
                 RETURNING id",
                &[&spec.fingerprint, &spec.model, &dim],
            )
            .map_err(e)?
            .get(0);
        if spec.dim <= MAX_INDEXED_DIM {
            tx.batch_execute(&schema::index_sql("siamese_faces", id, spec.dim))
                .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(id)
    }

    fn collections(&mut self) -> Result<Vec<CollectionInfo>> {
        let rows = self
            .client
            .query(
                "SELECT c.id, c.fingerprint, c.model, c.dim,
                    (SELECT count(*) FROM siamese_photos p WHERE p.collection = c.id),
                    (SELECT count(*) FROM siamese_faces f WHERE f.collection = c.id),
                    (SELECT count(*) FROM siamese_people q WHERE q.collection = c.id)
                 FROM siamese_collections c ORDER BY c.id",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| CollectionInfo {
                id: r.get(0),
                spec: CollectionSpec {
                    fingerprint: r.get(1),
                    model: r.get(2),
                    dim: r.get::<_, i32>(3) as usize,
                },
                photos: r.get::<_, i64>(4) as usize,
                faces: r.get::<_, i64>(5) as usize,
                people: r.get::<_, i64>(6) as usize,
            })
            .collect())
    }

    fn load(&mut self, collection: CollectionId) -> Result<EmbeddingStore> {
        self.read_store(collection)
    }

    fn put_photos(
        &mut self,
        collection: CollectionId,
        photos: &[StoredPhoto],
    ) -> Result<Vec<Vec<FaceId>>> {
        self.write_photos(collection, photos)
    }

    fn people(&mut self, collection: CollectionId) -> Result<Vec<Person>> {
        let rows = self
            .client
            .query(
                "SELECT q.id, q.name, count(f.id) FROM siamese_people q
                 LEFT JOIN siamese_faces f ON f.person = q.id
                 WHERE q.collection = $1 GROUP BY q.id ORDER BY q.id",
                &[&collection],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Person {
                id: r.get(0),
                name: r.get(1),
                faces: r.get::<_, i64>(2) as usize,
            })
            .collect())
    }

    fn create_people(&mut self, collection: CollectionId, count: usize) -> Result<Vec<PersonId>> {
        self.write_create_people(collection, count)
    }

    fn assign(
        &mut self,
        collection: CollectionId,
        assignments: &[(FaceId, Option<PersonId>)],
    ) -> Result<()> {
        self.write_assign(collection, assignments)
    }

    fn name_person(
        &mut self,
        collection: CollectionId,
        person: PersonId,
        name: Option<&str>,
    ) -> Result<()> {
        self.write_name(collection, person, name)
    }

    fn merge_people(
        &mut self,
        collection: CollectionId,
        into: PersonId,
        from: PersonId,
    ) -> Result<()> {
        self.write_merge(collection, into, from)
    }

    fn delete_person(&mut self, collection: CollectionId, person: PersonId) -> Result<()> {
        self.write_delete_person(collection, person)
    }

    fn check(&mut self) -> Result<String> {
        self.read_check()
    }

    fn nearest(
        &mut self,
        collection: CollectionId,
        query: &[f32],
        k: usize,
    ) -> Result<Option<Vec<(FaceId, f32)>>> {
        self.read_nearest(collection, query, k).map(Some)
    }
}
