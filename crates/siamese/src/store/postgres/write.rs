//! The PostgreSQL engine's writes, each one transaction: photos upserted a chunk at a time
//! (`unnest` arrays) and their faces sent by binary `COPY`; people made, assigned (unnamed people
//! left without faces are deleted), named, merged and deleted, with the SQLite engine's checks
//! and error wording.

use std::collections::{HashMap, HashSet};

use pgvector::Vector;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::{error_line, fail, PostgresStore};
use crate::store::records::{FaceId, PersonId, StoredPhoto};
use crate::store::CollectionId;
use crate::{Error, Result};

/// Photos per upsert statement.
const CHUNK: usize = 2000;

const FACE_COLUMNS: &str = "id, collection, photo, position, box_left, box_top, box_width, \
    box_height, box_score, landmarks, assumed, embedding, person";

impl PostgresStore {
    /// The one transaction of `put_photos`: checks every embedding first (nothing is written
    /// when one is wrong), then per chunk of distinct paths upserts the photos, deletes their
    /// old faces, draws ids for the faces that bring none, and copies the faces in.
    pub(super) fn write_photos(
        &mut self,
        collection: CollectionId,
        photos: &[StoredPhoto],
    ) -> Result<Vec<Vec<FaceId>>> {
        let dim = self.dim_of(collection)?;
        crate::store::records::check_embeddings(photos, dim).map_err(|m| fail(&self.shown, m))?;
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let mut tx = self.client.transaction().map_err(e)?;
        let vector_type = tx
            .prepare("SELECT $1::vector")
            .map_err(e)?
            .params()
            .first()
            .cloned()
            .ok_or_else(|| fail(&shown, "the vector type has no parameter form"))?;
        let types = [
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4_ARRAY,
            Type::BOOL,
            vector_type,
            Type::INT8,
        ];
        let mut all_ids = Vec::with_capacity(photos.len());
        let mut start = 0;
        while start < photos.len() {
            // A chunk never holds a path twice, so a repeated path replaces the earlier one in
            // order, as one statement per photo would.
            let mut seen = HashSet::new();
            let mut end = start;
            while end < photos.len() && end - start < CHUNK && seen.insert(&photos[end].path) {
                end += 1;
            }
            let chunk = &photos[start..end];
            start = end;
            let paths: Vec<&str> = chunk.iter().map(|p| p.path.as_str()).collect();
            let hashes: Vec<&str> = chunk.iter().map(|p| p.sha256.as_str()).collect();
            let sizes: Vec<i64> = chunk.iter().map(|p| p.size as i64).collect();
            let widths: Vec<i32> = chunk.iter().map(|p| p.width as i32).collect();
            let heights: Vec<i32> = chunk.iter().map(|p| p.height as i32).collect();
            let errors: Vec<Option<&str>> = chunk.iter().map(|p| p.error.as_deref()).collect();
            let rows = tx
                .query(
                    "INSERT INTO siamese_photos (collection, path, sha256, size, width, height, error)
                     SELECT $1::int8, u.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int4[],
                         $6::int4[], $7::text[]) AS u
                     ON CONFLICT (collection, path) DO UPDATE SET sha256 = excluded.sha256,
                        size = excluded.size, width = excluded.width, height = excluded.height,
                        error = excluded.error
                     RETURNING id, path",
                    &[&collection, &paths, &hashes, &sizes, &widths, &heights, &errors],
                )
                .map_err(e)?;
            let id_of: HashMap<String, i64> = rows
                .iter()
                .map(|r| (r.get::<_, String>(1), r.get(0)))
                .collect();
            let photo_ids: Vec<i64> = paths.iter().map(|p| id_of[*p]).collect();
            tx.execute(
                "DELETE FROM siamese_faces WHERE photo = ANY($1)",
                &[&photo_ids],
            )
            .map_err(e)?;
            let wanted = chunk
                .iter()
                .flat_map(|p| &p.faces)
                .filter(|f| f.id.is_none())
                .count() as i64;
            let mut fresh: Vec<i64> = tx
                .query(
                    "SELECT nextval(pg_get_serial_sequence('siamese_faces', 'id'))
                     FROM generate_series(1, $1::int8)",
                    &[&wanted],
                )
                .map_err(e)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            fresh.sort_unstable();
            let mut fresh = fresh.into_iter();
            let sink = tx
                .copy_in(&format!(
                    "COPY siamese_faces ({FACE_COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .map_err(e)?;
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for (photo, &photo_id) in chunk.iter().zip(&photo_ids) {
                let mut ids = Vec::with_capacity(photo.faces.len());
                for (position, face) in photo.faces.iter().enumerate() {
                    let id = match face.id {
                        Some(id) => id,
                        None => fresh.next().expect("an id drawn per new face"),
                    };
                    let b = &face.bbox;
                    let landmarks: Option<Vec<f32>> = face
                        .landmarks
                        .as_ref()
                        .map(|l| l.iter().flatten().copied().collect());
                    let embedding = Vector::from(face.embedding.clone());
                    let position = position as i32;
                    let row: [&(dyn ToSql + Sync); 13] = [
                        &id,
                        &collection,
                        &photo_id,
                        &position,
                        &b.left,
                        &b.top,
                        &b.width,
                        &b.height,
                        &b.score,
                        &landmarks,
                        &face.assumed,
                        &embedding,
                        &face.person,
                    ];
                    writer.write(&row).map_err(e)?;
                    ids.push(id);
                }
                all_ids.push(ids);
            }
            writer.finish().map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(all_ids)
    }

    pub(super) fn write_create_people(
        &mut self,
        collection: CollectionId,
        count: usize,
    ) -> Result<Vec<PersonId>> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let rows = self
            .client
            .query(
                "INSERT INTO siamese_people (collection) SELECT $1::int8 FROM generate_series(1, $2::int8)
                 RETURNING id",
                &[&collection, &(count as i64)],
            )
            .map_err(e)?;
        let mut ids: Vec<PersonId> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    pub(super) fn write_assign(
        &mut self,
        collection: CollectionId,
        assignments: &[(FaceId, Option<PersonId>)],
    ) -> Result<()> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        // The last assignment of a face wins, as statements in order would have it.
        let mut last: HashMap<FaceId, Option<PersonId>> = HashMap::new();
        let mut order = Vec::new();
        for &(face, person) in assignments {
            if last.insert(face, person).is_none() {
                order.push(face);
            }
        }
        let faces: Vec<FaceId> = order.clone();
        let persons: Vec<Option<PersonId>> = order.iter().map(|f| last[f]).collect();
        let mut tx = self.client.transaction().map_err(e)?;
        let mut wanted: Vec<PersonId> = Vec::new();
        for &(_, person) in assignments {
            if let Some(p) = person {
                if !wanted.contains(&p) {
                    wanted.push(p);
                }
            }
        }
        let known: HashSet<PersonId> = tx
            .query(
                "SELECT id FROM siamese_people WHERE collection = $1 AND id = ANY($2)",
                &[&collection, &wanted],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(p) = wanted.iter().find(|p| !known.contains(p)) {
            return Err(Error::config(
                "person",
                format!("no person {p} in this collection"),
            ));
        }
        let found: HashSet<FaceId> = tx
            .query(
                "UPDATE siamese_faces f SET person = a.person
                 FROM unnest($1::int8[], $2::int8[]) AS a(face, person)
                 WHERE f.id = a.face AND f.collection = $3 RETURNING f.id",
                &[&faces, &persons, &collection],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(face) = faces.iter().find(|f| !found.contains(f)) {
            return Err(Error::config(
                "face",
                format!("no face {face} in this collection"),
            ));
        }
        tx.execute(
            "DELETE FROM siamese_people q WHERE q.collection = $1 AND q.name IS NULL
             AND NOT EXISTS (SELECT 1 FROM siamese_faces f WHERE f.person = q.id)",
            &[&collection],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub(super) fn write_name(
        &mut self,
        collection: CollectionId,
        person: PersonId,
        name: Option<&str>,
    ) -> Result<()> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let mut tx = self.client.transaction().map_err(e)?;
        Self::check_person(&mut tx, &shown, secret.as_deref(), collection, person)?;
        tx.execute(
            "UPDATE siamese_people SET name = $2 WHERE id = $1",
            &[&person, &name],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub(super) fn write_merge(
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
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let mut tx = self.client.transaction().map_err(e)?;
        let into_name = Self::check_person(&mut tx, &shown, secret.as_deref(), collection, into)?;
        let from_name = Self::check_person(&mut tx, &shown, secret.as_deref(), collection, from)?;
        tx.execute(
            "UPDATE siamese_faces SET person = $1 WHERE person = $2",
            &[&into, &from],
        )
        .map_err(e)?;
        if into_name.is_none() && from_name.is_some() {
            tx.execute(
                "UPDATE siamese_people SET name = $2 WHERE id = $1",
                &[&into, &from_name],
            )
            .map_err(e)?;
        }
        tx.execute("DELETE FROM siamese_people WHERE id = $1", &[&from])
            .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub(super) fn write_delete_person(
        &mut self,
        collection: CollectionId,
        person: PersonId,
    ) -> Result<()> {
        let (shown, secret) = (self.shown.clone(), self.secret.clone());
        let e = |err: postgres::Error| error_line(&shown, secret.as_deref(), &err);
        let mut tx = self.client.transaction().map_err(e)?;
        Self::check_person(&mut tx, &shown, secret.as_deref(), collection, person)?;
        let faces: i64 = tx
            .query_one(
                "SELECT count(*) FROM siamese_faces WHERE person = $1",
                &[&person],
            )
            .map_err(e)?
            .get(0);
        if faces > 0 {
            return Err(Error::config(
                "person",
                format!("person {person} still has {faces} faces"),
            ));
        }
        tx.execute("DELETE FROM siamese_people WHERE id = $1", &[&person])
            .map_err(e)?;
        tx.commit().map_err(e)
    }
}
