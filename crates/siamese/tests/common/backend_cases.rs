//! Test bodies every database engine must pass, written against `&mut dyn Backend` so SQLite and
//! PostgreSQL run the same cases: a round trip bit for bit, people (assign, name, merge, move,
//! the unnamed empty person deleted), errors for unknown ids, a wrong-length or non-finite
//! vector refused with nothing written.

#![allow(dead_code)]

use siamese::store::{Backend, CollectionSpec, FaceBox, StoredFace, StoredPhoto};

pub fn spec(fingerprint: &str, dim: usize) -> CollectionSpec {
    CollectionSpec {
        fingerprint: fingerprint.into(),
        model: "test-model".into(),
        dim,
    }
}

/// `n` photos of `faces` faces each, embeddings `dim` long drawn from a fixed formula.
pub fn photos(n: usize, faces: usize, dim: usize) -> Vec<StoredPhoto> {
    (0..n)
        .map(|i| StoredPhoto {
            path: format!("/photos/p{i:03}.jpg"),
            sha256: format!("{i:064x}"),
            size: 1000 + i as u64,
            width: 640,
            height: 480,
            faces: (0..faces)
                .map(|f| StoredFace {
                    bbox: FaceBox {
                        left: 10.5 + f as f32,
                        top: 20.25,
                        width: 100.0,
                        height: 101.0,
                        score: 3.5,
                    },
                    landmarks: Some(vec![[1.5, 2.5]; 5]),
                    assumed: f % 2 == 1,
                    embedding: (0..dim)
                        .map(|d| ((i * 31 + f * 7 + d) as f32 * 0.37).sin() / 3.0)
                        .collect(),
                    id: None,
                    person: None,
                })
                .collect(),
            error: (faces == 0).then(|| format!("p{i}: no face found")),
        })
        .collect()
}

/// One line, naming the database `shown` and saying `what`.
pub fn one_line_naming(err: &str, shown: &str, what: &str) {
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(shown), "{shown}: {err}");
    assert!(err.contains(what), "{what}: {err}");
}

/// Writes, reads back, and edits people; `reopen` gives a new connection to the same database.
pub fn round_trip_and_people(
    mut db: Box<dyn Backend>,
    reopen: &dyn Fn() -> Box<dyn Backend>,
    shown: &str,
) {
    let c = db.collection(&spec("fp-a", 16)).unwrap();
    assert_eq!(db.collection(&spec("fp-a", 16)).unwrap(), c);
    let other = db.collection(&spec("fp-b", 16)).unwrap();
    assert_ne!(other, c);
    let err = db.collection(&spec("fp-a", 32)).unwrap_err().to_string();
    one_line_naming(&err, shown, "length 16");

    let mut written = photos(6, 2, 16);
    written.push(photos(1, 0, 16).remove(0));
    written[6].path = "/photos/unreadable.jpg".into();
    let ids = db.put_photos(c, &written).unwrap();
    assert_eq!(ids.len(), 7);
    assert_eq!(ids.iter().map(Vec::len).sum::<usize>(), 12);
    let loaded = db.load(c).unwrap();
    assert_eq!(loaded.photos().len(), 7);
    assert_eq!(loaded.dim(), 16);
    for (photo, face_ids) in written.iter().zip(&ids) {
        let back = loaded.get(&photo.path).unwrap();
        assert_eq!(
            (
                &back.sha256,
                back.size,
                back.width,
                back.height,
                &back.error
            ),
            (
                &photo.sha256,
                photo.size,
                photo.width,
                photo.height,
                &photo.error
            )
        );
        assert_eq!(back.faces.len(), photo.faces.len());
        for ((a, b), id) in photo.faces.iter().zip(&back.faces).zip(face_ids) {
            assert_eq!(a.embedding, b.embedding, "embeddings come back bit for bit");
            assert_eq!(
                (a.bbox, &a.landmarks, a.assumed),
                (b.bbox, &b.landmarks, b.assumed)
            );
            assert_eq!(b.id, Some(*id));
        }
    }
    assert!(db.load(other).unwrap().photos().is_empty());

    let people = db.create_people(c, 3).unwrap();
    assert_eq!(people.len(), 3);
    let face = |p: usize, f: usize| ids[p][f];
    db.assign(
        c,
        &[
            (face(0, 0), Some(people[0])),
            (face(1, 0), Some(people[0])),
            (face(2, 0), Some(people[1])),
            (face(3, 0), Some(people[2])),
        ],
    )
    .unwrap();
    db.name_person(c, people[1], Some("Ada")).unwrap();
    db.merge_people(c, people[0], people[1]).unwrap();
    let listed = db.people(c).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].id, listed[0].name.as_deref(), listed[0].faces),
        (people[0], Some("Ada"), 3),
        "the target keeps its id and takes the name it lacked"
    );
    // Moving the last face away deletes the unnamed person left empty.
    db.assign(c, &[(face(3, 0), Some(people[0]))]).unwrap();
    assert_eq!(db.people(c).unwrap().len(), 1);
    // A named person left empty stays until deleted.
    let named = db.create_people(c, 1).unwrap()[0];
    db.name_person(c, named, Some("Grace")).unwrap();
    db.assign(c, &[(face(4, 0), Some(named)), (face(4, 0), None)])
        .unwrap();
    assert_eq!(
        db.people(c).unwrap()[1].faces,
        0,
        "the last assignment wins"
    );
    db.assign(c, &[(face(4, 0), Some(named))]).unwrap();
    let err = db.delete_person(c, named).unwrap_err().to_string();
    assert!(err.contains("still has 1 faces"), "{err}");
    db.assign(c, &[(face(4, 0), None)]).unwrap();
    db.delete_person(c, named).unwrap();
    assert_eq!(db.people(c).unwrap().len(), 1);
    // Unknown ids and another collection's people are one-line errors that write nothing.
    let err = db
        .name_person(c, 999_999, Some("x"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no person 999999"), "{err}");
    let theirs = db.create_people(other, 1).unwrap()[0];
    let err = db
        .assign(
            c,
            &[(face(5, 0), Some(people[0])), (face(4, 0), Some(theirs))],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("no person {theirs}")), "{err}");
    let err = db
        .assign(c, &[(face(5, 0), Some(people[0])), (424_242, None)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no face 424242"), "{err}");
    assert_eq!(
        db.people(c).unwrap()[0].faces,
        4,
        "a failed assign wrote nothing"
    );
    let err = db
        .merge_people(c, people[0], people[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("into itself"), "{err}");
    assert_eq!(db.check().unwrap(), "ok");
    assert_eq!(db.describe(), shown);
    drop(db);

    let mut db = reopen();
    let again = db.load(c).unwrap();
    let persons: Vec<Option<i64>> = again.faces().map(|f| f.2.person).collect();
    assert_eq!(persons.iter().filter(|p| **p == Some(people[0])).count(), 4);
    let infos = db.collections().unwrap();
    assert_eq!(
        (infos[0].photos, infos[0].faces, infos[0].people),
        (7, 12, 1)
    );
    assert_eq!((infos[1].id, infos[1].people), (other, 1));
    // Rewriting a photo replaces its faces (and drops their assignments); a face passed with its
    // id keeps it.
    let mut rewrite = photos(2, 1, 16);
    rewrite[1].faces[0].id = Some(face(1, 0));
    rewrite[1].faces[0].person = Some(people[0]);
    let new_ids = db.put_photos(c, &rewrite).unwrap();
    assert_eq!(new_ids[1], vec![face(1, 0)]);
    assert!(
        !ids.iter().flatten().any(|i| *i == new_ids[0][0]),
        "a fresh id"
    );
    let again = db.load(c).unwrap();
    assert_eq!(again.get("/photos/p000.jpg").unwrap().faces.len(), 1);
    assert_eq!(again.face_count(), 10);
    assert_eq!(db.people(c).unwrap()[0].faces, 3);
}

/// A wrong-length or non-finite vector anywhere in a batch: one line, and nothing written.
pub fn bad_vectors_write_nothing(mut db: Box<dyn Backend>, shown: &str) {
    let c = db.collection(&spec("fp", 16)).unwrap();
    let mut batch = photos(5, 1, 16);
    batch[3].faces[0].embedding.truncate(15);
    let err = db.put_photos(c, &batch).unwrap_err().to_string();
    one_line_naming(&err, shown, "length 15");
    assert!(
        db.load(c).unwrap().photos().is_empty(),
        "the batch is all or nothing"
    );
    batch[3].faces[0].embedding.push(f32::NAN);
    let err = db.put_photos(c, &batch).unwrap_err().to_string();
    one_line_naming(&err, shown, "non-finite");
    assert!(db.load(c).unwrap().photos().is_empty());
    let infos = db.collections().unwrap();
    assert_eq!((infos[0].photos, infos[0].faces), (0, 0));
}
