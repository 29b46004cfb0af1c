//! The PostgreSQL + pgvector engine against a real server (`tests/common/postgres.rs` starts one
//! from pgserver==0.1.4 or uses `$SIAMESE_TEST_POSTGRES_URL`): the cases every engine passes
//! (run on SQLite too), nearest faces by the HNSW index against exact search, the schema's
//! version and name checks, and errors that never show a password.

#[path = "common/backend_cases.rs"]
mod cases;
#[path = "common/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use siamese::distance::Distance;
use siamese::index::synthetic;
use siamese::store::postgres::{bench, schema, PostgresStore, CONNECT_TIMEOUT};
use siamese::store::{self, Backend, FaceBox, Locator, StoredFace, StoredPhoto};

use cases::{one_line_naming, spec};

fn open(url: &str) -> Box<dyn Backend> {
    store::open(&Locator::parse(url).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

/// The engine cases SQLite runs in `store.rs`, on a real PostgreSQL server.
#[test]
fn postgres_round_trips_people_and_refuses_bad_vectors() {
    let Some(db) = pg::fresh_database("cases") else {
        return;
    };
    let postgres = || open(&db.url);
    cases::round_trip_and_people(postgres(), &postgres, &db.url);
    let Some(bad) = pg::fresh_database("bad") else {
        return;
    };
    cases::bad_vectors_write_nothing(open(&bad.url), &bad.url);
}

/// `n` photos of one face each, embeddings from `rows`.
fn photos_of(rows: &[f32], dim: usize) -> Vec<StoredPhoto> {
    rows.chunks_exact(dim)
        .enumerate()
        .map(|(i, e)| StoredPhoto {
            path: format!("/random/{i:05}.jpg"),
            sha256: format!("{i:064x}"),
            size: 1,
            width: 1,
            height: 1,
            faces: vec![StoredFace {
                bbox: FaceBox {
                    left: 0.0,
                    top: 0.0,
                    width: 1.0,
                    height: 1.0,
                    score: 1.0,
                },
                landmarks: None,
                assumed: false,
                embedding: e.to_vec(),
                id: None,
                person: None,
            }],
            error: None,
        })
        .collect()
}

#[test]
fn hnsw_nearest_agrees_with_exact_search_and_uses_the_index() {
    let Some(db) = pg::fresh_database("hnsw") else {
        return;
    };
    let dim = 128;
    // 5,000 face-like vectors: 500 people of 10 faces; 200 queries are new faces of known
    // people. Plus a second collection of another length in the same table.
    let (gallery, _) = synthetic::faces(500, 10, dim, 7);
    let queries = synthetic::queries(500, dim, 7, 200);
    let mut pg = PostgresStore::connect(&db.url).unwrap();
    let short = pg.collection(&spec("short", 16)).unwrap();
    pg.put_photos(short, &cases::photos(50, 1, 16)).unwrap();
    let c = pg.collection(&spec("faces", dim)).unwrap();
    let ids: Vec<i64> = pg
        .put_photos(c, &photos_of(&gallery, dim))
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), 5000);
    pg.execute_batch("ANALYZE").unwrap();
    let plan = pg.explain_nearest(c, 10).unwrap().join("\n");
    assert!(
        plan.contains(&format!("Index Scan using siamese_faces_hnsw_{c}")),
        "{plan}"
    );
    let exact = siamese::eval::knn::nearest(&queries, &gallery, dim, Distance::Euclidean, 10);
    let mut hits = 0;
    for (q, truth) in queries.chunks_exact(dim).zip(&exact) {
        let got = pg.nearest(c, q, 10).unwrap().expect("pgvector answers");
        assert_eq!(got.len(), 10);
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
        for (id, d) in &got {
            let j = ids
                .iter()
                .position(|x| x == id)
                .expect("a face of the collection");
            let exact_d = siamese::distance::euclidean(q, &gallery[j * dim..(j + 1) * dim]);
            assert!((d - exact_d).abs() < 1e-4, "{d} vs {exact_d}");
        }
        hits += truth
            .iter()
            .filter(|(j, _)| got.iter().any(|(id, _)| *id == ids[*j]))
            .count();
    }
    let recall = hits as f64 / (200 * 10) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    // The short collection answers from its own rows only, exactly.
    let loaded = pg.load(short).unwrap();
    let first: Vec<f32> = loaded.photos()[0].faces[0].embedding.clone();
    let got = pg.nearest(short, &first, 3).unwrap().unwrap();
    assert_eq!(got[0], (loaded.photos()[0].faces[0].id.unwrap(), 0.0));
    // A query of the wrong length is a one-line error.
    let err = pg.nearest(c, &first, 3).unwrap_err().to_string();
    one_line_naming(&err, &db.url, "query of length 16, the collection's is 128");
}

#[test]
fn bench_index_reports_recall_and_latency() {
    let Some(db) = pg::fresh_database("bench") else {
        return;
    };
    let (gallery, _) = synthetic::faces(200, 10, 32, 3);
    let queries = synthetic::queries(200, 32, 3, 200);
    let report = bench::bench_index(&db.url, &gallery, 32, &queries, 10, 40).unwrap();
    assert_eq!(
        (report.vectors, report.queries, report.dim),
        (2000, 200, 32)
    );
    assert!(report.plan_uses_index);
    assert!(report.recall_at_k >= 0.95, "{report:?}");
    assert!(report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms && report.qps > 0.0);
    assert!(report.index_bytes > 0);
    assert_eq!(report.pgvector_version, "0.6.2");
    // The benchmark's table is gone; the schema it made is the store's.
    let mut pg = PostgresStore::connect(&db.url).unwrap();
    assert_eq!(pg.schema_version().unwrap(), schema::VERSION);
    assert!(pg.collections().unwrap().is_empty());
}

#[test]
fn schema_versions_and_foreign_tables() {
    let Some(db) = pg::fresh_database("schema") else {
        return;
    };
    // Someone else's `photos` in the shared database: ours are apart and theirs untouched.
    pg::admin(
        &db.name,
        "CREATE TABLE photos (title text); INSERT INTO photos VALUES ('x')",
    );
    let mut pg = PostgresStore::connect(&db.url).unwrap();
    assert_eq!(pg.schema_version().unwrap(), 1);
    let c = pg.collection(&spec("fp", 4)).unwrap();
    pg.put_photos(c, &cases::photos(3, 1, 4)).unwrap();
    pg.execute_batch("UPDATE siamese_meta SET value = '2' WHERE key = 'schema_version'")
        .unwrap();
    drop(pg);
    let err = PostgresStore::connect(&db.url).err().unwrap().to_string();
    one_line_naming(
        &err,
        &db.url,
        "schema version 2 is newer than this siamese knows (1)",
    );
    pg::admin(
        &db.name,
        "UPDATE siamese_meta SET value = '1' WHERE key = 'schema_version'",
    );
    let mut pg = PostgresStore::connect(&db.url).unwrap();
    assert_eq!(pg.load(c).unwrap().face_count(), 3, "kept as it was");
    drop(pg);

    // `siamese_*` tables without our meta table are not ours.
    let Some(other) = pg::fresh_database("foreign") else {
        return;
    };
    pg::admin(&other.name, "CREATE TABLE siamese_photos (x int)");
    let err = PostgresStore::connect(&other.url)
        .err()
        .unwrap()
        .to_string();
    one_line_naming(&err, &other.url, "tables siamese_photos are not siamese's");
}

#[test]
fn passwords_never_show_in_errors_or_descriptions() {
    let Some(db) = pg::fresh_database("auth") else {
        return;
    };
    let role = format!("siamese_alice_{}", std::process::id());
    pg::admin(
        "postgres",
        &format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'c0rrect-h0rse'; \
             ALTER DATABASE {} OWNER TO {role}",
            db.name
        ),
    );
    // pgvector is not a trusted extension: a superuser creates it once per database.
    pg::admin(&db.name, "CREATE EXTENSION vector");
    let good = pg::with_user(&db.url, &role, "c0rrect-h0rse");
    let mut alice = open(&good);
    assert_eq!(
        alice.describe(),
        pg::with_user(&db.url, &role, "***"),
        "described without the password"
    );
    let c = alice.collection(&spec("fp", 4)).unwrap();
    alice.put_photos(c, &cases::photos(2, 1, 4)).unwrap();
    drop(alice);

    let wrong = pg::with_user(&db.url, &role, "wr0ng-b4ttery");
    let err = store::open(&Locator::parse(&wrong).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(!err.contains("wr0ng-b4ttery"), "{err}");
    one_line_naming(
        &err,
        &pg::with_user(&db.url, &role, "***"),
        "password authentication failed",
    );
    // A missing database: the same.
    let missing = pg::with_database(&good, "no_such_database");
    let err = PostgresStore::connect(&missing).err().unwrap().to_string();
    assert!(!err.contains("c0rrect-h0rse"), "{err}");
    one_line_naming(&err, &store::locator::redact(&missing), "does not exist");

    // The URL from a file (`@FILE`): the password stays out of the command line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.url");
    std::fs::write(&file, format!("\n  {good}\n")).unwrap();
    let loc = Locator::parse(&format!("@{}", file.display())).unwrap();
    assert!(!format!("{loc} {loc:?}").contains("c0rrect"));
    let mut alice = store::open(&loc).unwrap();
    assert_eq!(alice.collections().unwrap()[0].faces, 2);
    drop(alice);
    pg::admin(
        "postgres",
        &format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name),
    );
    drop(db);
    pg::admin("postgres", &format!("DROP ROLE {role}"));
}

#[test]
fn an_unreachable_server_is_a_quick_one_line_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://bob:hunter2hunter2@127.0.0.1:{port}/faces");
    let started = Instant::now();
    let err = store::open(&Locator::parse(&url).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(5));
    assert!(!err.contains("hunter2"), "{err}");
    // Refused, or (when another test's server took the port meanwhile) reset:
    // either way one line naming the database, and a connection error.
    one_line_naming(
        &err,
        &format!("postgres://bob:***@127.0.0.1:{port}/faces"),
        "server",
    );
    assert!(
        err.contains("error connecting to server")
            || err.contains("error communicating with the server"),
        "{err}"
    );
    // A malformed URL: one line, without the password.
    let err = PostgresStore::connect("postgres://bob:hunter2hunter2@127.0.0.1:notaport/x")
        .err()
        .unwrap()
        .to_string();
    assert!(
        !err.contains("hunter2") && err.lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("invalid connection string"), "{err}");
}
