//! People that last: the faces of a collection assigned to persons kept in the database, so
//! a collection can grow, be named and be corrected without starting over.
//!
//! - The first run clusters every face ([`super::grouping::group_faces`]); each group of two or
//!   more faces becomes a person.
//! - Later runs assign only the faces without a person, by Immich's rule: a face's matches are
//!   the faces within `max_distance` (default: chinese whispers' cut, 0.74 × the calibrated
//!   same-person threshold), nearest first, at most `min_faces` of them looked at; it joins the
//!   person of its nearest match that has one; otherwise, when it has at least `min_faces`
//!   matches (itself counted, Immich's `minFaces`), a new person is made for it and its
//!   unassigned matches; else it stays unassigned and is retried by the next run. Faces with
//!   enough matches go first.
//! - `recluster` clusters everything again; a new group takes the id (and name) of the old
//!   person most of its faces had, so names survive a re-clustering.

use std::collections::HashMap;

use super::grouping::{group_faces, GroupingParams, MethodName, CHINESE_WHISPERS_CUT_FACTOR};
use crate::distance::Distance;
use crate::eval::clustering::NOISE;
use crate::store::{Backend, CollectionId, EmbeddingStore, FaceId, PersonId};
use crate::{Error, Result};

/// Immich's `minFaces`: matches (the face itself included) a face needs to start a person.
pub const MIN_FACES: usize = 3;

/// How people are kept up to date.
#[derive(Debug, Clone, PartialEq)]
pub struct PeopleParams {
    /// Cluster every face again instead of assigning only new ones.
    pub recluster: bool,
    /// Method of a (re-)clustering.
    pub method: MethodName,
    pub grouping: GroupingParams,
    /// Largest distance of a match (default: [`CHINESE_WHISPERS_CUT_FACTOR`] × threshold).
    pub max_distance: Option<f32>,
    /// Matches needed to start a person ([`MIN_FACES`]).
    pub min_faces: usize,
}

impl PeopleParams {
    /// Defaults for `method` with `grouping`.
    pub fn new(method: MethodName, grouping: GroupingParams) -> Self {
        PeopleParams {
            recluster: false,
            method,
            grouping,
            max_distance: None,
            min_faces: MIN_FACES,
        }
    }

    fn max_distance(&self) -> f32 {
        self.max_distance
            .unwrap_or(CHINESE_WHISPERS_CUT_FACTOR * self.grouping.threshold)
    }
}

/// What [`update_people`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PeopleUpdate {
    /// Whether every face was clustered (first run, or `recluster`).
    pub clustered: bool,
    /// Faces that joined a person who existed before this run.
    pub joined_existing: usize,
    /// People made by this run.
    pub new_people: usize,
    /// Faces left without a person.
    pub unassigned: usize,
    /// People in the collection afterwards.
    pub people: usize,
}

/// Brings the people of `collection` up to date with every face in `store` (the collection as
/// loaded), writes the assignments to `database` in one transaction and records them in
/// `store`.
pub fn update_people(
    database: &mut dyn Backend,
    collection: CollectionId,
    store: &mut EmbeddingStore,
    params: &PeopleParams,
) -> Result<PeopleUpdate> {
    let faces: Vec<(FaceId, Option<PersonId>)> = store
        .faces()
        .map(|(p, i, f)| {
            f.id.map(|id| (id, f.person)).ok_or_else(|| {
                Error::Other(format!("{} face {i}: not written to the database", p.path))
            })
        })
        .collect::<Result<_>>()?;
    if faces.is_empty() {
        return Ok(PeopleUpdate::default());
    }
    let any_person = faces.iter().any(|f| f.1.is_some());
    let mut update = PeopleUpdate::default();
    let assignments = if params.recluster || !any_person {
        update.clustered = true;
        recluster(database, collection, store, &faces, params, &mut update)?
    } else {
        assign_new(database, collection, store, &faces, params, &mut update)?
    };
    database.assign(collection, &assignments)?;
    let person_of: HashMap<FaceId, Option<PersonId>> = assignments.into_iter().collect();
    for face in store.faces_mut() {
        if let Some(p) = face.id.and_then(|id| person_of.get(&id)) {
            face.person = *p;
        }
    }
    update.unassigned = store.faces().filter(|f| f.2.person.is_none()).count();
    update.people = database.people(collection)?.len();
    Ok(update)
}

fn recluster(
    database: &mut dyn Backend,
    collection: CollectionId,
    store: &EmbeddingStore,
    faces: &[(FaceId, Option<PersonId>)],
    params: &PeopleParams,
    update: &mut PeopleUpdate,
) -> Result<Vec<(FaceId, Option<PersonId>)>> {
    let keys: Vec<String> = store.photos().iter().map(|p| p.path.clone()).collect();
    let groups = group_faces(store, &keys, params.method, &params.grouping)?;
    // Faces come out in store order, as `faces` is.
    let mut members: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &label) in groups.labels.iter().enumerate() {
        if label != NOISE {
            members.entry(label).or_default().push(i);
        }
    }
    let mut clusters: Vec<Vec<usize>> = members.into_values().filter(|m| m.len() >= 2).collect();
    clusters.sort_by_key(|m| (std::cmp::Reverse(m.len()), m[0]));
    let named: HashMap<PersonId, bool> = database
        .people(collection)?
        .into_iter()
        .map(|p| (p.id, p.name.is_some()))
        .collect();
    let mut taken = std::collections::HashSet::new();
    let mut chosen: Vec<Option<PersonId>> = Vec::with_capacity(clusters.len());
    for m in &clusters {
        // The old person most of these faces had (named people first) keeps the group.
        let mut votes: HashMap<PersonId, usize> = HashMap::new();
        for &i in m {
            if let Some(p) = faces[i].1 {
                *votes.entry(p).or_default() += 1;
            }
        }
        let mut ranked: Vec<(PersonId, usize)> = votes.into_iter().collect();
        ranked.sort_by_key(|&(p, n)| {
            (
                std::cmp::Reverse(named.get(&p).copied().unwrap_or(false)),
                std::cmp::Reverse(n),
                p,
            )
        });
        let keep = ranked.into_iter().map(|r| r.0).find(|p| !taken.contains(p));
        if let Some(p) = keep {
            taken.insert(p);
        }
        chosen.push(keep);
    }
    let missing = chosen.iter().filter(|c| c.is_none()).count();
    let mut fresh = database.create_people(collection, missing)?.into_iter();
    update.new_people = missing;
    let mut person_of_face: Vec<Option<PersonId>> = vec![None; faces.len()];
    for (m, c) in clusters.iter().zip(chosen) {
        let p = c.unwrap_or_else(|| fresh.next().expect("one new person per group"));
        for &i in m {
            person_of_face[i] = Some(p);
        }
    }
    Ok(faces
        .iter()
        .zip(person_of_face)
        .map(|(&(id, _), p)| (id, p))
        .collect())
}

fn assign_new(
    database: &mut dyn Backend,
    collection: CollectionId,
    store: &EmbeddingStore,
    faces: &[(FaceId, Option<PersonId>)],
    params: &PeopleParams,
    update: &mut PeopleUpdate,
) -> Result<Vec<(FaceId, Option<PersonId>)>> {
    let dim = store.dim();
    let data: Vec<f32> = store
        .faces()
        .flat_map(|f| f.2.embedding.iter().copied())
        .collect();
    let todo: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].1.is_none()).collect();
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let query: Vec<f32> = todo
        .iter()
        .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let max_distance = params.max_distance();
    let look = params.min_faces.max(1) + 1;
    // Exact search; the face itself is its own nearest and is dropped.
    let found = crate::eval::knn::nearest(&query, &data, dim, Distance::Euclidean, look);
    let matches: Vec<Vec<usize>> = todo
        .iter()
        .zip(found)
        .map(|(&i, hits)| {
            hits.into_iter()
                .filter(|&(j, d)| j != i && d <= max_distance)
                .map(|(j, _)| j)
                .collect()
        })
        .collect();
    let mut person: Vec<Option<PersonId>> = faces.iter().map(|f| f.1).collect();
    let existing: std::collections::HashSet<PersonId> = faces.iter().filter_map(|f| f.1).collect();
    let mut order: Vec<usize> = (0..todo.len()).collect();
    // Core faces (enough matches) first, so a deferred face can join a person made this run.
    order.sort_by_key(|&t| (matches[t].len() + 1 < params.min_faces, t));
    for t in order {
        let i = todo[t];
        if person[i].is_some() {
            continue;
        }
        if let Some(p) = matches[t].iter().find_map(|&j| person[j]) {
            person[i] = Some(p);
            if existing.contains(&p) {
                update.joined_existing += 1;
            }
        } else if matches[t].len() + 1 >= params.min_faces {
            let p = database.create_people(collection, 1)?[0];
            update.new_people += 1;
            person[i] = Some(p);
            for &j in &matches[t] {
                if person[j].is_none() {
                    person[j] = Some(p);
                }
            }
        }
    }
    Ok(todo.iter().map(|&i| (faces[i].0, person[i])).collect())
}
