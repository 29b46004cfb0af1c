//! The embedding database's SQLite engine: what is written comes back bit for bit; people,
//! names, merges and moves persist; an older schema is migrated, a newer one, a foreign or corrupt
//! file, a wrong-length vector and a legacy `.store` file are each handled as documented, with
//! one-line errors naming the file.

use std::path::Path;

use siamese::store::schema::{APPLICATION_ID, VERSION};
use siamese::store::sqlite::SqliteStore;
use siamese::store::{self, Backend, FaceBox, Locator, StoredFace, StoredPhoto};

#[path = "common/backend_cases.rs"]
mod cases;

use cases::{photos, spec};

fn one_line_naming(err: &str, file: &Path, what: &str) {
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&*file.to_string_lossy()), "{err}");
    assert!(err.contains(what), "{what}: {err}");
}

/// The engine cases every backend runs (`common/backend_cases.rs`), on a SQLite file made in a
/// folder that does not exist yet; PostgreSQL runs the same cases in `store_postgres.rs`.
#[test]
fn photos_faces_and_people_round_trip_persist_and_refuse_bad_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/faces.db");
    let open = || store::open(&Locator::Sqlite(path.clone())).unwrap();
    cases::round_trip_and_people(open(), &open, &path.display().to_string());
    assert!(path.is_file());
    let bad = dir.path().join("bad.db");
    cases::bad_vectors_write_nothing(
        store::open(&Locator::Sqlite(bad.clone())).unwrap(),
        &bad.display().to_string(),
    );
}

#[test]
fn a_blob_of_the_wrong_length_written_by_something_else_is_named_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faces.db");
    let mut db = store::open(&Locator::Sqlite(path.clone())).unwrap();
    let c = db.collection(&spec("fp", 16)).unwrap();
    db.put_photos(c, &photos(2, 1, 16)).unwrap();
    let raw = SqliteStore::open(&path).unwrap();
    raw.execute_batch(
        "UPDATE faces SET embedding = x'00000000' WHERE id = (SELECT min(id) FROM faces);",
    )
    .unwrap();
    let err = db.load(c).unwrap_err().to_string();
    one_line_naming(&err, &path, "embedding of 4 bytes, expected 64");
}

#[test]
fn an_older_schema_is_migrated_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let v1 = SqliteStore::create_at_version(&path, 1).unwrap();
    v1.execute_batch(
        "INSERT INTO collections (id, fingerprint, model, dim) VALUES (1, 'fp', 'test-model', 2);
         INSERT INTO photos (id, collection, path, sha256, size, width, height)
             VALUES (1, 1, '/a.jpg', 'aa', 10, 4, 3);
         INSERT INTO faces (photo, position, box_left, box_top, box_width, box_height, box_score,
             assumed, embedding) VALUES (1, 0, 1, 2, 3, 4, 5, 0, x'0000803f00000040');",
    )
    .unwrap();
    drop(v1);
    let db = SqliteStore::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), VERSION);
    let mut db: Box<dyn Backend> = Box::new(db);
    let loaded = db.load(1).unwrap();
    let face = &loaded.get("/a.jpg").unwrap().faces[0];
    assert_eq!(face.embedding, vec![1.0, 2.0]);
    assert_eq!(face.person, None);
    // Version 2's tables work on the migrated file.
    let p = db.create_people(1, 1).unwrap()[0];
    db.assign(1, &[(face.id.unwrap(), Some(p))]).unwrap();
    assert_eq!(db.people(1).unwrap()[0].faces, 1);
    assert_eq!(db.check().unwrap(), "ok");
}

#[test]
fn newer_foreign_corrupt_and_non_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A newer schema.
    let newer = dir.path().join("newer.db");
    SqliteStore::create_at_version(&newer, VERSION)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {};", VERSION + 1))
        .unwrap();
    let err = SqliteStore::open(&newer).err().unwrap().to_string();
    one_line_naming(&err, &newer, &format!("schema version {}", VERSION + 1));
    // Another program's SQLite database: refused, and left as it was.
    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&foreign).unwrap();
    let err = SqliteStore::open(&foreign).err().unwrap().to_string();
    one_line_naming(
        &err,
        &foreign,
        "another program (application_id 0x0, tables: songs)",
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
    // Not a database at all.
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "hello, this is not a database at all").unwrap();
    let err = SqliteStore::open(&text).err().unwrap().to_string();
    one_line_naming(&err, &text, "not a siamese database");
    // A directory, and a FIFO, at the path.
    let err = SqliteStore::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("a directory") && err.lines().count() == 1,
        "{err}"
    );
    let fifo = dir.path().join("fifo.db");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = SqliteStore::open(&fifo).err().unwrap().to_string();
    one_line_naming(&err, &fifo, "a FIFO");
    // A database whose pages were overwritten: the integrity check or the read names it.
    let hurt = dir.path().join("hurt.db");
    {
        let mut db = store::open(&Locator::Sqlite(hurt.clone())).unwrap();
        let c = db.collection(&spec("fp", 64)).unwrap();
        db.put_photos(c, &photos(300, 2, 64)).unwrap();
        drop(db);
        let conn = rusqlite::Connection::open(&hurt).unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let mut bytes = std::fs::read(&hurt).unwrap();
    assert!(bytes.len() > 20 * 4096);
    for b in &mut bytes[8 * 4096..12 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&hurt, &bytes).unwrap();
    let found = SqliteStore::open(&hurt)
        .map_err(|e| e.to_string())
        .and_then(|mut db| {
            let check = db.check().map_err(|e| e.to_string())?;
            let load = db.load(1).map(|_| ()).map_err(|e| e.to_string());
            Ok((check, load))
        });
    match found {
        Err(err) => one_line_naming(&err, &hurt, "database"),
        Ok((check, load)) => {
            assert_ne!(check, "ok", "the integrity check finds the damage");
            if let Err(err) = load {
                one_line_naming(&err, &hurt, "database");
            }
        }
    }
    assert_eq!(APPLICATION_ID.to_be_bytes(), *b"SIAM");
}

#[test]
fn a_legacy_store_is_imported_once_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faces.store");
    let written = photos(4, 2, store::DIM);
    store::legacy::write(&path, "legacy-fp", &written).unwrap();
    let mut db = store::open(&Locator::Sqlite(path.clone())).unwrap();
    let infos = db.collections().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].spec.fingerprint, "legacy-fp");
    assert_eq!((infos[0].photos, infos[0].faces), (4, 8));
    let loaded = db.load(infos[0].id).unwrap();
    for photo in &written {
        let back = loaded.get(&photo.path).unwrap();
        let a: Vec<&Vec<f32>> = photo.faces.iter().map(|f| &f.embedding).collect();
        let b: Vec<&Vec<f32>> = back.faces.iter().map(|f| &f.embedding).collect();
        assert_eq!(a, b);
    }
    drop(db);
    assert_eq!(&std::fs::read(&path).unwrap()[..16], b"SQLite format 3\0");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("import"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Opened again: the same database, nothing imported twice.
    let mut db = store::open(&Locator::Sqlite(path.clone())).unwrap();
    assert_eq!(db.collections().unwrap()[0].photos, 4);
    // A damaged legacy file is a one-line error and stays as it was.
    let bad = dir.path().join("bad.store");
    std::fs::write(&bad, b"SIAMESE-FACES-01garbage").unwrap();
    let err = store::open(&Locator::Sqlite(bad.clone()))
        .err()
        .unwrap()
        .to_string();
    one_line_naming(&err, &bad, "not a face embedding store");
    assert_eq!(std::fs::read(&bad).unwrap(), b"SIAMESE-FACES-01garbage");
}

#[test]
fn legacy_stores_beside_a_default_database_are_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    store::legacy::write(
        &dir.path().join("faces.store"),
        "fp-plain",
        &photos(2, 1, store::DIM),
    )
    .unwrap();
    store::legacy::write(
        &dir.path().join("faces-0123456789.store"),
        "fp-flip",
        &photos(3, 1, store::DIM),
    )
    .unwrap();
    std::fs::write(dir.path().join("faces-other.store"), b"not a store").unwrap();
    let db_path = store::legacy::default_database_in(dir.path()).unwrap();
    assert_eq!(db_path, dir.path().join("faces.db"));
    let mut db = store::open(&Locator::Sqlite(db_path.clone())).unwrap();
    let mut found: Vec<(String, usize)> = db
        .collections()
        .unwrap()
        .into_iter()
        .map(|c| (c.spec.fingerprint, c.photos))
        .collect();
    found.sort();
    assert_eq!(found, [("fp-flip".into(), 3), ("fp-plain".into(), 2)]);
    // Once: the database is there now, and a later call leaves it alone. (The files are imported
    // in name order, so the first collection is `faces-0123456789.store`'s, 3 photos → 5.)
    let c = db.collections().unwrap()[0].id;
    db.put_photos(c, &photos(5, 1, store::DIM)).unwrap();
    drop(db);
    assert_eq!(
        store::legacy::default_database_in(dir.path()).unwrap(),
        db_path
    );
    let mut db = store::open(&Locator::Sqlite(db_path)).unwrap();
    assert_eq!(
        db.collections()
            .unwrap()
            .iter()
            .map(|c| c.photos)
            .sum::<usize>(),
        7
    );
}

/// A collection past `HNSW_FROM` is searched through its HNSW file beside the database: recall
/// against exact search, the file extended when faces are added, rebuilt when it is garbage,
/// never answering from a stale graph.
#[test]
fn large_collections_search_through_a_current_hnsw_file() {
    use siamese::store::sqlite_index::{index_path, HNSW_FROM};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faces.db");
    let mut db = store::open(&Locator::Sqlite(path.clone())).unwrap();
    let dim = 32;
    let c = db.collection(&spec("fp-big", dim)).unwrap();
    let per_photo = 4;
    let people = (HNSW_FROM + 400) / 10;
    let (data, _) = siamese::index::synthetic::faces(people, 10, dim, 7);
    let rows = data.len() / dim;
    let make = |range: std::ops::Range<usize>, tag: &str| -> Vec<StoredPhoto> {
        range
            .step_by(per_photo)
            .map(|start| StoredPhoto {
                path: format!("/big/{start}.jpg"),
                sha256: format!("{tag}{start:060}"),
                size: 1,
                width: 100,
                height: 100,
                faces: (start..(start + per_photo).min(rows))
                    .map(|r| StoredFace {
                        bbox: FaceBox {
                            left: 0.0,
                            top: 0.0,
                            width: 10.0,
                            height: 10.0,
                            score: 1.0,
                        },
                        landmarks: None,
                        assumed: false,
                        embedding: data[r * dim..(r + 1) * dim].to_vec(),
                        id: None,
                        person: None,
                    })
                    .collect(),
                error: None,
            })
            .collect()
    };
    let first = rows - 200;
    let ids: Vec<i64> = db.put_photos(c, &make(0..first, "a")).unwrap().concat();
    let file = index_path(&path, c);
    assert!(!file.exists());
    let query = &data[5 * dim..6 * dim];
    let hits = db
        .nearest(c, query, 10)
        .unwrap()
        .expect("served by the HNSW file");
    assert_eq!(hits[0], (ids[5], 0.0));
    assert!(file.is_file());
    // Recall@10 against exact search over 50 stored rows used as queries.
    let stored = db.load(c).unwrap();
    let all: Vec<f32> = data[..first * dim].to_vec();
    let mut found = 0;
    for q in (0..first).step_by(first / 50).take(50) {
        let query = &all[q * dim..(q + 1) * dim];
        let exact = siamese::eval::knn::nearest(
            query,
            &all,
            dim,
            siamese::distance::Distance::Euclidean,
            10,
        );
        let want: std::collections::HashSet<i64> = exact[0].iter().map(|(j, _)| ids[*j]).collect();
        let got = db.nearest(c, query, 10).unwrap().unwrap();
        found += got.iter().filter(|(id, _)| want.contains(id)).count();
    }
    let recall = found as f64 / 500.0;
    assert!(recall >= 0.95, "recall@10 {recall}");
    assert_eq!(stored.face_count(), first);

    // Added faces: the file grows to cover them (its header counts every face).
    let more: Vec<i64> = db.put_photos(c, &make(first..rows, "b")).unwrap().concat();
    let query = &data[(rows - 3) * dim..(rows - 2) * dim];
    let hits = db.nearest(c, query, 1).unwrap().unwrap();
    assert_eq!(hits[0].0, more[more.len() - 3]);
    assert_eq!(
        siamese::index::HnswIndex::read_header(&file).unwrap().count,
        rows
    );

    // Another connection's commit is seen by this one's graph in memory.
    let mut other = store::open(&Locator::Sqlite(path.clone())).unwrap();
    let (extra, _) = siamese::index::synthetic::faces(1, 1, dim, 99);
    let mut late = make(0..1, "d");
    late[0].path = "/big/late.jpg".into();
    late[0].faces.truncate(1);
    late[0].faces[0].embedding = extra.clone();
    let late_id = other.put_photos(c, &late).unwrap()[0][0];
    assert_eq!(
        db.nearest(c, &extra, 1).unwrap().unwrap()[0],
        (late_id, 0.0)
    );
    drop(other);

    // A garbage file is rebuilt, not trusted, by the next connection.
    drop(db);
    std::fs::write(&file, b"not an index").unwrap();
    let mut db = store::open(&Locator::Sqlite(path.clone())).unwrap();
    let rows = rows + 1;
    let hits = db.nearest(c, query, 1).unwrap().unwrap();
    assert_eq!(hits[0].0, more[more.len() - 3]);
    assert_eq!(
        siamese::index::HnswIndex::read_header(&file).unwrap().count,
        rows
    );

    // Below HNSW_FROM faces the engine leaves the search to the caller (exact).
    let small = db.collection(&spec("fp-small", dim)).unwrap();
    db.put_photos(small, &make(0..40, "c")).unwrap();
    assert!(db.nearest(small, query, 3).unwrap().is_none());
}
